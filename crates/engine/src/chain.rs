//! Real-time: the per-stream chain of native stages between a stream's ring and its
//! endpoint.
//!
//! Playback: ring (guest format) → decode → resample → gain → channel map → effects →
//! the endpoint's mix. Capture runs the mirror image: endpoint → channel map → resample →
//! gain → encode → ring. Gain runs in the guest's channel layout because guest protocols
//! set volume per guest channel. Every buffer is allocated when the chain is built (off the
//! real-time thread); `pull` and `push` only compute.
//!
//! Any of convert, resample, channel map and gain can be a plugin ([`ChainPlugins`]); the
//! native stage is always built too and takes over, for good, the cycle a plugin faults.

use std::sync::Arc;

use paravox_pcm::Format;

use crate::device::DeviceFormat;
use crate::error::{EngineError, Result};
use crate::gain::{GainControl, GainStage};
use crate::plugin::{
    BOARD_SLOTS, ChainPlugins, FaultBoard, KernelSetup, MAX_EFFECTS, PluginFault, PluginSlot,
    PluginStage, StageRole, board_slot, check_range, copy_checked, run_plugin, set_params,
};
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

    /// Whether the mapping copies every channel to itself and nothing else.
    pub fn is_identity(&self) -> bool {
        self.identity
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
    plugins: PluginStages,
}

/// A plugin that could not be set up for a stream; the native stage serves instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupIssue {
    /// The stage it was meant for.
    pub role: StageRole,
    /// Board position (see [`crate::plugin::board_slot`]).
    pub position: usize,
    /// The plugin's name.
    pub plugin: String,
    /// Why it was refused.
    pub reason: String,
}

/// The plugin stages of one chain, each with its board position.
#[derive(Debug, Default)]
struct PluginStages {
    convert: Option<PluginSlot>,
    resample: Option<PluginSlot>,
    channel_map: Option<PluginSlot>,
    gain: Option<GainPlugin>,
    effects: Vec<PluginSlot>,
    /// Plugin names by board position, for fault reports.
    names: Vec<Option<String>>,
}

/// A gain plugin driven by the stream's gain controls through its `channelN` parameters.
#[derive(Debug)]
struct GainPlugin {
    slot: PluginSlot,
    /// Parameter index of each guest channel's gain.
    params: [u32; MAX_CHANNELS],
    /// The value each parameter was last set to.
    sent: [f32; MAX_CHANNELS],
}

impl PluginStage for GainPlugin {
    fn active(&self) -> bool {
        self.slot.active()
    }
}

impl GainPlugin {
    /// Real-time: sends changed targets, then applies the gain in place.
    fn process(&mut self, control: &GainControl, signal: &mut [f32], channels: usize) -> bool {
        let Some(kernel) = self.slot.kernel() else {
            return false;
        };
        for channel in 0..channels.min(MAX_CHANNELS) {
            let goal = crate::gain::target(control, channel);
            if goal != self.sent[channel] {
                if let Err(fault) = kernel.set_param(self.params[channel], goal) {
                    self.slot.fail(fault);
                    return false;
                }
                self.sent[channel] = goal;
            }
        }
        let frames = signal.len() / channels.max(1);
        self.slot.run_in_place(signal, frames).is_some()
    }
}

/// The shapes of one chain, from which each role's kernel setup follows.
struct ChainShape {
    stream: StreamFormat,
    endpoint: DeviceFormat,
    /// Most guest-rate frames one cycle decodes.
    max_input: usize,
    direction_playback: bool,
}

