//! Every shipped plugin against the native stage it stands in for.

use std::sync::Arc;

use paravox_engine::chain::ChannelMapper;
use paravox_engine::gain::{GainControl, GainStage};
use paravox_engine::plugin::{KernelSetup, PluginKernel, StageRole};
use paravox_engine::resample::Resampler;
use paravox_pcm::Format;
use paravox_plugin_host::{Kernel, PluginRuntime, shipped};

fn runtime() -> Arc<PluginRuntime> {
    PluginRuntime::shared(None).expect("runtime")
}

fn setup(rate: u32, channels: u32, max_frames: u32) -> KernelSetup {
    KernelSetup {
        input_rate: rate,
        output_rate: rate,
        input_channels: channels,
        output_channels: channels,
        input_format: Format::F32Le,
        output_format: Format::F32Le,
        max_frames,
        inputs: 1,
    }
}

fn kernel(module: &'static [u8], role: StageRole, setup: &KernelSetup) -> Kernel {
    // Compile each module once per test binary (debug builds compile slowly).
    static LOADED: std::sync::Mutex<Vec<(usize, Arc<paravox_plugin_host::Plugin>)>> =
        std::sync::Mutex::new(Vec::new());
    let plugin = {
        let mut loaded = LOADED.lock().unwrap();
        let key = module.as_ptr() as usize;
        match loaded.iter().find(|(k, _)| *k == key) {
            Some((_, plugin)) => plugin.clone(),
            None => {
                let plugin = runtime().load(module).expect("loads");
                loaded.push((key, plugin.clone()));
                plugin
            }
        }
    };
    plugin.kernel(role, setup).expect("kernel")
}

/// Deterministic noise: every byte pattern, including NaNs and huge floats.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn tricky_samples(len: usize) -> Vec<f32> {
    let special = [
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        2.0,
        -2.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.5 / 32768.0,
        1.5 / 32768.0,
        -0.5 / 32768.0,
        0.999_999_9,
        1e-30,
        -1e-30,
        0.5 / 8_388_608.0,
        2.5 / 8_388_608.0,
    ];
    let random = noise(len * 4, 7);
    (0..len)
        .map(|i| match i % 3 {
            0 => special[(i / 3) % special.len()],
            1 => f32::from_le_bytes(random[i * 4..i * 4 + 4].try_into().unwrap()),
            _ => (i as f32 * 0.000_731).sin() * 1.1,
        })
        .collect()
}

#[test]
fn convert_decodes_every_format_bit_for_bit() {
    let frames = 1000;
    for format in Format::ALL.into_iter().filter(|f| f.is_convertible()) {
        let bytes_per = format.bytes_per_sample().unwrap() as usize;
        let mut plan = setup(48_000, 2, frames as u32);
        plan.input_format = format;
        let mut kernel = kernel(shipped::CONVERT, StageRole::Convert, &plan);
        let input = noise(frames * 2 * bytes_per, format.index().into());
        kernel.input_bytes(0)[..input.len()].copy_from_slice(&input);
        assert_eq!(kernel.process(frames, frames), Ok(frames));
        let mut native = vec![0.0f32; frames * 2];
        paravox_pcm::decode(format, &input, &mut native).expect("decode");
        let plugin = &kernel.output_samples()[..frames * 2];
        for (i, (p, n)) in plugin.iter().zip(&native).enumerate() {
            assert_eq!(p.to_bits(), n.to_bits(), "{format} sample {i}: {p} vs {n}");
        }
    }
}

#[test]
fn convert_encodes_every_format_bit_for_bit() {
    let frames = 999;
    let samples = tricky_samples(frames * 2);
    for format in Format::ALL.into_iter().filter(|f| f.is_convertible()) {
        let bytes_per = format.bytes_per_sample().unwrap() as usize;
        let mut plan = setup(48_000, 2, frames as u32);
        plan.output_format = format;
        let mut kernel = kernel(shipped::CONVERT, StageRole::Convert, &plan);
        kernel.input_samples(0)[..samples.len()].copy_from_slice(&samples);
        assert_eq!(kernel.process(frames, frames), Ok(frames));
        let mut native = vec![0u8; samples.len() * bytes_per];
        paravox_pcm::encode(format, &samples, &mut native).expect("encode");
        let plugin = &kernel.output_bytes()[..native.len()];
        if let Some(at) = plugin.iter().zip(&native).position(|(p, n)| p != n) {
            let sample = at / bytes_per;
            panic!("{format} sample {sample} ({}) differs", samples[sample]);
        }
    }
}

