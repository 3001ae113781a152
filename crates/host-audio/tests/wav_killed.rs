//! A WAV writer killed mid-recording (SIGKILL: no destructor, no finalize) leaves a valid
//! file holding every byte it wrote, its header sizes stored in the mapped header page.
//!
//! The test runs itself again as the writer: a child process that writes, says how much,
//! and waits to be killed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use paravox_host_audio::wav::{WavReader, WavWriter};
use paravox_pcm::Format;

const CHILD: &str = "PARAVOX_WAV_KILLED_CHILD";
const TEST: &str = "a_writer_killed_mid_recording_leaves_every_byte_it_wrote";

/// 0.7 s of 48 kHz stereo S16 that never repeats a period.
fn audio() -> Vec<u8> {
    (0..33_600u32 * 2)
        .map(|n| (n.wrapping_mul(2_654_435_761) >> 16) as u16 as i16)
        .flat_map(|sample| sample.to_le_bytes())
        .collect()
}

/// The child: writes `audio()` in 10 ms periods, says so, and waits to be killed.
fn write_and_wait(path: &std::ffi::OsStr) -> ! {
    let mut writer = WavWriter::create(path, Format::S16Le, 48_000, 2).expect("creates");
    let audio = audio();
    for period in audio.chunks(1920) {
        writer.write_bytes(period).expect("writes");
    }
    println!("written {}", audio.len());
    // Killed long before this; a child whose parent failed does not linger.
    std::thread::sleep(Duration::from_secs(60));
    std::process::exit(1);
}

/// Kills the writer however the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_writer_killed_mid_recording_leaves_every_byte_it_wrote() {
    if let Some(path) = std::env::var_os(CHILD) {
        write_and_wait(&path);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("killed.wav");
    let mut child = Child(
        Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawns the writer"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let written: usize = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest names the test on the same line first.
        .find_map(|line| line.rsplit_once("written ")?.1.trim().parse().ok())
        .expect("the writer reports what it wrote");
    // The header is mapped: the sizes never needed a system call.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.0.id())).expect("maps");
    assert!(
        maps.lines()
            .any(|line| line.ends_with(path.to_str().expect("utf-8"))),
        "the writer has no mapping of {}",
        path.display()
    );
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");

    let mut reader = WavReader::open(&path).expect("a valid file");
    assert_eq!(reader.info().data_bytes, Some(written as u64));
    let mut read = vec![0; written + 64];
    let mut total = 0;
    loop {
        let n = reader.read_bytes(&mut read[total..]).expect("reads");
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(&read[..total], &audio()[..], "every byte, and no more");
}
