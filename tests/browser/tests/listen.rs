//! Listening and talking from the dashboard, in a real Chromium: Listen on a playing stream
//! plays its 1 kHz tone in the page at its level with no dropouts, and keeps playing after
//! the tab was frozen; "Use microphone" on a `browser` endpoint feeds Chromium's fake
//! microphone (an 880 Hz file) to a capture stream routed there. Meanwhile the monitored
//! sink stays bit-exact: listening takes nothing from what plays.
//! (`tests/browser/web/listen.test.mjs` drives the browser.)
//!
//! The browser half needs `node`, `/usr/bin/chromium`, `sox` and `npm ci` in
//! `tests/browser/web`; without them it prints why and passes, unless
//! `PARAVOX_REQUIRE_BROWSER` is set.

// The API's own test server: a real engine behind a real API on 127.0.0.1:0.
#[path = "../../../crates/api/tests/support/mod.rs"]
mod support;

use std::ffi::OsStr;
use std::ops::Range;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use paravox_browser_tests::{browser_available, run_node_test};
use paravox_engine::{Direction, Stream};
use paravox_host_audio::wav::WavReader;
use paravox_pcm::{Format, HwParams};
use support::{TONE_RATE, TestServer, Tone, tone_sample};

/// What Chromium's fake microphone plays: a sine at −6 dBFS peak.
const MICROPHONE_HZ: f64 = 880.0;
const MICROPHONE_PEAK_DBFS: f64 = -6.02;
/// Bytes in one frame of the test streams (s16 stereo).
const FRAME_BYTES: usize = 4;
/// The capture stream's period (`stereo_params`): what the recorder waits for.
const PERIOD_BYTES: u64 = 1200 * FRAME_BYTES as u64;
/// The recording counts as sound where a 10 ms block peaks above this.
const SOUND_DBFS: f64 = -40.0;

#[test]
fn a_stream_is_heard_and_the_microphone_talks_in_chromium() {
    if !browser_available(&["sox"]) {
        return;
    }

    let server = TestServer::start();
    let sink = server.dir.path().join("monitored.wav");
    support::open(
        &server.engine,
        "monitored",
        &format!("wav:{}", sink.display()),
        Direction::Playback,
    );
    support::open(&server.engine, "browser-mic", "browser", Direction::Capture);

    let playback = support::local_stream(&server.engine, "listened", Direction::Playback);
    playback
        .set_route(Some("monitored".into()))
        .expect("route to monitored");
    playback.set_params(roomy_params()).expect("params");
    playback.prepare().expect("prepare");
    let tone = Tone::play(playback.clone());
    // The tone writes 10 ms at a time: less than that free is a full ring.
    support::eventually("the tone to fill the ring", || {
        playback.ring_room() < 480 * FRAME_BYTES
    });
    playback.start().expect("start");

    let capture = support::local_stream(&server.engine, "recorder", Direction::Capture);
    capture
        .set_route(Some("browser-mic".into()))
        .expect("route to browser-mic");
    capture.set_params(roomy_params()).expect("params");
    capture.prepare().expect("prepare");
    capture.start().expect("start");
    let recorder = Recorder::start(capture.clone());

    let microphone = tempfile::tempdir().expect("tempdir");
    let microphone_file = microphone.path().join("880hz.wav");
    let sox = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "1", "-b", "16"])
        .arg(&microphone_file)
        .args(["synth", "30", "sine", "880", "vol", "0.5"])
        .output()
        .expect("run sox");
    assert!(
        sox.status.success(),
        "sox: {}",
        String::from_utf8_lossy(&sox.stderr)
    );

    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../listen-screenshots");
    let playback_id = playback.id().to_string();
    let capture_id = capture.id().to_string();
    let browsing = Instant::now();
    run_node_test(
        "listen.test.mjs",
        &[
            ("PARAVOX_URL", OsStr::new(&server.base)),
            ("PARAVOX_TOKEN", OsStr::new(&server.token)),
            ("PARAVOX_SCREENSHOTS", screenshots.as_os_str()),
            ("PARAVOX_FAKE_MICROPHONE", microphone_file.as_os_str()),
            ("PARAVOX_PLAYBACK_STREAM", OsStr::new(&playback_id)),
            ("PARAVOX_CAPTURE_STREAM", OsStr::new(&capture_id)),
        ],
    );
    let browsed = browsing.elapsed();
    println!("screenshots in {}", screenshots.display());

    assert_eq!(
        playback.xruns(),
        0,
        "the monitored stream ran dry while it was listened to"
    );
    let recording = recorder.finish();
    println!("the capture stream had {} xruns", capture.xruns());
    playback.stop().expect("stop");
    drop(tone);

    let played = check_sink(&sink);
    println!(
        "the sink holds {:.1} s of the tone, bit-exact",
        played as f64 / f64::from(TONE_RATE)
    );
    assert!(
        Duration::from_secs_f64(played as f64 / f64::from(TONE_RATE)) + Duration::from_secs(1)
            >= browsed,
        "the sink holds {played} frames of the tone, less than the {browsed:?} the browser took"
    );
    check_recording(&recording);
}

/// `stereo_params` with a second of buffer: the threads feeding and reading the streams
/// share two cores with Chromium, and a 100 ms ring left them too little slack.
fn roomy_params() -> HwParams {
    HwParams {
        buffer_bytes: TONE_RATE * FRAME_BYTES as u32,
        ..support::stereo_params()
    }
}

/// A thread reading a capture stream as it records, keeping every byte until finished.
#[derive(Debug)]
struct Recorder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<u8>>,
}

