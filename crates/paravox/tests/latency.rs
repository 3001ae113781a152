//! The latency a guest hears, measured against the latency its driver is told.
//!
//! A guest plays an impulse train over each protocol, with the real transport (the
//! vhost-user socket with the in-repo virtio driver; sndif's shared-memory transport with
//! the in-repo xen-snd-front) and the real engine. The endpoint is a paced sink that
//! keeps every frame it plays and, after each period, how many frames it has played and
//! when: the test's clock for "heard". Optionally it plays each frame a fixed time after
//! it was written and says so in its delay, as an ALSA device with a deep buffer does.
//!
//! For each impulse the guest learns that its frame was consumed from a position report
//! (a TX completion; a `CUR_POS` event) and, over virtio, the device's latency
//! (`latency_bytes`). From those a driver predicts when the frame is heard: the latency
//! still to come is the reported latency less how far the position has already moved past
//! the frame. The sink says when it really was heard. The two must agree within one
//! endpoint period (the granularity at which the sink plays), in the median over the train;
//! no wall-clock time is asserted.
//!
//! Over sndif the protocol has no latency field: the position is all the frontend learns,
//! so the reported latency is zero and a device's own delay cannot be told to the guest.
//! The sndif cases therefore use a sink without delay.

#[path = "../../virtio-snd/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod support;
#[path = "../../sndif/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod xen;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    DeviceError, DeviceFormat, DeviceStats, PlaybackDevice, PlaybackOpener,
};
use paravox_engine::{Direction, Engine};

/// The sink's rate and cycle: 48 kHz stereo, 10 ms.
const SINK: DeviceFormat = DeviceFormat {
    rate: 48_000,
    channels: 2,
    period_frames: 480,
};

/// The impulse's height (full scale 1.0); the rest of the train is silence.
const IMPULSE: f64 = 0.5;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the sink played and when.
#[derive(Debug, Default)]
struct Played {
    /// Every sample written, interleaved.
    samples: Vec<f32>,
    /// After each period's time had passed: (then, frames written so far).
    timeline: Vec<(Instant, u64)>,
}

impl Played {
    /// Frames written by `at` (the last period whose time had passed by then).
    fn written_by(&self, at: Instant) -> u64 {
        let index = self.timeline.partition_point(|&(then, _)| then <= at);
        index.checked_sub(1).map_or(0, |i| self.timeline[i].1)
    }

    /// Where each impulse is in the sink, in frames: the peak of each burst above a
    /// threshold on the left channel (a resampled impulse rings on both sides of it).
    fn impulses(&self) -> Vec<u64> {
        let channels = SINK.channels as usize;
        let left: Vec<f32> = self.samples.iter().step_by(channels).copied().collect();
        let threshold = (IMPULSE * 0.4) as f32;
        let mut found = Vec::new();
        let mut frame = 0;
        while frame < left.len() {
            if left[frame].abs() < threshold {
                frame += 1;
                continue;
            }
            let window = frame..(frame + 64).min(left.len());
            let peak = window
                .clone()
                .max_by(|&a, &b| left[a].abs().total_cmp(&left[b].abs()))
                .expect("a non-empty window");
            found.push(peak as u64);
            frame = peak + 1_000;
        }
        found
    }
}

/// A paced sink that keeps what it plays (see [`Played`]); with `delay_frames`, a frame
/// sounds that long after it is written and the device says so.
struct TimedSink {
    pacer: Pacer,
    delay_frames: u64,
    played: Arc<Mutex<Played>>,
}

impl PlaybackDevice for TimedSink {
    fn format(&self) -> DeviceFormat {
        SINK
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        lock(&self.played).samples.extend_from_slice(samples);
        // The period has been played once its time has passed, as the WAV and null
        // endpoints pace themselves.
        self.pacer.wait();
        let mut played = lock(&self.played);
        let frames = (played.samples.len() / SINK.channels as usize) as u64;
        played.timeline.push((Instant::now(), frames));
        Ok(())
    }

    fn resume(&mut self) {
        self.pacer.reset();
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            xruns: 0,
            delay_frames: self.delay_frames,
        }
    }
}

struct TimedSinkOpener {
    delay_frames: u64,
    played: Arc<Mutex<Played>>,
}

impl PlaybackOpener for TimedSinkOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        Ok(Box::new(TimedSink {
            pacer: Pacer::new(SINK.rate, SINK.period_frames),
            delay_frames: self.delay_frames,
            played: self.played.clone(),
        }))
    }
}

