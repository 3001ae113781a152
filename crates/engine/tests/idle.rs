//! An endpoint with no running stream: its thread sleeps instead of cycling, a device with
//! a clock of its own is closed after its idle time, and the next start wakes (or reopens)
//! it without the guest's audio losing a sample.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use paravox_engine::clock::Pacer;
use paravox_engine::device::{DeviceError, DeviceFormat, Idle, PlaybackDevice, PlaybackOpener};
use paravox_engine::endpoint::Activity;
use paravox_engine::{Direction, Engine, Stream};
use paravox_pcm::Format;
use support::*;

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn activity(engine: &Engine, name: &str) -> Activity {
    engine.endpoint(name).expect("endpoint").stats().activity()
}

fn cycles(engine: &Engine, name: &str) -> u64 {
    engine.endpoint(name).expect("endpoint").stats().cycles()
}

/// `frames` stereo f32 frames counting up from `first`, as guest bytes.
fn ramp(first: u32, frames: u32) -> (Vec<f32>, Vec<u8>) {
    let samples: Vec<f32> = (first * 2..(first + frames) * 2)
        .map(|index| index as f32 / 1_048_576.0)
        .collect();
    let bytes = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    (samples, bytes)
}

/// Plays `bytes` to its end and stops the stream.
fn play(stream: &Stream, bytes: &[u8]) {
    // Positions count from the prepare: this playback ends past what played before.
    let end = stream.position_bytes() + bytes.len() as u64;
    stream.start().expect("start");
    write_all(stream, bytes);
    assert!(
        stream.wait_position(end, Duration::from_secs(10)),
        "the stream stalled"
    );
    stream.stop().expect("stop");
}

/// True when `part` appears in `whole` as one contiguous run.
fn contains_run(whole: &[f32], part: &[f32]) -> bool {
    whole.windows(part.len()).any(|window| window == part)
}

#[test]
fn an_endpoint_with_no_running_stream_sleeps_and_a_start_wakes_it() {
    let (engine, recording) = engine_with_sink(format(48_000, 2, 480));
    eventually("the idle sink to pause", || {
        activity(&engine, "out") == Activity::Paused
    });
    let before = cycles(&engine, "out");
    // Cycling, 300 ms would be 30 cycles; sleeping, none.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cycles(&engine, "out"), before, "an idle endpoint cycled");

    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        2,
        9_600,
    );
    let (first, bytes) = ramp(1, 24_000);
    play(&stream, &bytes);
    assert!(
        cycles(&engine, "out") >= before + 50,
        "the start did not wake the endpoint"
    );
    eventually("the sink to pause after the stop", || {
        activity(&engine, "out") == Activity::Paused
    });
    let paused = cycles(&engine, "out");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cycles(&engine, "out"),
        paused,
        "the endpoint cycled after the stop"
    );

    // A second playback after the pause: both reach the sink whole.
    let (second, bytes) = ramp(100_000, 24_000);
    play(&stream, &bytes);
    let recording = recording.lock().unwrap();
    assert!(
        contains_run(&recording, &first),
        "the first playback was cut"
    );
    assert!(
        contains_run(&recording, &second),
        "the playback after the pause was cut"
    );
    // A paced device started a new timeline instead of counting the pause as an xrun.
    assert_eq!(engine.endpoint("out").unwrap().stats().device_xruns(), 0);
}

/// A sink with a clock of its own: kept running for `idle` with no stream, then closed.
struct ClockedSink {
    format: DeviceFormat,
    pacer: Pacer,
    idle: Duration,
    recording: Recording,
    finished: Arc<AtomicUsize>,
}

impl PlaybackDevice for ClockedSink {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        self.recording.lock().unwrap().extend_from_slice(samples);
        self.pacer.wait();
        Ok(())
    }
    fn idle(&self) -> Idle {
        Idle::CloseAfter(self.idle)
    }
    fn finish(&mut self) -> Result<(), DeviceError> {
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct ClockedOpener {
    format: DeviceFormat,
    recording: Recording,
    opened: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

impl PlaybackOpener for ClockedOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(ClockedSink {
            format: self.format,
            pacer: Pacer::new(self.format.rate, self.format.period_frames),
            idle: Duration::from_millis(200),
            recording: self.recording.clone(),
            finished: self.finished.clone(),
        }))
    }
}

#[test]
fn a_clocked_device_is_fed_until_its_idle_time_then_closed_and_reopened_at_the_next_start() {
    let engine = Engine::new();
    let recording: Recording = Arc::default();
    let opened = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    engine
        .add_playback_endpoint(
            "card",
            "clocked",
            Box::new(ClockedOpener {
                format: format(48_000, 2, 480),
                recording: recording.clone(),
                opened: opened.clone(),
                finished: finished.clone(),
            }),
        )
        .expect("sink");
    engine
        .set_default_endpoint(Direction::Playback, "card")
        .expect("default");
    eventually("the idle device to close", || {
        activity(&engine, "card") == Activity::Closed
    });
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    // It was fed silence until then, as a sound card must be.
    assert!(
        recording.lock().unwrap().len() >= 2 * 480 * 10,
        "not fed while idle"
    );
    let closed = cycles(&engine, "card");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cycles(&engine, "card"),
        closed,
        "a closed device's endpoint cycled"
    );

    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        2,
        9_600,
    );
    let (played, bytes) = ramp(1, 24_000);
    play(&stream, &bytes);
    assert_eq!(
        opened.load(Ordering::SeqCst),
        2,
        "not reopened for the start"
    );
    assert!(
        contains_run(&recording.lock().unwrap(), &played),
        "the playback on the reopened device was cut"
    );
    eventually("the device to close again", || {
        activity(&engine, "card") == Activity::Closed
    });
    assert_eq!(finished.load(Ordering::SeqCst), 2);
    assert!(!engine.endpoint("card").unwrap().stats().device_lost());
}

#[test]
fn a_paused_capture_source_resumes_where_it_stopped() {
    let engine = Engine::new();
    let (signal, _) = ramp(1, 48_000);
    engine
        .add_capture_endpoint(
            "mic",
            "memory",
            Box::new(MemorySourceOpener {
                format: format(48_000, 2, 480),
                signal: Arc::new(signal.clone()),
            }),
        )
        .expect("source");
    engine
        .set_default_endpoint(Direction::Capture, "mic")
        .expect("default");
    eventually("the idle source to pause", || {
        activity(&engine, "mic") == Activity::Paused
    });
    std::thread::sleep(Duration::from_millis(300));
    let stream = prepared_stream(&engine, Direction::Capture, Format::F32Le, 48_000, 2, 9_600);
    stream.start().expect("start");
    let mut captured = Vec::new();
    let mut buffer = vec![0u8; 4_096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while captured.len() < 4_800 * 8 {
        assert!(Instant::now() < deadline, "capture stalled");
        let n = stream.read(&mut buffer);
        captured.extend_from_slice(&buffer[..n]);
        if n == 0 {
            let target = stream.position_bytes() + 1;
            stream.wait_position(target, Duration::from_secs(5));
        }
    }
    stream.stop().expect("stop");
    let samples: Vec<f32> = captured
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // Nothing was read while nobody recorded: the capture begins at the signal's start.
    assert_eq!(&samples[..9_600], &signal[..9_600]);
}
