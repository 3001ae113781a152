//! Each shipped plugin against its native stage, the per-call overhead, and compile and
//! cached load times. One endpoint period: 480 frames (10 ms at 48 kHz), stereo.
//!
//! The plugin side runs the engine's own real-time path ([`PluginSlot`]): the input
//! written into the plugin's memory, the call under its deadline, the output checked
//! (NaN, infinity, range) while it is copied out. The mixer's inputs are written once:
//! the engine's chains write straight into the mixer's input buffers, so a cycle's mixing
//! cost is the call and the checked copy of the result.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use paravox_engine::chain::ChannelMapper;
use paravox_engine::gain::{GainControl, GainStage};
use paravox_engine::plugin::{
    FaultBoard, KernelSetup, OUTPUT_LIMIT, PluginKernel, PluginSlot, StageRole, copy_checked,
};
use paravox_engine::resample::Resampler;
use paravox_pcm::Format;
use paravox_plugin_host::{PluginRuntime, RuntimeOptions, shipped};

const FRAMES: usize = 480;
const CHANNELS: usize = 2;

fn setup(input_format: Format, output_format: Format) -> KernelSetup {
    KernelSetup {
        input_rate: 48_000,
        output_rate: 48_000,
        input_channels: CHANNELS as u32,
        output_channels: CHANNELS as u32,
        input_format,
        output_format,
        max_frames: FRAMES as u32,
        inputs: 1,
    }
}

fn kernel(module: &[u8], role: StageRole, setup: &KernelSetup) -> Box<dyn PluginKernel> {
    let runtime = PluginRuntime::shared(None).expect("runtime");
    Box::new(
        runtime
            .load(module)
            .expect("load")
            .kernel(role, setup)
            .expect("kernel"),
    )
}

fn slot(module: &[u8], role: StageRole, setup: &KernelSetup) -> PluginSlot {
    PluginSlot::new(
        kernel(module, role, setup),
        Arc::new(FaultBoard::default()),
        0,
    )
}

/// A measurement of a disabled plugin would time the fallback: refuse to report it.
fn still_active(slot: &PluginSlot) {
    assert!(
        slot.active(),
        "the plugin faulted during the benchmark (a deadline missed on a loaded host?); rerun"
    );
}

fn signal(len: usize) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * 0.01).sin() * 0.7).collect()
}

/// Sixteen streams that together stay below the mixer's soft-clipping knee.
fn mix_inputs() -> Vec<Vec<f32>> {
    let samples = FRAMES * CHANNELS;
    (0..16)
        .map(|k| signal(samples + k)[k..].iter().map(|s| s / 16.0).collect())
        .collect()
}

/// The engine's native mix: a sum, stream after stream.
fn native_mix(inputs: &[Vec<f32>], out: &mut [f32]) {
    out.fill(0.0);
    for input in inputs {
        for (mixed, sample) in out.iter_mut().zip(input.iter()) {
            *mixed += *sample;
        }
    }
    black_box(out);
}

/// A mixer plugin (soft clipping `soft_clip`) with `inputs` already in its buffers, as
/// the engine's chains leave them.
fn mixer(inputs: &[Vec<f32>], soft_clip: f32) -> Box<dyn PluginKernel> {
    let mut plan = setup(Format::F32Le, Format::F32Le);
    plan.inputs = 64;
    let mut plugin = kernel(shipped::MIX, StageRole::Mix, &plan);
    plugin.set_param(0, soft_clip).expect("soft_clip");
    for (index, input) in inputs.iter().enumerate() {
        plugin.input_samples(index)[..input.len()].copy_from_slice(input);
    }
    plugin
}

