//! A real engine with null, tone and WAV endpoints behind a real API server on
//! 127.0.0.1:0, and a plain HTTP client that shows every status.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use paravox_api::{ApiConfig, ApiServer};
use paravox_control::dsp::{Dsp, DspPlan};
use paravox_control::{Control, Declaration, Options};
use paravox_engine::{Direction, Engine, Stream, StreamSpec, Transport};
use paravox_pcm::{Format, FormatSet, HwConstraints, HwParams, Interval, RateSet, VIRTIO_RATES};
use serde_json::Value;
use tempfile::TempDir;

/// A running API over a real engine.
pub struct TestServer {
    pub engine: Arc<Engine>,
    pub dir: Arc<TempDir>,
    pub base: String,
    pub token: String,
    server: Option<ApiServer>,
    agent: ureq::Agent,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts a problem document with `status`; returns its detail.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.text
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        assert!(
            body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:paravox:problem:"))
        );
        assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
        body["detail"].as_str().expect("detail").to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The state directory inside `dir`.
pub fn state_dir(dir: &TempDir) -> PathBuf {
    dir.path().join("state")
}

/// An engine with a `sink` (null, default playback), a `tone` (440 Hz, default capture)
/// and a `file` (WAV) endpoint.
pub fn engine_with_endpoints(dir: &Path) -> Arc<Engine> {
    let engine = Engine::new();
    open(&engine, "sink", "null", Direction::Playback);
    open(&engine, "tone", "tone:440", Direction::Capture);
    let wav = format!("wav:{}", dir.join("out.wav").display());
    open(&engine, "file", &wav, Direction::Playback);
    engine
        .set_default_endpoint(Direction::Playback, "sink")
        .expect("default playback");
    engine
        .set_default_endpoint(Direction::Capture, "tone")
        .expect("default capture");
    Arc::new(engine)
}

/// Opens `spec` as the endpoint `name`, as the daemon opens a configured one.
pub fn open(engine: &Engine, name: &str, spec: &str, direction: Direction) {
    paravox_control::endpoint::open(engine, name, spec, direction).expect("endpoint");
}

/// How a test server is set up: the API's configuration and the control layer's options.
pub struct Setup {
    pub api: ApiConfig,
    pub control: Options,
}

impl TestServer {
    /// A fresh engine and state directory.
    pub fn start() -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let engine = engine_with_endpoints(dir.path());
        TestServer::start_with(engine, dir, |_| {})
    }

    /// A server for `engine` with its state in `dir`, restoring what is saved there. The
    /// engine's endpoints stand for the configuration's; conversion and mixing run
    /// natively, as `dsp = "native"` asks.
    pub fn start_with(
        engine: Arc<Engine>,
        dir: Arc<TempDir>,
        configure: impl FnOnce(&mut Setup),
    ) -> TestServer {
        let state = state_dir(&dir);
        let mut setup = Setup {
            api: ApiConfig::new(&state),
            control: Options::new(&state),
        };
        setup.api.listen = "127.0.0.1:0".parse().expect("addr");
        configure(&mut setup);
        let declaration = Declaration {
            dsp: DspPlan {
                default: Dsp::Native,
                explicit: true,
                ..DspPlan::default()
            },
            ..Declaration::default()
        };
        let control = Control::start(engine.clone(), setup.control, declaration).expect("control");
        let server = ApiServer::start(setup.api, Arc::new(control)).expect("start");
        let token = std::fs::read_to_string(state.join("token"))
            .expect("token")
            .trim()
            .to_owned();
        TestServer {
            base: format!("http://{}", server.local_addr()),
            engine,
            dir,
            token,
            server: Some(server),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into(),
        }
    }

    /// Stops the server, keeping the engine and the directory.
    pub fn stop(mut self) -> (Arc<Engine>, Arc<TempDir>) {
        drop(self.server.take());
        (self.engine.clone(), self.dir.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// A request with the token.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let text = body.map(|b| b.to_string());
        self.raw(
            method,
            path,
            &[
                ("Authorization", &self.bearer()),
                ("Content-Type", "application/json"),
            ],
            text.as_deref(),
        )
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None)
    }

    /// A request with exactly these headers and body.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let url = self.url(path);
        let result = match method {
            "GET" | "DELETE" | "HEAD" | "OPTIONS" => {
                let mut request = match method {
                    "GET" => self.agent.get(&url),
                    "DELETE" => self.agent.delete(&url),
                    "HEAD" => self.agent.head(&url),
                    _ => self.agent.options(&url),
                };
                for (key, value) in headers {
                    request = request.header(*key, *value);
                }
                request.call()
            }
            _ => {
                let mut request = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    _ => self.agent.patch(&url),
                };
                for (key, value) in headers {
                    request = request.header(*key, *value);
                }
                match body {
                    Some(body) => request.send(body),
                    None => request.send_empty(),
                }
            }
        };
        answer(result.unwrap_or_else(|e| panic!("{method} {path}: {e}")))
    }
}

