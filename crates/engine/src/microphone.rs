//! The browser microphone: a capture endpoint whose audio comes from a browser over the
//! API (`getUserMedia` in the dashboard). Guest capture streams route to it like to any
//! capture endpoint.
//!
//! The endpoint keeps its own time ([`Pacer`]): the browser's clock and the host's drift
//! apart, and a browser may stall or leave at any moment. Between the two sits a ring in
//! the endpoint's format. The endpoint thread starts taking from it once a little is
//! buffered, skips ahead when too much is (so latency stays bounded), and delivers
//! silence while no browser feeds it or the browser falls behind.
//!
//! One browser feeds an endpoint at a time ([`MicrophoneFeed::attach`]); its
//! [`MicrophoneFeeder`] converts what the browser sends (any rate and channel count) off
//! the real-time thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::Pacer;
use crate::context::StreamContext;
use crate::device::{CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, DeviceStats};
use crate::error::{EngineError, Result};
use crate::event::Event;
use crate::monitor::SampleRing;

/// Audio buffered before the endpoint starts taking from a browser, in milliseconds.
const PREBUFFER_MS: u32 = 40;
/// Buffered audio beyond which the endpoint skips ahead, in milliseconds.
const MAX_BUFFER_MS: u32 = 200;
/// The ring: a second of audio at most (it never holds more than [`MAX_BUFFER_MS`] for
/// long, the rest absorbs a burst).
const RING_MS: u32 = 1000;
/// Input frames converted at a time (see [`MicrophoneFeeder::push`]).
const CONVERT_FRAMES: usize = 256;
/// The lowest and highest rates a browser may declare.
pub const BROWSER_RATES: (u32, u32) = (8_000, 192_000);

/// What a browser microphone endpoint and the browser feeding it share.
#[derive(Debug)]
pub struct MicrophoneFeed {
    endpoint: String,
    format: DeviceFormat,
    ring: SampleRing,
    /// A browser feeds the endpoint now.
    fed: AtomicBool,
    received_frames: AtomicU64,
    /// Frames the browser sent that found no room (it sent faster than real time).
    dropped_frames: AtomicU64,
    /// Periods the endpoint delivered short because the browser fell behind.
    underruns: AtomicU64,
}

/// Counters of a browser microphone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MicrophoneStats {
    /// A browser feeds the endpoint now.
    pub fed: bool,
    /// Frames received from browsers (in the endpoint's rate).
    pub received_frames: u64,
    /// Frames dropped because they came faster than real time.
    pub dropped_frames: u64,
    /// Periods delivered short because the browser fell behind.
    pub underruns: u64,
}

impl MicrophoneFeed {
    /// A feed for the endpoint `endpoint` of `format`.
    pub fn new(endpoint: &str, format: DeviceFormat) -> Arc<MicrophoneFeed> {
        let samples = (format.rate as usize * format.channels as usize * RING_MS as usize / 1000)
            .next_power_of_two();
        Arc::new(MicrophoneFeed {
            endpoint: endpoint.to_owned(),
            format,
            ring: SampleRing::new(samples),
            fed: AtomicBool::new(false),
            received_frames: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
        })
    }

    /// The counters.
    pub fn stats(&self) -> MicrophoneStats {
        MicrophoneStats {
            fed: self.fed.load(Ordering::Relaxed),
            received_frames: self.received_frames.load(Ordering::Relaxed),
            dropped_frames: self.dropped_frames.load(Ordering::Relaxed),
            underruns: self.underruns.load(Ordering::Relaxed),
        }
    }