/// Makes the timed sink the engine's default output.
fn add_sink(engine: &Engine, delay_frames: u64) -> Arc<Mutex<Played>> {
    let played = Arc::new(Mutex::new(Played::default()));
    engine
        .add_playback_endpoint(
            "out",
            "timed",
            Box::new(TimedSinkOpener {
                delay_frames,
                played: played.clone(),
            }),
        )
        .expect("the sink endpoint");
    engine
        .set_default_endpoint(Direction::Playback, "out")
        .expect("the default output");
    played
}

/// S16 stereo silence with an impulse on both channels at each frame of `at`.
fn impulse_train(frames: usize, at: &[u64]) -> Vec<u8> {
    let mut data = vec![0u8; frames * 4];
    let value = ((IMPULSE * 32_767.0) as i16).to_le_bytes();
    for &frame in at {
        let offset = frame as usize * 4;
        data[offset..offset + 2].copy_from_slice(&value);
        data[offset + 2..offset + 4].copy_from_slice(&value);
    }
    data
}

/// What the guest's driver was told at one moment: the position (stream frames) and the
/// device latency (stream frames) beyond it.
#[derive(Debug, Clone, Copy)]
struct Report {
    at: Instant,
    position: u64,
    latency_frames: f64,
}

/// One impulse: the latency the driver predicted from its report and the one the sink
/// measured, both in milliseconds from the moment the driver learned of it.
#[derive(Debug, Clone, Copy)]
struct Heard {
    predicted_ms: f64,
    measured_ms: f64,
}

