//! The `paravox` binary as a user runs it: play, record, serve, and every way to get the
//! command line or configuration wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use paravox_testkit as analysis;

fn paravox() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paravox"));
    command
        .env("RUST_LOG", "warn")
        .env_remove("PARAVOX_STATE_DIR");
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("paravox runs")
}

/// Writes a canonical 44-byte-header PCM WAV.
fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16, data: &[u8]) {
    let block = channels * bits / 8;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&channels.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    bytes.extend_from_slice(&block.to_le_bytes());
    bytes.extend_from_slice(&bits.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).expect("write wav");
}

/// The data chunk of a WAV file.
fn wav_data(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read wav");
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if &bytes[at..at + 4] == b"data" {
            return bytes[at + 8..(at + 8 + size).min(bytes.len())].to_vec();
        }
        at += 8 + size + size % 2;
    }
    panic!("{} has no data chunk", path.display());
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn play_copies_s16_bit_exactly_in_real_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let out = dir.path().join("out.wav");
    // 1.5 s of a 440 Hz tone with a little noise so every bit matters.
    let tone = analysis::sine(48_000.0, 440.0, 0.4, 72_000);
    let mut data = analysis::s16_bytes(&tone, 2);
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= (i * 7919 % 3) as u8;
    }
    write_wav(&input, 48_000, 2, 16, &data);
    let started = Instant::now();
    let output = run(paravox()
        .args(["play"])
        .arg(&input)
        .arg("--to")
        .arg(format!(
            "wav:{},rate=48000,channels=2,format=s16_le",
            out.display()
        )));
    let elapsed = started.elapsed();
    assert!(output.status.success(), "{}", stderr(&output));
    let copy = wav_data(&out);
    let first_difference = copy.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(
        (copy.len(), first_difference),
        (data.len(), None),
        "output is not a bit-exact copy (length, first differing byte)"
    );
    // Paced: 1.5 s of audio takes 1.5 s, not an instant.
    assert!(
        elapsed >= Duration::from_millis(1450),
        "took only {elapsed:?}"
    );
}

#[test]
fn play_converts_rate_and_channels() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    let out = dir.path().join("out.wav");
    let tone = analysis::sine(44_100.0, 1000.0, 0.5, 44_100);
    write_wav(&input, 44_100, 1, 16, &analysis::s16_bytes(&tone, 1));
    let output = run(paravox()
        .args(["play"])
        .arg(&input)
        .arg("--to")
        .arg(format!(
            "wav:{},rate=48000,channels=2,format=float_le",
            out.display()
        )));
    assert!(output.status.success(), "{}", stderr(&output));
    let samples: Vec<f64> = wav_data(&out)
        .chunks_exact(4)
        .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
        .collect();
    let left = analysis::channel(&samples, 2, 0);
    let right = analysis::channel(&samples, 2, 1);
    assert_eq!(left, right, "mono was not copied to both channels");
    assert!(
        (left.len() as i64 - 48_000).abs() < 100,
        "{} frames",
        left.len()
    );
    let fit = analysis::fit_sine(&left[2400..45_600], 48_000.0).expect("fit");
    assert!((fit.frequency - 1000.0).abs() < 0.1, "{}", fit.frequency);
    assert!(fit.thd_n_db < -80.0, "THD+N {}", fit.thd_n_db);
}

