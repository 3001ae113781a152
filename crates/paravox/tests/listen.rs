//! Listening and talking through the real daemon, sandbox on, with a virtio-snd guest:
//! an Opus monitor on the output hears the guest's tone (libopus is loaded inside the
//! sandbox), `paravox ctl listen` records it into a WAV file, and a microphone fed over
//! the API is what the guest records.

mod common;
#[path = "../../virtio-snd/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::pcm::{Playback, record_through};
use support::spec::{PERIOD_10MS_BYTES, status};
use support::{Driver, SetParams};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(daemon: &common::Daemon, path: &str) -> Socket {
    let token = std::fs::read_to_string(daemon.state.join("token")).expect("token");
    let url = format!("ws://127.0.0.1:{}{path}", daemon.port);
    let mut request = url.into_client_request().expect("request");
    request.headers_mut().insert(
        "Authorization",
        format!("Bearer {}", token.trim()).parse().expect("header"),
    );
    let (socket, _) = tungstenite::connect(request).expect("upgrade");
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
    }
    socket
}

/// `frames` stereo frames of 997 Hz at −6 dBFS, every sample a little different (a ramp
/// in the low bits), so a match in a recording is the tone's own place.
fn tone_samples(frames: usize) -> Vec<i16> {
    (0..frames)
        .flat_map(|frame| {
            let phase = std::f64::consts::TAU * 997.0 * frame as f64 / 48_000.0;
            let sample = (phase.sin() * 16_384.0) as i16 ^ ((frame % 5) as i16);
            [sample, sample]
        })
        .collect()
}

/// The frequency of the loudest stretch of `samples` (one channel), by zero crossings,
/// and its peak in dBFS.
fn tone_of(samples: &[f32], rate: f64) -> (f64, f64) {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let hz = crossings as f64 / 2.0 / (samples.len() as f64 / rate);
    let peak = samples.iter().fold(0f32, |peak, s| peak.max(s.abs()));
    (hz, 20.0 * f64::from(peak).log10())
}

