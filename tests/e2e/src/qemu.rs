//! QEMU runs of the test guest: the command line, the serial console captured to a log
//! file and parsed for the guest's `PARAVOX-…` markers as they arrive, and a deadline on
//! every run so a hung guest fails the test instead of hanging CI.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::guest::GuestImage;
use crate::cmd;

pub const QEMU: &str = "qemu-system-x86_64";

/// Guest memory. vhost-user needs it shared (a memfd backend of the same size).
pub const MEMORY: &str = "512M";

/// One guest boot.
#[derive(Debug, Clone)]
pub struct BootConfig {
    /// Short name for progress lines and file names (`play`, `record-1`…).
    pub name: String,
    /// `paravox.KEY=VALUE` parameters for the guest's /init.
    pub guest_params: Vec<(String, String)>,
    /// The sound device's arguments, including `-machine` (see `Device::qemu_args`).
    pub device_args: Vec<String>,
    /// A raw disk the guest sees as /dev/vda.
    pub disk: Option<PathBuf>,
    /// Where the serial console and QEMU's stderr are written.
    pub dir: PathBuf,
    /// The whole run (boot, scenario, power-off) must end within this.
    pub timeout: Duration,
}

/// A marker line from the guest: `PARAVOX-KIND key=value …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub kind: String,
    pub fields: BTreeMap<String, String>,
    /// When the host read it.
    pub at: Instant,
}

impl Marker {
    pub fn parse(line: &str, at: Instant) -> Option<Self> {
        let rest = &line[line.find("PARAVOX-")? + "PARAVOX-".len()..];
        let mut words = rest.split_whitespace();
        let kind = words.next()?.to_owned();
        let fields = words
            .filter_map(|word| word.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        Some(Self { kind, fields, at })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    pub fn is(&self, kind: &str, name: &str) -> bool {
        self.kind == kind && self.get("name") == Some(name)
    }

    /// A `RESULT` marker's value as a number.
    pub fn number(&self) -> Option<f64> {
        self.get("value")?.parse().ok()
    }
}

/// A running guest.
#[derive(Debug)]
pub struct Qemu {
    name: String,
    child: Child,
    markers: Receiver<Marker>,
    serial_log: PathBuf,
    stderr_log: PathBuf,
    started: Instant,
    deadline: Instant,
    /// Every marker seen so far.
    pub seen: Vec<Marker>,
}

/// How a finished guest run went.
#[derive(Debug)]
pub struct Finished {
    pub markers: Vec<Marker>,
    pub wall: Duration,
}

impl Finished {
    pub fn result(&self, name: &str) -> Option<&Marker> {
        self.markers.iter().find(|marker| marker.is("RESULT", name))
    }

    pub fn skipped(&self) -> Option<&Marker> {
        self.markers.iter().find(|marker| marker.kind == "SKIP")
    }
}

impl Qemu {
    /// Starts QEMU; the serial console goes to `DIR/NAME.serial.log`.
    pub fn boot(guest: &GuestImage, config: &BootConfig) -> Result<Self> {
        Self::start(
            &config.name,
            command_line(guest, config),
            &config.dir,
            config.timeout,
        )
    }

    /// Runs `command` (a QEMU whose serial console is on stdio) as run `name`: the
    /// console goes to `DIR/NAME.serial.log`, and the run must end within `timeout`.
    pub fn start(name: &str, mut command: Command, dir: &Path, timeout: Duration) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
        let serial_log = dir.join(format!("{name}.serial.log"));
        let stderr_log = dir.join(format!("{name}.qemu-stderr.log"));
        println!("  boot {name}: $ {}", cmd::display(&command));
        let stderr = File::create(&stderr_log)
            .with_context(|| format!("could not create {}", stderr_log.display()))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("could not start {QEMU}"))?;
        let started = Instant::now();
        let stdout = child
            .stdout
            .take()
            .context("QEMU's stdout was not captured")?;
        let log = File::create(&serial_log)
            .with_context(|| format!("could not create {}", serial_log.display()))?;
        let (sender, markers) = mpsc::channel();
        thread::spawn(move || capture_serial(stdout, log, sender));
        Ok(Self {
            name: name.to_owned(),
            child,
            markers,
            serial_log,
            stderr_log,
            started,
            deadline: started + timeout,
            seen: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Waits for the first marker (seen before or arriving now) that `wanted` accepts.
    /// A `FAIL` marker, the guest stopping or the deadline passing is an error.
    pub fn wait_for(&mut self, what: &str, wanted: impl Fn(&Marker) -> bool) -> Result<Marker> {
        if let Some(marker) = self.seen.iter().find(|marker| wanted(marker)) {
            return Ok(marker.clone());
        }
        loop {
            let marker = self.next_marker(what)?;
            if marker.kind == "FAIL" {
                let reason = marker.get("reason").unwrap_or("?").to_owned();
                self.kill();
                bail!("{}", self.failure(&format!("the guest failed: {reason}")));
            }
            if wanted(&marker) {
                return Ok(marker);
            }
        }
    }

    /// Waits for the guest to power off after `DONE`, and for QEMU to exit successfully.
    pub fn finish(mut self) -> Result<Finished> {
        self.wait_for("power-off", |marker| marker.kind == "DONE")?;
        // QEMU closes the console when it exits.
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.markers.recv_timeout(left) {
                Ok(marker) => self.seen.push(marker),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    bail!(
                        "{}",
                        self.failure("QEMU did not exit after the guest powered off; killed")
                    );
                }
            }
        }
        let status = self.wait_exit()?;
        if !status.success() {
            bail!("{}", self.failure(&format!("QEMU exited with {status}")));
        }
        Ok(Finished {
            markers: std::mem::take(&mut self.seen),
            wall: self.started.elapsed(),
        })
    }

    /// Kills QEMU at once (SIGKILL), as a crashing VMM would go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn next_marker(&mut self, what: &str) -> Result<Marker> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.markers.recv_timeout(left) {
            Ok(marker) => {
                self.seen.push(marker.clone());
                Ok(marker)
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                bail!(
                    "{}",
                    self.failure(&format!(
                        "timed out after {:.0} s waiting for {what}; QEMU killed",
                        self.started.elapsed().as_secs_f64()
                    ))
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self
                    .wait_exit()
                    .map(|status| status.to_string())
                    .unwrap_or_else(|e| e.to_string());
                bail!(
                    "{}",
                    self.failure(&format!("QEMU exited ({status}) while waiting for {what}"))
                )
            }
        }
    }