impl ChainShape {
    fn setup(&self, role: StageRole) -> Option<KernelSetup> {
        let (stream, endpoint) = (&self.stream, &self.endpoint);
        let period = endpoint.period_frames;
        let guest_side = |frames: u32| KernelSetup {
            input_rate: stream.rate,
            output_rate: stream.rate,
            input_channels: stream.channels,
            output_channels: stream.channels,
            input_format: Format::F32Le,
            output_format: Format::F32Le,
            max_frames: frames,
            inputs: 1,
        };
        let max_input = self.max_input as u32;
        Some(match role {
            StageRole::Convert if self.direction_playback => KernelSetup {
                input_format: stream.format,
                ..guest_side(max_input)
            },
            StageRole::Convert => KernelSetup {
                output_format: stream.format,
                ..guest_side(max_input)
            },
            StageRole::Resample if stream.rate == endpoint.rate => return None,
            StageRole::Resample => {
                let (input_rate, output_rate) = if self.direction_playback {
                    (stream.rate, endpoint.rate)
                } else {
                    (endpoint.rate, stream.rate)
                };
                KernelSetup {
                    input_rate,
                    output_rate,
                    ..guest_side(max_input.max(period))
                }
            }
            StageRole::Gain => guest_side(max_input.max(period)),
            StageRole::ChannelMap => {
                let (input_channels, output_channels) = if self.direction_playback {
                    (stream.channels, endpoint.channels)
                } else {
                    (endpoint.channels, stream.channels)
                };
                KernelSetup {
                    input_rate: endpoint.rate,
                    output_rate: endpoint.rate,
                    input_channels,
                    output_channels,
                    ..guest_side(period)
                }
            }
            StageRole::Effect => KernelSetup {
                input_rate: endpoint.rate,
                output_rate: endpoint.rate,
                input_channels: endpoint.channels,
                output_channels: endpoint.channels,
                ..guest_side(period)
            },
            StageRole::Mix => return None,
        })
    }
}

impl PluginStages {
    /// Control plane: instantiates every configured plugin; refusals become issues and
    /// leave the native stage in place.
    fn build(
        plugins: &ChainPlugins,
        shape: &ChainShape,
        board: &Arc<FaultBoard>,
    ) -> (PluginStages, Vec<SetupIssue>) {
        let mut stages = PluginStages {
            names: vec![None; BOARD_SLOTS],
            ..PluginStages::default()
        };
        let mut issues = Vec::new();
        let mut effect_index = 0;
        for (role, factory) in plugins.stages() {
            let position = match role {
                StageRole::Effect => {
                    let position = board_slot(role) + effect_index;
                    effect_index += 1;
                    if effect_index > MAX_EFFECTS || !shape.direction_playback {
                        issues.push(SetupIssue {
                            role,
                            position: position.min(BOARD_SLOTS - 1),
                            plugin: factory.name().to_owned(),
                            reason: format!(
                                "at most {MAX_EFFECTS} effects, on playback streams only"
                            ),
                        });
                        continue;
                    }
                    position
                }
                _ => board_slot(role),
            };
            let Some(setup) = shape.setup(role) else {
                continue;
            };
            let kernel = factory.instantiate(role, &setup).and_then(|mut kernel| {
                if role == StageRole::Effect
                    && let Some(effect) = plugins
                        .effects
                        .get(position - board_slot(StageRole::Effect))
                {
                    set_params(kernel.as_mut(), &effect.params)?;
                }
                Ok(kernel)
            });
            let kernel = match kernel {
                Ok(kernel) => kernel,
                Err(reason) => {
                    issues.push(SetupIssue {
                        role,
                        position,
                        plugin: factory.name().to_owned(),
                        reason,
                    });
                    continue;
                }
            };
            stages.names[position] = Some(factory.name().to_owned());
            let slot = PluginSlot::new(kernel, board.clone(), position);
            match role {
                StageRole::Convert => stages.convert = Some(slot),
                StageRole::Resample => stages.resample = Some(slot),
                StageRole::ChannelMap => stages.channel_map = Some(slot),
                StageRole::Effect => stages.effects.push(slot),
                StageRole::Gain => match GainPlugin::new(slot, shape.stream.channels as usize) {
                    Ok(gain) => stages.gain = Some(gain),
                    Err(reason) => {
                        stages.names[position] = None;
                        issues.push(SetupIssue {
                            role,
                            position,
                            plugin: factory.name().to_owned(),
                            reason,
                        });
                    }
                },
                StageRole::Mix => {}
            }
        }
        (stages, issues)
    }
}