/// The parts of `response` a test checks.
fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Answer {
        status: response.status().as_u16(),
        content_type,
        headers,
        text: response.body_mut().read_to_string().unwrap_or_default(),
    }
}

impl TestServer {
    /// Uploads `body` as a plugin with `content_type`.
    pub fn upload(&self, content_type: &str, body: &[u8]) -> Answer {
        let result = self
            .agent
            .post(&self.url("/api/plugins"))
            .header("Authorization", &self.bearer())
            .header("Content-Type", content_type)
            .send(body);
        answer(result.unwrap_or_else(|e| panic!("POST /api/plugins: {e}")))
    }
}

/// Test plugins in WebAssembly text, shared with the plugin host's own tests.
#[path = "../../../plugin-host/tests/common.rs"]
pub mod wat_plugins;

/// The plugin host's `half` example effect renamed `name` at `version`, committing
/// `misdeed` from process call `after` on.
pub fn test_plugin(
    name: &str,
    version: &str,
    misdeed: wat_plugins::Misdeed,
    after: u32,
) -> Vec<u8> {
    let manifest = wat_plugins::HALF_MANIFEST
        .replace("\"name\":\"half\"", &format!("\"name\":\"{name}\""))
        .replace(
            "\"version\":\"1.0.0\"",
            &format!("\"version\":\"{version}\""),
        );
    wat::parse_str(wat_plugins::half_wat(&manifest, "", misdeed, after)).expect("valid WAT")
}

impl Drop for TestServer {
    fn drop(&mut self) {
        drop(self.server.take());
    }
}

/// Constraints for local test streams: anything convertible.
pub fn open_constraints() -> HwConstraints {
    HwConstraints {
        formats: FormatSet::convertible(),
        rates: RateSet::new(&VIRTIO_RATES).expect("rates"),
        channels: Interval::new(1, 8).expect("channels"),
        buffer_frames: Interval::new(1, 1 << 22).expect("buffer"),
        period_frames: Interval::new(1, 1 << 20).expect("period"),
    }
}

/// A local card `card` with one stream of `direction`, not yet configured.
pub fn local_stream(engine: &Engine, card: &str, direction: Direction) -> Arc<Stream> {
    let card = engine.create_card(card, Transport::Local).expect("card");
    engine
        .create_stream(
            card.id(),
            StreamSpec {
                name: "main".into(),
                direction,
                constraints: open_constraints(),
                route: None,
            },
        )
        .expect("stream")
}

/// Stereo s16 at 48 kHz, 100 ms buffer, 25 ms periods.
pub fn stereo_params() -> HwParams {
    HwParams {
        format: Format::S16Le,
        rate: 48_000,
        channels: 2,
        buffer_bytes: 4800 * 4,
        period_bytes: 1200 * 4,
    }
}

/// The frequency of the tone [`Tone`] plays.
pub const TONE_HZ: f64 = 1000.0;
/// The tone's rate: [`stereo_params`]' rate.
pub const TONE_RATE: u32 = 48_000;
/// The tone's peak, in full scale (−6 dBFS).
pub const TONE_PEAK: f64 = 0.5;

/// Sample `frame` of the tone [`Tone`] plays (the same on both channels): a test can check
/// what reached a sink bit for bit.
pub fn tone_sample(frame: u64) -> i16 {
    let phase = frame as f64 * TONE_HZ / f64::from(TONE_RATE) * std::f64::consts::TAU;
    (phase.sin() * TONE_PEAK * f64::from(i16::MAX)) as i16
}

/// A thread feeding a playback stream a 1 kHz sine at −6 dBFS until dropped.
pub struct Tone {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tone {
    pub fn play(stream: Arc<Stream>) -> Tone {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut frame = 0u64;
            let mut chunk = Vec::with_capacity(480 * 4);
            while !flag.load(Ordering::Relaxed) {
                if chunk.is_empty() {
                    for _ in 0..480 {
                        let sample = tone_sample(frame);
                        chunk.extend_from_slice(&sample.to_le_bytes());
                        chunk.extend_from_slice(&sample.to_le_bytes());
                        frame += 1;
                    }
                }
                let written = stream.write(&chunk);
                chunk.drain(..written);
                if written == 0 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Tone {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Tone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A local playback stream prepared and started on `sink`, with a tone playing.
pub fn playing_stream(engine: &Engine, card: &str) -> (Arc<Stream>, Tone) {
    let stream = local_stream(engine, card, Direction::Playback);
    stream.set_params(stereo_params()).expect("params");
    stream.prepare().expect("prepare");
    let tone = Tone::play(stream.clone());
    std::thread::sleep(Duration::from_millis(30));
    stream.start().expect("start");
    (stream, tone)
}

/// Polls `condition` for up to five seconds.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