#[test]
fn gain_matches_the_native_stage_through_ramps() {
    let (rate, channels, period) = (48_000, 2, 480);
    let control = GainControl::default();
    let mut native = GainStage::new(rate);
    native.settle(&control);
    let mut kernel = kernel(
        shipped::GAIN,
        StageRole::Gain,
        &setup(rate, channels, period),
    );
    let params: Vec<u32> = (0..channels)
        .map(|c| {
            kernel
                .param_index(&format!("channel{c}"))
                .expect("channel param")
        })
        .collect();
    let changes: [&dyn Fn(&GainControl); 5] = [
        &|c| c.set_volume_db(-6.0),
        &|c| c.set_channel_volume_db(1, -20.0),
        &|c| c.set_muted(true),
        &|c| c.set_muted(false),
        &|c| c.set_volume_db(0.0),
    ];
    let signal: Vec<f32> = (0..period as usize * channels as usize)
        .map(|i| (i as f32 * 0.01).sin() * 0.8)
        .collect();
    let mut sent = vec![1.0f32; channels as usize];
    for cycle in 0..20 {
        if cycle % 4 == 1 {
            changes[(cycle / 4) % changes.len()](&control);
        }
        for (channel, param) in params.iter().enumerate() {
            let goal = if control.muted() {
                0.0
            } else {
                paravox_engine::gain::db_to_linear(control.channel_volume_db(channel))
            };
            let goal = if control.channel_volume_db(channel) == 0.0 && !control.muted() {
                1.0
            } else {
                goal
            };
            if goal != sent[channel] {
                kernel.set_param(*param, goal).expect("param");
                sent[channel] = goal;
            }
        }
        let mut expected = signal.clone();
        native.process(&control, &mut expected, channels as usize);
        kernel.input_samples(0)[..signal.len()].copy_from_slice(&signal);
        assert_eq!(
            kernel.process(period as usize, period as usize),
            Ok(period as usize)
        );
        let got = &kernel.output_samples()[..signal.len()];
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                g.to_bits(),
                e.to_bits(),
                "cycle {cycle} sample {i}: {g} vs {e}"
            );
        }
    }
}

#[test]
fn mix_without_soft_clipping_is_the_native_sum() {
    // Passes of eight and of four inputs, alone and after one another (a later pass adds
    // to the sums of the first), single inputs after them, and periods that leave a tail
    // after the SIMD blocks.
    for (inputs, period) in [
        (5usize, 480u32),
        (9, 477),
        (1, 480),
        (8, 31),
        (13, 480),
        (16, 480),
    ] {
        let channels = 2u32;
        let mut plan = setup(48_000, channels, 480);
        plan.inputs = 64;
        // As it comes: paravox's default mixing.
        let mut kernel = kernel(shipped::MIX, StageRole::Mix, &plan);
        let len = (channels * period) as usize;
        let mut native = vec![0.0f32; len];
        for input in 0..inputs {
            let signal: Vec<f32> = (0..len)
                .map(|i| ((i * (input + 1)) as f32 * 0.013).sin() * 0.4)
                .collect();
            for (mixed, sample) in native.iter_mut().zip(&signal) {
                *mixed += *sample;
            }
            kernel.input_samples(input)[..len].copy_from_slice(&signal);
        }
        assert_eq!(
            kernel.process_mix(inputs, period as usize),
            Ok(period as usize)
        );
        let got = &kernel.output_samples()[..len];
        let differ = got
            .iter()
            .zip(&native)
            .position(|(g, n)| g.to_bits() != n.to_bits());
        assert_eq!(differ, None, "{inputs} inputs, {period} frames");
    }
}

