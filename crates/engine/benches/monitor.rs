//! What a monitor costs the endpoint thread: one period (480 frames, stereo) offered to a
//! stream's tap point with nobody listening, with one listener that keeps up, and with
//! one whose ring is full (the period is dropped for it).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use paravox_engine::device::DeviceFormat;
use paravox_engine::{Direction, Engine, StreamSpec, Transport};
use paravox_pcm::{FormatSet, HwConstraints, Interval, RateSet};

const FORMAT: DeviceFormat = DeviceFormat {
    rate: 48_000,
    channels: 2,
    period_frames: 480,
};

fn tap(c: &mut Criterion) {
    let engine = Engine::new();
    let card = engine.create_card("bench", Transport::Local).expect("card");
    let stream = engine
        .create_stream(
            card.id(),
            StreamSpec {
                name: "main".into(),
                direction: Direction::Playback,
                constraints: HwConstraints {
                    formats: FormatSet::convertible(),
                    rates: RateSet::new(&[48_000]).expect("rates"),
                    channels: Interval::new(2, 2).expect("channels"),
                    buffer_frames: Interval::new(1, 1 << 20).expect("buffer"),
                    period_frames: Interval::new(1, 1 << 20).expect("period"),
                },
                route: None,
            },
        )
        .expect("stream");
    let point = stream.shared().tap().clone();
    let period: Vec<f32> = (0..960).map(|i| (i as f32 / 960.0) - 0.5).collect();
    let mut group = c.benchmark_group("monitor_tap_period_480_stereo");
    group.bench_function("nobody_listens", |b| {
        b.iter(|| point.feed(black_box(&period), &FORMAT));
    });
    let mut monitor = engine.listen_to_stream(stream.id()).expect("listen");
    let mut heard = Vec::with_capacity(4096);
    group.bench_function("one_listener_keeping_up", |b| {
        b.iter(|| {
            point.feed(black_box(&period), &FORMAT);
            heard.clear();
            black_box(monitor.read(&mut heard));
        });
    });
    // Fill the ring, then every period is dropped for this listener.
    for _ in 0..200 {
        point.feed(&period, &FORMAT);
    }
    group.bench_function("one_listener_behind", |b| {
        b.iter(|| point.feed(black_box(&period), &FORMAT));
    });
    group.finish();
    drop(monitor);
}

criterion_group!(benches, tap);
criterion_main!(benches);