    fn wait_exit(&mut self) -> Result<std::process::ExitStatus> {
        // The console is closed, so QEMU is exiting; give it the rest of the deadline.
        loop {
            if let Some(status) = self.child.try_wait().context("could not wait for QEMU")? {
                return Ok(status);
            }
            if Instant::now() >= self.deadline {
                self.kill();
                bail!(
                    "{}",
                    self.failure("QEMU did not exit before the deadline; killed")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `reason` with the tails of the serial console and QEMU's stderr.
    fn failure(&self, reason: &str) -> String {
        format!(
            "guest run `{}`: {reason}\n--- last lines of {} ---\n{}\n--- {} ---\n{}",
            self.name,
            self.serial_log.display(),
            tail(&self.serial_log, 30),
            self.stderr_log.display(),
            tail(&self.stderr_log, 15),
        )
    }
}

impl Drop for Qemu {
    /// No QEMU outlives its run, whatever error ended it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Copies the console to the log (flushed per line, so a killed run keeps all of it)
/// and sends each marker to the waiting test.
fn capture_serial(stdout: impl std::io::Read, mut log: File, markers: mpsc::Sender<Marker>) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let _ = log.write_all(&line);
        let _ = log.flush();
        let text = String::from_utf8_lossy(&line);
        if let Some(marker) = Marker::parse(text.trim_end(), Instant::now()) {
            // The receiver is gone only once the run is over.
            let _ = markers.send(marker);
        }
    }
}

fn command_line(guest: &GuestImage, config: &BootConfig) -> Command {
    let mut append = String::from("console=ttyS0 quiet panic=-1");
    for (key, value) in &config.guest_params {
        append.push_str(&format!(" paravox.{key}={value}"));
    }
    let mut command = Command::new(QEMU);
    command
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", MEMORY])
        .args(["-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&guest.kernel)
        .arg("-initrd")
        .arg(&guest.initramfs)
        .args(["-append", &append])
        .args(&config.device_args);
    if let Some(disk) = &config.disk {
        command
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", disk.display()));
    }
    command
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(error) => format!("(could not read: {error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_parsed_even_after_console_noise() {
        let now = Instant::now();
        let marker = Marker::parse(
            "[  2.1] virtio PARAVOX-RESULT name=aplay_seconds value=10.02",
            now,
        )
        .unwrap();
        assert_eq!(marker.kind, "RESULT");
        assert!(marker.is("RESULT", "aplay_seconds"));
        assert_eq!(marker.number(), Some(10.02));
        assert!(Marker::parse("Playing WAVE 'x.wav'", now).is_none());
        let bare = Marker::parse("PARAVOX-DONE", now).unwrap();
        assert_eq!(bare.kind, "DONE");
        assert!(bare.fields.is_empty());
    }
}