#[test]
fn a_guest_is_heard_over_opus_and_records_a_browser_microphone() {
    if let Err(why) = paravox_api::opus::available() {
        assert!(
            std::env::var_os("PARAVOX_REQUIRE_OPUS").is_none(),
            "PARAVOX_REQUIRE_OPUS is set but {why}"
        );
        println!("skipping: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("vm.sock");
    let daemon = common::Daemon::spawn(
        dir.path(),
        &[],
        &[
            "--output",
            "null",
            "--input",
            "browser",
            "--virtio-socket",
            socket.to_str().expect("path"),
        ],
    );
    daemon.wait_ready();
    // The daemon runs sandboxed.
    daemon.wait_log("system calls confined");
    let mut driver = Driver::connect(&socket);

    // The guest plays three seconds of 997 Hz at −6 dBFS; the output's monitor, in Opus,
    // hears it.
    let mut monitor = connect(&daemon, "/api/endpoints/cli-output/listen?format=opus");
    let frames = 3 * 48_000;
    let bytes: Vec<u8> = tone_samples(frames)
        .into_iter()
        .flat_map(i16::to_le_bytes)
        .collect();
    assert_eq!(bytes.len() % PERIOD_10MS_BYTES as usize, 0);
    let params = SetParams::s16_stereo_48k(0, 8);
    driver.configure(&params);
    let recording = dir.path().join("heard.wav");
    let heard = std::thread::scope(|scope| {
        let ctl = scope.spawn(|| {
            std::process::Command::new(env!("CARGO_BIN_EXE_paravox"))
                .args(["ctl", "--url", &format!("http://127.0.0.1:{}", daemon.port)])
                .arg("--state-dir")
                .arg(&daemon.state)
                .args([
                    "listen",
                    "--endpoint",
                    "cli-output",
                    "--seconds",
                    "2",
                    "--to",
                ])
                .arg(&recording)
                .output()
                .expect("paravox ctl listen runs")
        });
        let listener = scope.spawn(move || {
            let mut decoder = paravox_api::opus::Decoder::new(48_000, 2).expect("decoder");
            let mut heard = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(8);
            while heard.len() < 2 * 2 * 48_000 && Instant::now() < deadline {
                match monitor.read() {
                    Ok(Message::Binary(message)) => {
                        assert_eq!(u16::from_le_bytes([message[6], message[7]]), 3, "Opus");
                        heard.extend(decoder.decode(&message[16..]).expect("decode"));
                    }
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("monitor: {e}"),
                }
            }
            heard
        });
        let mut playback = Playback::new(&params, &bytes);
        playback.fill(&mut driver);
        assert_eq!(driver.start(0), status::OK, "PCM_START");
        playback.run(&mut driver);
        assert_eq!(driver.stop(0), status::OK, "PCM_STOP");
        assert_eq!(driver.release(0), status::OK, "PCM_RELEASE");
        let ctl = ctl.join().expect("ctl");
        assert!(
            ctl.status.success(),
            "paravox ctl listen: {}",
            String::from_utf8_lossy(&ctl.stderr)
        );
        let said = String::from_utf8_lossy(&ctl.stderr).into_owned();
        println!("paravox ctl listen: {said}");
        assert!(
            said.contains("wrote 2.00 s of endpoint cli-output (48000 Hz, 2 ch)"),
            "{said}"
        );
        listener.join().expect("listener")
    });
    // The file holds two seconds at the endpoint's format; where the guest's tone plays
    // in it, it is the tone's own samples (s16 through the f32 mix and back is exact).
    let mut wav = paravox_host_audio::wav::WavReader::open(&recording).expect("the WAV file");
    let info = wav.info();
    assert_eq!((info.rate, info.channels), (48_000, 2));
    assert_eq!(info.frames(), Some(2 * 48_000));
    let mut bytes = vec![0u8; 2 * 48_000 * 4];
    let read = wav.read_bytes(&mut bytes).expect("read");
    let written: Vec<i16> = bytes[..read]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let played: Vec<i16> = tone_samples(frames);
    let start = written
        .iter()
        .position(|&s| s != 0)
        .expect("the recording holds the tone");
    let offset = played
        .windows(8)
        .position(|w| w == &written[start..start + 8])
        .expect("the tone's samples are in the recording");
    let matching = written[start..]
        .iter()
        .zip(&played[offset..])
        .take_while(|(a, b)| a == b)
        .count();
    assert_eq!(
        matching,
        written.len() - start,
        "ctl listen wrote the tone bit-exact"
    );
    let left: Vec<f32> = heard.chunks_exact(2).map(|f| f[0]).collect();
    let loud: Vec<f32> = left
        .iter()
        .copied()
        .skip_while(|s| s.abs() < 0.25)
        .skip(4_800)
        .take(48_000)
        .collect();
    assert_eq!(loud.len(), 48_000, "a second of the tone was heard");
    let (hz, dbfs) = tone_of(&loud, 48_000.0);
    println!("the Opus monitor heard {hz:.1} Hz at {dbfs:.2} dBFS");
    assert!((hz - 997.0).abs() < 5.0, "{hz} Hz");
    assert!((dbfs + 6.0).abs() < 1.0, "{dbfs} dBFS");

    // A browser feeds the input with 880 Hz at 44.1 kHz mono while the guest records.
    let mut microphone = connect(
        &daemon,
        "/api/endpoints/cli-input/microphone?rate=44100&channels=1",
    );
    let feeding = std::thread::spawn(move || {
        let started = Instant::now();
        let mut frame = 0u64;
        for chunk in 0..300u64 {
            let mut message = Vec::with_capacity(441 * 2);
            for _ in 0..441 {
                let phase = frame as f64 * 880.0 / 44_100.0 * std::f64::consts::TAU;
                message.extend_from_slice(&((phase.sin() * 16_384.0) as i16).to_le_bytes());
                frame += 1;
            }
            microphone
                .send(Message::Binary(message.into()))
                .expect("send");
            let due = started + Duration::from_millis(10 * (chunk + 1));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        microphone.close(None).expect("close");
    });
    std::thread::sleep(Duration::from_millis(300));
    let recorded = record_through(
        &mut driver,
        &SetParams::s16_stereo_48k(1, 8),
        2 * 48_000 * 4,
    );
    feeding.join().expect("feeder");
    driver.disconnect();
    let log = daemon.stop();
    let left: Vec<f32> = recorded
        .chunks_exact(4)
        .map(|frame| f32::from(i16::from_le_bytes([frame[0], frame[1]])) / 32_768.0)
        .collect();
    let loud: Vec<f32> = left
        .iter()
        .copied()
        .skip_while(|s| s.abs() < 0.25)
        .skip(4_800)
        .take(48_000)
        .collect();
    assert_eq!(
        loud.len(),
        48_000,
        "a second of the microphone was recorded:\n{log}"
    );
    let (hz, dbfs) = tone_of(&loud, 48_000.0);
    println!("the guest recorded the microphone's {hz:.1} Hz at {dbfs:.2} dBFS");
    assert!((hz - 880.0).abs() < 5.0, "{hz} Hz");
    assert!((dbfs + 6.0).abs() < 1.0, "{dbfs} dBFS");
}
