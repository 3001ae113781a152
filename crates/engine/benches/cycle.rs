//! Endpoint cycle cost against the number of streams, and the native stages' costs.
//!
//! One cycle = what an endpoint thread does per period: for every stream pull one period
//! from its ring through its chain (decode, resample if needed, gain, channel map), and
//! mix. Streams are 48 kHz stereo S16 into a 48 kHz stereo endpoint with 10 ms periods, so
//! a cycle must take well under 10 ms of one core to run in real time.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use paravox_engine::StreamFormat;
use paravox_engine::chain::PlaybackChain;
use paravox_engine::device::DeviceFormat;
use paravox_engine::gain::GainControl;
use paravox_engine::meter::Meter;
use paravox_engine::resample::Resampler;
use paravox_engine::ring::{self, Consumer, Producer};
use paravox_pcm::Format;

const PERIOD: usize = 480;

struct BenchStream {
    producer: Producer,
    consumer: Consumer,
    chain: PlaybackChain,
    gain: GainControl,
}

fn streams(count: usize, rate: u32) -> Vec<BenchStream> {
    let endpoint = DeviceFormat {
        rate: 48_000,
        channels: 2,
        period_frames: PERIOD as u32,
    };
    let format = StreamFormat {
        format: Format::S16Le,
        rate,
        channels: 2,
    };
    (0..count)
        .map(|_| {
            let (producer, consumer) = ring::ring(4 * PERIOD * 4 * 2);
            BenchStream {
                producer,
                consumer,
                chain: PlaybackChain::new(&format, &endpoint).expect("chain"),
                gain: GainControl::default(),
            }
        })
        .collect()
}

fn cycle(streams: &mut [BenchStream], period: &[u8], scratch: &mut [f32], mix: &mut [f32]) {
    mix.fill(0.0);
    for stream in streams.iter_mut() {
        // Keep each ring fed, as a guest would (not part of the endpoint's cost, but
        // cheap: one memcpy of a period).
        if stream.producer.free() >= period.len() {
            stream.producer.write(period);
        }
        stream
            .chain
            .pull(&mut stream.consumer, &stream.gain, scratch);
        for (mixed, sample) in mix.iter_mut().zip(scratch.iter()) {
            *mixed += *sample;
        }
    }
}

fn endpoint_cycle(c: &mut Criterion) {
    let period: Vec<u8> = (0..PERIOD * 4).map(|i| (i * 31 % 251) as u8).collect();
    let mut scratch = vec![0.0f32; PERIOD * 2];
    let mut mix = vec![0.0f32; PERIOD * 2];
    let mut group = c.benchmark_group("endpoint_cycle_48k_s16_stereo");
    for count in [1usize, 16, 128, 512] {
        let mut set = streams(count, 48_000);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, _| {
            b.iter(|| cycle(black_box(&mut set), &period, &mut scratch, &mut mix))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("endpoint_cycle_44k1_to_48k_s16_stereo");
    let period_44k: Vec<u8> = (0..441 * 4).map(|i| (i * 31 % 251) as u8).collect();
    for count in [1usize, 16, 128] {
        let mut set = streams(count, 44_100);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, _| {
            b.iter(|| cycle(black_box(&mut set), &period_44k, &mut scratch, &mut mix))
        });
    }
    group.finish();
}

fn resampler(c: &mut Criterion) {
    let mut group = c.benchmark_group("resampler_per_output_frame_stereo");
    for (from, to) in [
        (44_100u32, 48_000u32),
        (48_000, 44_100),
        (16_000, 48_000),
        (96_000, 48_000),
    ] {
        let mut resampler = Resampler::new(from, to, 2).expect("resampler");
        let input = vec![0.25f32; resampler.max_input_frames_for(PERIOD) * 2];
        let mut output = vec![0.0f32; PERIOD * 2];
        group.throughput(Throughput::Elements(PERIOD as u64));
        group.bench_function(format!("{from}->{to}"), |b| {
            b.iter(|| {
                let need = resampler.input_frames_for(PERIOD);
                resampler.process(black_box(&input[..need * 2]), &mut output)
            })
        });
    }
    group.finish();
}

/// The level meter every stream's period goes through on the endpoint thread (not in the
/// cycle above, which is the chain and the mix alone): one 480-frame stereo period.
fn meter(c: &mut Criterion) {
    let samples: Vec<f32> = (0..PERIOD * 2)
        .map(|i| ((i * 37 % 200) as f32 - 100.0) / 128.0)
        .collect();
    let meter = Meter::default();
    c.bench_function("meter_record_480_frames_stereo", |b| {
        b.iter(|| meter.record(black_box(&samples)))
    });
}

criterion_group!(benches, endpoint_cycle, resampler, meter);
criterion_main!(benches);
