//! Plugins in running streams: faults fall back to the native stage without a gap, and a
//! new chain swaps in at a cycle boundary.

mod common;
#[path = "../../engine/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use common::{HALF_CONVERTER_MANIFEST, Misdeed, half_wat, misbehaving};
use paravox_engine::plugin::{ChainPlugins, EffectPlugin, KernelFactory};
use paravox_engine::{Direction, Engine, Event};
use paravox_pcm::Format;
use paravox_plugin_host::{PluginRuntime, shipped};
use support::{MemorySinkOpener, Recording, format, prepared_stream, write_all};

const PERIOD: u32 = 480;

fn runtime() -> Arc<PluginRuntime> {
    PluginRuntime::shared(None).expect("runtime")
}

fn sink(engine: &Engine, name: &str) -> Recording {
    let recording: Recording = Arc::default();
    engine
        .add_playback_endpoint(
            name,
            "memory",
            Box::new(MemorySinkOpener {
                format: format(48_000, 1, PERIOD),
                recording: recording.clone(),
            }),
        )
        .expect("sink");
    if engine.default_endpoint(Direction::Playback).is_none() {
        engine
            .set_default_endpoint(Direction::Playback, name)
            .expect("default");
    }
    recording
}

/// A ramp that never repeats within the test, as float_le bytes.
fn ramp(frames: usize) -> (Vec<f32>, Vec<u8>) {
    let samples: Vec<f32> = (0..frames)
        .map(|n| ((n % 4096) as f32 + 1.0) / 8192.0)
        .collect();
    let bytes = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    (samples, bytes)
}

fn effect(factory: Arc<dyn KernelFactory>, params: &[(&str, f32)]) -> ChainPlugins {
    ChainPlugins {
        effects: vec![EffectPlugin {
            factory,
            params: params.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }],
        ..ChainPlugins::default()
    }
}

/// Plays `bytes` through a stream on endpoint `route` and waits until it was played.
fn play(stream: &paravox_engine::Stream, bytes: &[u8]) {
    // Prime the ring before starting, as a player does, so the start is not an underrun.
    let primed = stream.write(bytes);
    stream.start().expect("start");
    write_all(stream, &bytes[primed..]);
    stream.drain();
    let end = bytes.len() as u64;
    while stream.position_bytes() < end {
        assert!(
            stream.wait_position(end, Duration::from_secs(5)) || stream.position_bytes() >= end
        );
    }
}

/// The recorded audible part: everything from the first non-zero sample on, `len` long.
fn audible(recording: &Recording, len: usize) -> Vec<f32> {
    let recorded = recording.lock().unwrap().clone();
    let start = recorded
        .iter()
        .position(|&s| s != 0.0)
        .expect("something was played");
    recorded[start..(start + len).min(recorded.len())].to_vec()
}

/// Frames the fault tests play. Each stream's ring holds all of them and is filled
/// before the start, so no producer thread has to keep up while a looping plugin holds
/// a CPU (on a loaded host it may not, and the gap would be the test's, not the engine's).
const FAULT_FRAMES: u32 = 20 * PERIOD;

