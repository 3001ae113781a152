//! ALSA endpoints against the software PCMs every ALSA installation defines: `null`
//! (discards playback, captures silence, has no clock) and `file:FILE=…,FORMAT=raw` (writes
//! what it is given to a file, over `null`).

use std::time::{Duration, Instant};

use paravox_engine::device::{CaptureDevice, DeviceFormat, PlaybackDevice};
use paravox_host_audio::{AlsaCapture, AlsaPlayback, EndpointSpec, ToneSource, alsa_pcms};
use paravox_pcm::{Format, convert};

fn format(rate: u32, channels: u32, period_frames: u32) -> DeviceFormat {
    DeviceFormat {
        rate,
        channels,
        period_frames,
    }
}

/// `periods` periods of a 1 kHz tone at -6 dBFS.
fn tone_periods(device_format: DeviceFormat, periods: usize) -> Vec<Vec<f32>> {
    let mut tone = ToneSource::new(1000.0, -6.0, device_format);
    (0..periods)
        .map(|_| {
            let mut period = vec![0f32; device_format.period_samples()];
            tone.generate(&mut period);
            period
        })
        .collect()
}

#[test]
fn playback_into_null_is_paced_by_the_device_itself() {
    let device_format = format(48_000, 2, 480);
    let mut device = AlsaPlayback::open("null", None, device_format, 4).expect("null opens");
    assert_eq!(device.format(), device_format);
    assert_eq!(device.sample_format(), Format::F32Le, "float is preferred");
    let periods = tone_periods(device_format, 21);
    let start = Instant::now();
    for period in &periods {
        device.write(period).expect("null takes everything");
    }
    let elapsed = start.elapsed();
    // ALSA's null PCM takes writes instantly; 21 periods of 10 ms must still take 200 ms.
    assert!(
        elapsed >= Duration::from_millis(200),
        "not paced: {elapsed:?}"
    );
    assert!(device.is_self_paced(), "null has no clock of its own");
    assert_eq!(device.stats().xruns, 0);
    device.finish().expect("drains");
}

#[test]
fn capture_from_null_reads_paced_silence() {
    let device_format = format(8_000, 1, 80);
    let mut device = AlsaCapture::open("null", Some(Format::S16Le), device_format, 4)
        .expect("null opens for capture");
    assert_eq!(device.sample_format(), Format::S16Le);
    let mut period = vec![f32::NAN; 80];
    let start = Instant::now();
    for _ in 0..11 {
        period.fill(f32::NAN);
        device.read(&mut period).expect("null gives silence");
        assert!(period.iter().all(|sample| *sample == 0.0), "{period:?}");
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(100),
        "not paced: {elapsed:?}"
    );
    assert!(device.is_self_paced());
    device.finish().expect("stops");
}

/// Plays ten periods of tone through a `file` PCM and returns what landed in the file.
fn play_through_file_pcm(sample_format: Option<Format>) -> (Vec<Vec<f32>>, Vec<u8>, Format) {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = dir.path().join("out.raw");
    let name = format!("file:FILE={},FORMAT=raw", raw.display());
    let device_format = format(48_000, 1, 480);
    let mut device = AlsaPlayback::open(&name, sample_format, device_format, 4).expect("opens");
    let chosen = device.sample_format();
    let periods = tone_periods(device_format, 10);
    for period in &periods {
        device.write(period).expect("writes");
    }
    device.finish().expect("drains");
    // The file plugin flushes its last bytes when the PCM closes.
    drop(device);
    let bytes = std::fs::read(&raw).expect("the file PCM wrote its file");
    (periods, bytes, chosen)
}

#[test]
fn a_tone_played_through_a_file_pcm_arrives_byte_exact_as_s16() {
    let (periods, bytes, chosen) = play_through_file_pcm(Some(Format::S16Le));
    assert_eq!(chosen, Format::S16Le);
    let samples: Vec<f32> = periods.concat();
    let mut want = vec![0u8; samples.len() * 2];
    convert::encode(Format::S16Le, &samples, &mut want).expect("encodes");
    assert_eq!(bytes.len(), want.len(), "4800 frames of 2 bytes");
    assert!(
        bytes == want,
        "the device received exactly the encoded tone"
    );
    // And it is the tone: 10 rising zero crossings per 10 ms period of 1 kHz.
    let mut decoded = vec![0f32; samples.len()];
    convert::decode(Format::S16Le, &bytes, &mut decoded).expect("decodes");
    let rising = decoded
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    assert!((99..=100).contains(&rising), "{rising}");
}

#[test]
fn without_a_format_the_file_pcm_gets_float() {
    let (periods, bytes, chosen) = play_through_file_pcm(None);
    assert_eq!(chosen, Format::F32Le);
    let want: Vec<u8> = periods
        .concat()
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    assert!(bytes == want, "float samples pass through untouched");
}

#[test]
fn specs_open_alsa_endpoints_both_ways() {
    let spec: EndpointSpec = "alsa:null,rate=8000,channels=1,period=80,format=s32_le"
        .parse()
        .expect("valid");
    let mut playback = spec
        .playback_opener()
        .expect("opener")
        .open()
        .expect("opens");
    assert_eq!(playback.format(), format(8_000, 1, 80));
    playback.write(&[0.25; 80]).expect("writes");
    let mut capture = spec
        .capture_opener()
        .expect("opener")
        .open()
        .expect("opens");
    let mut period = [1.0f32; 80];
    capture.read(&mut period).expect("reads");
    assert_eq!(period, [0.0; 80]);
}

#[test]
fn an_unknown_pcm_is_reported_by_name() {
    let error = AlsaPlayback::open("paravox_no_such_pcm", None, format(48_000, 2, 480), 4)
        .expect_err("no such PCM");
    let message = error.to_string();
    assert!(message.contains("'paravox_no_such_pcm'"), "{message}");
    assert!(message.contains("aplay -L"), "{message}");

    let spec: EndpointSpec = "alsa:paravox_no_such_pcm".parse().expect("valid syntax");
    let lost = spec
        .playback_opener()
        .expect("opener")
        .open()
        .err()
        .expect("open fails");
    assert!(
        lost.to_string()
            .starts_with("device lost: ALSA PCM 'paravox_no_such_pcm'"),
        "{lost}"
    );
}

#[test]
fn a_nul_byte_in_a_pcm_name_is_an_error_not_a_panic() {
    let error = AlsaPlayback::open("null\0x", None, format(48_000, 2, 480), 4).expect_err("NUL");
    assert!(error.to_string().contains("NUL"), "{error}");
}

#[test]
fn the_pcm_list_has_null_both_ways() {
    let pcms = alsa_pcms().expect("ALSA lists its PCMs");
    let null = pcms
        .iter()
        .find(|pcm| pcm.name == "null")
        .unwrap_or_else(|| panic!("no 'null' in {pcms:?}"));
    assert!(null.playback && null.capture, "{null:?}");
    assert!(
        null.description
            .as_deref()
            .is_some_and(|desc| desc.contains("Discard")),
        "{null:?}"
    );
}