/// Pairs each impulse (stream frames, in order) with the first report that moved past it
/// and with where the sink played it.
fn measure(
    played: &Played,
    reports: &[Report],
    impulses: &[u64],
    stream_rate: u32,
    sink_delay_frames: u64,
) -> Vec<Heard> {
    let heard = played.impulses();
    assert_eq!(
        heard.len(),
        impulses.len(),
        "the sink holds {} impulses of the {} the guest played",
        heard.len(),
        impulses.len()
    );
    let stream_ms = 1000.0 / f64::from(stream_rate);
    let sink_ms = 1000.0 / f64::from(SINK.rate);
    impulses
        .iter()
        .zip(&heard)
        .filter_map(|(&frame, &sink_frame)| {
            let report = reports.iter().find(|r| r.position > frame)?;
            // Frames played by the moment the driver learned of it: written less the
            // device's own delay.
            let played_then = played
                .written_by(report.at)
                .saturating_sub(sink_delay_frames);
            let measured_ms = (sink_frame as f64 - played_then as f64) * sink_ms;
            let predicted_ms =
                (report.latency_frames - (report.position - frame) as f64) * stream_ms;
            Some(Heard {
                predicted_ms,
                measured_ms,
            })
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Prints the figures and asserts that predicted and measured agree within one endpoint
/// period in the median (and that most impulses were paired with a report).
fn judge(case: &str, heard: &[Heard], impulses: usize) {
    assert!(
        heard.len() * 10 >= impulses * 9,
        "{case}: only {} of {impulses} impulses had a report past them",
        heard.len()
    );
    let period_ms = f64::from(SINK.period_frames) * 1000.0 / f64::from(SINK.rate);
    let errors: Vec<f64> = heard
        .iter()
        .map(|h| h.measured_ms - h.predicted_ms)
        .collect();
    let error = median(errors.clone());
    let worst = errors.iter().copied().map(f64::abs).fold(0.0, f64::max);
    let predicted = median(heard.iter().map(|h| h.predicted_ms).collect());
    let measured = median(heard.iter().map(|h| h.measured_ms).collect());
    println!(
        "latency: {case}: reported {predicted:.2} ms, measured {measured:.2} ms, \
         median difference {error:+.2} ms (worst {worst:.2} ms) over {} impulses; \
         endpoint period {period_ms:.0} ms",
        heard.len()
    );
    assert!(
        error.abs() <= period_ms,
        "{case}: the guest is told {predicted:.2} ms but hears its audio after \
         {measured:.2} ms (median difference {error:+.2} ms, more than one endpoint \
         period of {period_ms:.0} ms)"
    );
}

/// The stream frames where impulses go: the last frame of every `spacing` frames, from the
/// second spacing on, for `frames` frames.
fn impulse_frames(frames: u64, spacing: u64) -> Vec<u64> {
    (2..)
        .map(|n| n * spacing - 1)
        .take_while(|&f| f + spacing < frames)
        .collect()
}

/// Plays an impulse train over virtio-snd at `rate_index` (`rate` Hz) into a sink with
/// `delay_frames` of its own, and compares what `latency_bytes` said with what was heard.
fn virtio_case(case: &str, rate_index: u8, rate: u32, delay_frames: u64) {
    use support::spec::format;
    use support::{Driver, Host, SetParams, play_through};

    let host = Host::new();
    let played = add_sink(&host.engine, delay_frames);
    let host = host.serve(paravox_virtio_snd::CardTopology::quick_start());
    let mut driver = Driver::connect(host.socket());
    // Linux's defaults: 10 ms periods, a 160 ms buffer.
    let period_frames = rate / 100;
    let params = SetParams {
        stream_id: 0,
        buffer_bytes: period_frames * 4 * 16,
        period_bytes: period_frames * 4,
        features: 0,
        channels: 2,
        format: format::S16,
        rate: rate_index,
    };
    let frames = u64::from(rate) * 3;
    // An impulse at the end of every tenth period: the message that carries it is the one
    // whose completion tells the driver.
    let impulses = impulse_frames(frames, u64::from(period_frames) * 10);
    let data = impulse_train(frames as usize, &impulses);
    let playback = play_through(&mut driver, &params, &data);
    driver.disconnect();

    let frame_bytes = 4.0;
    let reports: Vec<Report> = playback
        .completions
        .iter()
        .map(|c| Report {
            at: c.at,
            position: (c.period as u64 + 1) * u64::from(period_frames),
            latency_frames: f64::from(c.latency_bytes) / frame_bytes,
        })
        .collect();
    let heard = measure(&lock(&played), &reports, &impulses, rate, delay_frames);
    judge(case, &heard, impulses.len());
}

#[test]
fn virtio_reported_latency_matches_what_is_heard() {
    use support::spec::rate;
    virtio_case("virtio-snd 48 kHz", rate::R48000, 48_000, 0);
}

#[test]
fn virtio_reports_the_devices_own_delay_at_the_streams_rate() {
    use support::spec::rate;
    // 200 ms of device delay (a Bluetooth headset's), reported in the stream's own bytes
    // at 44.1 kHz, through the resampler: left in the device's 48 kHz frames, the report
    // would be 17.6 ms short, more than the endpoint period the check allows.
    virtio_case(
        "virtio-snd 44.1 kHz, device delay 200 ms",
        rate::R44100,
        44_100,
        9_600,
    );
}

/// Plays an impulse train over sndif like aplay over xen-snd-front (the 64 KiB buffer and
/// 16 KiB periods it gets) and compares the positions with what was heard.
fn sndif_case(case: &str, rate: u32) {
    use xen::{Harness, Params, play};

    let engine = Arc::new(Engine::new());
    let played = add_sink(&engine, 0);
    let harness = Harness::new(engine);
    let device = harness.connected_device(7, &[(0, 0, Direction::Playback)]);
    let stream = device.stream(0, 0);
    let params = Params {
        format: 2,
        rate,
        channels: 2,
        buffer_bytes: 64 * 1024,
        period_bytes: 16 * 1024,
    };
    let frame_bytes = u64::from(params.frame_bytes());
    let frames = u64::from(rate) * 3;
    // An impulse just before each of the frontend's period boundaries, where CUR_POS
    // comes.
    let impulses = impulse_frames(frames, u64::from(params.period_bytes) / frame_bytes);
    let data = impulse_train(frames as usize, &impulses);
    let report = play(stream, &params, &data, |_| {});
    let reports: Vec<Report> = report
        .events
        .iter()
        .map(|event| Report {
            at: event.at,
            position: event.position / frame_bytes,
            latency_frames: 0.0,
        })
        .collect();
    let heard = measure(&lock(&played), &reports, &impulses, rate, 0);
    judge(case, &heard, impulses.len());
}

#[test]
fn sndif_positions_match_what_is_heard() {
    sndif_case("sndif 48 kHz", 48_000);
}

#[test]
fn sndif_positions_match_what_is_heard_through_the_resampler() {
    sndif_case("sndif 44.1 kHz", 44_100);
}
