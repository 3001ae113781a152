//! A stream alone on its endpoint, in the device's own format with nothing in its chain
//! to do, goes to the device as its bytes; anything that changes a sample takes the float
//! path. Either way the device gets the same bytes for the same audio.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use paravox_engine::clock::Pacer;
use paravox_engine::device::{DeviceError, DeviceFormat, PlaybackDevice, PlaybackOpener};
use paravox_engine::{Direction, Engine, Stream};
use paravox_pcm::{Format, convert};
use support::{format, prepared_stream, write_all};

const PERIOD: u32 = 480;
const CHANNELS: u32 = 2;

/// What a byte sink received, and how.
#[derive(Default)]
struct Received {
    bytes: Mutex<Vec<u8>>,
    /// Periods handed over as samples, and as bytes.
    float_periods: AtomicUsize,
    byte_periods: AtomicUsize,
}

/// An S16_LE device that takes periods both ways, paced like a file device.
struct ByteSink {
    format: DeviceFormat,
    pacer: Pacer,
    received: Arc<Received>,
    encoded: Vec<u8>,
}

impl PlaybackDevice for ByteSink {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        let written = convert::encode(Format::S16Le, samples, &mut self.encoded).expect("s16");
        let received = &self.received;
        received
            .bytes
            .lock()
            .unwrap()
            .extend_from_slice(&self.encoded[..written * 2]);
        received.float_periods.fetch_add(1, Ordering::Relaxed);
        self.pacer.wait();
        Ok(())
    }
    fn byte_format(&self) -> Option<Format> {
        Some(Format::S16Le)
    }
    fn write_cycle_bytes(&mut self, bytes: &[u8], _audible: usize) -> Result<(), DeviceError> {
        let received = &self.received;
        received.bytes.lock().unwrap().extend_from_slice(bytes);
        received.byte_periods.fetch_add(1, Ordering::Relaxed);
        self.pacer.wait();
        Ok(())
    }
}

struct ByteSinkOpener {
    format: DeviceFormat,
    received: Arc<Received>,
}

impl PlaybackOpener for ByteSinkOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        Ok(Box::new(ByteSink {
            format: self.format,
            pacer: Pacer::new(self.format.rate, self.format.period_frames),
            received: self.received.clone(),
            encoded: vec![0; self.format.period_samples() * 2],
        }))
    }
}

fn engine_with_byte_sink() -> (Engine, Arc<Received>) {
    let engine = Engine::new();
    let received = Arc::new(Received::default());
    engine
        .add_playback_endpoint(
            "out",
            "bytes",
            Box::new(ByteSinkOpener {
                format: format(48_000, CHANNELS, PERIOD),
                received: received.clone(),
            }),
        )
        .expect("sink");
    engine
        .set_default_endpoint(Direction::Playback, "out")
        .expect("default");
    (engine, received)
}

/// `frames` stereo frames of noise that never repeats a period, starting loud and
/// holding both extremes of S16.
fn noise(frames: usize, seed: u32) -> Vec<u8> {
    let mut state = seed;
    let mut samples: Vec<i16> = (0..frames * CHANNELS as usize)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 16) as i16
        })
        .collect();
    samples[0] = i16::MIN;
    samples[1] = i16::MAX;
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

fn s16_stream(engine: &Engine) -> Arc<Stream> {
    prepared_stream(
        engine,
        Direction::Playback,
        Format::S16Le,
        48_000,
        CHANNELS,
        8 * PERIOD,
    )
}

/// Plays `data` on `stream` in real time and stops once the endpoint took all of it.
fn play(stream: &Stream, data: &[u8]) {
    let end = stream.position_bytes() + data.len() as u64;
    stream.start().expect("start");
    write_all(stream, data);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stream.position_bytes() < end && Instant::now() < deadline {
        stream.wait_position(end, Duration::from_millis(100));
    }
    assert_eq!(stream.position_bytes(), end, "all played");
    stream.stop().expect("stop");
}