impl Recorder {
    fn start(stream: Arc<Stream>) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut recorded = Vec::new();
            let mut buffer = vec![0u8; PERIOD_BYTES as usize * 4];
            while !flag.load(Ordering::Relaxed) {
                let read = stream.read(&mut buffer);
                recorded.extend_from_slice(&buffer[..read]);
                if read == 0
                    && !stream.wait_position(
                        stream.position_bytes() + PERIOD_BYTES,
                        Duration::from_millis(100),
                    )
                {
                    // Not moving at all: the stream's lifecycle says why, the test checks it.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            recorded
        });
        Recorder { stop, thread }
    }

    fn finish(self) -> Vec<u8> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the recorder")
    }
}

/// Stereo s16 frames as pairs.
fn frames(bytes: &[u8]) -> Vec<[i16; 2]> {
    bytes
        .chunks_exact(FRAME_BYTES)
        .map(|frame| {
            [
                i16::from_le_bytes([frame[0], frame[1]]),
                i16::from_le_bytes([frame[2], frame[3]]),
            ]
        })
        .collect()
}

/// Checks that the sink holds silence until the stream started, then the tone from its
/// frame 0, bit for bit and without a gap, then silence after it stopped. Returns the
/// tone's frames.
fn check_sink(path: &Path) -> u64 {
    let mut reader = WavReader::open(path).expect("the sink");
    let info = reader.info();
    assert_eq!(
        (info.format, info.rate, info.channels),
        (Format::S16Le, TONE_RATE, 2),
        "the sink's format"
    );
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let read = reader.read_bytes(&mut chunk).expect("read the sink");
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..read]);
    }
    let sink = frames(&bytes);
    let silent = |frame: &[i16; 2]| *frame == [0, 0];
    let first = sink
        .iter()
        .position(|f| !silent(f))
        .expect("the sink holds the tone");
    // The tone's frame 0 is silent: its first sound is frame 1.
    let start = first
        .checked_sub(1)
        .expect("the sink holds the tone's frame 0");
    let end = sink
        .iter()
        .rposition(|f| !silent(f))
        .map_or(first, |l| l + 1);
    let wrong = sink[start..end].iter().enumerate().find(|(frame, sample)| {
        let expected = tone_sample(*frame as u64);
        **sample != [expected, expected]
    });
    if let Some((frame, sample)) = wrong {
        let expected = tone_sample(frame as u64);
        panic!(
            "the sink differs from the tone at its frame {frame} (sink frame {}): {sample:?}, \
             not {:?}; the tone spans sink frames {start}..{end} of {}",
            start + frame,
            [expected, expected],
            sink.len()
        );
    }
    (end - start) as u64
}

/// The longest run of 10 ms blocks of `samples` whose peak is above [`SOUND_DBFS`].
fn loudest_stretch(samples: &[i16], rate: usize) -> Range<usize> {
    let block = rate / 100;
    let threshold = 10f64.powf(SOUND_DBFS / 20.0) * 32768.0;
    let loud: Vec<bool> = samples
        .chunks(block)
        .map(|b| b.iter().any(|s| f64::from(s.unsigned_abs()) > threshold))
        .collect();
    let (mut best, mut run_start) = (0..0, None);
    for (index, is_loud) in loud.iter().chain([&false]).enumerate() {
        match (*is_loud, run_start) {
            (true, None) => run_start = Some(index),
            (false, Some(from)) => {
                if index - from > best.len() {
                    best = from..index;
                }
                run_start = None;
            }
            _ => {}
        }
    }
    best.start * block..(best.end * block).min(samples.len())
}

/// Checks that the capture stream recorded silence until the browser fed the endpoint,
/// then Chromium's 880 Hz at its level for at least a second.
fn check_recording(recording: &[u8]) {
    let rate = TONE_RATE as usize;
    let left: Vec<i16> = frames(recording).iter().map(|f| f[0]).collect();
    let seconds = left.len() as f64 / rate as f64;
    println!("the capture stream recorded {seconds:.1} s");
    let stretch = loudest_stretch(&left, rate);
    let before = &left[..stretch.start.saturating_sub(rate / 100)];
    assert!(
        before.len() >= rate && before.iter().all(|s| *s == 0),
        "the endpoint delivers silence until a browser feeds it: {} of the {} samples \
         before the microphone's are not",
        before.iter().filter(|s| **s != 0).count(),
        before.len()
    );
    // A block's edge may hold the start or end of the sound: keep whole blocks within.
    let inner = &left[stretch.start + rate / 100..stretch.end.saturating_sub(rate / 100)];
    let duration = inner.len() as f64 / rate as f64;
    assert!(
        duration >= 1.0,
        "the microphone reached the stream for {duration:.2} s (sound at frames {stretch:?} of {})",
        left.len()
    );
    let rising = inner.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
    let hz = rising as f64 / duration;
    let peak = inner.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    let peak_dbfs = 20.0 * (f64::from(peak) / 32768.0).log10();
    let after = &left[(stretch.end + rate / 100).min(left.len())..];
    println!(
        "the microphone reached the capture stream for {duration:.2} s: {hz:.1} Hz, peak \
         {peak_dbfs:.2} dBFS; after it, {} of {} samples are not silent",
        after.iter().filter(|s| **s != 0).count(),
        after.len()
    );
    assert!(
        (hz - MICROPHONE_HZ).abs() <= 5.0,
        "the microphone's tone reached the stream at {hz:.1} Hz"
    );
    assert!(
        (peak_dbfs - MICROPHONE_PEAK_DBFS).abs() <= 1.0,
        "the microphone's tone reached the stream at {peak_dbfs:.2} dBFS peak"
    );
}
