//! Each shipped plugin against its native stage, the per-call overhead, and compile and
//! cached load times. One endpoint period: 480 frames (10 ms at 48 kHz), stereo.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use paravox_engine::chain::ChannelMapper;
use paravox_engine::gain::{GainControl, GainStage};
use paravox_engine::plugin::{KernelSetup, PluginKernel, StageRole};
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

fn signal(len: usize) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * 0.01).sin() * 0.7).collect()
}

fn convert(c: &mut Criterion) {
    let samples = FRAMES * CHANNELS;
    let pcm: Vec<u8> = (0..samples * 2).map(|i| (i * 37 % 251) as u8).collect();
    let mut out = vec![0.0f32; samples];
    let mut group = c.benchmark_group("convert_s16le_decode");
    group.bench_function("native", |b| {
        b.iter(|| paravox_pcm::decode(Format::S16Le, black_box(&pcm), &mut out))
    });
    let mut plugin = kernel(
        shipped::CONVERT,
        StageRole::Convert,
        &setup(Format::S16Le, Format::F32Le),
    );
    group.bench_function("plugin", |b| {
        b.iter(|| {
            plugin.input_bytes(0)[..pcm.len()].copy_from_slice(black_box(&pcm));
            plugin.process(FRAMES, FRAMES).expect("process");
            out.copy_from_slice(&plugin.output_samples()[..samples]);
        })
    });
    group.finish();
    let floats = signal(samples);
    let mut bytes = vec![0u8; samples * 2];
    let mut group = c.benchmark_group("convert_s16le_encode");
    group.bench_function("native", |b| {
        b.iter(|| paravox_pcm::encode(Format::S16Le, black_box(&floats), &mut bytes))
    });
    let mut plugin = kernel(
        shipped::CONVERT,
        StageRole::Convert,
        &setup(Format::F32Le, Format::S16Le),
    );
    group.bench_function("plugin", |b| {
        b.iter(|| {
            plugin.input_samples(0)[..samples].copy_from_slice(black_box(&floats));
            plugin.process(FRAMES, FRAMES).expect("process");
            bytes.copy_from_slice(&plugin.output_bytes()[..samples * 2]);
        })
    });
    group.finish();
}

fn mix(c: &mut Criterion) {
    let samples = FRAMES * CHANNELS;
    let inputs: Vec<Vec<f32>> = (0..16).map(|k| signal(samples + k)[k..].to_vec()).collect();
    let mut out = vec![0.0f32; samples];
    let mut group = c.benchmark_group("mix_16_streams");
    group.bench_function("native", |b| {
        b.iter(|| {
            out.fill(0.0);
            for input in &inputs {
                for (mixed, sample) in out.iter_mut().zip(input.iter()) {
                    *mixed += *sample;
                }
            }
            black_box(&out);
        })
    });
    let mut plan = setup(Format::F32Le, Format::F32Le);
    plan.inputs = 64;
    let mut plugin = kernel(shipped::MIX, StageRole::Mix, &plan);
    group.bench_function("plugin", |b| {
        b.iter(|| {
            for (index, input) in inputs.iter().enumerate() {
                plugin.input_samples(index)[..samples].copy_from_slice(input);
            }
            plugin.process_mix(inputs.len(), FRAMES).expect("mix");
            out.copy_from_slice(&plugin.output_samples()[..samples]);
            black_box(&out);
        })
    });
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
    let mut plugin = kernel(
        shipped::GAIN,
        StageRole::Gain,
        &setup(Format::F32Le, Format::F32Le),
    );
    plugin.set_param(0, 0.5).expect("volume");
    group.bench_function("plugin", |b| {
        b.iter(|| {
            plugin.input_samples(0)[..samples].copy_from_slice(&input);
            plugin.process(FRAMES, FRAMES).expect("gain");
            out.copy_from_slice(&plugin.output_samples()[..samples]);
        })
    });
    group.finish();

    let mono = signal(FRAMES);
    let mut group = c.benchmark_group("channel_map_mono_to_stereo");
    let mapper = ChannelMapper::new(1, 2).expect("mapper");
    group.bench_function("native", |b| {
        b.iter(|| mapper.apply(black_box(&mono), &mut out))
    });
    let mut plan = setup(Format::F32Le, Format::F32Le);
    plan.input_channels = 1;
    let mut plugin = kernel(shipped::CHANNEL_MAP, StageRole::ChannelMap, &plan);
    group.bench_function("plugin", |b| {
        b.iter(|| {
            plugin.input_samples(0)[..FRAMES].copy_from_slice(&mono);
            plugin.process(FRAMES, FRAMES).expect("map");
            out.copy_from_slice(&plugin.output_samples()[..samples]);
        })
    });
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
    let mut plugin = kernel(shipped::RESAMPLE, StageRole::Resample, &plan);
    group.bench_function("plugin", |b| {
        b.iter(|| {
            let need = plugin.input_frames_for(FRAMES).expect("need");
            plugin.input_samples(0)[..need * CHANNELS].copy_from_slice(&long[..need * CHANNELS]);
            plugin.process(need, FRAMES).expect("resample");
            out.copy_from_slice(&plugin.output_samples()[..samples]);
        })
    });
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

criterion_group!(benches, convert, mix, f32_stages, overhead, loading);
criterion_main!(benches);