impl GainPlugin {
    fn new(mut slot: PluginSlot, channels: usize) -> std::result::Result<GainPlugin, String> {
        let mut params = [0u32; MAX_CHANNELS];
        let kernel = slot
            .kernel()
            .ok_or_else(|| "the plugin is disabled".to_owned())?;
        for (channel, param) in params.iter_mut().enumerate().take(channels) {
            *param = kernel
                .param_index(&format!("channel{channel}"))
                .ok_or_else(|| {
                    format!(
                        "a gain stage needs parameters channel0..channel{}",
                        channels - 1
                    )
                })?;
        }
        Ok(GainPlugin {
            slot,
            params,
            // The kernel starts at unity on every channel.
            sent: [1.0; MAX_CHANNELS],
        })
    }
}

/// Whether periods of `format` may go from a guest's ring to a device as they are, when
/// nothing in the chain changes them: S16_LE, the format nearly every guest and device
/// speaks. Its every value survives decode → encode bit for bit (see
/// [`paravox_pcm::convert`]), its silence is zero bytes, and the meters read it as
/// integers ([`crate::meter::MeterReading::of_s16le`]), so no float operation is needed.
pub fn is_direct_format(format: Format) -> bool {
    format == Format::S16Le
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
    /// Builds the native chain from the guest's stream format to the endpoint's format.
    pub fn new(stream: &StreamFormat, endpoint: &DeviceFormat) -> Result<PlaybackChain> {
        let board = Arc::new(FaultBoard::default());
        Ok(Self::with_plugins(stream, endpoint, &ChainPlugins::default(), &board)?.0)
    }

    /// Builds the chain with `plugins` standing in for native stages (control plane: this
    /// instantiates and warms the plugins). Plugins that cannot serve this stream are
    /// returned as issues; their native stages serve instead. Faults go to `board`.
    pub fn with_plugins(
        stream: &StreamFormat,
        endpoint: &DeviceFormat,
        plugins: &ChainPlugins,
        board: &Arc<FaultBoard>,
    ) -> Result<(PlaybackChain, Vec<SetupIssue>)> {
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
            .map_or(period_frames, |r| r.max_input_frames_for(period_frames))
            .max(period_frames);
        let shape = ChainShape {
            stream: *stream,
            endpoint: *endpoint,
            max_input,
            direction_playback: true,
        };
        let (plugins, issues) = PluginStages::build(plugins, &shape, board);
        let chain = PlaybackChain {
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
            decoded: vec![0.0; max_input * guest_channels].into_boxed_slice(),
            resampled: vec![0.0; period_frames * guest_channels].into_boxed_slice(),
            plugins,
        };
        Ok((chain, issues))
    }

    /// Plugin names by fault-board position.
    pub fn plugin_names(&self) -> &[Option<String>] {
        &self.plugins.names
    }

    /// Real-time: takes over the running state of the chain it replaces (resampler
    /// history and phase, gain ramps), so a swap at a cycle boundary is seamless. Only
    /// swaps boxes and copies plain values: nothing is allocated or freed.
    pub fn adopt_state(&mut self, old: &mut PlaybackChain) {
        adopt_running_state(
            (&mut self.resampler, &mut self.gain, self.guest_channels),
            (&mut old.resampler, &mut old.gain, old.guest_channels),
        );
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
    /// what the ring cannot supply is silence. The stages in order: convert, resample,
    /// gain, channel map, effects; each runs its plugin when it has a working one and its
    /// native stage otherwise ([`run_plugin`]).
    ///
    /// A converter plugin's samples are not copied out of its memory: the later stages
    /// work on them where they lie, and the first read of them checks them, before any
    /// stage with state of its own sees them.
    pub fn pull(
        &mut self,
        ring: &mut Consumer,
        control: &GainControl,
        out: &mut [f32],
    ) -> PullOutcome {
        let needed = self.input_frames_for(self.period_frames);
        let available = ring.available() / self.frame_bytes;
        let take = needed
            .min(available)
            .min(self.decoded.len() / self.guest_channels);
        // The converter leaves the chain for the cycle (a move, no allocation), so its
        // output buffer can be the signal while the other stages borrow the chain.
        let mut convert = self.plugins.convert.take();
        let (bytes_consumed, audible_frames) =
            self.decode_and_finish(convert.as_mut(), ring, take, control, out);
        self.plugins.convert = convert;
        PullOutcome {
            bytes_consumed,
            audible_frames,
            underrun: take < needed,
        }
    }

    /// Real-time: whether this chain, on a device that takes periods as bytes in
    /// `device`, would hand it the guest's bytes unchanged: the same sample format, one
    /// that may go to a device as it is ([`is_direct_format`]), and no
    /// stage with anything to do (no resampler, the identity channel map, no effects, the
    /// gain settled at unity, no plugin standing in for any of those). The converter
    /// does not count: its decode and the device's encode cancel exactly for such a
    /// format, so it is not called.
    pub fn passes_through(&self, device: Format, control: &GainControl) -> bool {
        self.format == device
            && is_direct_format(device)
            && self.resampler.is_none()
            && self.mapper.is_identity()
            && self.effects.is_empty()
            && self.plugins.effects.is_empty()
            && self.plugins.resample.is_none()
            && self.plugins.channel_map.is_none()
            && self.plugins.gain.is_none()
            && self.gain.is_idle(control, self.guest_channels)
    }

    /// Real-time: one period of the guest's bytes straight from the ring into `out` (one
    /// period in the guest's format, which [`PlaybackChain::passes_through`] found to be
    /// the device's); what the ring cannot supply is silence. The same outcome as
    /// [`PlaybackChain::pull`] would give, and the same bytes its samples would encode to.
    pub fn pull_bytes(&mut self, ring: &mut Consumer, out: &mut [u8]) -> PullOutcome {
        let needed = self.period_frames;
        let take = needed
            .min(ring.available() / self.frame_bytes)
            .min(out.len() / self.frame_bytes);
        let consumed = ring.read_with(take * self.frame_bytes, |region, offset| {
            out[offset..offset + region.len()].copy_from_slice(region);
        });
        // A direct format is signed: silence is all zero bytes.
        out[consumed..].fill(0);
        PullOutcome {
            bytes_consumed: consumed,
            audible_frames: consumed / self.frame_bytes,
            underrun: take < needed,
        }
    }

    /// Real-time: takes `take` frames from the ring, through the converter plugin when
    /// there is a working one (the ring is read straight into its input buffer), and runs
    /// the rest of the chain; returns the bytes consumed and the audible frames.
    fn decode_and_finish(
        &mut self,
        convert: Option<&mut PluginSlot>,
        ring: &mut Consumer,
        take: usize,
        control: &GainControl,
        out: &mut [f32],
    ) -> (usize, usize) {
        let channels = self.guest_channels;
        let frame_bytes = self.frame_bytes;
        if let Some(slot) = convert.filter(|slot| slot.active())
            && take > 0
        {
            let (consumed, frames) = slot.run_decode(take * frame_bytes, frame_bytes, |input| {
                ring.read_with(input.len(), |region, offset| {
                    input[offset..offset + region.len()].copy_from_slice(region);
                })
            });
            if consumed > 0 {
                let take = consumed / frame_bytes;
                if frames.is_some() {
                    let samples = take.max(self.period_frames) * channels;
                    match slot.decoded(samples) {
                        Some(decoded) => {
                            if let Some(audible) =
                                self.finish(Some(decoded), take, control, out, true)
                            {
                                return (consumed, audible);
                            }
                            slot.fail(PluginFault::Output);
                        }
                        None => slot.fail(PluginFault::Status),
                    }
                }
                // The plugin faulted, now or at the check of its samples: the native
                // converter decodes what was staged (the format was checked convertible
                // when the chain was built).
                let _ =
                    paravox_pcm::decode(self.format, slot.staged(consumed), &mut self.decoded[..]);
                return (
                    consumed,
                    self.finish(None, take, control, out, false).unwrap_or(0),
                );
            }
            // Nothing reached the plugin: the ring is read natively below.
        }
        let (format, sample_bytes) = (self.format, self.sample_bytes);
        let decoded = &mut self.decoded;
        let consumed = ring.read_with(take * frame_bytes, |region, offset| {
            let first = offset / sample_bytes;
            // The format was checked convertible when the chain was built.
            let _ = paravox_pcm::decode(format, region, &mut decoded[first..]);
        });
        (
            consumed,
            self.finish(None, consumed / frame_bytes, control, out, false)
                .unwrap_or(0),
        )
    }

    /// Real-time: the input frames the resampling stage needs for `want` output frames.
    fn input_frames_for(&mut self, want: usize) -> usize {
        let Some(native) = self.resampler.as_ref() else {
            return want;
        };
        let most = self.decoded.len() / self.guest_channels;
        run_plugin(self.plugins.resample.as_mut(), |slot| {
            match slot.kernel()?.input_frames_for(want) {
                Ok(frames) if frames <= most => Some(frames),
                Ok(_) => {
                    slot.fail(crate::plugin::PluginFault::Status);
                    None
                }
                Err(fault) => {
                    slot.fail(fault);
                    None
                }
            }
        })
        .unwrap_or_else(|| native.input_frames_for(want))
    }

    /// Real-time: resample, gain, channel map and effects over `take` decoded frames in
    /// `source` (`None`: the chain's own `decoded` buffer, which must hold at least one
    /// period; so must `source`). Returns the audible frames.
    ///
    /// `unchecked` marks a converter plugin's samples, which must be finite and within
    /// [-1, 1]. The first read of them checks them, before any stage with state of its
    /// own has seen them: when the native, identity channel map is the first stage that
    /// reads them (no resampler, no gain plugin, the native gain settled at unity), its
    /// copy into `out` checks each sample as it goes; otherwise a pass over them comes
    /// first. `None`: a sample failed the check, and nothing was changed but `out` and
    /// `source` itself (its silence after `take`; the converter's staged input is
    /// elsewhere), so the caller can run the chain again from the native converter's
    /// samples.
    fn finish(
        &mut self,
        source: Option<&mut [f32]>,
        take: usize,
        control: &GainControl,
        out: &mut [f32],
        unchecked: bool,
    ) -> Option<usize> {
        let (channels, want) = (self.guest_channels, self.period_frames);
        let endpoint_channels = self.endpoint_channels;
        let decoded: &mut [f32] = match source {
            Some(samples) => samples,
            None => &mut self.decoded[..],
        };
        let checked_by_copy = unchecked
            && self.resampler.is_none()
            && !self.plugins.gain.as_ref().is_some_and(|gain| gain.active())
            && self.gain.is_idle(control, channels)
            && !self
                .plugins
                .channel_map
                .as_ref()
                .is_some_and(|slot| slot.active())
            && self.mapper.is_identity();
        if unchecked && !checked_by_copy {
            check_range(decoded.get(..take * channels)?, 1.0).ok()?;
        }
        let (signal, audible_frames) = match self.resampler.as_mut() {
            Some(resampler) => {
                let input = &decoded[..take * channels];
                let output = &mut self.resampled[..want * channels];
                let produced = run_plugin(self.plugins.resample.as_mut(), |slot| {
                    slot.run_f32(input, take, output, want, channels)
                })
                .unwrap_or_else(|| resampler.process(input, output).1);
                self.resampled[produced * channels..want * channels].fill(0.0);
                (&mut self.resampled[..want * channels], produced)
            }
            None => {
                decoded[take * channels..want * channels].fill(0.0);
                (&mut decoded[..want * channels], take)
            }
        };
        // An idle gain is skipped, not run: were a volume set between the test above and
        // here, it would start its ramp on samples not yet checked (the next cycle
        // starts it instead).
        if !checked_by_copy {
            run_plugin(self.plugins.gain.as_mut(), |gain| {
                gain.process(control, signal, channels).then_some(())
            })
            .unwrap_or_else(|| self.gain.process(control, signal, channels));
        }
        let mapped = run_plugin(self.plugins.channel_map.as_mut(), |slot| {
            slot.run_f32(signal, want, out, want, endpoint_channels)
        });
        if mapped.is_none() {
            if checked_by_copy {
                let len = signal.len().min(out.len());
                copy_checked(&signal[..len], &mut out[..len], 1.0).ok()?;
            } else {
                self.mapper.apply(signal, out);
            }
        }
        for effect in &mut self.effects {
            effect.process(out, endpoint_channels);
        }
        let out = &mut out[..want * endpoint_channels];
        for slot in &mut self.plugins.effects {
            slot.run_in_place(out, want);
        }
        Some(audible_frames)
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
    period_frames: usize,
    plugins: PluginStages,
}

impl CaptureChain {
    /// Builds the native chain from the endpoint's format to the guest's stream format.
    pub fn new(stream: &StreamFormat, endpoint: &DeviceFormat) -> Result<CaptureChain> {
        let board = Arc::new(FaultBoard::default());
        Ok(Self::with_plugins(stream, endpoint, &ChainPlugins::default(), &board)?.0)
    }

    /// Builds the chain with `plugins` standing in for native stages (see
    /// [`PlaybackChain::with_plugins`]; effects are playback-only).
    pub fn with_plugins(
        stream: &StreamFormat,
        endpoint: &DeviceFormat,
        plugins: &ChainPlugins,
        board: &Arc<FaultBoard>,
    ) -> Result<(CaptureChain, Vec<SetupIssue>)> {
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
        let shape = ChainShape {
            stream: *stream,
            endpoint: *endpoint,
            max_input: max_output.max(period_frames),
            direction_playback: false,
        };
        let (plugins, issues) = PluginStages::build(plugins, &shape, board);
        let chain = CaptureChain {
            format: stream.format,
            guest_channels,
            frame_bytes,
            sample_bytes,
            resampler,
            gain: GainStage::new(stream.rate),
            mapper: ChannelMapper::new(endpoint.channels as usize, guest_channels)?,
            mapped: vec![0.0; period_frames * guest_channels].into_boxed_slice(),
            resampled: vec![0.0; max_output * guest_channels].into_boxed_slice(),
            period_frames,
            plugins,
        };
        Ok((chain, issues))
    }

    /// Plugin names by fault-board position.
    pub fn plugin_names(&self) -> &[Option<String>] {
        &self.plugins.names
    }

    /// Real-time: takes over the running state of the chain it replaces (see
    /// [`PlaybackChain::adopt_state`]).
    pub fn adopt_state(&mut self, old: &mut CaptureChain) {
        adopt_running_state(
            (&mut self.resampler, &mut self.gain, self.guest_channels),
            (&mut old.resampler, &mut old.gain, old.guest_channels),
        );
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
    ///
    /// With a working converter plugin, the last stage before it (the channel map, or
    /// the resampler) writes straight into its input buffer, where the gain runs too, so
    /// nothing is copied into the plugin.
    pub fn push(
        &mut self,
        input: &[f32],
        ring: &mut Producer,
        control: &GainControl,
    ) -> PushOutcome {
        // The converter leaves the chain for the cycle (a move, no allocation), so its
        // input buffer can be the signal while the other stages borrow the chain.
        let mut convert = self.plugins.convert.take();
        let outcome = self.push_through(convert.as_mut(), input, ring, control);
        self.plugins.convert = convert;
        outcome
    }

    fn push_through(
        &mut self,
        convert: Option<&mut PluginSlot>,
        input: &[f32],
        ring: &mut Producer,
        control: &GainControl,
    ) -> PushOutcome {
        let channels = self.guest_channels;
        let period = self.period_frames;
        // The converter's input holds one cycle's most frames (the chain's shape sizes it
        // so); were it shorter, the native converter serves.
        let most = self.resampled.len() / channels;
        let need = self.resampled.len().max(self.mapped.len());
        let mut convert = convert
            .and_then(|slot| (slot.active() && slot.encode_input().len() >= need).then_some(slot));
        let frames = {
            let staged = convert.as_deref_mut().map(PluginSlot::encode_input);
            let (mapped, resampled) = match (staged, self.resampler.is_some()) {
                (Some(staged), false) => (staged, &mut self.resampled[..]),
                (Some(staged), true) => (&mut self.mapped[..], staged),
                (None, _) => (&mut self.mapped[..], &mut self.resampled[..]),
            };
            let mapped = &mut mapped[..period * channels];
            run_plugin(self.plugins.channel_map.as_mut(), |slot| {
                slot.run_f32(input, period, mapped, period, channels)
            })
            .unwrap_or_else(|| {
                self.mapper.apply(input, mapped);
                period
            });
            let signal = match self.resampler.as_mut() {
                Some(resampler) => {
                    let resampled = &mut resampled[..most * channels];
                    let produced = run_plugin(self.plugins.resample.as_mut(), |slot| {
                        slot.run_f32(mapped, period, resampled, most, channels)
                    })
                    .unwrap_or_else(|| resampler.process(mapped, resampled).1);
                    &mut resampled[..produced * channels]
                }
                None => mapped,
            };
            run_plugin(self.plugins.gain.as_mut(), |gain| {
                gain.process(control, signal, channels).then_some(())
            })
            .unwrap_or_else(|| self.gain.process(control, signal, channels));
            signal.len() / channels
        };
        let fits = (ring.free() / self.frame_bytes).min(frames);
        let (format, sample_bytes, frame_bytes) =
            (self.format, self.sample_bytes, self.frame_bytes);
        let bytes_produced = match convert {
            Some(slot) => {
                let mut written = 0;
                let encoded = fits == 0
                    || slot
                        .run_encode(fits, frame_bytes, |bytes| {
                            written = ring.write_with(bytes.len(), |region, offset| {
                                region.copy_from_slice(&bytes[offset..offset + region.len()]);
                            });
                        })
                        .is_some();
                if encoded {
                    written
                } else {
                    let signal = &slot.encode_input()[..fits * channels];
                    encode_into(ring, format, signal, sample_bytes, frame_bytes, fits)
                }
            }
            None => {
                let signal = match self.resampler {
                    Some(_) => &self.resampled[..frames * channels],
                    None => &self.mapped[..frames * channels],
                };
                encode_into(ring, format, signal, sample_bytes, frame_bytes, fits)
            }
        };
        PushOutcome {
            bytes_produced,
            overrun: fits < frames,
        }
    }
}

/// Real-time: the native converter's half of a capture push: `fits` frames of `signal`
/// into the ring; returns the bytes written.
fn encode_into(
    ring: &mut Producer,
    format: Format,
    signal: &[f32],
    sample_bytes: usize,
    frame_bytes: usize,
    fits: usize,
) -> usize {
    ring.write_with(fits * frame_bytes, |region, offset| {
        let first = offset / sample_bytes;
        // The format was checked convertible when the chain was built.
        let _ = paravox_pcm::encode(format, &signal[first..], region);
    })
}

/// The running state one chain takes over from the one it replaces, as
/// `(resampler, gain, guest channels)`: the resampler when rates and channels match, the
/// gain ramp when channels match. Swaps only; nothing is allocated or freed.
fn adopt_running_state(
    new: (&mut Option<Resampler>, &mut GainStage, usize),
    old: (&mut Option<Resampler>, &mut GainStage, usize),
) {
    let same_channels = new.2 == old.2;
    if let (Some(next), Some(previous)) = (new.0.as_mut(), old.0.as_mut())
        && next.from_rate() == previous.from_rate()
        && next.to_rate() == previous.to_rate()
        && same_channels
    {
        std::mem::swap(next, previous);
    }
    if same_channels {
        std::mem::swap(new.1, old.1);
    }
}