fn faulting_stream_keeps_playing(misdeed: Misdeed, expected_reason: &str) {
    let engine = Engine::new();
    let faulty_out = sink(&engine, "faulty");
    let healthy_out = sink(&engine, "healthy");
    let mut events = engine.subscribe();
    let plugin: Arc<dyn KernelFactory> = runtime().load(&misbehaving(misdeed, 4)).expect("loads");
    let faulty = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        1,
        FAULT_FRAMES,
    );
    faulty.set_route(Some("faulty".into())).expect("route");
    faulty
        .set_plugins(Some(effect(plugin, &[])))
        .expect("plugins");
    let healthy = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        1,
        FAULT_FRAMES,
    );
    healthy.set_route(Some("healthy".into())).expect("route");
    let frames = FAULT_FRAMES as usize;
    let (signal, bytes) = ramp(frames);
    let other = {
        let healthy = healthy.clone();
        let bytes = bytes.clone();
        std::thread::spawn(move || play(&healthy, &bytes))
    };
    play(&faulty, &bytes);
    other.join().expect("healthy stream");

    // The faulty stream played every frame: halved while the plugin worked, then, from
    // the cycle it faulted, untouched by the native path (an effect has no native twin).
    let out = audible(&faulty_out, frames);
    assert_eq!(out.len(), frames, "frames went missing");
    let switch = out
        .iter()
        .zip(&signal)
        .position(|(o, s)| o == s)
        .expect("the native path took over");
    assert!(switch > 0, "the plugin never ran");
    for (n, (o, s)) in out.iter().zip(&signal).enumerate() {
        let expected = if n < switch { s * 0.5 } else { *s };
        assert_eq!(*o, expected, "frame {n} (switch at {switch})");
    }
    // The other stream is untouched.
    assert_eq!(audible(&healthy_out, frames), signal);
    assert_eq!(faulty.plugin_faults(), 1);
    assert_eq!(healthy.plugin_faults(), 0);
    // Housekeeping raised the event.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match events.try_recv() {
            Ok(Event::PluginFault {
                stream,
                plugin,
                stage,
                reason,
                ..
            }) => {
                assert_eq!(stream, Some(faulty.id()));
                assert_eq!(plugin, "half");
                assert_eq!(stage, "effect");
                assert!(reason.contains(expected_reason), "{reason}");
                break;
            }
            Ok(_) => {}
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("no PluginFault event: {error:?}"),
        }
    }
}

/// A gain plugin whose output turns bad (a NaN) mid-stream: from that period on the
/// native gain serves, and the bad period itself reaches the mix as the native gain made
/// it, not as the plugin's output.
#[test]
fn a_gain_plugin_with_bad_output_leaves_its_period_to_the_native_gain() {
    const GAIN_MANIFEST: &str = r#"{"name":"gain-test","version":"1.0.0","kind":"effect","input_formats":["float_le"],"output_formats":["float_le"],"rates":[8000,192000],"input_channels":[1,18],"output_channels":[1,18],"params":[{"name":"channel0","min":0,"max":16,"default":1}]}"#;
    let engine = Engine::new();
    let out = sink(&engine, "out");
    let wasm = wat::parse_str(half_wat(GAIN_MANIFEST, "", Misdeed::Nan, 4)).expect("valid WAT");
    let plugin: Arc<dyn KernelFactory> = runtime().load(&wasm).expect("loads");
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        1,
        FAULT_FRAMES,
    );
    stream
        .set_plugins(Some(ChainPlugins {
            gain: Some(plugin),
            ..ChainPlugins::default()
        }))
        .expect("plugins");
    let frames = FAULT_FRAMES as usize;
    let (signal, bytes) = ramp(frames);
    play(&stream, &bytes);
    // The test plugin halves (its volume starts at 0.5); the native gain is unity here.
    let played = audible(&out, frames);
    assert_eq!(played.len(), frames, "frames went missing");
    assert!(
        played.iter().all(|s| s.is_finite()),
        "a bad sample reached the mix"
    );
    let switch = played
        .iter()
        .zip(&signal)
        .position(|(o, s)| o == s)
        .expect("the native gain took over");
    assert!(switch > 0, "the plugin never ran");
    for (n, (o, s)) in played.iter().zip(&signal).enumerate() {
        let expected = if n < switch { s * 0.5 } else { *s };
        assert_eq!(*o, expected, "frame {n} (switch at {switch})");
    }
    assert_eq!(stream.plugin_faults(), 1);
}

/// The reason of the first `PluginFault` event about `stream`, with its plugin and stage.
fn fault_event(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    stream: paravox_engine::StreamId,
) -> (String, String, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match events.try_recv() {
            Ok(Event::PluginFault {
                stream: Some(id),
                plugin,
                stage,
                reason,
                ..
            }) if id == stream => return (plugin, stage, reason),
            Ok(_) => {}
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("no PluginFault event: {error:?}"),
        }
    }
}