    /// A browser starts feeding: it sends interleaved samples at `rate` with `channels`.
    /// Refused while another browser feeds the endpoint.
    pub(crate) fn attach(
        self: &Arc<Self>,
        rate: u32,
        channels: u32,
        context: &Arc<StreamContext>,
    ) -> Result<MicrophoneFeeder> {
        if !(BROWSER_RATES.0..=BROWSER_RATES.1).contains(&rate) {
            return Err(EngineError::Limit(format!(
                "a microphone rate must be {} to {} Hz, not {rate}",
                BROWSER_RATES.0, BROWSER_RATES.1
            )));
        }
        if channels == 0 || channels as usize > crate::MAX_CHANNELS {
            return Err(EngineError::Limit(format!(
                "a microphone has 1 to {} channels, not {channels}",
                crate::MAX_CHANNELS
            )));
        }
        if self
            .fed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return Err(EngineError::Limit(format!(
                "another browser feeds the microphone endpoint '{}'; stop it first",
                self.endpoint
            )));
        }
        context.publish(Event::MicrophoneAttached {
            endpoint: self.endpoint.clone(),
        });
        tracing::info!(
            endpoint = self.endpoint,
            rate,
            channels,
            "a browser feeds the microphone"
        );
        Ok(MicrophoneFeeder {
            feed: self.clone(),
            context: context.clone(),
            from_rate: rate,
            from_channels: channels as usize,
            phase: 0.0,
            previous: vec![0.0; channels as usize],
            converted: Vec::new(),
        })
    }
}

/// The browser's end of a microphone: converts what it sends into the endpoint's format
/// and queues it. Dropping it ends the feed; the endpoint delivers silence again.
#[derive(Debug)]
pub struct MicrophoneFeeder {
    feed: Arc<MicrophoneFeed>,
    context: Arc<StreamContext>,
    from_rate: u32,
    from_channels: usize,
    /// Where the next output frame lies between `previous` and the next input frame.
    phase: f64,
    /// The last input frame.
    previous: Vec<f32>,
    converted: Vec<f32>,
}

impl MicrophoneFeeder {
    /// Queues interleaved samples in the declared rate and channels (a trailing partial
    /// frame is ignored). Returns the frames queued in the endpoint's rate; what finds no
    /// room is dropped and counted.
    pub fn push(&mut self, samples: &[f32]) -> usize {
        let out_channels = self.feed.format.channels as usize;
        let mut queued = 0;
        // A slice at a time, so what one message can make the converter hold stays
        // bounded whatever the rates (8 kHz in, 768 kHz out is 96 frames per frame).
        for slice in samples.chunks(CONVERT_FRAMES * self.from_channels) {
            self.convert(slice);
            let frames = self.converted.len() / out_channels;
            let fitting = (self.feed.ring.room() / out_channels).min(frames);
            self.feed
                .ring
                .push(&self.converted[..fitting * out_channels]);
            self.feed
                .received_frames
                .fetch_add(frames as u64, Ordering::Relaxed);
            if fitting < frames {
                self.feed
                    .dropped_frames
                    .fetch_add((frames - fitting) as u64, Ordering::Relaxed);
            }
            queued += fitting;
        }
        queued
    }

    /// Converts whole frames of `samples` into `converted`, in the endpoint's format.
    fn convert(&mut self, samples: &[f32]) {
        let format = self.feed.format;
        let out_channels = format.channels as usize;
        let step = f64::from(self.from_rate) / f64::from(format.rate);
        self.converted.clear();
        for frame in samples.chunks_exact(self.from_channels) {
            while self.phase < 1.0 {
                let weight = self.phase as f32;
                for channel in 0..out_channels {
                    // Fewer input channels repeat; more are cut.
                    let source = channel % self.from_channels;
                    let from = self.previous[source];
                    let to = clean(frame[source]);
                    self.converted.push(from + (to - from) * weight);
                }
                self.phase += step;
            }
            self.phase -= 1.0;
            for (previous, sample) in self.previous.iter_mut().zip(frame) {
                *previous = clean(*sample);
            }
        }
    }

    /// The endpoint's counters.
    pub fn stats(&self) -> MicrophoneStats {
        self.feed.stats()
    }

    /// The endpoint's format.
    pub fn format(&self) -> DeviceFormat {
        self.feed.format
    }
}

