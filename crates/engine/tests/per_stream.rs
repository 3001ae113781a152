//! An endpoint that gives every stream a device of its own (how a PipeWire endpoint shows
//! each guest stream as a node named after its VM): each prepared stream opens its own
//! device, named after its card and stream, plays into it alone, and closes it on release.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    CaptureOpener, DeviceError, DeviceFormat, PlaybackDevice, PlaybackOpener, StreamDevices,
};
use paravox_engine::{Direction, Engine, StreamSpec, Transport};
use paravox_pcm::{Format, HwParams};
use support::*;

/// Per (card, stream): what its device received.
type Devices = Arc<Mutex<Vec<(String, String, Recording)>>>;

struct OwnSink {
    format: DeviceFormat,
    pacer: Pacer,
    recording: Recording,
    finished: Arc<AtomicUsize>,
}

impl PlaybackDevice for OwnSink {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        self.recording.lock().unwrap().extend_from_slice(samples);
        self.pacer.wait();
        Ok(())
    }
    fn finish(&mut self) -> Result<(), DeviceError> {
        self.finished.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct OwnSinkOpener {
    format: DeviceFormat,
    recording: Recording,
    finished: Arc<AtomicUsize>,
    /// Opens that fail before one works (a sound server restarting).
    failures: Arc<AtomicUsize>,
}

impl PlaybackOpener for OwnSinkOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(DeviceError::Lost("the server is restarting".into()));
        }
        Ok(Box::new(OwnSink {
            format: self.format,
            pacer: Pacer::new(self.format.rate, self.format.period_frames),
            recording: self.recording.clone(),
            finished: self.finished.clone(),
        }))
    }
}

struct PerStream {
    format: DeviceFormat,
    devices: Devices,
    finished: Arc<AtomicUsize>,
    failures: Arc<AtomicUsize>,
}

impl StreamDevices for PerStream {
    fn playback(&self, card: &str, stream: &str) -> Result<Box<dyn PlaybackOpener>, DeviceError> {
        let recording: Recording = Arc::default();
        self.devices
            .lock()
            .unwrap()
            .push((card.to_owned(), stream.to_owned(), recording.clone()));
        Ok(Box::new(OwnSinkOpener {
            format: self.format,
            recording,
            finished: self.finished.clone(),
            failures: self.failures.clone(),
        }))
    }
    fn capture(&self, _card: &str, _stream: &str) -> Result<Box<dyn CaptureOpener>, DeviceError> {
        Err(DeviceError::Lost("playback only".into()))
    }
}

#[test]
fn every_stream_plays_into_a_device_of_its_own_named_after_it() {
    let engine = Engine::new();
    let devices: Devices = Arc::default();
    let finished = Arc::new(AtomicUsize::new(0));
    let endpoint = engine
        .add_per_stream_endpoint(
            "desktop",
            "per-stream",
            Direction::Playback,
            format(48_000, 2, 480),
            Arc::new(PerStream {
                format: format(48_000, 2, 480),
                devices: devices.clone(),
                finished: finished.clone(),
                failures: Arc::default(),
            }),
        )
        .expect("endpoint");
    assert!(endpoint.is_per_stream());
    engine
        .set_default_endpoint(Direction::Playback, "desktop")
        .expect("default");
    let mut streams = Vec::new();
    for (card, value) in [("desk", 0.25f32), ("build", -0.5f32)] {
        let card = engine.create_card(card, Transport::Local).expect("card");
        let stream = engine
            .create_stream(
                card.id(),
                StreamSpec {
                    name: "playback".into(),
                    direction: Direction::Playback,
                    constraints: open_constraints(),
                    route: None,
                },
            )
            .expect("stream");
        stream
            .set_params(HwParams {
                format: Format::F32Le,
                rate: 48_000,
                channels: 2,
                buffer_bytes: 9_600 * 8,
                period_bytes: 2_400 * 8,
            })
            .expect("params");
        stream.prepare().expect("prepare");
        streams.push((stream, value));
    }
    for (stream, value) in &streams {
        let bytes: Vec<u8> = std::iter::repeat_n(value.to_le_bytes(), 2 * 24_000)
            .flatten()
            .collect();
        stream.start().expect("start");
        write_all(stream, &bytes);
    }
    for (stream, _) in &streams {
        assert!(
            stream.wait_position(24_000 * 8, Duration::from_secs(10)),
            "a stream stalled"
        );
        // The route still names the endpoint the stream was routed to.
        assert_eq!(stream.status().route.as_deref(), Some("desktop"));
    }
    {
        let devices = devices.lock().unwrap();
        let names: Vec<(&str, &str)> = devices
            .iter()
            .map(|(card, stream, _)| (card.as_str(), stream.as_str()))
            .collect();
        assert_eq!(names, [("desk", "playback"), ("build", "playback")]);
        // Each device heard its own stream, at its own level, and nothing of the other.
        for ((_, _, recording), (_, value)) in devices.iter().zip(&streams) {
            let recording = recording.lock().unwrap();
            let own = recording.iter().filter(|sample| **sample == *value).count();
            assert_eq!(own, 2 * 24_000, "samples of the stream's own value");
            assert!(recording.iter().all(|s| *s == 0.0 || *s == *value));
        }
    }
    // The shared endpoint itself carried nothing.
    assert_eq!(endpoint.stats().cycles(), 0);
    for (stream, _) in &streams {
        stream.stop().expect("stop");
        stream.release().expect("release");
    }
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "released streams close their devices"
    );
}

#[test]
fn a_stream_whose_own_device_cannot_open_yet_is_prepared_and_plays_once_it_can() {
    let engine = Engine::new();
    let devices: Devices = Arc::default();
    engine
        .add_per_stream_endpoint(
            "desktop",
            "per-stream",
            Direction::Playback,
            format(48_000, 2, 480),
            Arc::new(PerStream {
                format: format(48_000, 2, 480),
                devices: devices.clone(),
                finished: Arc::default(),
                failures: Arc::new(AtomicUsize::new(1)),
            }),
        )
        .expect("endpoint");
    engine
        .set_default_endpoint(Direction::Playback, "desktop")
        .expect("default");
    // The first open (at prepare) fails: the stream is prepared all the same.
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        2,
        9_600,
    );
    let bytes: Vec<u8> = std::iter::repeat_n(0.125f32.to_le_bytes(), 2 * 24_000)
        .flatten()
        .collect();
    stream.start().expect("start");
    write_all(&stream, &bytes);
    assert!(
        stream.wait_position(24_000 * 8, Duration::from_secs(10)),
        "the stream stalled"
    );
    let devices = devices.lock().unwrap();
    let recording = devices[0].2.lock().unwrap();
    assert!(
        recording.iter().filter(|s| **s == 0.125).count() > 0,
        "the device that opened later heard nothing"
    );
}
