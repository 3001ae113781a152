//! Real-time: the per-stream chain of native stages between a stream's ring and its
//! endpoint.
//!
//! Playback: ring (guest format) → decode → resample → gain → channel map → effects →
//! the endpoint's mix. Capture runs the mirror image: endpoint → channel map → resample →
//! gain → encode → ring. Gain runs in the guest's channel layout because guest protocols
//! set volume per guest channel. Every buffer is allocated when the chain is built (off the
//! real-time thread); `pull` and `push` only compute.

use paravox_pcm::Format;

use crate::device::DeviceFormat;
use crate::error::{EngineError, Result};
use crate::gain::{GainControl, GainStage};
use crate::resample::Resampler;
use crate::ring::{Consumer, Producer};
use crate::{MAX_CHANNELS, StreamFormat};

/// An in-place processing stage on interleaved `f32` (effects; plugins later).
pub trait Stage: Send + std::fmt::Debug {
    /// A short name for logs and the API.
    fn name(&self) -> &str;
    /// Real-time: processes one cycle in place.
    fn process(&mut self, samples: &mut [f32], channels: usize);
}

/// Up- or down-mixes between channel layouts with a fixed coefficient matrix.
#[derive(Debug, Clone)]
pub struct ChannelMapper {
    inputs: usize,
    outputs: usize,
    identity: bool,
    /// Row-major `outputs × inputs`.
    matrix: Box<[f32]>,
}

impl ChannelMapper {
    /// The standard mapping between the standard layouts of `inputs` and `outputs`
    /// channels (see `paravox_pcm::mix_matrix` for the rules).
    pub fn new(inputs: usize, outputs: usize) -> Result<ChannelMapper> {
        if !(1..=MAX_CHANNELS).contains(&inputs) || !(1..=MAX_CHANNELS).contains(&outputs) {
            return Err(EngineError::Limit(format!(
                "channel mapping {inputs} -> {outputs}: 1..={MAX_CHANNELS} channels are supported"
            )));
        }
        let matrix = crate::channels::standard_matrix(inputs, outputs);
        let identity = inputs == outputs
            && (0..outputs).all(|o| {
                (0..inputs).all(|i| matrix[o * inputs + i] == if o == i { 1.0 } else { 0.0 })
            });
        Ok(ChannelMapper {
            inputs,
            outputs,
            identity,
            matrix,
        })
    }

    /// Real-time: maps interleaved `input` into `output`, frame by frame, as many frames
    /// as both hold.
    pub fn apply(&self, input: &[f32], output: &mut [f32]) {
        if self.identity {
            let len = input.len().min(output.len());
            output[..len].copy_from_slice(&input[..len]);
            return;
        }
        for (frame_in, frame_out) in input
            .chunks_exact(self.inputs)
            .zip(output.chunks_exact_mut(self.outputs))
        {
            for (o, sample) in frame_out.iter_mut().enumerate() {
                let row = &self.matrix[o * self.inputs..(o + 1) * self.inputs];
                *sample = row.iter().zip(frame_in).map(|(c, x)| c * x).sum();
            }
        }
    }
}

/// What one playback pull did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullOutcome {
    /// Guest bytes taken from the ring.
    pub bytes_consumed: usize,
    /// Endpoint frames at the start of the cycle that carry the stream's audio; the rest
    /// is silence.
    pub audible_frames: usize,
    /// Whether the ring ran dry before the cycle was filled.
    pub underrun: bool,
}

/// The playback chain of one stream.
#[derive(Debug)]
pub struct PlaybackChain {
    format: Format,
    guest_channels: usize,
    frame_bytes: usize,
    sample_bytes: usize,
    period_frames: usize,
    resampler: Option<Resampler>,
    gain: GainStage,
    mapper: ChannelMapper,
    effects: Vec<Box<dyn Stage>>,
    endpoint_channels: usize,
    decoded: Box<[f32]>,
    resampled: Box<[f32]>,
}

fn checked_sizes(stream: &StreamFormat) -> Result<(usize, usize)> {
    let sample_bytes = stream
        .format
        .bytes_per_sample()
        .filter(|_| stream.format.is_convertible())
        .ok_or(EngineError::Params(paravox_pcm::PcmError::Unconvertible {
            format: stream.format,
        }))? as usize;
    Ok((sample_bytes, sample_bytes * stream.channels as usize))
}

impl PlaybackChain {
    /// Builds the chain from the guest's stream format to the endpoint's format.
    pub fn new(stream: &StreamFormat, endpoint: &DeviceFormat) -> Result<PlaybackChain> {
        let (sample_bytes, frame_bytes) = checked_sizes(stream)?;
        let guest_channels = stream.channels as usize;
        let period_frames = endpoint.period_frames as usize;
        let resampler = if stream.rate == endpoint.rate {
            None
        } else {
            Some(Resampler::new(stream.rate, endpoint.rate, guest_channels)?)
        };
        let max_input = resampler
            .as_ref()
            .map_or(period_frames, |r| r.max_input_frames_for(period_frames));
        Ok(PlaybackChain {
            format: stream.format,
            guest_channels,
            frame_bytes,
            sample_bytes,
            period_frames,
            resampler,
            gain: GainStage::new(stream.rate),
            mapper: ChannelMapper::new(guest_channels, endpoint.channels as usize)?,
            effects: Vec::new(),
            endpoint_channels: endpoint.channels as usize,
            decoded: vec![0.0; max_input.max(period_frames) * guest_channels].into_boxed_slice(),
            resampled: vec![0.0; period_frames * guest_channels].into_boxed_slice(),
        })
    }