/// A browser's sample as the endpoint takes it: finite and within full scale.
fn clean(sample: f32) -> f32 {
    if sample.is_finite() {
        sample.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

impl Drop for MicrophoneFeeder {
    fn drop(&mut self) {
        self.feed.fed.store(false, Ordering::Release);
        self.context.publish(Event::MicrophoneDetached {
            endpoint: self.feed.endpoint.clone(),
        });
        tracing::info!(
            endpoint = self.feed.endpoint,
            "the browser stopped feeding the microphone"
        );
    }
}

/// Opens the endpoint's device on its feed.
#[derive(Debug)]
pub(crate) struct MicrophoneOpener {
    pub(crate) feed: Arc<MicrophoneFeed>,
}

impl CaptureOpener for MicrophoneOpener {
    fn open(&self) -> std::result::Result<Box<dyn CaptureDevice>, DeviceError> {
        let format = self.feed.format;
        Ok(Box::new(MicrophoneDevice {
            feed: self.feed.clone(),
            pacer: Pacer::new(format.rate, format.period_frames),
            primed: false,
        }))
    }
}

/// Real-time: the endpoint's device.
#[derive(Debug)]
struct MicrophoneDevice {
    feed: Arc<MicrophoneFeed>,
    pacer: Pacer,
    /// Taking from the ring (enough was buffered).
    primed: bool,
}

impl MicrophoneDevice {
    fn samples_for(&self, milliseconds: u32) -> usize {
        let format = self.feed.format;
        (format.rate * milliseconds / 1000).max(format.period_frames) as usize
            * format.channels as usize
    }
}

impl CaptureDevice for MicrophoneDevice {
    fn format(&self) -> DeviceFormat {
        self.feed.format
    }

    fn read(&mut self, samples: &mut [f32]) -> std::result::Result<(), DeviceError> {
        self.pacer.wait();
        let ring = &self.feed.ring;
        let channels = self.feed.format.channels as usize;
        let available = ring.available() / channels * channels;
        if !self.feed.fed.load(Ordering::Acquire) {
            // What a departed browser left is stale: the next one starts afresh.
            ring.skip(available);
            self.primed = false;
            samples.fill(0.0);
            return Ok(());
        }
        let prebuffer = self.samples_for(PREBUFFER_MS) + samples.len();
        if !self.primed {
            if available < prebuffer {
                samples.fill(0.0);
                return Ok(());
            }
            self.primed = true;
        }
        let most = self.samples_for(MAX_BUFFER_MS) + samples.len();
        if available > most {
            // The browser's clock runs fast against ours, or it sent a burst after a
            // stall: drop the oldest so the delay stays bounded.
            ring.skip(available - prebuffer);
        }
        let taken = ring.pop_into(samples);
        if taken < samples.len() {
            samples[taken..].fill(0.0);
            self.feed.underruns.fetch_add(1, Ordering::Relaxed);
            self.primed = false;
        }
        Ok(())
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            xruns: self.feed.underruns.load(Ordering::Relaxed),
            delay_frames: 0,
        }
    }

    fn resume(&mut self) {
        self.pacer.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed() -> (Arc<MicrophoneFeed>, Arc<StreamContext>) {
        let format = DeviceFormat {
            rate: 48_000,
            channels: 2,
            period_frames: 480,
        };
        (
            MicrophoneFeed::new("mic", format),
            Arc::new(StreamContext::new()),
        )
    }

    #[test]
    fn one_browser_at_a_time_and_bad_formats_are_refused() {
        let (feed, context) = feed();
        assert!(feed.attach(1_000, 1, &context).is_err());
        assert!(feed.attach(48_000, 0, &context).is_err());
        assert!(feed.attach(48_000, 99, &context).is_err());
        let mut events = context.events.subscribe();
        let first = feed.attach(48_000, 1, &context).expect("first");
        assert!(feed.stats().fed);
        let second = feed.attach(48_000, 1, &context).expect_err("second");
        assert!(second.to_string().contains("another browser"), "{second}");
        drop(first);
        assert!(!feed.stats().fed);
        assert!(matches!(
            events.try_recv(),
            Ok(Event::MicrophoneAttached { .. })
        ));
        assert!(matches!(
            events.try_recv(),
            Ok(Event::MicrophoneDetached { .. })
        ));
        assert!(feed.attach(44_100, 2, &context).is_ok());
    }

    #[test]
    fn mono_at_another_rate_becomes_the_endpoints_stereo() {
        let (feed, context) = feed();
        let mut feeder = feed.attach(24_000, 1, &context).expect("attach");
        // 24 kHz → 48 kHz: every input frame gives two output frames.
        let input: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let queued = feeder.push(&input);
        assert_eq!(queued, 200);
        let mut out = vec![0.0; 400];
        assert_eq!(feed.ring.pop_into(&mut out), 400);
        for frame in out.chunks_exact(2) {
            assert_eq!(frame[0], frame[1], "mono goes to both channels");
        }
        // Linear between input samples, one frame behind.
        assert!((out[2 * 101] - 0.495).abs() < 1e-6, "{}", out[2 * 101]);
        // Bad samples arrive as silence or full scale.
        feeder.push(&[f32::NAN, 7.0]);
        let mut out = vec![0.0; 8];
        feed.ring.pop_into(&mut out);
        assert!(out.iter().all(|s| s.is_finite() && s.abs() <= 1.0));
    }

    #[test]
    fn the_device_waits_for_a_little_audio_then_delivers_it_and_then_silence() {
        let (feed, context) = feed();
        let mut device = MicrophoneOpener { feed: feed.clone() }
            .open()
            .expect("open");
        let mut period = vec![1.0f32; 960];
        device.read(&mut period).expect("read");
        assert!(period.iter().all(|s| *s == 0.0), "silence with no browser");

        let mut feeder = feed.attach(48_000, 2, &context).expect("attach");
        let audio = vec![0.5f32; 960];
        feeder.push(&audio);
        device.read(&mut period).expect("read");
        assert!(period.iter().all(|s| *s == 0.0), "not enough buffered yet");
        for _ in 0..5 {
            feeder.push(&audio);
        }
        device.read(&mut period).expect("read");
        // The converter runs one frame behind: its first frame leans on the silence
        // before the browser started.
        assert!(
            period[2..].iter().all(|s| *s == 0.5),
            "buffered audio flows"
        );
        // The browser stalls: once the buffer runs out the period is short, and counted.
        let mut short = false;
        for _ in 0..6 {
            device.read(&mut period).expect("read");
            short |= period.contains(&0.0);
        }
        assert!(short);
        assert!(device.stats().xruns >= 1);
        // It leaves: silence, and what it left is dropped.
        feeder.push(&audio);
        drop(feeder);
        device.read(&mut period).expect("read");
        assert!(period.iter().all(|s| *s == 0.0));
        assert_eq!(feed.ring.available(), 0);
    }

    #[test]
    fn a_slow_browser_rate_into_a_fast_endpoint_converts_a_slice_at_a_time() {
        let format = DeviceFormat {
            rate: 768_000,
            channels: 18,
            period_frames: 480,
        };
        let feed = MicrophoneFeed::new("mic", format);
        let context = Arc::new(StreamContext::new());
        let mut feeder = feed.attach(8_000, 1, &context).expect("attach");
        // The largest message a client may send, as s16 mono: 32,768 frames.
        let queued = feeder.push(&vec![0.1f32; 32_768]);
        let stats = feeder.stats();
        // 96 output frames for every input frame, give or take the phase's rounding.
        assert!(
            stats.received_frames.abs_diff(32_768 * 96) <= 2,
            "every frame converted and counted: {}",
            stats.received_frames
        );
        assert_eq!(queued as u64 + stats.dropped_frames, stats.received_frames);
        assert!(
            feeder.converted.capacity() <= 2 * (CONVERT_FRAMES + 1) * 96 * 18,
            "the converter held {} samples",
            feeder.converted.capacity()
        );
    }

    #[test]
    fn a_browser_far_ahead_is_skipped_to_a_short_delay() {
        let (feed, context) = feed();
        let mut device = MicrophoneOpener { feed: feed.clone() }
            .open()
            .expect("open");
        let mut feeder = feed.attach(48_000, 2, &context).expect("attach");
        // Half a second arrives at once.
        feeder.push(&vec![0.25f32; 48_000]);
        let mut period = vec![0.0f32; 960];
        device.read(&mut period).expect("read");
        let left = feed.ring.available();
        assert!(left <= device_prebuffer(), "{left} samples left buffered");
    }

    fn device_prebuffer() -> usize {
        (48_000 * PREBUFFER_MS / 1000) as usize * 2
    }
}
