//! The engine end to end against paced in-memory devices: mixing, underruns, exact
//! conversion, resampling quality, capture, positions and live re-routing.

mod support;

use std::time::Duration;

use paravox_engine::{Direction, EngineError, Event, StreamState};
use paravox_pcm::Format;
use paravox_testkit as analysis;
use support::*;

fn f32_bytes(value: f32, frames: usize, channels: usize) -> Vec<u8> {
    std::iter::repeat_n(value.to_le_bytes(), frames * channels)
        .flatten()
        .collect()
}

#[test]
fn two_streams_are_summed_and_a_starved_one_only_counts_xruns() {
    let (engine, recording) = engine_with_sink(format(48_000, 2, 480));
    let a = prepared_stream(&engine, Direction::Playback, Format::F32Le, 48_000, 2, 4800);
    let b = prepared_stream(&engine, Direction::Playback, Format::F32Le, 48_000, 2, 4800);
    let starved = prepared_stream(&engine, Direction::Playback, Format::S16Le, 48_000, 2, 4800);
    assert_eq!(a.write(&f32_bytes(0.25, 4800, 2)), 4800 * 8);
    assert_eq!(b.write(&f32_bytes(0.125, 4800, 2)), 4800 * 8);
    starved.start().expect("start starved");
    a.start().expect("start a");
    b.start().expect("start b");
    assert!(
        a.wait_position(4800 * 8, Duration::from_secs(5)),
        "a never finished"
    );
    assert!(
        b.wait_position(4800 * 8, Duration::from_secs(5)),
        "b never finished"
    );
    let samples = recording.lock().unwrap().clone();
    let sums = samples.iter().filter(|&&s| s == 0.375).count();
    // Both started within a cycle of each other: nearly all of the 0.1 s overlaps.
    assert!(sums >= 2 * (4800 - 2 * 480), "only {sums} summed samples");
    for &sample in &samples {
        assert!(
            [0.0, 0.125, 0.25, 0.375].contains(&sample),
            "unexpected sample {sample}: the starved stream must add silence"
        );
    }
    // The fed streams ran out and their guests stop them: a natural end, no xrun.
    a.stop().expect("stop a");
    b.stop().expect("stop b");
    assert_eq!(a.xruns() + b.xruns(), 0, "a natural end counted an xrun");
    // The starved one stays dry while running: an xrun once the grace is over.
    let deadline = std::time::Instant::now() + paravox_engine::endpoint::XRUN_GRACE * 3;
    while starved.xruns() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        starved.xruns(),
        1,
        "a running stream dry past the grace is one xrun"
    );
    assert_eq!(starved.position_bytes(), 0);
}

#[test]
fn s16_through_the_engine_is_bit_exact() {
    let (engine, recording) = engine_with_sink(format(48_000, 2, 480));
    let stream = prepared_stream(&engine, Direction::Playback, Format::S16Le, 48_000, 2, 9600);
    // Every 16-bit value once, as stereo pairs, plus the extremes.
    let mut data = Vec::new();
    for value in (i16::MIN..=i16::MAX)
        .step_by(7)
        .chain([i16::MIN, i16::MAX, 0, -1, 1])
    {
        data.extend_from_slice(&value.to_le_bytes());
    }
    if data.len() % 4 != 0 {
        data.extend_from_slice(&0i16.to_le_bytes());
    }
    let head = data.len().min(9600 * 4);
    assert_eq!(stream.write(&data[..head]), head);
    stream.start().expect("start");
    write_all(&stream, &data[head..]);
    assert!(stream.wait_position(data.len() as u64, Duration::from_secs(10)));
    let samples = recording.lock().unwrap().clone();
    let mut encoded = vec![0u8; samples.len() * 2];
    paravox_pcm::encode(Format::S16Le, &samples, &mut encoded).expect("encode");
    let start = encoded
        .windows(data.len().min(64))
        .position(|w| w == &data[..w.len()])
        .expect("stream start found in output");
    assert_eq!(&encoded[start..start + data.len()], &data[..]);
}