/// A converter plugin (it halves) whose samples turn bad from its fourth call on, in a
/// stream of `channels` at `rate` with its volume at `volume_db` and the plugins of
/// `others` in its other stages, played to a 48 kHz mono endpoint. Every frame is
/// played, no bad sample reaches the endpoint, and the fault is reported once, for the
/// convert stage (a later stage that saw the bad sample would fault itself or pass it
/// on). Returns what was played and the guest's signal.
fn converter_turning_bad(
    misdeed: Misdeed,
    rate: u32,
    channels: u32,
    volume_db: f32,
    others: ChainPlugins,
) -> (Vec<f32>, Vec<f32>) {
    let engine = Engine::new();
    let out = sink(&engine, "out");
    let mut events = engine.subscribe();
    let wasm =
        wat::parse_str(half_wat(HALF_CONVERTER_MANIFEST, "", misdeed, 4)).expect("valid WAT");
    let plugin: Arc<dyn KernelFactory> = runtime().load(&wasm).expect("loads");
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        rate,
        channels,
        FAULT_FRAMES,
    );
    stream
        .set_plugins(Some(ChainPlugins {
            convert: Some(plugin),
            ..others
        }))
        .expect("plugins");
    stream.set_volume_db(volume_db);
    let frames = FAULT_FRAMES as usize;
    let (signal, bytes) = ramp(frames * channels as usize);
    play(&stream, &bytes);
    let played = audible(&out, frames * 48_000 / rate as usize);
    assert_eq!(
        played.len(),
        frames * 48_000 / rate as usize,
        "frames went missing"
    );
    assert!(
        played.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
        "a bad sample reached the endpoint"
    );
    assert_eq!(stream.plugin_faults(), 1);
    let (name, stage, reason) = fault_event(&mut events, stream.id());
    assert_eq!((name.as_str(), stage.as_str()), ("half-convert", "convert"));
    assert!(reason.contains("non-finite"), "{reason}");
    (played, signal)
}

/// Checks `played` against the guest's `signal` scaled by `gain` (from frame `settled`
/// on: a volume set after the stream was made ramps to it first): halved by the plugin
/// up to some period, then as the native converter decodes it, with no frame lost.
fn assert_switched_to_native(played: &[f32], signal: &[f32], gain: f32, settled: usize) {
    assert_eq!(played.len(), signal.len(), "frames went missing");
    let switch = played
        .iter()
        .zip(signal)
        .position(|(o, s)| *o == s * gain)
        .expect("the native converter took over");
    assert!(switch > settled, "the plugin never ran");
    for (n, (o, s)) in played.iter().zip(signal).enumerate().skip(settled) {
        let expected = if n < switch {
            (s * 0.5) * gain
        } else {
            s * gain
        };
        assert_eq!(*o, expected, "frame {n} (switch at {switch})");
    }
}

/// The identity channel map is the first stage to read the converter's samples: its copy
/// checks them, and a NaN is caught there.
#[test]
fn a_converter_nan_is_caught_by_the_channel_maps_copy() {
    let (played, signal) =
        converter_turning_bad(Misdeed::Nan, 48_000, 1, 0.0, ChainPlugins::default());
    assert_switched_to_native(&played, &signal, 1.0, 0);
}

/// The same copy holds decoded samples to [-1, 1], tighter than an effect's limit.
#[test]
fn a_converter_sample_above_full_scale_is_caught_by_the_channel_maps_copy() {
    let (played, signal) =
        converter_turning_bad(Misdeed::Loud, 48_000, 1, 0.0, ChainPlugins::default());
    assert_switched_to_native(&played, &signal, 1.0, 0);
}

/// With a volume set, the gain (which has state: its ramp) reads the samples first, so
/// they are checked before it runs, and the spoiled period is gained once, natively.
#[test]
fn a_converter_sample_above_full_scale_is_caught_before_the_gain() {
    let (played, signal) =
        converter_turning_bad(Misdeed::Loud, 48_000, 1, -6.0, ChainPlugins::default());
    let ramp = (48_000.0 * paravox_engine::gain::RAMP_SECONDS) as usize;
    let gain = paravox_engine::gain::db_to_linear(-6.0);
    assert_switched_to_native(&played, &signal, gain, ramp);
}

