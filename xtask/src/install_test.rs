//! `cargo xtask install-test` (also the last step of `cargo xtask test`): the Debian
//! package installed the way an operator installs it, into a Debian 12 root that has
//! nothing else. `apt-get install ./paravox_*.deb` resolves the package's `Depends` from
//! Debian's archive, so a missing runtime dependency fails here instead of on a host.
//!
//! The minimal root (`debootstrap --variant=minbase bookworm`) is made once and kept in
//! `TARGET/install-test/bookworm-minbase`; every run installs into a fresh copy of it.
//! Needs root (debootstrap, chroot, mounting /proc).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use paravox_e2e::{SampleFormat, ToneSpec, Wav, cmd};

use crate::dist;

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Written last into the cached root: a root without it is an interrupted debootstrap.
const COMPLETE_MARKER: &str = ".paravox-minbase-complete";

/// The tone played inside the root: one second, dithered S16, so a bit-exact copy proves
/// every sample arrived.
const TONE: ToneSpec = ToneSpec {
    file_name: "tone.wav",
    rate: 48_000,
    channels: 2,
    format: SampleFormat::S16,
    frequency: 440.0,
    seconds: 1,
    amplitude: 0.5,
};

pub fn run() -> Result<()> {
    let started = Instant::now();
    let uid = cmd::output(Command::new("id").arg("-u"))?;
    ensure!(
        uid.trim() == "0",
        "the install test needs root (debootstrap, chroot, mount)"
    );
    for tool in ["debootstrap", "chroot", "dpkg-deb", "dpkg-shlibdeps"] {
        ensure!(
            cmd::on_path(tool),
            "{tool} is missing: run `cargo xtask test` once (it installs the prerequisites) \
             or apt-get install debootstrap dpkg-dev"
        );
    }
    let package = dist::build()?;
    let built = started.elapsed();

    let work = paravox_e2e::target_directory()?.join("install-test");
    let base = work.join("bookworm-minbase");
    let bootstrap_started = Instant::now();
    let bootstrapped = ensure_base(&base)?;
    let bootstrap_time = bootstrap_started.elapsed();

    let root = work.join("root");
    let copy_started = Instant::now();
    fresh_copy(&base, &root)?;
    let copy_time = copy_started.elapsed();

    let install_started = Instant::now();
    let proc_mount = ProcMount::mount(&root)?;
    let result = install_and_check(&root, &package);
    drop(proc_mount);
    result?;
    println!(
        "install test passed: package {} ({:.1} MiB); release build + dist {:.1} s; \
         debootstrap {} {:.1} s; fresh copy {:.1} s; install + checks {:.1} s; total {:.1} s",
        file_name(&package.deb),
        package.size_bytes as f64 / (1024.0 * 1024.0),
        built.as_secs_f64(),
        if bootstrapped { "(new)" } else { "(cached)" },
        bootstrap_time.as_secs_f64(),
        copy_time.as_secs_f64(),
        install_started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Makes the cached minimal root unless a complete one exists; true when it was made.
fn ensure_base(base: &Path) -> Result<bool> {
    if base.join(COMPLETE_MARKER).is_file() {
        println!("using the cached {SUITE} root {}", base.display());
        return Ok(false);
    }
    unmount_below(base)?;
    if base.exists() {
        fs::remove_dir_all(base)
            .with_context(|| format!("removing the incomplete root {}", base.display()))?;
    }
    if let Some(parent) = base.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    cmd::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", SUITE])
            .arg(base)
            .arg(MIRROR),
    )?;
    fs::write(base.join(COMPLETE_MARKER), "").context("marking the root complete")?;
    Ok(true)
}

/// `cp -a base root`, after removing what an earlier run left.
fn fresh_copy(base: &Path, root: &Path) -> Result<()> {
    unmount_below(root)?;
    if root.exists() {
        fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    cmd::run(Command::new("cp").arg("-a").arg(base).arg(root))?;
    // Name resolution for apt inside the root.
    fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"))
        .context("copying /etc/resolv.conf into the root")?;
    Ok(())
}

/// Unmounts every mount at or below `dir` (deepest first), so removing it never reaches
/// into the host's /proc.
fn unmount_below(dir: &Path) -> Result<()> {
    let Ok(dir) = dir.canonicalize() else {
        return Ok(());
    };
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let mut below: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(&dir))
        .collect();
    below.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    for point in below {
        cmd::run(Command::new("umount").arg("--lazy").arg(&point))?;
    }
    Ok(())
}

/// /proc mounted in the root for as long as this lives.
#[derive(Debug)]
struct ProcMount {
    point: PathBuf,
}

impl ProcMount {
    fn mount(root: &Path) -> Result<ProcMount> {
        let point = root.join("proc");
        cmd::run(
            Command::new("mount")
                .args(["-t", "proc", "proc"])
                .arg(&point),
        )?;
        Ok(ProcMount { point })
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        if let Err(error) = cmd::run(Command::new("umount").arg("--lazy").arg(&self.point)) {
            eprintln!("warning: {error:#}");
        }
    }
}

/// A command run inside the root with a clean environment.
fn chroot(root: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("chroot");
    command
        .arg(root)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .env("DEBIAN_FRONTEND", "noninteractive");
    command
}

fn install_and_check(root: &Path, package: &dist::Package) -> Result<()> {
    let deb_name = file_name(&package.deb);
    fs::copy(&package.deb, root.join("tmp").join(&deb_name))
        .context("copying the package into the root")?;
    cmd::run(&mut chroot(root, &["apt-get", "update", "-q"]))?;
    let deb_in_root = format!("/tmp/{deb_name}");
    cmd::run(&mut chroot(
        root,
        &[
            "apt-get",
            "install",
            "-y",
            "-q",
            "--no-install-recommends",
            &deb_in_root,
        ],
    ))?;

    let version = cmd::output(&mut chroot(root, &["paravox", "--version"]))?;
    println!("{}", version.trim());
    ensure!(
        version.trim() == format!("paravox {}", dist::VERSION),
        "`paravox --version` printed {version:?}"
    );
    let help = cmd::output(&mut chroot(root, &["paravox", "serve", "--help"]))?;
    ensure!(
        help.contains("--virtio-socket") && help.contains("--config"),
        "`paravox serve --help` lacks its options:\n{help}"
    );
    let checked = cmd::output(&mut chroot(
        root,
        &["paravox", "check-config", "/etc/paravox/paravox.toml"],
    ))?;
    println!("{}", checked.trim());
    check_installed_files(root)?;
    check_account(root)?;
    check_play(root)?;
    check_service(root)
}

fn check_installed_files(root: &Path) -> Result<()> {
    for path in [
        "usr/bin/paravox",
        "lib/systemd/system/paravox.service",
        "etc/paravox/paravox.toml",
        "usr/share/man/man1/paravox.1.gz",
        "usr/share/man/man1/paravox-serve.1.gz",
        "usr/share/bash-completion/completions/paravox",
        "usr/share/zsh/vendor-completions/_paravox",
        "usr/share/fish/vendor_completions.d/paravox.fish",
        "usr/share/doc/paravox/examples/libvirt-domain.xml",
    ] {
        ensure!(root.join(path).is_file(), "/{path} was not installed");
    }
    Ok(())
}

/// The postinst made the system account, in group audio.
fn check_account(root: &Path) -> Result<()> {
    let user = cmd::output(&mut chroot(root, &["id", "paravox"]))?;
    println!("{}", user.trim());
    ensure!(
        user.contains("(audio)"),
        "user paravox is not in group audio: {user}"
    );
    let passwd = cmd::output(&mut chroot(root, &["getent", "passwd", "paravox"]))?;
    let uid: u32 = passwd
        .split(':')
        .nth(2)
        .and_then(|uid| uid.parse().ok())
        .with_context(|| format!("odd passwd entry {passwd:?}"))?;
    ensure!(uid < 1000, "paravox is not a system user (uid {uid})");
    Ok(())
}

/// `paravox play` to a `wav:` endpoint inside the root, compared bit for bit.
fn check_play(root: &Path) -> Result<()> {
    fs::write(root.join("tmp/tone.wav"), TONE.wav_file()).context("writing the tone")?;
    let out = root.join("tmp/played.wav");
    if out.exists() {
        fs::remove_file(&out).context("removing an old played.wav")?;
    }
    cmd::run(&mut chroot(
        root,
        &[
            "paravox",
            "play",
            "/tmp/tone.wav",
            "--to",
            "wav:/tmp/played.wav,rate=48000,channels=2,format=s16_le",
        ],
    ))?;
    let played = Wav::read(&out)?;
    if played.rate != TONE.rate || played.channels != TONE.channels {
        bail!(
            "played.wav is {} Hz {} ch, expected {} Hz {} ch",
            played.rate,
            played.channels,
            TONE.rate,
            TONE.channels
        );
    }
    let expected = TONE.data_bytes();
    ensure!(
        played.data == expected,
        "played.wav holds {} bytes that differ from the tone's {} bytes",
        played.data.len(),
        expected.len()
    );
    println!(
        "paravox play inside the root: {} frames copied bit-exactly",
        TONE.frames()
    );
    Ok(())
}

/// The installed unit's commands run the way systemd runs them, as far as a chroot can:
/// its user and groups, its state and runtime directories made for that user, and
/// `NOTIFY_SOCKET`. The daemon must start on the installed configuration, say READY=1,
/// create the configured vhost-user sockets, reload on SIGHUP and stop on SIGTERM.
/// (The API listens on a free port, as a drop-in would set, so a daemon on the host
/// keeps its own.)
fn check_service(root: &Path) -> Result<()> {
    let unit = fs::read_to_string(root.join("lib/systemd/system/paravox.service"))
        .context("reading the installed unit")?;
    let setting = |key: &str| -> Result<String> {
        unit.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
            .with_context(|| format!("the unit has no {key}="))
    };
    let user = setting("User")?;
    let id = |args: &[&str]| -> Result<String> {
        Ok(cmd::output(&mut chroot(root, args))?.trim().to_owned())
    };
    let uid = id(&["id", "-u", &user])?;
    let gid = id(&["id", "-g", &user])?;
    let group = setting("Group")?;
    ensure!(
        id(&["getent", "group", &group])?.split(':').nth(2) == Some(gid.as_str()),
        "Group={group} is not {user}'s primary group"
    );
    let supplementary = id(&["getent", "group", &setting("SupplementaryGroups")?])?;
    let audio_gid = supplementary
        .split(':')
        .nth(2)
        .unwrap_or_default()
        .to_owned();
    for key in ["StateDirectory", "RuntimeDirectory"] {
        let base = if key == "StateDirectory" {
            "var/lib"
        } else {
            "run"
        };
        let dir = format!("/{base}/{}", setting(key)?);
        fs::create_dir_all(root.join(&dir[1..])).with_context(|| format!("creating {dir}"))?;
        cmd::run(&mut chroot(root, &["chown", &format!("{uid}:{gid}"), &dir]))?;
    }

    let notify_path = root.join("run/install-test-notify");
    if notify_path.exists() {
        fs::remove_file(&notify_path).context("removing an old notify socket")?;
    }
    let notify = UnixDatagram::bind(&notify_path).context("binding the notify socket")?;
    fs::set_permissions(&notify_path, fs::Permissions::from_mode(0o666))
        .context("opening the notify socket to the service user")?;
    let as_service = |command: &str| -> Command {
        let mut words: Vec<&str> = command.split_whitespace().collect();
        let mut chrooted = Command::new("chroot");
        chrooted
            .arg(format!("--userspec={uid}:{gid}"))
            .arg(format!("--groups={audio_gid}"))
            .arg(root)
            .args(words.drain(..))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8");
        for assignment in unit
            .lines()
            .filter_map(|line| line.strip_prefix("Environment="))
        {
            if let Some((key, value)) = assignment.split_once('=') {
                chrooted.env(key, value);
            }
        }
        chrooted
    };
    cmd::run(&mut as_service(&setting("ExecStartPre")?))?;
    let mut daemon = as_service(&setting("ExecStart")?);
    daemon
        .args(["--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", "/run/install-test-notify")
        .stdin(Stdio::null());
    println!("$ {}", cmd::display(&daemon));
    let mut child = daemon.spawn().context("starting the service's ExecStart")?;
    let result = drive_service(root, &notify, child.id());
    if result.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().context("waiting for the daemon")?;
    result?;
    ensure!(
        status.success(),
        "the daemon exited with {status} after SIGTERM"
    );
    println!(
        "the installed unit's commands ran as {user} (uid {uid}, groups {gid},{audio_gid}): ready, reloaded, stopped"
    );
    Ok(())
}

fn drive_service(root: &Path, notify: &UnixDatagram, pid: u32) -> Result<()> {
    let ready = notification(notify, "READY=1")?;
    println!("sd_notify: {}", ready.replace('\n', " "));
    for socket in ["run/paravox/vm1.sock", "run/paravox/vm2.sock"] {
        ensure!(
            root.join(socket).exists(),
            "the configured vhost-user socket /{socket} was not created"
        );
    }
    ensure!(
        root.join("var/lib/paravox/token").is_file(),
        "no API token in the state directory"
    );
    signal(pid, libc::SIGHUP)?;
    notification(notify, "RELOADING=1")?;
    let reloaded = notification(notify, "READY=1")?;
    println!("sd_notify after SIGHUP: {}", reloaded.replace('\n', " "));
    signal(pid, libc::SIGTERM)?;
    notification(notify, "STOPPING=1")?;
    Ok(())
}

/// Waits for a notification containing `wanted` (others are skipped), up to 30 s.
fn notification(socket: &UnixDatagram, wanted: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure!(!left.is_zero(), "no {wanted} from the daemon within 30 s");
        socket
            .set_read_timeout(Some(left))
            .context("setting the notify timeout")?;
        let length = socket
            .recv(&mut buffer)
            .with_context(|| format!("waiting for {wanted}"))?;
        let message = String::from_utf8_lossy(&buffer[..length]).into_owned();
        if message.contains(wanted) {
            return Ok(message);
        }
    }
}

fn signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    if unsafe { libc::kill(pid, signal) } != 0 {
        bail!("kill({pid}, {signal}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}