#[test]
fn resampling_44100_to_48000_keeps_frequency_and_purity() {
    let (engine, recording) = engine_with_sink(format(48_000, 1, 480));
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        44_100,
        1,
        44_100,
    );
    let tone = analysis::sine(44_100.0, 1000.0, 0.5, 44_100);
    let bytes: Vec<u8> = tone
        .iter()
        .flat_map(|&s| (s as f32).to_le_bytes())
        .collect();
    assert_eq!(stream.write(&bytes), bytes.len());
    stream.start().expect("start");
    assert!(stream.wait_position(bytes.len() as u64, Duration::from_secs(5)));
    let output: Vec<f64> = recording
        .lock()
        .unwrap()
        .iter()
        .map(|&s| f64::from(s))
        .collect();
    let begin = analysis::first_above(&output, 1e-3).expect("tone present") + 4800;
    let steady = &output[begin..begin + 38_400];
    let fit = analysis::fit_sine(steady, 48_000.0).expect("fit");
    eprintln!(
        "44.1 -> 48 kHz, 1 kHz sine: {:.4} Hz, THD+N {:.1} dB, amplitude {:.5}",
        fit.frequency, fit.thd_n_db, fit.amplitude
    );
    assert!(
        (fit.frequency - 1000.0).abs() < 0.1,
        "frequency {} Hz",
        fit.frequency
    );
    assert!(fit.thd_n_db < -80.0, "THD+N {} dB", fit.thd_n_db);
    assert!(
        (fit.amplitude - 0.5).abs() < 0.005,
        "amplitude {}",
        fit.amplitude
    );
}

#[test]
fn mono_is_spread_to_both_channels_of_a_stereo_endpoint() {
    let (engine, recording) = engine_with_sink(format(48_000, 2, 480));
    let stream = prepared_stream(&engine, Direction::Playback, Format::F32Le, 48_000, 1, 4800);
    let bytes = f32_bytes(0.5, 4800, 1);
    stream.write(&bytes);
    stream.start().expect("start");
    assert!(stream.wait_position(bytes.len() as u64, Duration::from_secs(5)));
    let samples = recording.lock().unwrap().clone();
    let left = samples.iter().step_by(2).filter(|&&s| s == 0.5).count();
    let right = samples
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&s| s == 0.5)
        .count();
    assert_eq!((left, right), (4800, 4800));
}

#[test]
fn capture_delivers_the_source_in_the_guest_format() {
    let engine = paravox_engine::Engine::new();
    let signal: Vec<f32> = (0..48_000)
        .map(|n| ((n % 200) as f32 - 100.0) / 256.0)
        .collect();
    engine
        .add_capture_endpoint(
            "in",
            "memory",
            Box::new(MemorySourceOpener {
                format: format(48_000, 1, 480),
                signal: std::sync::Arc::new(signal.clone()),
            }),
        )
        .expect("source");
    engine
        .set_default_endpoint(Direction::Capture, "in")
        .expect("default");
    let stream = prepared_stream(
        &engine,
        Direction::Capture,
        Format::S16Le,
        48_000,
        2,
        48_000,
    );
    stream.start().expect("start");
    assert!(stream.wait_position(9600 * 4, Duration::from_secs(5)));
    let mut captured = vec![0u8; 9600 * 4];
    assert_eq!(stream.read(&mut captured), captured.len());
    let values: Vec<i16> = captured
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect();
    // Mono source spread to stereo: both channels equal, and the source's values appear
    // exactly (x/256 in S16 is x·128).
    for frame in values.chunks_exact(2) {
        assert_eq!(frame[0], frame[1]);
        assert_eq!(frame[0] % 128, 0, "{}", frame[0]);
    }
    assert!(values.iter().any(|&v| v != 0), "captured only silence");
}

#[test]
fn positions_follow_the_device_clock() {
    let (engine, _recording) = engine_with_sink(format(48_000, 2, 480));
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::S16Le,
        48_000,
        2,
        24_000,
    );
    stream.write(&vec![0u8; 24_000 * 4]);
    let started = std::time::Instant::now();
    stream.start().expect("start");
    assert!(stream.wait_position(24_000 * 4, Duration::from_secs(5)));
    // Half a second of audio cannot be consumed in less than half a second.
    assert!(
        started.elapsed() >= Duration::from_millis(490),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stream.position_bytes() % 4, 0);
}