#[test]
fn mix_soft_clips_above_the_knee_only() {
    let mut plan = setup(48_000, 1, 4);
    plan.inputs = 64;
    let mut kernel = kernel(shipped::MIX, StageRole::Mix, &plan);
    kernel
        .set_param(kernel.param_index("soft_clip").expect("soft_clip"), 1.0)
        .expect("on");
    kernel.input_samples(0)[..4].copy_from_slice(&[0.5, 0.8, 1.5, -3.0]);
    kernel.input_samples(1)[..4].copy_from_slice(&[0.0, 0.0, 0.5, -1.0]);
    assert_eq!(kernel.process_mix(2, 4), Ok(4));
    let out = kernel.output_samples();
    assert_eq!(&out[..2], &[0.5, 0.8]);
    assert!(out[2] > 0.9 && out[2] < 1.0, "{}", out[2]);
    assert!(out[3] < -0.9 && out[3] > -1.0, "{}", out[3]);
}

#[test]
fn channel_map_matches_the_native_mapper() {
    for (inputs, outputs) in [(1, 2), (2, 1), (2, 2), (6, 6), (9, 3), (1, 10)] {
        let frames = 480;
        let mut plan = setup(48_000, inputs, frames);
        plan.output_channels = outputs;
        let mut kernel = kernel(shipped::CHANNEL_MAP, StageRole::ChannelMap, &plan);
        let signal: Vec<f32> = (0..(frames * inputs) as usize)
            .map(|i| (i as f32 * 0.07).cos() * 0.6)
            .collect();
        let mut native = vec![0.0f32; (frames * outputs) as usize];
        ChannelMapper::new(inputs as usize, outputs as usize)
            .expect("mapper")
            .apply(&signal, &mut native);
        kernel.input_samples(0)[..signal.len()].copy_from_slice(&signal);
        assert_eq!(
            kernel.process(frames as usize, frames as usize),
            Ok(frames as usize)
        );
        let got = &kernel.output_samples()[..native.len()];
        assert!(
            got.iter()
                .zip(&native)
                .all(|(g, n)| g.to_bits() == n.to_bits()),
            "{inputs} -> {outputs}"
        );
    }
    // A surround fold it does not do exactly is refused, so the native stage keeps it.
    let mut plan = setup(48_000, 6, 480);
    plan.output_channels = 2;
    let plugin = runtime().load(shipped::CHANNEL_MAP).expect("loads");
    assert!(plugin.kernel(StageRole::ChannelMap, &plan).is_err());
}

#[test]
fn resample_matches_the_native_resampler() {
    for (from, to) in [(44_100u32, 48_000u32), (48_000, 16_000), (8_000, 48_000)] {
        let channels = 2usize;
        let period = 480usize;
        let mut native = Resampler::new(from, to, channels).expect("native");
        let mut plan = setup(from, channels as u32, 4096);
        plan.output_rate = to;
        let mut kernel = kernel(shipped::RESAMPLE, StageRole::Resample, &plan);
        let mut phase = 0.0f64;
        let mut worst = 0.0f32;
        for _ in 0..50 {
            let need = native.input_frames_for(period);
            assert_eq!(kernel.input_frames_for(period), Ok(need), "{from}->{to}");
            let input: Vec<f32> = (0..need * channels)
                .map(|i| {
                    if i % channels == 0 {
                        phase += 2.0 * std::f64::consts::PI * 1000.0 / f64::from(from);
                    }
                    (phase.sin() * 0.5) as f32
                })
                .collect();
            let mut expected = vec![0.0f32; period * channels];
            let (_, produced) = native.process(&input, &mut expected);
            kernel.input_samples(0)[..input.len()].copy_from_slice(&input);
            assert_eq!(kernel.process(need, period), Ok(produced));
            for (g, e) in kernel.output_samples()[..produced * channels]
                .iter()
                .zip(&expected)
            {
                worst = worst.max((g - e).abs());
            }
        }
        assert!(worst < 1e-6, "{from}->{to}: off by {worst}");
    }
}

#[test]
fn only_the_shipped_mix_itself_is_known_to_sum_plainly() {
    use paravox_engine::plugin::KernelFactory;
    let runtime = runtime();
    assert!(runtime.load(shipped::MIX).expect("mix").sums_plainly());
    for other in [shipped::CONVERT, shipped::GAIN] {
        assert!(!runtime.load(other).expect("loads").sums_plainly());
    }
    // The same code with one more (custom) section is another module: it may sum
    // differently, and is not taken on trust.
    let mut changed = shipped::MIX.to_vec();
    changed.extend_from_slice(&[0, 5, 4, b't', b'e', b's', b't']);
    let changed = runtime.load(&changed).expect("still a valid module");
    assert!(!changed.sums_plainly());
}
