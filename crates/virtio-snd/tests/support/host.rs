//! The host side: an engine with endpoints opened from `ENDPOINT` specs (as `paravox
//! serve` opens them), a virtio-snd card served on a socket in a temporary directory, and
//! what a user would inspect afterwards (the WAV file, the engine's streams).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paravox_engine::{Direction, Engine, Stream};
use paravox_host_audio::spec::EndpointSpec;
use paravox_host_audio::wav::WavReader;
use paravox_virtio_snd::{CardTopology, VirtioCard};
use tempfile::TempDir;

/// The default output when a test plays into a file: 48 kHz stereo S16, like the guest.
pub const WAV_OUTPUT: &str = "out.wav";

/// An engine and one virtio-snd card.
pub struct Host {
    /// The engine (shared with the card).
    pub engine: Arc<Engine>,
    card: Option<VirtioCard>,
    dir: TempDir,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("dir", &self.dir.path())
            .field("card", &self.card)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// An engine without endpoints, in a fresh temporary directory.
    pub fn new() -> Host {
        Host {
            engine: Arc::new(Engine::new()),
            card: None,
            dir: tempfile::Builder::new()
                .prefix("paravox-vsnd")
                .tempdir()
                .expect("temporary directory"),
        }
    }

    /// A file in the temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Opens `spec` as the endpoint `name` and makes it the default of `direction`.
    pub fn endpoint(self, direction: Direction, name: &str, spec: &str) -> Host {
        let parsed: EndpointSpec = spec
            .parse()
            .unwrap_or_else(|e| panic!("endpoint spec {spec}: {e}"));
        match direction {
            Direction::Playback => {
                let opener = parsed.playback_opener().expect("playback opener");
                self.engine
                    .add_playback_endpoint(name, spec, opener)
                    .expect("playback endpoint");
            }
            Direction::Capture => {
                let opener = parsed.capture_opener().expect("capture opener");
                self.engine
                    .add_capture_endpoint(name, spec, opener)
                    .expect("capture endpoint");
            }
        }
        self.engine
            .set_default_endpoint(direction, name)
            .expect("default endpoint");
        self
    }

    /// The default output is a WAV file ([`WAV_OUTPUT`]) at 48 kHz stereo S16.
    pub fn wav_output(self) -> Host {
        let spec = format!(
            "wav:{},rate=48000,channels=2,format=s16_le",
            self.path(WAV_OUTPUT).display()
        );
        self.endpoint(Direction::Playback, "out", &spec)
    }

    /// The default output discards (in real time).
    pub fn null_output(self) -> Host {
        self.endpoint(Direction::Playback, "out", "null")
    }

    /// The default input is a sine at `frequency` Hz.
    pub fn tone_input(self, frequency: u32) -> Host {
        self.endpoint(Direction::Capture, "in", &format!("tone:{frequency}"))
    }

    /// Serves a card with `topology` on a socket in the temporary directory.
    pub fn serve(mut self, topology: CardTopology) -> Host {
        let socket = self.path("card.sock");
        self.card = Some(
            VirtioCard::spawn(self.engine.clone(), "test", &socket, topology)
                .expect("spawning the card"),
        );
        self
    }

    /// The card's socket.
    pub fn socket(&self) -> &Path {
        self.card.as_ref().expect("a card is served").socket()
    }

    /// The engine stream behind virtio stream `stream_id`.
    pub fn stream(&self, stream_id: u32) -> Arc<Stream> {
        let card = self.card.as_ref().expect("a card is served").card();
        let streams = self.engine.card(card).expect("the card exists").streams();
        streams
            .get(stream_id as usize)
            .cloned()
            .unwrap_or_else(|| panic!("the card has no stream {stream_id}"))
    }

    /// The sample bytes in the WAV output so far.
    pub fn wav_data(&self) -> Vec<u8> {
        let mut reader = WavReader::open(self.path(WAV_OUTPUT)).expect("the WAV output exists");
        let info = reader.info();
        assert_eq!((info.rate, info.channels), (48_000, 2), "WAV output format");
        let mut data = vec![0; info.data_bytes.unwrap_or(64 << 20) as usize];
        let read = reader
            .read_bytes(&mut data)
            .expect("reading the WAV output");
        data.truncate(read);
        data
    }

    /// Polls `condition` every 10 ms until it holds or `timeout` passes.
    pub fn eventually(&self, timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if condition() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        drop(self.card.take());
        // Stops the endpoints and finalizes files even if the card's threads still hold
        // references to the engine's streams.
        self.engine.shutdown();
    }
}