/// A resampler's history must never hold a bad sample: the check comes before it.
#[test]
fn a_converter_nan_is_caught_before_the_resampler() {
    converter_turning_bad(Misdeed::Nan, 44_100, 1, 0.0, ChainPlugins::default());
}

/// A gain plugin would take 1.5 (within what an effect may handle): the converter's
/// samples are checked before they are copied into it.
#[test]
fn a_converter_sample_above_full_scale_is_caught_before_a_gain_plugin() {
    let gain: Arc<dyn KernelFactory> = runtime().load(shipped::GAIN).expect("loads");
    let others = ChainPlugins {
        gain: Some(gain),
        ..ChainPlugins::default()
    };
    let (played, signal) = converter_turning_bad(Misdeed::Loud, 48_000, 1, 0.0, others);
    assert_switched_to_native(&played, &signal, 1.0, 0);
}

/// A stereo stream into the mono endpoint: the channel map mixes, and a 1.5 mixed with
/// its neighbour would fit in range; the check comes before the mix.
#[test]
fn a_converter_sample_above_full_scale_is_caught_before_a_down_mix() {
    converter_turning_bad(Misdeed::Loud, 48_000, 2, 0.0, ChainPlugins::default());
}

/// A capture converter (it halves) that traps from its fourth call on, in a mono
/// `float_le` stream at `rate` fed by a 48 kHz source holding 0.25: the stage before it
/// writes straight into its input, and from the period it trapped the native converter
/// encodes that same input. Returns the captured samples.
fn capture_converter_trapping(rate: u32) -> Vec<f32> {
    let engine = Engine::new();
    let source: Vec<f32> = vec![0.25; 48_000];
    engine
        .add_capture_endpoint(
            "in",
            "memory",
            Box::new(support::MemorySourceOpener {
                format: format(48_000, 1, PERIOD),
                signal: Arc::new(source),
            }),
        )
        .expect("source");
    engine
        .set_default_endpoint(Direction::Capture, "in")
        .expect("default");
    let wasm =
        wat::parse_str(half_wat(HALF_CONVERTER_MANIFEST, "", Misdeed::Trap, 4)).expect("valid WAT");
    let plugin: Arc<dyn KernelFactory> = runtime().load(&wasm).expect("loads");
    // A tenth of a second, in four whole periods.
    let frames = rate as usize / 10 / 4 * 4;
    let stream = prepared_stream(
        &engine,
        Direction::Capture,
        Format::F32Le,
        rate,
        1,
        frames as u32,
    );
    stream
        .set_plugins(Some(ChainPlugins {
            convert: Some(plugin),
            ..ChainPlugins::default()
        }))
        .expect("plugins");
    stream.start().expect("start");
    let bytes = frames * 4;
    assert!(stream.wait_position(bytes as u64, Duration::from_secs(5)));
    let mut captured = vec![0u8; bytes];
    assert_eq!(stream.read(&mut captured), bytes);
    assert_eq!(stream.plugin_faults(), 1);
    captured
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// No resampler: the channel map writes into the converter's input.
#[test]
fn a_capture_converter_that_traps_leaves_its_staged_input_to_the_native_one() {
    let captured = capture_converter_trapping(48_000);
    // Halved while the plugin worked, then the native converter's exact samples.
    let switch = captured
        .iter()
        .position(|&s| s == 0.25)
        .expect("the native converter took over");
    assert!(switch > 0, "the plugin never ran");
    assert!(
        captured[..switch].iter().all(|&s| s == 0.125),
        "{captured:?}"
    );
    assert!(
        captured[switch..].iter().all(|&s| s == 0.25),
        "{captured:?}"
    );
}

/// A resampler writes into the converter's input (48 to 44.1 kHz).
#[test]
fn a_capture_converter_that_traps_after_a_resampler_leaves_its_input_to_the_native_one() {
    let captured = capture_converter_trapping(44_100);
    assert!(captured.iter().all(|s| s.is_finite() && s.abs() <= 0.26));
    // The resampler's first outputs rise from its empty history; then the plugin's
    // halved samples, then the native converter's.
    assert!(
        captured.iter().any(|&s| (s - 0.125).abs() < 1e-4),
        "the plugin never ran: {captured:?}"
    );
    let last = &captured[captured.len() - 100..];
    assert!(last.iter().all(|&s| (s - 0.25).abs() < 1e-4), "{last:?}");
}

#[test]
fn a_trap_falls_back_to_native() {
    faulting_stream_keeps_playing(Misdeed::Trap, "trapped");
}

#[test]
fn an_infinite_loop_misses_its_deadline_and_falls_back() {
    faulting_stream_keeps_playing(Misdeed::Spin, "deadline");
}

#[test]
fn growing_memory_while_processing_falls_back() {
    faulting_stream_keeps_playing(Misdeed::Grow, "grow its memory");
}

#[test]
fn a_garbage_frame_count_falls_back() {
    faulting_stream_keeps_playing(Misdeed::HugeCount, "frame count");
}

#[test]
fn nan_output_falls_back() {
    faulting_stream_keeps_playing(Misdeed::Nan, "non-finite");
}

#[test]
fn a_refused_plugin_leaves_the_native_stage_and_says_why() {
    let engine = Engine::new();
    let _out = sink(&engine, "out");
    let mut events = engine.subscribe();
    // A mixer cannot stand in for an effect.
    let mix: Arc<dyn KernelFactory> = runtime().load(shipped::MIX).expect("mix");
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::S16Le,
        48_000,
        1,
        4 * PERIOD,
    );
    stream.set_route(Some("out".into())).expect("route");
    stream
        .set_plugins(Some(effect(mix, &[])))
        .expect("a refusal is not an error");
    let refused = std::iter::from_fn(|| events.try_recv().ok()).find_map(|event| match event {
        Event::PluginFault { reason, .. } => Some(reason),
        _ => None,
    });
    assert!(refused.expect("an event").contains("needs a effect"));
}