#[test]
fn record_captures_a_tone_source() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.wav");
    let output = run(paravox().args(["record"]).arg(&out).args([
        "--from",
        "tone:880",
        "--seconds",
        "1",
        "--rate",
        "44100",
        "--channels",
        "1",
    ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let samples = analysis::from_s16_bytes(&wav_data(&out));
    assert_eq!(samples.len(), 44_100);
    let fit = analysis::fit_sine(&samples[4410..], 44_100.0).expect("fit");
    assert!((fit.frequency - 880.0).abs() < 0.1, "{}", fit.frequency);
    assert!(fit.thd_n_db < -60.0, "THD+N {}", fit.thd_n_db);
}

/// An asoundrc with a `file` PCM writing raw S16 stereo to `raw`.
fn asoundrc(dir: &Path, raw: &Path) -> PathBuf {
    let path = dir.join("asoundrc");
    std::fs::write(
        &path,
        format!(
            "</usr/share/alsa/alsa.conf>\n\
             pcm.paravox_file {{ type file; slave.pcm \"null\"; file \"{}\"; format \"raw\" }}\n\
             pcm.paravox_null {{ type null }}\n",
            raw.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn plays_and_records_through_alsa_software_pcms() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("alsa.raw");
    let config = asoundrc(dir.path(), &raw);
    let input = dir.path().join("in.wav");
    let tone = analysis::sine(48_000.0, 440.0, 0.4, 24_000);
    let data = analysis::s16_bytes(&tone, 2);
    write_wav(&input, 48_000, 2, 16, &data);
    let output = run(paravox()
        .env("ALSA_CONFIG_PATH", &config)
        .args(["play"])
        .arg(&input)
        .args([
            "--to",
            "alsa:paravox_file,format=s16_le,rate=48000,channels=2",
        ]));
    assert!(output.status.success(), "{}", stderr(&output));
    let written = std::fs::read(&raw).expect("the file PCM wrote nothing");
    let start = written
        .windows(64)
        .position(|w| w == &data[..64])
        .expect("tone start in the ALSA output");
    assert!(
        written[start..].starts_with(&data),
        "ALSA output differs from the input"
    );

    let recording = dir.path().join("rec.wav");
    let output = run(paravox()
        .env("ALSA_CONFIG_PATH", &config)
        .args(["record"])
        .arg(&recording)
        .args([
            "--from",
            "alsa:paravox_null,format=s16_le",
            "--seconds",
            "0.5",
        ]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(wav_data(&recording).len(), 24_000 * 4);
}

#[test]
fn serve_runs_until_sigterm_and_finalizes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("paravox.toml");
    std::fs::write(
        &config,
        "[[output]]\nname = \"file\"\nspec = \"wav:${state_dir}/out.wav\"\n\
         [[input]]\nname = \"tone\"\nspec = \"tone:440\"\n\
         [defaults]\noutput = \"file\"\ninput = \"tone\"\n",
    )
    .unwrap();
    let mut child = paravox()
        .env("RUST_LOG", "info")
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(child.try_wait().unwrap().is_none(), "serve exited early");
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("paravox ready") && log.contains("stopped"),
        "{log}"
    );
    assert!(dir.path().join("out.wav").exists());
}

#[test]
fn bad_arguments_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, 48_000, 2, 16, &[0; 400]);
    let garbage = dir.path().join("garbage.wav");
    std::fs::write(&garbage, b"this is not a wav file at all").unwrap();
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(
        &bad_config,
        "[[output]]\nname = \"x\"\nspec = \"wav:/tmp/x.wav,channels=0\"\n",
    )
    .unwrap();
    let unknown_key = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown_key,
        "[[output]]\nname = \"x\"\nspec = \"null\"\nspeed = 2\n",
    )
    .unwrap();
    let input_text = input.display().to_string();
    let garbage_text = garbage.display().to_string();
    let cases: Vec<(Vec<String>, &[&str])> = vec![
        (
            vec![
                "play".into(),
                input_text.clone(),
                "--to".into(),
                "bogus:x".into(),
            ],
            &["bogus", "wav:PATH"],
        ),
        (
            vec![
                "play".into(),
                input_text.clone(),
                "--to".into(),
                "tone:440".into(),
            ],
            &["playback"],
        ),
        (
            vec![
                "play".into(),
                input_text.clone(),
                "--to".into(),
                "wav:/tmp/x.wav,rate=12".into(),
            ],
            &["rate"],
        ),
        (
            vec![
                "play".into(),
                "/nonexistent/in.wav".into(),
                "--to".into(),
                "null".into(),
            ],
            &["/nonexistent/in.wav"],
        ),
        (
            vec!["play".into(), garbage_text, "--to".into(), "null".into()],
            &["garbage.wav"],
        ),
        (
            vec![
                "record".into(),
                "/tmp/r.wav".into(),
                "--from".into(),
                "wav:/tmp/x.wav".into(),
                "--seconds".into(),
                "1".into(),
            ],
            &["capture"],
        ),
        (
            vec![
                "record".into(),
                "/tmp/r.wav".into(),
                "--from".into(),
                "tone:440".into(),
                "--seconds".into(),
                "-1".into(),
            ],
            &["--seconds"],
        ),
        (
            vec![
                "record".into(),
                "/tmp/r.wav".into(),
                "--from".into(),
                "tone:440".into(),
                "--seconds".into(),
                "1".into(),
                "--format".into(),
                "s17".into(),
            ],
            &["s17"],
        ),
        (
            vec![
                "serve".into(),
                "--config".into(),
                bad_config.display().to_string(),
            ],
            &["line 3", "channels"],
        ),
        (
            vec![
                "serve".into(),
                "--config".into(),
                unknown_key.display().to_string(),
            ],
            &["line 4", "speed"],
        ),
        (
            vec![
                "serve".into(),
                "--config".into(),
                "/nonexistent.toml".into(),
            ],
            &["/nonexistent.toml"],
        ),
        (
            vec![
                "serve".into(),
                "--output".into(),
                "tone:440".into(),
                "--state-dir".into(),
                dir.path().display().to_string(),
            ],
            &["--output", "playback"],
        ),
        (vec!["frobnicate".into()], &["frobnicate"]),
    ];
    for (args, expected) in cases {
        let output = run(paravox().args(&args));
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        for fragment in expected {
            assert!(
                message.contains(fragment),
                "{args:?}: '{message}' lacks '{fragment}'"
            );
        }
        assert!(!message.contains("panicked"), "{args:?}: {message}");
    }
}