fn convert(c: &mut Criterion) {
    let samples = FRAMES * CHANNELS;
    let pcm: Vec<u8> = (0..samples * 2).map(|i| (i * 37 % 251) as u8).collect();
    let mut out = vec![0.0f32; samples];
    let mut group = c.benchmark_group("convert_s16le_decode");
    group.bench_function("native", |b| {
        b.iter(|| paravox_pcm::decode(Format::S16Le, black_box(&pcm), &mut out))
    });
    let mut plugin = slot(
        shipped::CONVERT,
        StageRole::Convert,
        &setup(Format::S16Le, Format::F32Le),
    );
    group.bench_function("plugin", |b| {
        b.iter(|| {
            plugin.run_decode(
                pcm.len(),
                2 * CHANNELS,
                |input| {
                    input.copy_from_slice(black_box(&pcm));
                    input.len()
                },
                &mut out,
                CHANNELS,
            )
        })
    });
    still_active(&plugin);
    group.finish();
    let floats = signal(samples);
    let mut bytes = vec![0u8; samples * 2];
    let mut group = c.benchmark_group("convert_s16le_encode");
    group.bench_function("native", |b| {
        b.iter(|| paravox_pcm::encode(Format::S16Le, black_box(&floats), &mut bytes))
    });
    let mut plugin = slot(
        shipped::CONVERT,
        StageRole::Convert,
        &setup(Format::F32Le, Format::S16Le),
    );
    group.bench_function("plugin", |b| {
        b.iter(|| {
            plugin.run_encode(black_box(&floats), FRAMES, 2 * CHANNELS, |encoded| {
                bytes.copy_from_slice(encoded)
            })
        })
    });
    still_active(&plugin);
    group.finish();
}