/// The received bytes from the first one that is not silence, `len` of them.
fn heard(received: &Received, len: usize) -> Vec<u8> {
    let bytes = received.bytes.lock().unwrap();
    let start = bytes
        .chunks_exact(2)
        .position(|sample| sample != [0, 0])
        .expect("some audio")
        * 2;
    bytes[start..(start + len).min(bytes.len())].to_vec()
}

#[test]
fn a_lone_s16_stream_at_unity_goes_to_the_device_as_its_bytes() {
    let (engine, received) = engine_with_byte_sink();
    let stream = s16_stream(&engine);
    let data = noise(24 * PERIOD as usize, 7);
    play(&stream, &data);

    assert_eq!(heard(&received, data.len()), data, "bit for bit");
    assert!(received.byte_periods.load(Ordering::Relaxed) >= 24);
    assert_eq!(received.float_periods.load(Ordering::Relaxed), 0);
    // The meters read the same audio: both extremes were in it.
    assert_eq!(stream.shared().meter().read().peak, 1.0);
    assert_eq!(
        engine
            .endpoint("out")
            .expect("out")
            .stats()
            .meter()
            .read()
            .peak,
        1.0
    );
    // Running dry at the end, then stopping, is no xrun.
    assert_eq!(stream.xruns(), 0);
}

#[test]
fn a_stream_whose_samples_change_takes_the_float_path_to_the_same_device() {
    // At -6 dB every sample changes: the float path, and the device hears it.
    let (engine, received) = engine_with_byte_sink();
    let stream = s16_stream(&engine);
    stream.set_volume_db(-6.0);
    let data = noise(24 * PERIOD as usize, 11);
    play(&stream, &data);
    assert_eq!(received.byte_periods.load(Ordering::Relaxed), 0);
    assert!(received.float_periods.load(Ordering::Relaxed) >= 24);
    let played = heard(&received, data.len());
    assert_ne!(played, data);
    // Past the volume's ramp.
    let peak = played[played.len() / 2..]
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]).unsigned_abs())
        .max()
        .unwrap();
    assert!(
        (16_000..=16_500).contains(&peak),
        "about half scale: {peak}"
    );

    // Another format than the device's (s32): the float path, and the same audio as
    // its 16 upper bits.
    let (engine, received) = engine_with_byte_sink();
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::S32Le,
        48_000,
        CHANNELS,
        8 * PERIOD,
    );
    let data = noise(24 * PERIOD as usize, 13);
    let wide: Vec<u8> = data
        .chunks_exact(2)
        .flat_map(|s| [0, 0, s[0], s[1]])
        .collect();
    play(&stream, &wide);
    assert_eq!(received.byte_periods.load(Ordering::Relaxed), 0);
    assert_eq!(heard(&received, data.len()), data);
}

#[test]
fn two_streams_are_mixed_and_one_left_alone_goes_direct_again() {
    let (engine, received) = engine_with_byte_sink();
    let first = s16_stream(&engine);
    let second = s16_stream(&engine);
    let quiet: Vec<u8> = std::iter::repeat_n(100i16.to_le_bytes(), 24 * PERIOD as usize * 2)
        .flatten()
        .collect();
    let other: Vec<u8> = std::iter::repeat_n(23i16.to_le_bytes(), 24 * PERIOD as usize * 2)
        .flatten()
        .collect();
    second.start().expect("start");
    write_all(&second, &other);
    play(&first, &quiet);
    second.stop().expect("stop");
    assert!(received.float_periods.load(Ordering::Relaxed) >= 1, "mixed");
    let bytes = received.bytes.lock().unwrap().clone();
    let samples: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|s| i16::from_le_bytes([s[0], s[1]]))
        .collect();
    assert!(samples.contains(&123), "the sum of both");

    // Alone now: direct.
    let before = received.byte_periods.load(Ordering::Relaxed);
    play(&first, &noise(8 * PERIOD as usize, 17));
    assert!(received.byte_periods.load(Ordering::Relaxed) >= before + 8);
}
