//! Converter throughput: one 50 ms stereo period at 48 kHz (4800 samples) per iteration,
//! decoded from and encoded to each common guest format.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use paravox_pcm::{Format, decode, encode};

/// Samples in one 50 ms period of 48 kHz stereo.
const SAMPLES: usize = 4800;

const FORMATS: [Format; 10] = [
    Format::S16Le,
    Format::S16Be,
    Format::U8,
    Format::S24_3Le,
    Format::S24Le,
    Format::S32Le,
    Format::F32Le,
    Format::F64Le,
    Format::MuLaw,
    Format::ALaw,
];

/// A 997 Hz tone at -6 dBFS: realistic values that exercise every bit of the format.
fn tone() -> Vec<f32> {
    (0..SAMPLES)
        .map(|index| {
            let frame = (index / 2) as f32;
            0.5 * (2.0 * std::f32::consts::PI * 997.0 * frame / 48_000.0).sin()
        })
        .collect()
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    let samples = tone();
    for format in FORMATS {
        let width = format
            .bytes_per_sample()
            .expect("benchmarked formats have fixed size");
        let mut bytes = vec![0u8; SAMPLES * width as usize];
        encode(format, &samples, &mut bytes).expect("benchmarked formats are convertible");
        let mut out = vec![0.0f32; SAMPLES];
        group.bench_with_input(BenchmarkId::from_parameter(format), &bytes, |b, bytes| {
            b.iter(|| decode(format, black_box(bytes), black_box(&mut out)));
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(SAMPLES as u64));
    let samples = tone();
    for format in FORMATS {
        let width = format
            .bytes_per_sample()
            .expect("benchmarked formats have fixed size");
        let mut out = vec![0u8; SAMPLES * width as usize];
        group.bench_with_input(
            BenchmarkId::from_parameter(format),
            &samples,
            |b, samples| {
                b.iter(|| encode(format, black_box(samples), black_box(&mut out)));
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