fn mix(c: &mut Criterion) {
    let samples = FRAMES * CHANNELS;
    let inputs = mix_inputs();
    let mut out = vec![0.0f32; samples];
    let mut group = c.benchmark_group("mix_16_streams");
    group.bench_function("native", |b| b.iter(|| native_mix(&inputs, &mut out)));
    for (name, soft_clip) in [("plugin", 1.0), ("plugin_soft_clip_off", 0.0)] {
        let mut plugin = mixer(&inputs, soft_clip);
        group.bench_function(name, |b| {
            b.iter(|| {
                plugin.process_mix(inputs.len(), FRAMES).expect("mix");
                copy_checked(&plugin.output_samples()[..samples], &mut out, OUTPUT_LIMIT)
                    .expect("in range");
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn f32_stages(c: &mut Criterion) {
    let samples = FRAMES * CHANNELS;
    let input = signal(samples);
    let mut out = vec![0.0f32; samples];

    let mut group = c.benchmark_group("gain_minus_6db");
    let control = GainControl::default();
    control.set_volume_db(-6.0);
    let mut native = GainStage::new(48_000);
    native.settle(&control);
    group.bench_function("native", |b| {
        b.iter(|| {
            out.copy_from_slice(&input);
            native.process(&control, &mut out, CHANNELS);
        })
    });
    let mut plugin = slot(
        shipped::GAIN,
        StageRole::Gain,
        &setup(Format::F32Le, Format::F32Le),
    );
    plugin
        .kernel()
        .expect("active")
        .set_param(0, 0.5)
        .expect("volume");
    group.bench_function("plugin", |b| {
        b.iter(|| plugin.run_f32(&input, FRAMES, &mut out, FRAMES, CHANNELS))
    });
    still_active(&plugin);
    group.finish();

    let mono = signal(FRAMES);
    let mut group = c.benchmark_group("channel_map_mono_to_stereo");
    let mapper = ChannelMapper::new(1, 2).expect("mapper");
    group.bench_function("native", |b| {
        b.iter(|| mapper.apply(black_box(&mono), &mut out))
    });
    let mut plan = setup(Format::F32Le, Format::F32Le);
    plan.input_channels = 1;
    let mut plugin = slot(shipped::CHANNEL_MAP, StageRole::ChannelMap, &plan);
    group.bench_function("plugin", |b| {
        b.iter(|| plugin.run_f32(&mono, FRAMES, &mut out, FRAMES, CHANNELS))
    });
    still_active(&plugin);
    group.finish();

    let mut group = c.benchmark_group("resample_44k1_to_48k");
    let mut native = Resampler::new(44_100, 48_000, CHANNELS).expect("resampler");
    let long = signal(2048 * CHANNELS);
    group.bench_function("native", |b| {
        b.iter(|| {
            let need = native.input_frames_for(FRAMES);
            native.process(&long[..need * CHANNELS], &mut out)
        })
    });
    let mut plan = setup(Format::F32Le, Format::F32Le);
    plan.input_rate = 44_100;
    plan.max_frames = 1024;
    let mut plugin = slot(shipped::RESAMPLE, StageRole::Resample, &plan);
    group.bench_function("plugin", |b| {
        b.iter(|| {
            let need = plugin
                .kernel()
                .expect("active")
                .input_frames_for(FRAMES)
                .expect("need");
            plugin.run_f32(&long[..need * CHANNELS], need, &mut out, FRAMES, CHANNELS)
        })
    });
    still_active(&plugin);
    group.finish();
}

fn overhead(c: &mut Criterion) {
    let mut plugin = kernel(
        shipped::GAIN,
        StageRole::Gain,
        &setup(Format::F32Le, Format::F32Le),
    );
    c.bench_function("per_call_overhead_process_0_frames", |b| {
        b.iter(|| plugin.process(0, 0).expect("call"))
    });
    c.bench_function("per_call_overhead_set_param", |b| {
        b.iter(|| plugin.set_param(0, black_box(0.5)).expect("call"))
    });
}

fn loading(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_convert_plugin");
    group.sample_size(10);
    let uncached = PluginRuntime::new(&RuntimeOptions {
        cache_dir: None,
        max_instances: 16,
    })
    .expect("runtime");
    group.bench_function("compile", |b| {
        b.iter(|| uncached.load(shipped::CONVERT).expect("load"))
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let cached = PluginRuntime::new(&RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        max_instances: 16,
    })
    .expect("runtime");
    cached.load(shipped::CONVERT).expect("prime the cache");
    group.bench_function("cached", |b| {
        b.iter(|| cached.load(shipped::CONVERT).expect("load"))
    });
    let plugin = cached.load(shipped::CONVERT).expect("load");
    group.bench_function("instantiate_and_warm", |b| {
        b.iter(|| {
            plugin
                .kernel(StageRole::Convert, &setup(Format::S16Le, Format::F32Le))
                .expect("kernel")
        })
    });
    group.finish();
    let started = Instant::now();
    uncached.load(shipped::CONVERT).expect("load");
    eprintln!("one compile of convert.wasm: {:?}", started.elapsed());
}

/// The fastest batch of `ITERATIONS` calls, in nanoseconds per call: on a shared host a
/// batch the scheduler interrupted is slower, never faster, so the minimum is the cost.
fn best_ns(run: &mut dyn FnMut()) -> f64 {
    const ITERATIONS: u32 = 200;
    let started = Instant::now();
    let mut best = f64::MAX;
    while started.elapsed().as_millis() < 1500 {
        let batch = Instant::now();
        for _ in 0..ITERATIONS {
            run();
        }
        best = best.min(batch.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
    }
    best
}

/// Plugin throughput as a share of native, each side's best batch (see [`best_ns`]),
/// printed as one table: the numbers the plugin host documents.
fn ratios(_: &mut Criterion) {
    let samples = FRAMES * CHANNELS;
    let pcm: Vec<u8> = (0..samples * 2).map(|i| (i * 37 % 251) as u8).collect();
    let floats = signal(samples);
    let mut out = vec![0.0f32; samples];
    let mut bytes = vec![0u8; samples * 2];
    let mut rows: Vec<(&str, f64, f64)> = Vec::new();

    let mut decoder = slot(
        shipped::CONVERT,
        StageRole::Convert,
        &setup(Format::S16Le, Format::F32Le),
    );
    let native = best_ns(&mut || {
        let _ = paravox_pcm::decode(Format::S16Le, black_box(&pcm), &mut out);
    });
    let plugin = best_ns(&mut || {
        decoder.run_decode(
            pcm.len(),
            2 * CHANNELS,
            |input| {
                input.copy_from_slice(black_box(&pcm));
                input.len()
            },
            &mut out,
            CHANNELS,
        );
    });
    still_active(&decoder);
    rows.push(("convert s16_le -> f32", native, plugin));
    // Where a decode call's time goes: the copy into the plugin, the bare call, the work
    // inside, and the checked copy out.
    let mut bare = kernel(
        shipped::CONVERT,
        StageRole::Convert,
        &setup(Format::S16Le, Format::F32Le),
    );
    let copy_in =
        best_ns(&mut || bare.input_bytes(0)[..pcm.len()].copy_from_slice(black_box(&pcm)));
    let empty = best_ns(&mut || {
        let _ = bare.process(0, 0);
    });
    let call = best_ns(&mut || {
        let _ = bare.process(FRAMES, FRAMES);
    });
    let copy_out = best_ns(&mut || {
        let _ = copy_checked(&bare.output_samples()[..samples], &mut out, 1.0);
    });

    let mut encoder = slot(
        shipped::CONVERT,
        StageRole::Convert,
        &setup(Format::F32Le, Format::S16Le),
    );
    let native = best_ns(&mut || {
        let _ = paravox_pcm::encode(Format::S16Le, black_box(&floats), &mut bytes);
    });
    let plugin = best_ns(&mut || {
        encoder.run_encode(black_box(&floats), FRAMES, 2 * CHANNELS, |encoded| {
            bytes.copy_from_slice(encoded)
        });
    });
    still_active(&encoder);
    rows.push(("convert f32 -> s16_le", native, plugin));

    let inputs = mix_inputs();
    let native = best_ns(&mut || native_mix(&inputs, &mut out));
    let mut mixer = mixer(&inputs, 1.0);
    let plugin = best_ns(&mut || {
        let _ = mixer.process_mix(16, FRAMES);
        let _ = copy_checked(&mixer.output_samples()[..samples], &mut out, OUTPUT_LIMIT);
    });
    rows.push(("mix 16 streams (soft clip on)", native, plugin));

    let control = GainControl::default();
    control.set_volume_db(-6.0);
    let mut stage = GainStage::new(48_000);
    stage.settle(&control);
    let native = best_ns(&mut || {
        out.copy_from_slice(&floats);
        stage.process(&control, &mut out, CHANNELS);
    });
    let mut gain = slot(
        shipped::GAIN,
        StageRole::Gain,
        &setup(Format::F32Le, Format::F32Le),
    );
    if let Some(kernel) = gain.kernel() {
        let _ = kernel.set_param(0, 0.5);
    }
    let plugin = best_ns(&mut || {
        gain.run_f32(&floats, FRAMES, &mut out, FRAMES, CHANNELS);
    });
    still_active(&gain);
    rows.push(("gain -6 dB", native, plugin));

    let mono = signal(FRAMES);
    let mapper = ChannelMapper::new(1, 2).expect("mapper");
    let native = best_ns(&mut || mapper.apply(black_box(&mono), &mut out));
    let mut plan = setup(Format::F32Le, Format::F32Le);
    plan.input_channels = 1;
    let mut map = slot(shipped::CHANNEL_MAP, StageRole::ChannelMap, &plan);
    let plugin = best_ns(&mut || {
        map.run_f32(&mono, FRAMES, &mut out, FRAMES, CHANNELS);
    });
    still_active(&map);
    rows.push(("channel-map 1 -> 2", native, plugin));

    let long = signal(2048 * CHANNELS);
    let mut resampler = Resampler::new(44_100, 48_000, CHANNELS).expect("resampler");
    let native = best_ns(&mut || {
        let need = resampler.input_frames_for(FRAMES);
        resampler.process(&long[..need * CHANNELS], &mut out);
    });
    let mut plan = setup(Format::F32Le, Format::F32Le);
    plan.input_rate = 44_100;
    plan.max_frames = 1024;
    let mut resample = slot(shipped::RESAMPLE, StageRole::Resample, &plan);
    let plugin = best_ns(&mut || {
        let need = resample
            .kernel()
            .and_then(|kernel| kernel.input_frames_for(FRAMES).ok())
            .unwrap_or(0);
        resample.run_f32(&long[..need * CHANNELS], need, &mut out, FRAMES, CHANNELS);
    });
    still_active(&resample);
    rows.push(("resample 44.1k -> 48k", native, plugin));

    eprintln!(
        "\ns16_le decode call: copy in {copy_in:.0} ns, empty call {empty:.0} ns, \
         call with 480 frames {call:.0} ns, checked copy out {copy_out:.0} ns"
    );
    eprintln!("\nplugin throughput vs native, 480 stereo frames per call (best batch):");
    eprintln!(
        "{:32} {:>10} {:>10} {:>8}",
        "stage", "native", "plugin", "ratio"
    );
    for (name, native, plugin) in rows {
        eprintln!(
            "{name:32} {:>8.0}ns {:>8.0}ns {:>7.2}x",
            native,
            plugin,
            native / plugin
        );
    }
}

criterion_group!(benches, ratios, convert, mix, f32_stages, overhead, loading);
criterion_main!(benches);
