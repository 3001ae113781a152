//! The host side: an engine with paced memory endpoints, the transport and the backend.

use super::*;

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
        lock(&self.recording).extend_from_slice(samples);
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

/// A paced memory sink "out" (48 kHz stereo, 10 ms cycles) as the default playback
/// endpoint and `tone:880` "mic" as the default capture endpoint.
pub fn engine_with_memory_sink() -> (Arc<Engine>, Recording) {
    let engine = Engine::new();
    let recording: Recording = Arc::default();
    engine
        .add_playback_endpoint(
            "out",
            "memory",
            Box::new(MemorySinkOpener {
                format: DeviceFormat {
                    rate: 48_000,
                    channels: 2,
                    period_frames: 480,
                },
                recording: recording.clone(),
            }),
        )
        .unwrap();
    engine
        .set_default_endpoint(Direction::Playback, "out")
        .unwrap();
    add_tone(&engine);
    (Arc::new(engine), recording)
}

pub fn add_tone(engine: &Engine) {
    let spec: paravox_host_audio::spec::EndpointSpec =
        "tone:880,rate=48000,channels=2".parse().unwrap();
    engine
        .add_capture_endpoint(
            "mic",
            "tone:880,rate=48000,channels=2",
            spec.capture_opener().unwrap(),
        )
        .unwrap();
    engine
        .set_default_endpoint(Direction::Capture, "mic")
        .unwrap();
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub host: SharedMemoryHost,
    pub engine: Arc<Engine>,
    pub backend: Backend,
}

impl Harness {
    pub fn new(engine: Arc<Engine>) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let host = SharedMemoryHost::bind(&dir.path().join("run")).unwrap();
        let backend = host
            .start_backend(engine.clone(), BackendOptions::default())
            .unwrap();
        Harness {
            dir,
            host,
            engine,
            backend,
        }
    }

    pub fn domain(&self, domid: u32) -> Arc<FrontDomain> {
        FrontDomain::new(&self.host, domid)
    }

    /// A new domain with one connected S16 device of `layout`.
    pub fn connected_device(&self, domid: u32, layout: &[(u32, u32, Direction)]) -> FrontDevice {
        let domain = self.domain(domid);
        let mut device = FrontDevice::create(
            &self.host,
            &domain,
            0,
            &[("sample-formats", "s16_le")],
            layout,
        );
        device.connect();
        device
    }

    /// The engine stream of a card's `index`-th stream.
    pub fn engine_stream(&self, frontend_domid: u32, index: usize) -> Arc<paravox_engine::Stream> {
        let card = self
            .engine
            .cards()
            .into_iter()
            .find(|card| {
                matches!(card.transport(), paravox_engine::Transport::Sndif { frontend_domid: d, .. } if *d == frontend_domid)
            })
            .expect("the device's card");
        card.streams()[index].clone()
    }
}

/// Interleaved S16 stereo bytes of a sine at `frequency` and `amplitude`.
pub fn sine_s16(frequency: f64, amplitude: f64, frames: usize) -> Vec<u8> {
    let mono = paravox_testkit::sine(48_000.0, frequency, amplitude, frames);
    paravox_testkit::s16_bytes(&mono, 2)
}
