//! libasound's own error lines reach paravox's log (its own process: the handler is
//! process-wide).

use std::io::Write;
use std::sync::{Arc, Mutex};

use paravox_engine::device::DeviceFormat;
use paravox_host_audio::AlsaPlayback;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn libasound_messages_are_log_lines() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let format = DeviceFormat {
        rate: 48_000,
        channels: 2,
        period_frames: 480,
    };
    tracing::subscriber::with_default(subscriber, || {
        AlsaPlayback::open("paravox_no_such_pcm", None, format, 4).expect_err("no such PCM")
    });
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // libasound's own words, as one line of target `alsa` with its source location.
    let line = log
        .lines()
        .find(|line| line.contains("Unknown PCM paravox_no_such_pcm"))
        .unwrap_or_else(|| panic!("libasound's message is not in the log: {log}"));
    assert!(line.contains("INFO") && line.contains("alsa:"), "{line}");
    assert!(line.contains("location="), "{line}");
}
