//! Test doubles beside the real endpoints: an in-memory sink and source, paced like a
//! file device so the engine runs exactly as it does against real hardware.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, PlaybackDevice, PlaybackOpener,
};
use paravox_engine::{Direction, Engine, Stream, StreamSpec, Transport};
use paravox_pcm::{Format, FormatSet, HwConstraints, HwParams, Interval, RateSet, VIRTIO_RATES};

/// Everything a memory sink received, interleaved.
pub type Recording = Arc<Mutex<Vec<f32>>>;

pub struct MemorySink {
    format: DeviceFormat,
    pacer: Pacer,
    recording: Recording,
}

impl PlaybackDevice for MemorySink {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        self.recording.lock().unwrap().extend_from_slice(samples);
        self.pacer.wait();
        Ok(())
    }
}

pub struct MemorySinkOpener {
    pub format: DeviceFormat,
    pub recording: Recording,
}

impl PlaybackOpener for MemorySinkOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        Ok(Box::new(MemorySink {
            format: self.format,
            pacer: Pacer::new(self.format.rate, self.format.period_frames),
            recording: self.recording.clone(),
        }))
    }
}

/// A source that plays `signal` (interleaved) once, then silence.
pub struct MemorySource {
    format: DeviceFormat,
    pacer: Pacer,
    signal: Arc<Vec<f32>>,
    at: usize,
}

impl CaptureDevice for MemorySource {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError> {
        for sample in samples.iter_mut() {
            *sample = self.signal.get(self.at).copied().unwrap_or(0.0);
            self.at += 1;
        }
        self.pacer.wait();
        Ok(())
    }
}

pub struct MemorySourceOpener {
    pub format: DeviceFormat,
    pub signal: Arc<Vec<f32>>,
}

impl CaptureOpener for MemorySourceOpener {
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError> {
        Ok(Box::new(MemorySource {
            format: self.format,
            pacer: Pacer::new(self.format.rate, self.format.period_frames),
            signal: self.signal.clone(),
            at: 0,
        }))
    }
}

pub fn format(rate: u32, channels: u32, period_frames: u32) -> DeviceFormat {
    DeviceFormat {
        rate,
        channels,
        period_frames,
    }
}

/// An engine with one memory sink named "out" as the default playback endpoint.
pub fn engine_with_sink(device: DeviceFormat) -> (Engine, Recording) {
    let engine = Engine::new();
    let recording: Recording = Arc::default();
    engine
        .add_playback_endpoint(
            "out",
            "memory",
            Box::new(MemorySinkOpener {
                format: device,
                recording: recording.clone(),
            }),
        )
        .expect("sink");
    engine
        .set_default_endpoint(Direction::Playback, "out")
        .expect("default");
    (engine, recording)
}

/// Constraints that accept any convertible format, standard rate and 1–8 channels.
pub fn open_constraints() -> HwConstraints {
    HwConstraints {
        formats: FormatSet::convertible(),
        rates: RateSet::new(&VIRTIO_RATES).expect("rates"),
        channels: Interval::new(1, 8).expect("channels"),
        buffer_frames: Interval::new(1, 1 << 24).expect("buffer"),
        period_frames: Interval::new(1, 1 << 24).expect("period"),
    }
}

/// A prepared stream on a fresh local card.
pub fn prepared_stream(
    engine: &Engine,
    direction: Direction,
    format: Format,
    rate: u32,
    channels: u32,
    buffer_frames: u32,
) -> Arc<Stream> {
    let card = engine.create_card("test", Transport::Local).expect("card");
    let stream = engine
        .create_stream(
            card.id(),
            StreamSpec {
                name: "test".into(),
                direction,
                constraints: open_constraints(),
                route: None,
            },
        )
        .expect("stream");
    let frame = format.bytes_per_sample().expect("linear") * channels;
    stream
        .set_params(HwParams {
            format,
            rate,
            channels,
            buffer_bytes: buffer_frames * frame,
            period_bytes: (buffer_frames / 4).max(1) * frame,
        })
        .expect("params");
    stream.prepare().expect("prepare");
    stream
}

/// Writes all of `data`, waiting for room as the endpoint consumes.
pub fn write_all(stream: &Stream, data: &[u8]) {
    let mut sent = 0;
    while sent < data.len() {
        let n = stream.write(&data[sent..]);
        sent += n;
        if n == 0 {
            let target = stream.position_bytes() + 1;
            stream.wait_position(target, Duration::from_secs(5));
        }
    }
}
