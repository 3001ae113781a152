//! The sound device under test, pluggable: paravox's vhost-user backend (a daemon QEMU
//! connects to) or QEMU's built-in `virtio-sound-pci` (the reference the harness itself
//! is validated against). Each scenario starts its own device and reads its sink file.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::qemu::{self, MEMORY};
use crate::cmd;

/// The sink every device writes: 48 kHz stereo S16, so one analysis fits both.
pub const SINK_RATE: u32 = 48_000;
pub const SINK_CHANNELS: u16 = 2;

/// The tone paravox's capture source plays (`--input tone:880`).
pub const CAPTURE_TONE_HZ: f64 = 880.0;

/// How long the daemon gets to create its socket, and to exit after SIGTERM.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(15);
const DAEMON_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which device the guests get, and how to start one for a scenario.
#[derive(Debug, Clone)]
pub enum DeviceSpec {
    /// `paravox serve --virtio-socket …`, the binary at this path.
    Paravox { binary: PathBuf },
    /// QEMU's own `virtio-sound-pci` with a `wav` audiodev.
    QemuBuiltin,
}

/// What a scenario uses the device for. Only QEMU's built-in device cares: its `wav`
/// audiodev cannot capture, so capture runs get the `none` audiodev (silence) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Playback,
    Capture,
}

/// What the scenarios may expect of a device; what it cannot do is skipped, not failed.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Frames at the end of a stream that may never reach the sink.
    pub tail_frames_lost_at_stop: usize,
    /// The frequency a recording must hold (`None`: only check that capture runs).
    pub capture_tone_hz: Option<f64>,
    /// A guest volume control attenuates the sink (the card must have one).
    pub mixer_required: bool,
    /// The device outlives its VMM: a new QEMU can connect to the same backend.
    pub survives_vmm_restart: bool,
}

impl DeviceSpec {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Paravox { .. } => "paravox (vhost-user-snd-pci)",
            Self::QemuBuiltin => "QEMU built-in virtio-sound-pci",
        }
    }

    pub fn capabilities(&self) -> Capabilities {
        match self {
            Self::Paravox { .. } => Capabilities {
                tail_frames_lost_at_stop: 0,
                capture_tone_hz: Some(CAPTURE_TONE_HZ),
                // Cards offer VIRTIO_SND_F_CTLS volume/mute controls (--virtio-controls,
                // with QEMU's controls=on): amixer must work. The plain scenario runs
                // the other line.
                mixer_required: true,
                survives_vmm_restart: true,
            },
            Self::QemuBuiltin => Capabilities {
                // QEMU completes a TX buffer once it is copied into its mixer; the STOP
                // that follows the guest's drain drops what the mixer still holds
                // (5-9 ms measured).
                tail_frames_lost_at_stop: 960,
                // The wav audiodev has no capture side: whatever QEMU records is silence.
                capture_tone_hz: None,
                mixer_required: false,
                survives_vmm_restart: false,
            },
        }
    }

    /// Starts a fresh device whose files live in `dir`: paravox with volume and mute
    /// controls, and QEMU's line with `controls=on`.
    pub fn start(&self, dir: &Path, direction: Direction) -> Result<Device> {
        self.start_with(dir, direction, true, false)
    }

    /// Starts paravox the way systemd's socket activation does, through systemd's own
    /// `systemd-socket-activate`: the socket exists at once, and paravox starts when the
    /// first VMM connects, serving that connection on the socket it is handed.
    pub fn start_activated(&self, dir: &Path, direction: Direction) -> Result<Device> {
        self.start_with(dir, direction, true, true)
    }

    /// Starts paravox as it comes (no controls) for QEMU's plain line,
    /// `-device vhost-user-snd-pci,chardev=…`, the one vhost-user sound back ends
    /// document. QEMU's own device has no such choice and starts as usual.
    pub fn start_plain(&self, dir: &Path, direction: Direction) -> Result<Device> {
        self.start_with(dir, direction, false, false)
    }

    fn start_with(
        &self,
        dir: &Path,
        direction: Direction,
        controls: bool,
        activated: bool,
    ) -> Result<Device> {
        fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
        let sink = dir.join("sink.wav");
        match self {
            Self::Paravox { binary } => {
                let socket = socket_path(dir)?;
                let state_dir = dir.join("state");
                fs::create_dir_all(&state_dir)
                    .with_context(|| format!("could not create {}", state_dir.display()))?;
                let args = serve_args(&socket, &sink, &state_dir, controls);
                let launcher: &[String] = if activated {
                    &[
                        "systemd-socket-activate".to_owned(),
                        format!("--listen={}", socket.display()),
                        "--fdname=vsnd".to_owned(),
                    ]
                } else {
                    &[]
                };
                let daemon =
                    Daemon::start(binary, launcher, &args, &socket, &dir.join("paravox.log"))?;
                Ok(Device::Paravox {
                    daemon,
                    socket,
                    sink,
                    controls,
                })
            }
            Self::QemuBuiltin => Ok(Device::QemuBuiltin {
                wav_path: sink,
                direction,
            }),
        }
    }
}