/// Frames the hot-swap test plays, all in the stream's ring from the start (see
/// [`FAULT_FRAMES`]).
const SWAP_FRAMES: u32 = 60 * PERIOD;

#[test]
fn hot_swap_changes_the_level_in_exactly_one_step_without_a_gap() {
    let engine = Engine::new();
    let out = sink(&engine, "out");
    let gain: Arc<dyn KernelFactory> = runtime().load(shipped::GAIN).expect("gain");
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        1,
        SWAP_FRAMES,
    );
    stream.set_route(Some("out".into())).expect("route");
    stream
        .set_plugins(Some(effect(gain.clone(), &[("volume", 1.0)])))
        .expect("gain 1.0");
    let frames = SWAP_FRAMES as usize;
    let (signal, bytes) = ramp(frames);
    let player = {
        let stream = stream.clone();
        std::thread::spawn(move || play(&stream, &bytes))
    };
    // Swap while the tone plays.
    while stream.position_bytes() < 20 * u64::from(PERIOD) * 4 {
        std::thread::sleep(Duration::from_millis(5));
    }
    stream
        .set_plugins(Some(effect(gain, &[("volume", 0.5)])))
        .expect("gain 0.5");
    player.join().expect("player");
    let out = audible(&out, frames);
    assert_eq!(out.len(), frames, "frames went missing");
    let switch = out
        .iter()
        .zip(&signal)
        .position(|(o, s)| *o != *s)
        .expect("the level changed");
    assert!(switch > 0 && switch < frames);
    assert_eq!(switch % PERIOD as usize, 0, "the swap happened mid-cycle");
    for (n, (o, s)) in out.iter().zip(&signal).enumerate() {
        let expected = if n < switch { *s } else { s * 0.5 };
        assert_eq!(
            *o, expected,
            "frame {n}: a missing, repeated or ramped frame"
        );
    }
}