#[test]
fn illegal_operations_are_refused_and_leave_the_stream_usable() {
    let (engine, _recording) = engine_with_sink(format(48_000, 2, 480));
    let stream = prepared_stream(&engine, Direction::Playback, Format::S16Le, 48_000, 2, 4800);
    assert!(matches!(
        stream.pause(),
        Err(EngineError::IllegalTransition { .. })
    ));
    stream.start().expect("start");
    assert!(matches!(
        stream.start(),
        Err(EngineError::IllegalTransition { .. })
    ));
    assert!(stream.set_params(stream.params().unwrap()).is_err());
    stream.stop().expect("stop");
    stream.release().expect("release");
    assert_eq!(stream.state(), StreamState::Released);
    stream.prepare().expect("prepared again after release");
    stream.start().expect("runs again");
}

#[test]
fn bad_parameters_are_refused_with_the_reason() {
    let (engine, _recording) = engine_with_sink(format(48_000, 2, 480));
    let stream = prepared_stream(&engine, Direction::Playback, Format::S16Le, 48_000, 2, 4800);
    let mut params = stream.params().unwrap();
    stream.release().expect("release");
    params.buffer_bytes = 1001;
    let error = stream.set_params(params).expect_err("odd buffer accepted");
    assert!(error.to_string().contains("1001"), "{error}");
    params.buffer_bytes = u32::MAX;
    params.period_bytes = u32::MAX;
    assert!(stream.set_params(params).is_err());
    params.format = Format::Mpeg;
    assert!(stream.set_params(params).is_err());
    assert_eq!(
        stream.state(),
        StreamState::Released,
        "a refused request changed the state"
    );
}

#[test]
fn a_stream_moves_to_another_endpoint_while_playing() {
    let (engine, first) = engine_with_sink(format(48_000, 2, 480));
    let second: Recording = Default::default();
    engine
        .add_playback_endpoint(
            "other",
            "memory",
            Box::new(MemorySinkOpener {
                format: format(44_100, 2, 441),
                recording: second.clone(),
            }),
        )
        .expect("second sink");
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        2,
        48_000,
    );
    stream.write(&f32_bytes(0.5, 48_000, 2));
    stream.start().expect("start");
    assert!(stream.wait_position(4800 * 8, Duration::from_secs(5)));
    stream.set_route(Some("other".into())).expect("route");
    let before = stream.position_bytes();
    assert!(stream.wait_position(before + 4800 * 8, Duration::from_secs(5)));
    assert!(first.lock().unwrap().contains(&0.5));
    assert!(
        second
            .lock()
            .unwrap()
            .iter()
            .any(|&s| (s - 0.5).abs() < 1e-3),
        "nothing reached the new endpoint"
    );
    assert!(stream.set_route(Some("missing".into())).is_err());
    assert_eq!(
        stream.state(),
        StreamState::Running,
        "a refused route stopped the stream"
    );
}

#[test]
fn volume_and_mute_act_on_the_signal_and_are_announced() {
    let (engine, recording) = engine_with_sink(format(48_000, 1, 480));
    let mut events = engine.subscribe();
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        1,
        48_000,
    );
    stream.set_volume_db(-6.0206);
    stream.write(&f32_bytes(0.8, 48_000, 1));
    stream.start().expect("start");
    assert!(stream.wait_position(9600 * 4, Duration::from_secs(5)));
    stream.set_muted(true);
    let muted_from = stream.position_bytes() + 4800 * 4;
    assert!(stream.wait_position(muted_from + 4800 * 4, Duration::from_secs(5)));
    let samples = recording.lock().unwrap().clone();
    assert!(
        samples.iter().any(|&s| (s - 0.4).abs() < 1e-4),
        "-6 dB not applied"
    );
    assert_eq!(*samples.last().unwrap(), 0.0, "mute not applied");
    let mut saw_mute = false;
    while let Ok(event) = events.try_recv() {
        if let Event::Volume { muted: true, .. } = event {
            saw_mute = true;
        }
    }
    assert!(saw_mute);
}
