//! ALSA endpoints on software PCMs defined in a user's ALSA configuration, the way a host
//! admin would set up a capture file or a virtual device.
//!
//! ALSA reads `ALSA_CONFIG_PATH` once, at its first configuration lookup in the process, so
//! this file is its own test binary (its own process) and every test goes through `setup`
//! before touching ALSA. The configuration includes the system's `alsa.conf` first, then
//! adds the test PCMs.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use paravox_engine::device::{DeviceFormat, PlaybackDevice};
use paravox_host_audio::{AlsaPlayback, EndpointSpec, ToneSource, alsa_pcms};
use paravox_pcm::{Format, convert};

struct TestConfig {
    /// Keeps the directory alive for the whole process.
    _dir: tempfile::TempDir,
    raw_path: PathBuf,
}

fn setup() -> &'static TestConfig {
    static CONFIG: OnceLock<TestConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw_path = dir.path().join("paravox_test_file.raw");
        let config_path = dir.path().join("asound.conf");
        let config = format!(
            "</usr/share/alsa/alsa.conf>\n\
             pcm.paravox_test_file {{\n\
             \ttype file\n\
             \tslave.pcm \"null\"\n\
             \tfile \"{}\"\n\
             \tformat \"raw\"\n\
             \thint.description \"paravox test: raw capture file\"\n\
             }}\n\
             pcm.paravox_test_plug {{\n\
             \ttype plug\n\
             \tslave {{ pcm \"null\" format S16_LE rate 44100 channels 2 }}\n\
             }}\n",
            raw_path.display()
        );
        std::fs::write(&config_path, config).expect("writes the config");
        // SAFETY: OnceLock runs this exactly once, before any test in this process calls into
        // ALSA (every test calls `setup` first) and while no other code reads the environment.
        unsafe { std::env::set_var("ALSA_CONFIG_PATH", &config_path) };
        TestConfig {
            _dir: dir,
            raw_path,
        }
    })
}

fn format(rate: u32, channels: u32, period_frames: u32) -> DeviceFormat {
    DeviceFormat {
        rate,
        channels,
        period_frames,
    }
}

#[test]
fn a_configured_file_pcm_records_the_tone_byte_exact_in_real_time() {
    let config = setup();
    let spec: EndpointSpec = "alsa:paravox_test_file,rate=48000,channels=2,format=s16_le"
        .parse()
        .expect("valid");
    let device_format = spec.device_format().expect("no I/O for alsa");
    let mut device = spec
        .playback_opener()
        .expect("opener")
        .open()
        .expect("opens");

    let mut tone = ToneSource::new(1000.0, -3.0, device_format);
    let mut played = Vec::new();
    let mut period = vec![0f32; device_format.period_samples()];
    let start = Instant::now();
    for _ in 0..21 {
        tone.generate(&mut period);
        device.write(&period).expect("writes");
        played.extend_from_slice(&period);
    }
    let elapsed = start.elapsed();
    device.finish().expect("drains");
    drop(device);

    assert!(
        elapsed >= Duration::from_millis(200),
        "a file over null must be paced: {elapsed:?}"
    );
    let bytes = std::fs::read(&config.raw_path).expect("the file PCM wrote its file");
    let mut want = vec![0u8; played.len() * 2];
    convert::encode(Format::S16Le, &played, &mut want).expect("encodes");
    assert_eq!(bytes.len(), 21 * 480 * 2 * 2);
    assert!(bytes == want, "the file holds exactly the encoded tone");
}

#[test]
fn a_plug_pcm_converts_for_a_slave_with_fixed_parameters() {
    setup();
    // The slave is fixed at S16 44.1 kHz stereo; plug converts our float 48 kHz mono.
    let mut device = AlsaPlayback::open("paravox_test_plug", None, format(48_000, 1, 480), 4)
        .expect("plug adapts");
    assert_eq!(device.sample_format(), Format::F32Le);
    let start = Instant::now();
    for _ in 0..11 {
        device.write(&[0.1; 480]).expect("writes");
    }
    assert!(
        start.elapsed() >= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    assert!(device.is_self_paced());
}

#[test]
fn configured_pcms_are_listed_with_their_description() {
    setup();
    let pcms = alsa_pcms().expect("lists");
    let file = pcms
        .iter()
        .find(|pcm| pcm.name == "paravox_test_file")
        .unwrap_or_else(|| panic!("configured PCM missing from {pcms:?}"));
    assert_eq!(
        file.description.as_deref(),
        Some("paravox test: raw capture file")
    );
}