/// QEMU arguments for a vhost-user-snd-pci card on `socket`: the guest's RAM in a
/// shared memfd (vhost-user maps it), the socket chardev, the device, with `controls=on`
/// when the card offers controls. The operator's example
/// `deploy/examples/qemu-vhost-user-snd.sh` must agree (a test checks).
fn vhost_user_snd_args(socket: &Path, controls: bool) -> Vec<String> {
    vec![
        "-object".into(),
        format!("memory-backend-memfd,id=mem,size={MEMORY},share=on"),
        "-machine".into(),
        "q35,memory-backend=mem".into(),
        "-chardev".into(),
        format!("socket,id=vsnd,path={}", socket.display()),
        "-device".into(),
        // controls=on gives the config space room for the card's controls (the mixer
        // scenario); the plain line has none.
        if controls {
            "vhost-user-snd-pci,chardev=vsnd,controls=on".into()
        } else {
            "vhost-user-snd-pci,chardev=vsnd".into()
        },
    ]
}

/// One started device.
#[derive(Debug)]
pub enum Device {
    /// paravox's daemon serving the vhost-user socket; playback goes to `sink`.
    Paravox {
        daemon: Daemon,
        socket: PathBuf,
        sink: PathBuf,
        /// The card offers controls and QEMU gets `controls=on`.
        controls: bool,
    },
    /// QEMU's device; for playback QEMU's wav audiodev writes `wav_path` (finalised when
    /// QEMU exits), for capture the `none` audiodev records silence.
    QemuBuiltin {
        wav_path: PathBuf,
        direction: Direction,
    },
}

impl Device {
    /// QEMU arguments that give the guest this device, `-machine` included.
    pub fn qemu_args(&self) -> Vec<String> {
        match self {
            Self::Paravox {
                socket, controls, ..
            } => vhost_user_snd_args(socket, *controls),
            Self::QemuBuiltin {
                wav_path,
                direction,
            } => {
                let audiodev = match direction {
                    Direction::Playback => format!(
                        "wav,id=snd0,path={},out.frequency={SINK_RATE},out.channels={SINK_CHANNELS},out.format=s16",
                        wav_path.display()
                    ),
                    Direction::Capture => "none,id=snd0".to_owned(),
                };
                vec![
                    "-machine".into(),
                    "q35".into(),
                    "-audiodev".into(),
                    audiodev,
                    "-device".into(),
                    "virtio-sound-pci,audiodev=snd0".into(),
                ]
            }
        }
    }

    /// The WAV file the device writes what the guest plays to.
    pub fn sink(&self) -> &Path {
        match self {
            Self::Paravox { sink, .. } => sink,
            Self::QemuBuiltin { wav_path, .. } => wav_path,
        }
    }

    /// The process whose CPU time is the device's: the daemon, or QEMU itself for the
    /// built-in device (which then includes the guest's emulation).
    pub fn cpu_pid(&self, qemu_pid: u32) -> u32 {
        match self {
            Self::Paravox { daemon, .. } => daemon.child.id(),
            Self::QemuBuiltin { .. } => qemu_pid,
        }
    }

    /// Fails if the daemon has exited on its own.
    pub fn check_alive(&mut self) -> Result<()> {
        match self {
            Self::Paravox { daemon, .. } => daemon.check_alive(),
            Self::QemuBuiltin { .. } => Ok(()),
        }
    }

