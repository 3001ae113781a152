//! A device that goes away and comes back: the endpoint keeps its streams moving on its
//! own clock, reports the loss and the recovery, and never takes the daemon down.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paravox_engine::clock::Pacer;
use paravox_engine::device::{DeviceError, DeviceFormat, PlaybackDevice, PlaybackOpener};
use paravox_engine::{Direction, Engine, Event};
use paravox_pcm::Format;
use support::*;

/// Fails on its `fail_after`-th write; each open is counted.
struct FlakyDevice {
    format: DeviceFormat,
    pacer: Pacer,
    writes: usize,
    fail_after: Option<usize>,
    received: Arc<Mutex<Vec<f32>>>,
}

impl PlaybackDevice for FlakyDevice {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        self.writes += 1;
        if self.fail_after.is_some_and(|limit| self.writes > limit) {
            return Err(DeviceError::Lost("unplugged".into()));
        }
        self.received.lock().unwrap().extend_from_slice(samples);
        self.pacer.wait();
        Ok(())
    }
}

struct FlakyOpener {
    format: DeviceFormat,
    opens: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<f32>>>,
}

impl PlaybackOpener for FlakyOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        let attempt = self.opens.fetch_add(1, Ordering::SeqCst);
        match attempt {
            // First open works for 20 periods, the first reopen fails, the next works.
            0 => Ok(Box::new(FlakyDevice {
                format: self.format,
                pacer: Pacer::new(self.format.rate, self.format.period_frames),
                writes: 0,
                fail_after: Some(20),
                received: Arc::default(),
            })),
            1 => Err(DeviceError::Lost("still unplugged".into())),
            _ => Ok(Box::new(FlakyDevice {
                format: self.format,
                pacer: Pacer::new(self.format.rate, self.format.period_frames),
                writes: 0,
                fail_after: None,
                received: self.received.clone(),
            })),
        }
    }
}

#[test]
fn streams_keep_time_through_a_lost_device_and_resume_on_the_new_one() {
    let engine = Engine::new();
    let mut events = engine.subscribe();
    let opens = Arc::new(AtomicUsize::new(0));
    let received: Arc<Mutex<Vec<f32>>> = Arc::default();
    engine
        .add_playback_endpoint(
            "flaky",
            "flaky",
            Box::new(FlakyOpener {
                format: format(48_000, 2, 480),
                opens: opens.clone(),
                received: received.clone(),
            }),
        )
        .expect("first open works");
    engine
        .set_default_endpoint(Direction::Playback, "flaky")
        .expect("default");
    let stream = prepared_stream(
        &engine,
        Direction::Playback,
        Format::F32Le,
        48_000,
        2,
        48_000,
    );
    let second: Vec<u8> = std::iter::repeat_n(0.5f32.to_le_bytes(), 96_000)
        .flatten()
        .collect();
    stream.start().expect("start");
    write_all(&stream, &second);
    // Three seconds of audio: the device fails at 0.2 s, is back after the backoff.
    write_all(&stream, &second);
    write_all(&stream, &second);
    assert!(
        stream.wait_position(3 * 48_000 * 8, Duration::from_secs(10)),
        "the stream stalled"
    );
    assert!(opens.load(Ordering::SeqCst) >= 3, "never reopened");
    assert!(
        received.lock().unwrap().contains(&0.5),
        "no audio on the reopened device"
    );
    let mut lost = false;
    let mut recovered = false;
    for _ in 0..100 {
        match events.try_recv() {
            Ok(Event::DeviceLost { endpoint, .. }) if endpoint == "flaky" => lost = true,
            Ok(Event::DeviceRecovered { endpoint }) if endpoint == "flaky" => recovered = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(lost && recovered, "lost {lost}, recovered {recovered}");
}