    /// Appends an effect stage (runs on the endpoint's channel layout).
    pub fn push_effect(&mut self, stage: Box<dyn Stage>) {
        self.effects.push(stage);
    }

    /// Guest bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Starts gain at its targets without a ramp.
    pub fn settle_gain(&mut self, control: &GainControl) {
        self.gain.settle(control);
    }

    /// Real-time: fills `out` (one endpoint period, endpoint channels) from the ring;
    /// what the ring cannot supply is silence.
    pub fn pull(
        &mut self,
        ring: &mut Consumer,
        control: &GainControl,
        out: &mut [f32],
    ) -> PullOutcome {
        let channels = self.guest_channels;
        let want = self.period_frames;
        let needed = self
            .resampler
            .as_ref()
            .map_or(want, |r| r.input_frames_for(want));
        let available = ring.available() / self.frame_bytes;
        let take = needed.min(available).min(self.decoded.len() / channels);
        let (format, sample_bytes, decoded) = (self.format, self.sample_bytes, &mut self.decoded);
        let bytes_consumed = ring.read_with(take * self.frame_bytes, |region, offset| {
            let first = offset / sample_bytes;
            // The format was checked convertible when the chain was built.
            let _ = paravox_pcm::decode(format, region, &mut decoded[first..]);
        });
        let (signal, audible_frames) = match self.resampler.as_mut() {
            Some(resampler) => {
                let (_, produced) = resampler.process(
                    &self.decoded[..take * channels],
                    &mut self.resampled[..want * channels],
                );
                self.resampled[produced * channels..want * channels].fill(0.0);
                (&mut self.resampled[..want * channels], produced)
            }
            None => {
                self.decoded[take * channels..want * channels].fill(0.0);
                (&mut self.decoded[..want * channels], take)
            }
        };
        self.gain.process(control, signal, channels);
        self.mapper.apply(signal, out);
        for effect in &mut self.effects {
            effect.process(out, self.endpoint_channels);
        }
        PullOutcome {
            bytes_consumed,
            audible_frames,
            underrun: take < needed,
        }
    }
}

/// What one capture push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// Guest bytes written to the ring.
    pub bytes_produced: usize,
    /// Whether the ring was too full to take the whole cycle.
    pub overrun: bool,
}

/// The capture chain of one stream.
#[derive(Debug)]
pub struct CaptureChain {
    format: Format,
    guest_channels: usize,
    frame_bytes: usize,
    sample_bytes: usize,
    resampler: Option<Resampler>,
    gain: GainStage,
    mapper: ChannelMapper,
    mapped: Box<[f32]>,
    resampled: Box<[f32]>,
}

impl CaptureChain {
    /// Builds the chain from the endpoint's format to the guest's stream format.
    pub fn new(stream: &StreamFormat, endpoint: &DeviceFormat) -> Result<CaptureChain> {
        let (sample_bytes, frame_bytes) = checked_sizes(stream)?;
        let guest_channels = stream.channels as usize;
        let period_frames = endpoint.period_frames as usize;
        let resampler = if stream.rate == endpoint.rate {
            None
        } else {
            Some(Resampler::new(endpoint.rate, stream.rate, guest_channels)?)
        };
        // Output frames per input period, rounded up, plus the fractional carry.
        let max_output = (period_frames as u64 * u64::from(stream.rate))
            .div_ceil(u64::from(endpoint.rate)) as usize
            + 2;
        Ok(CaptureChain {
            format: stream.format,
            guest_channels,
            frame_bytes,
            sample_bytes,
            resampler,
            gain: GainStage::new(stream.rate),
            mapper: ChannelMapper::new(endpoint.channels as usize, guest_channels)?,
            mapped: vec![0.0; period_frames * guest_channels].into_boxed_slice(),
            resampled: vec![0.0; max_output * guest_channels].into_boxed_slice(),
        })
    }

    /// Guest bytes per frame.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Starts gain at its targets without a ramp.
    pub fn settle_gain(&mut self, control: &GainControl) {
        self.gain.settle(control);
    }

    /// Real-time: converts one endpoint period `input` and writes it into the ring;
    /// what does not fit is dropped and reported as an overrun.
    pub fn push(
        &mut self,
        input: &[f32],
        ring: &mut Producer,
        control: &GainControl,
    ) -> PushOutcome {
        let channels = self.guest_channels;
        self.mapper.apply(input, &mut self.mapped);
        let signal = match self.resampler.as_mut() {
            Some(resampler) => {
                let (_, produced) = resampler.process(&self.mapped, &mut self.resampled);
                &mut self.resampled[..produced * channels]
            }
            None => &mut self.mapped[..],
        };
        self.gain.process(control, signal, channels);
        let frames = signal.len() / channels;
        let fits = (ring.free() / self.frame_bytes).min(frames);
        let (format, sample_bytes) = (self.format, self.sample_bytes);
        let bytes_produced = ring.write_with(fits * self.frame_bytes, |region, offset| {
            let first = offset / sample_bytes;
            // The format was checked convertible when the chain was built.
            let _ = paravox_pcm::encode(format, &signal[first..], region);
        });
        PushOutcome {
            bytes_produced,
            overrun: fits < frames,
        }
    }
}