    /// Identity of the socket file the backend listens on now, to tell a re-bound socket
    /// from the old one after a VMM goes away.
    pub fn listener_identity(&self) -> Option<SocketIdentity> {
        match self {
            Self::Paravox { socket, .. } => SocketIdentity::of(socket),
            Self::QemuBuiltin { .. } => None,
        }
    }

    /// After its VMM died: waits until the backend accepts the next one, i.e. its socket
    /// was re-bound (another file than `before`), or is still the same one after a grace
    /// period (a backend that keeps its listener).
    pub fn wait_listening_again(&mut self, before: Option<SocketIdentity>) -> Result<()> {
        const GRACE: Duration = Duration::from_secs(2);
        let Self::Paravox { daemon, socket, .. } = self else {
            return Ok(());
        };
        let started = Instant::now();
        loop {
            daemon.check_alive()?;
            let now = SocketIdentity::of(socket);
            let rebound = now.is_some() && now != before;
            if rebound || (now.is_some() && started.elapsed() > GRACE) {
                return Ok(());
            }
            if started.elapsed() > DAEMON_START_TIMEOUT {
                bail!(
                    "paravox did not listen on {} again within {} s of its VMM's death\n--- {} ---\n{}",
                    socket.display(),
                    DAEMON_START_TIMEOUT.as_secs(),
                    daemon.log.display(),
                    qemu::tail(&daemon.log, 30)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the device so its sink file is complete (paravox: SIGTERM, then a clean
    /// exit within 10 s is required).
    pub fn stop(self) -> Result<()> {
        match self {
            Self::Paravox { mut daemon, .. } => daemon.stop(),
            Self::QemuBuiltin { .. } => Ok(()),
        }
    }
}

/// Which file a socket path names: the inode alone is not enough, since a re-bound
/// socket often gets the number its unlinked predecessor freed; a new `bind` always sets
/// a new change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketIdentity {
    inode: u64,
    changed_seconds: i64,
    changed_nanoseconds: i64,
}

impl SocketIdentity {
    fn of(path: &Path) -> Option<Self> {
        let metadata = fs::metadata(path).ok()?;
        Some(Self {
            inode: metadata.ino(),
            changed_seconds: metadata.ctime(),
            changed_nanoseconds: metadata.ctime_nsec(),
        })
    }
}

/// A running `paravox serve`.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `binary` with `args`, through `launcher` (a program and its arguments that
    /// runs the binary) when given, and waits for `socket` to exist.
    fn start(
        binary: &Path,
        launcher: &[String],
        args: &[String],
        socket: &Path,
        log: &Path,
    ) -> Result<Self> {
        let mut command = match launcher.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command.args(args);
        println!("  device: $ {}", cmd::display(&command));
        let output =
            File::create(log).with_context(|| format!("could not create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let mut daemon = Self {
            child,
            log: log.to_path_buf(),
        };
        let started = Instant::now();
        while !socket.exists() {
            daemon.check_alive()?;
            if started.elapsed() > DAEMON_START_TIMEOUT {
                bail!(
                    "paravox did not create {} within {} s\n--- {} ---\n{}",
                    socket.display(),
                    DAEMON_START_TIMEOUT.as_secs(),
                    log.display(),
                    qemu::tail(log, 30)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .try_wait()
            .context("could not wait for paravox")?
        {
            bail!(
                "paravox exited on its own ({status})\n--- {} ---\n{}",
                self.log.display(),
                qemu::tail(&self.log, 30)
            );
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        self.check_alive()?;
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) has no memory effects; `pid` is our own child, not yet reaped
        // (check_alive just saw it running), so the id cannot have been reused.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!(
                "could not send SIGTERM to paravox: {}",
                std::io::Error::last_os_error()
            );
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("could not wait for paravox")?
            {
                ensure!(
                    status.success(),
                    "paravox exited with {status} after SIGTERM\n--- {} ---\n{}",
                    self.log.display(),
                    qemu::tail(&self.log, 30)
                );
                return Ok(());
            }
            if started.elapsed() > DAEMON_STOP_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "paravox did not exit within {} s of SIGTERM; killed\n--- {} ---\n{}",
                    DAEMON_STOP_TIMEOUT.as_secs(),
                    self.log.display(),
                    qemu::tail(&self.log, 30)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    /// No daemon outlives its scenario, whatever error ended it.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The daemon's command line: one place to change when its CLI does.
pub fn serve_args(socket: &Path, sink: &Path, state_dir: &Path, controls: bool) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--virtio-socket".into(),
        socket.display().to_string(),
        "--output".into(),
        format!(
            "wav:{},rate={SINK_RATE},channels={SINK_CHANNELS},format=s16_le",
            sink.display()
        ),
        "--input".into(),
        format!("tone:{CAPTURE_TONE_HZ}"),
        "--state-dir".into(),
        state_dir.display().to_string(),
    ];
    if controls {
        args.push("--virtio-controls".into());
    }
    args
}

/// A vhost-user socket path for `dir`, or a short one under /tmp when `dir` is too deep
/// for `sun_path` (108 bytes).
fn socket_path(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("vsnd.sock");
    if path.as_os_str().len() < 100 {
        return Ok(path);
    }
    let fallback = std::env::temp_dir().join(format!(
        "paravox-e2e-{}-{:x}.sock",
        std::process::id(),
        super::guest::fnv1a(path.as_os_str().as_encoded_bytes())
    ));
    let _ = fs::remove_file(&fallback);
    Ok(fallback)
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("could not read {path}"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("could not parse {path}: {stat}"))?;
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ensure!(per_second > 0, "sysconf(_SC_CLK_TCK) failed");
    Ok(ticks as f64 / per_second as f64)
}

/// utime + stime (fields 14 and 15) from a /proc/PID/stat line. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Whether this paravox binary has the virtio-snd front end (`serve --virtio-socket`).
pub fn paravox_has_virtio_backend(binary: &Path) -> Result<bool> {
    let help = cmd::output(Command::new(binary).args(["serve", "--help"]))?;
    Ok(help.contains("--virtio-socket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_odd_process_names() {
        let stat =
            "4242 (qemu (x) 1) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(325));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn our_own_cpu_time_is_readable() {
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }

    /// A scratch directory with a fake `paravox` script in it.
    fn fake_paravox(test: &str, script: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-e2e-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("paravox");
        fs::write(&binary, format!("#!/bin/sh\n{script}")).unwrap();
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
        // Another test thread forking while the file was open for writing makes exec
        // fail with ETXTBSY for a moment.
        for _ in 0..100 {
            match Command::new(&binary).arg("--probe").output() {
                Err(error) if error.raw_os_error() == Some(libc::ETXTBSY) => {
                    thread::sleep(Duration::from_millis(10));
                }
                _ => break,
            }
        }
        (dir, binary)
    }

    /// `serve --help` lists the flag; `serve --virtio-socket SOCK …` creates SOCK and
    /// exits 0 on SIGTERM.
    const WELL_BEHAVED: &str = r#"
[ "$1" = --probe ] && exit 0
[ "$2" = --help ] && { echo "      --virtio-socket <PATH>"; exit 0; }
trap 'exit 0' TERM
: > "$3"
while :; do sleep 0.05; done
"#;

    #[test]
    fn a_paravox_device_starts_listens_and_stops() {
        let (dir, binary) = fake_paravox("lifecycle", WELL_BEHAVED);
        assert!(paravox_has_virtio_backend(&binary).unwrap());
        let spec = DeviceSpec::Paravox { binary };
        let mut device = spec.start(&dir.join("play"), Direction::Playback).unwrap();
        device.check_alive().unwrap();
        assert_eq!(device.sink(), dir.join("play/sink.wav"));
        assert!(device.listener_identity().is_some());
        let daemon_pid = device.cpu_pid(1);
        assert_ne!(daemon_pid, 1);
        assert!(cpu_seconds(daemon_pid).is_ok());
        let args = device.qemu_args().join(" ");
        assert!(
            args.contains("vhost-user-snd-pci,chardev=vsnd,controls=on"),
            "{args}"
        );
        device.stop().unwrap();
        let mut device = spec
            .start_plain(&dir.join("plain"), Direction::Playback)
            .unwrap();
        let args = device.qemu_args().join(" ");
        assert!(
            args.ends_with("-device vhost-user-snd-pci,chardev=vsnd"),
            "{args}"
        );
        device.check_alive().unwrap();
        assert!(
            args.contains("memory-backend-memfd,id=mem,size=512M,share=on"),
            "{args}"
        );
        device.stop().unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    /// `-flag value` pairs of a shell command line, quotes dropped.
    fn flag_values(text: &str) -> Vec<(String, String)> {
        let words: Vec<String> = text
            .split_whitespace()
            .map(|word| word.replace('"', ""))
            .collect();
        words
            .windows(2)
            .filter(|pair| pair[0].starts_with('-') && !pair[1].starts_with('-'))
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect()
    }

    #[test]
    fn the_operators_qemu_example_matches_what_the_e2e_test_runs() {
        let example = fs::read_to_string(
            crate::cmd::workspace_root().join("deploy/examples/qemu-vhost-user-snd.sh"),
        )
        .unwrap();
        let example = flag_values(&example.replace("\\\n", " "));
        let tested = vhost_user_snd_args(Path::new("/run/paravox/vm1.sock"), true);
        for pair in tested.chunks(2) {
            let (flag, value) = (&pair[0], &pair[1]);
            let kind = value.split(',').next().unwrap();
            let (_, theirs) = example
                .iter()
                .find(|(f, v)| f == flag && v.split(',').next() == Some(kind))
                .unwrap_or_else(|| panic!("the example has no {flag} {kind}"));
            // Every option the e2e test relies on, with the same value; the example's
            // sizes and paths are its shell variables, and it may add options.
            for option in value.split(',').skip(1) {
                let (key, expected) = option.split_once('=').unwrap();
                let found = theirs
                    .split(',')
                    .find_map(|o| o.strip_prefix(&format!("{key}=")))
                    .unwrap_or_else(|| panic!("{flag} {theirs} lacks {key}="));
                if !matches!(key, "size" | "path") {
                    assert_eq!(found, expected, "{flag} {theirs}: {key}");
                }
            }
        }
    }

    #[test]
    fn a_socket_path_bound_anew_has_a_new_identity() {
        let dir = std::env::temp_dir().join(format!("xtask-e2e-identity-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vsnd.sock");
        fs::write(&path, "").unwrap();
        let first = SocketIdentity::of(&path).unwrap();
        assert_eq!(SocketIdentity::of(&path), Some(first));
        fs::remove_file(&path).unwrap();
        assert_eq!(SocketIdentity::of(&path), None);
        // File times tick with the kernel's coarse clock (a few ms).
        thread::sleep(Duration::from_millis(20));
        fs::write(&path, "").unwrap();
        assert_ne!(SocketIdentity::of(&path), Some(first));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_daemon_that_dies_at_once_is_reported_with_its_log() {
        let script = "[ \"$1\" = --probe ] && exit 0\necho 'error: unexpected argument --virtio-socket' >&2\nexit 2\n";
        let (dir, binary) = fake_paravox("dies", script);
        let error = DeviceSpec::Paravox { binary }
            .start(&dir, Direction::Playback)
            .unwrap_err()
            .to_string();
        assert!(error.contains("paravox exited on its own"), "{error}");
        assert!(
            error.contains("unexpected argument --virtio-socket"),
            "{error}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_paravox_without_the_virtio_front_end_is_recognised() {
        let script = "[ \"$2\" = --help ] && echo '      --output <OUTPUT>'\nexit 0\n";
        let (dir, binary) = fake_paravox("no-virtio", script);
        assert!(!paravox_has_virtio_backend(&binary).unwrap());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn devices_give_qemu_a_sound_card_and_a_machine() {
        let builtin = Device::QemuBuiltin {
            wav_path: "/tmp/x.wav".into(),
            direction: Direction::Playback,
        };
        let args = builtin.qemu_args().join(" ");
        assert!(
            args.contains("-device virtio-sound-pci,audiodev=snd0"),
            "{args}"
        );
        assert!(
            args.contains("path=/tmp/x.wav,out.frequency=48000"),
            "{args}"
        );
        assert!(args.contains("-machine q35"), "{args}");
        let serve = |controls| {
            serve_args(
                Path::new("/s.sock"),
                Path::new("/o.wav"),
                Path::new("/d"),
                controls,
            )
            .join(" ")
        };
        assert_eq!(
            serve(false),
            "serve --virtio-socket /s.sock --output wav:/o.wav,rate=48000,channels=2,format=s16_le --input tone:880 --state-dir /d"
        );
        assert_eq!(serve(true), format!("{} --virtio-controls", serve(false)));
    }
}
