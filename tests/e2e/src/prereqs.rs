//! Machine prerequisites: the Debian packages and rustup targets the build and the tests
//! need. On a machine xtask may provision (root, Debian, apt-get) missing ones are
//! installed; anywhere else xtask prints the exact commands to run and fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// A Debian package the build or the tests need, and how to tell it is installed.
#[derive(Debug)]
struct DebianPackage {
    name: &'static str,
    probe: Probe,
    needed_for: &'static str,
    /// Installed from the release's backports suite (`-t CODENAME-backports`), which is
    /// added to apt's sources first when missing.
    from_backports: bool,
}

/// How to tell a package is installed without asking dpkg, so the check also holds on
/// machines that got the tool some other way.
#[derive(Debug)]
enum Probe {
    /// An executable of this name is on `PATH`.
    Command(&'static str),
    /// `pkg-config --exists` knows this library.
    PkgConfig(&'static str),
    /// This file is a statically linked executable (the guest initramfs has no libc).
    StaticExecutable(&'static str),
    /// The dynamic linker's cache (`ldconfig -p`) lists this shared library.
    SharedLibrary(&'static str),
    /// This QEMU binary knows this `-device` (new enough for it).
    QemuDevice {
        binary: &'static str,
        device: &'static str,
    },
}

/// Every Debian package the workspace needs. Add new needs here (qemu, chromium…): the
/// check, the install and the printed instructions all follow this list.
const DEBIAN_PACKAGES: &[DebianPackage] = &[
    DebianPackage {
        name: "pkg-config",
        probe: Probe::Command("pkg-config"),
        needed_for: "finding the ALSA library at build time",
        from_backports: false,
    },
    DebianPackage {
        name: "libasound2-dev",
        probe: Probe::PkgConfig("alsa"),
        needed_for: "the ALSA headers the alsa crate builds against",
        from_backports: false,
    },
    DebianPackage {
        name: "alsa-utils",
        probe: Probe::Command("aplay"),
        needed_for: "tests that drive ALSA devices, and the e2e guest's aplay/arecord/amixer",
        from_backports: false,
    },
    DebianPackage {
        name: "sox",
        probe: Probe::Command("sox"),
        needed_for: "tests that generate and measure audio",
        from_backports: false,
    },
    DebianPackage {
        name: "busybox-static",
        probe: Probe::StaticExecutable("/bin/busybox"),
        needed_for: "the e2e guest's shell and tools",
        from_backports: false,
    },
    DebianPackage {
        name: "xz-utils",
        probe: Probe::Command("xz"),
        needed_for: "decompressing the e2e guest's kernel modules",
        from_backports: false,
    },
    DebianPackage {
        name: "chromium",
        probe: Probe::Command("chromium"),
        needed_for: "the dashboard's browser test (driven by playwright-core, no browser download)",
        from_backports: false,
    },
    // Loaded at run time for Opus monitors (`?format=opus`); its tests require it.
    DebianPackage {
        name: "libopus0",
        probe: Probe::SharedLibrary("libopus.so.0"),
        needed_for: "Opus monitors and their tests (paravox loads libopus at run time)",
        from_backports: false,
    },
    DebianPackage {
        name: "systemd",
        probe: Probe::Command("systemd-analyze"),
        needed_for: "`systemd-analyze verify` of deploy/systemd/paravox.service",
        from_backports: false,
    },
    DebianPackage {
        name: "dpkg-dev",
        probe: Probe::Command("dpkg-shlibdeps"),
        needed_for: "computing the Debian package's Depends (cargo xtask dist)",
        from_backports: false,
    },
    DebianPackage {
        name: "debootstrap",
        probe: Probe::Command("debootstrap"),
        needed_for: "the install test's fresh Debian 12 root",
        from_backports: false,
    },
    // The pipewire: endpoint's tests start a real PipeWire daemon (1.4 in backports, as
    // desktops run it; Debian 12's own is 0.3.65). The daemon, pw-link and pw-dump; the
    // library it pulls in is what paravox loads at run time.
    DebianPackage {
        name: "pipewire-bin",
        probe: Probe::Command("pw-link"),
        needed_for: "the PipeWire endpoint's tests (a headless pipewire daemon, pw-link, pw-dump)",
        from_backports: true,
    },
    // Debian 12's own QEMU (7.2) predates vhost-user-snd-pci (8.2).
    DebianPackage {
        name: "qemu-system-x86",
        probe: Probe::QemuDevice {
            binary: "qemu-system-x86_64",
            device: "vhost-user-snd-pci",
        },
        needed_for: "the e2e guest (QEMU >= 8.2 for vhost-user-snd-pci)",
        from_backports: true,
    },
];

/// Rust targets the workspace builds for besides the host.
const RUSTUP_TARGETS: &[&str] = &["wasm32-unknown-unknown"];

impl DebianPackage {
    fn is_installed(&self) -> bool {
        match self.probe {
            Probe::Command(name) => cmd::on_path(name),
            Probe::PkgConfig(library) => {
                cmd::succeeds(Command::new("pkg-config").args(["--exists", library]))
            }
            Probe::StaticExecutable(path) => {
                fs::read(path).is_ok_and(|contents| is_static_executable(&contents))
            }
            Probe::SharedLibrary(soname) => cmd::output(Command::new("ldconfig").arg("-p"))
                .is_ok_and(|cache| cache.contains(&format!("{soname} "))),
            Probe::QemuDevice { binary, device } => {
                cmd::output(Command::new(binary).args(["-device", "help"]))
                    .is_ok_and(|listing| listing.contains(&format!("name \"{device}\"")))
            }
        }
    }

    fn describe(&self) -> String {
        let probe = match self.probe {
            Probe::Command(name) => format!("`{name}` not on PATH"),
            Probe::PkgConfig(library) => format!("`pkg-config --exists {library}` failed"),
            Probe::StaticExecutable(path) => format!("{path} missing or not statically linked"),
            Probe::SharedLibrary(soname) => format!("`ldconfig -p` does not list {soname}"),
            Probe::QemuDevice { binary, device } => {
                format!("`{binary} -device help` does not list {device}")
            }
        };
        format!("{} ({}; {probe})", self.name, self.needed_for)
    }
}

/// What is missing on this machine right now.
#[derive(Debug, Default)]
struct Missing {
    packages: Vec<&'static DebianPackage>,
    targets: Vec<&'static str>,
}

impl Missing {
    fn find() -> Result<Self> {
        let packages = DEBIAN_PACKAGES
            .iter()
            .filter(|package| !package.is_installed())
            .collect();
        let installed_targets = installed_targets()?;
        let targets = RUSTUP_TARGETS
            .iter()
            .copied()
            .filter(|target| !installed_targets.iter().any(|t| t == target))
            .collect();
        Ok(Self { packages, targets })
    }

    fn is_empty(&self) -> bool {
        self.packages.is_empty() && self.targets.is_empty()
    }

    fn package_names(&self) -> Vec<&'static str> {
        self.packages.iter().map(|package| package.name).collect()
    }

    /// The missing packages of one suite: the release's own, or its backports.
    fn names_from(&self, backports: bool) -> Vec<&'static str> {
        self.packages
            .iter()
            .filter(|package| package.from_backports == backports)
            .map(|package| package.name)
            .collect()
    }

    fn print(&self) {
        println!("prerequisites missing:");
        for package in &self.packages {
            println!("  {}", package.describe());
        }
        for target in &self.targets {
            println!("  rust target {target} (not installed for the active toolchain)");
        }
    }
}

/// Makes sure every prerequisite is present, installing them where xtask may.
pub fn ensure_prereqs() -> Result<()> {
    let missing = Missing::find()?;
    if missing.is_empty() {
        let packages: Vec<_> = DEBIAN_PACKAGES.iter().map(|p| p.name).collect();
        println!(
            "prerequisites present: {}; rust targets: {}",
            packages.join(", "),
            RUSTUP_TARGETS.join(", ")
        );
        return Ok(());
    }
    missing.print();

    let machine = Machine::detect()?;
    if !machine.can_install(&missing) {
        print_instructions(&missing, &machine);
        bail!("prerequisites missing: install them with the commands above");
    }
    install(&missing)?;

    let still_missing = Missing::find()?;
    if !still_missing.is_empty() {
        still_missing.print();
        bail!("prerequisites still missing after installing them");
    }
    println!("prerequisites installed");
    Ok(())
}

/// What xtask is allowed to do on this machine.
#[derive(Debug)]
struct Machine {
    is_root: bool,
    is_debian: bool,
    has_apt_get: bool,
    has_rustup: bool,
}

impl Machine {
    fn detect() -> Result<Self> {
        let uid = cmd::output(Command::new("id").arg("-u"))?;
        Ok(Self {
            is_root: uid.trim() == "0",
            is_debian: Path::new("/etc/debian_version").exists(),
            has_apt_get: cmd::on_path("apt-get"),
            has_rustup: cmd::on_path("rustup"),
        })
    }

    /// Root on Debian with apt-get (a CI runner or a fresh development machine, where
    /// installing system packages is expected rather than a surprise), and rustup when a
    /// target is missing.
    fn can_install(&self, missing: &Missing) -> bool {
        self.is_root
            && self.is_debian
            && self.has_apt_get
            && (missing.targets.is_empty() || self.has_rustup)
    }
}

fn install(missing: &Missing) -> Result<()> {
    if !missing.packages.is_empty() {
        println!(
            "installing Debian packages: {}",
            missing.package_names().join(" ")
        );
        let backports = missing.names_from(true);
        let suite = if backports.is_empty() {
            None
        } else {
            Some(add_backports_suite()?.0)
        };
        cmd::run(apt_get().arg("update"))?;
        let release = missing.names_from(false);
        if !release.is_empty() {
            cmd::run(
                apt_get()
                    .args(["install", "-y", "--no-install-recommends"])
                    .args(release),
            )?;
        }
        if let Some(suite) = suite {
            cmd::run(
                apt_get()
                    .args(["install", "-y", "--no-install-recommends", "-t", &suite])
                    .args(backports),
            )?;
        }
    }
    for target in &missing.targets {
        println!("installing rust target {target}");
        cmd::run(Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
}

/// Makes sure apt knows the release's backports suite and has its package lists: adds
/// the suite when missing (then runs `apt-get update`), or runs `apt-get update` when
/// `refresh` asks for it. Needs root on Debian; elsewhere it says what to do.
pub fn ensure_backports_suite(refresh: bool) -> Result<()> {
    let machine = Machine::detect()?;
    if !(machine.is_root && machine.is_debian && machine.has_apt_get) {
        bail!(
            "apt needs the Debian backports suite and fresh package lists: add it to /etc/apt/sources.list.d/ \
             (the same mirror as the release, suite CODENAME-backports) and run `apt-get update` as root"
        );
    }
    let (_, added) = add_backports_suite()?;
    if added || refresh {
        cmd::run(apt_get().arg("update"))?;
    }
    Ok(())
}

/// Adds `CODENAME-backports` to apt's sources unless some source already names it.
/// Idempotent; returns the suite's name and whether it was added.
fn add_backports_suite() -> Result<(String, bool)> {
    let codename = debian_codename()?;
    let suite = format!("{codename}-backports");
    match plan_backports_source(&read_apt_sources()?, &codename)? {
        BackportsSource::Present => Ok((suite, false)),
        BackportsSource::Add {
            file_name,
            contents,
        } => {
            let path = Path::new(APT_SOURCES_DIR).join(file_name);
            println!("adding {suite} to apt's sources: {}", path.display());
            fs::write(&path, contents)
                .with_context(|| format!("could not write {}", path.display()))?;
            Ok((suite, true))
        }
    }
}

const APT_SOURCES_LIST: &str = "/etc/apt/sources.list";
const APT_SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// What to do about the backports suite.
#[derive(Debug, PartialEq, Eq)]
enum BackportsSource {
    Present,
    /// Write `contents` to `sources.list.d/file_name`.
    Add {
        file_name: String,
        contents: String,
    },
}

/// Every apt source file (one-line `.list` and deb822 `.sources`) with its contents.
fn read_apt_sources() -> Result<Vec<(PathBuf, String)>> {
    let mut paths = vec![PathBuf::from(APT_SOURCES_LIST)];
    if let Ok(entries) = fs::read_dir(APT_SOURCES_DIR) {
        let mut listed: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "list" || extension == "sources")
            })
            .collect();
        listed.sort();
        paths.extend(listed);
    }
    Ok(paths
        .into_iter()
        .filter_map(|path| fs::read_to_string(&path).ok().map(|text| (path, text)))
        .collect())
}

/// Whether `codename-backports` is configured, and if not, the entry that adds it: a copy
/// of the release's own entry (same mirror, components and signing key), in the same
/// style (deb822 `.sources` or one-line `.list`).
fn plan_backports_source(sources: &[(PathBuf, String)], codename: &str) -> Result<BackportsSource> {
    let suite = format!("{codename}-backports");
    let names_suite = sources.iter().any(|(_, text)| {
        active_lines(text).any(|line| line.split_whitespace().any(|word| word == suite))
    });
    if names_suite {
        return Ok(BackportsSource::Present);
    }
    for (path, text) in sources {
        let planned = if path
            .extension()
            .is_some_and(|extension| extension == "sources")
        {
            deb822_copy(text, codename, &suite)
                .map(|contents| (format!("{suite}.sources"), contents))
        } else {
            one_line_copy(text, codename, &suite)
                .map(|contents| (format!("{suite}.list"), contents))
        };
        if let Some((file_name, contents)) = planned {
            return Ok(BackportsSource::Add {
                file_name,
                contents,
            });
        }
    }
    bail!(
        "no apt source for the {codename} release to copy for {suite}: add {suite} to apt's sources by hand"
    )
}

/// The lines of an apt source file that are not comments.
fn active_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
}

/// A deb822 stanza for `suite`, copied from the stanza that serves `codename`.
fn deb822_copy(text: &str, codename: &str, suite: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            active_lines(stanza)
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
        };
        let has = |name: &str, word: &str| {
            field(name).is_some_and(|value| value.split_whitespace().any(|w| w == word))
        };
        if !(has("Types", "deb") && has("Suites", codename)) {
            return None;
        }
        let mut contents = format!("Types: deb\nURIs: {}\nSuites: {suite}\n", field("URIs")?);
        for name in ["Components", "Signed-By"] {
            if let Some(value) = field(name) {
                contents.push_str(&format!("{name}: {value}\n"));
            }
        }
        Some(contents)
    })
}

/// A one-line entry (`deb [options] URI SUITE COMPONENT…`) for `suite`, copied from the
/// line that serves `codename`.
fn one_line_copy(text: &str, codename: &str, suite: &str) -> Option<String> {
    active_lines(text).find_map(|line| {
        let mut words: Vec<&str> = line.split_whitespace().collect();
        if words.first() != Some(&"deb") {
            return None;
        }
        let suite_at = if words.get(1).is_some_and(|word| word.starts_with('[')) {
            words.iter().position(|word| word.ends_with(']'))? + 2
        } else {
            2
        };
        if words.get(suite_at) != Some(&codename) {
            return None;
        }
        words[suite_at] = suite;
        Some(format!("{}\n", words.join(" ")))
    })
}

/// The Debian release's codename (`bookworm`), from /etc/os-release.
fn debian_codename() -> Result<String> {
    let os_release =
        fs::read_to_string("/etc/os-release").context("could not read /etc/os-release")?;
    os_release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|value| value.trim_matches('"').to_owned())
        .filter(|value| !value.is_empty())
        .context("/etc/os-release has no VERSION_CODENAME")
}

/// Whether an ELF executable has no program interpreter (`PT_INTERP`), i.e. is static.
/// 64-bit little-endian only: the e2e guest is x86_64.
pub fn is_static_executable(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let read = |at: usize, size: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(size)?)?;
        Some(
            field
                .iter()
                .rev()
                .fold(0, |value, &byte| value << 8 | u64::from(byte)),
        )
    };
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(table), Some(entry_size), Some(count)) =
        (read(0x20, 8), read(0x36, 2), read(0x38, 2))
    else {
        return false;
    };
    (0..count).all(|index| {
        let at = index
            .checked_mul(entry_size)
            .and_then(|offset| offset.checked_add(table))
            .and_then(|at| usize::try_from(at).ok());
        at.and_then(|at| read(at, 4))
            .is_some_and(|kind| kind != u64::from(PT_INTERP))
    })
}

fn apt_get() -> Command {
    let mut command = Command::new("apt-get");
    // No prompts: CI runs without standard input.
    command.env("DEBIAN_FRONTEND", "noninteractive");
    command
}

fn print_instructions(missing: &Missing, machine: &Machine) {
    println!("to install them, run:");
    if !missing.packages.is_empty() {
        let sudo = if machine.is_root { "" } else { "sudo " };
        let backports = missing.names_from(true);
        if !backports.is_empty() {
            println!(
                "  (add your release's backports suite to /etc/apt/sources.list.d/ first, for {})",
                backports.join(" ")
            );
        }
        let release = missing.names_from(false);
        println!("  {sudo}apt-get update");
        if !release.is_empty() {
            println!(
                "  {sudo}apt-get install -y --no-install-recommends {}",
                release.join(" ")
            );
        }
        if !backports.is_empty() {
            println!(
                "  {sudo}apt-get install -y --no-install-recommends -t CODENAME-backports {}",
                backports.join(" ")
            );
        }
        if !machine.is_debian {
            println!("  (those are Debian package names: install your distribution's equivalents)");
        }
    }
    for target in &missing.targets {
        println!("  rustup target add {target}");
        if !machine.has_rustup {
            println!(
                "  (rustup is not on PATH: install the {target} standard library for your toolchain)"
            );
        }
    }
}

/// The targets whose standard library the active toolchain has.
fn installed_targets() -> Result<Vec<String>> {
    if cmd::on_path("rustup") {
        let listed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
        return Ok(listed.lines().map(|line| line.trim().to_owned()).collect());
    }
    // Without rustup, a target is installed when the sysroot holds its standard library.
    let sysroot = cmd::output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let rustlib = Path::new(sysroot.trim()).join("lib/rustlib");
    Ok(RUSTUP_TARGETS
        .iter()
        .filter(|target| rustlib.join(target).is_dir())
        .map(|target| (*target).to_owned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(files: &[(&str, &str)]) -> Result<BackportsSource> {
        let sources: Vec<_> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
            .collect();
        plan_backports_source(&sources, "bookworm")
    }

    const DEB822: &str = "Types: deb\n\
        # http://snapshot.debian.org/archive/debian/20250520T000000Z\n\
        URIs: http://deb.debian.org/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
        \n\
        Types: deb\n\
        URIs: http://deb.debian.org/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

    #[test]
    fn a_deb822_release_entry_is_copied_for_backports() {
        let planned = plan(&[
            ("/etc/apt/sources.list", "# empty\n"),
            ("/etc/apt/sources.list.d/debian.sources", DEB822),
        ])
        .unwrap();
        assert_eq!(
            planned,
            BackportsSource::Add {
                file_name: "bookworm-backports.sources".to_owned(),
                contents: "Types: deb\n\
                    URIs: http://deb.debian.org/debian\n\
                    Suites: bookworm-backports\n\
                    Components: main\n\
                    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                    .to_owned(),
            }
        );
    }

    #[test]
    fn a_one_line_release_entry_is_copied_for_backports() {
        let planned = plan(&[(
            "/etc/apt/sources.list",
            "deb [signed-by=/k.gpg] http://mirror/debian bookworm main contrib\n\
             deb http://security/debian-security bookworm-security main\n",
        )])
        .unwrap();
        assert_eq!(
            planned,
            BackportsSource::Add {
                file_name: "bookworm-backports.list".to_owned(),
                contents:
                    "deb [signed-by=/k.gpg] http://mirror/debian bookworm-backports main contrib\n"
                        .to_owned(),
            }
        );
    }

    #[test]
    fn backports_already_configured_is_left_alone() {
        let with_backports =
            format!("{DEB822}\nTypes: deb\nURIs: http://x/debian\nSuites: bookworm-backports\n");
        let planned = plan(&[("/etc/apt/sources.list.d/debian.sources", &with_backports)]).unwrap();
        assert_eq!(planned, BackportsSource::Present);
        // Commented out does not count.
        let commented = plan(&[
            (
                "/etc/apt/sources.list",
                "# deb http://x/debian bookworm-backports main\n",
            ),
            ("/etc/apt/sources.list.d/debian.sources", DEB822),
        ])
        .unwrap();
        assert!(matches!(commented, BackportsSource::Add { .. }));
    }

    #[test]
    fn no_release_entry_is_an_error() {
        assert!(plan(&[("/etc/apt/sources.list", "deb http://x/debian trixie main\n")]).is_err());
    }

    #[test]
    fn this_machines_busybox_probe_reads_elf_headers() {
        assert!(!is_static_executable(b"#!/bin/sh\n"));
        assert!(!is_static_executable(b""));
        // A program header table at the end of the address space is garbage, not a panic.
        let mut garbage = b"\x7fELF\x02\x01".to_vec();
        garbage.resize(0x40, 0xff);
        assert!(!is_static_executable(&garbage));
        // Any dynamically linked binary on the machine has PT_INTERP.
        let ls = fs::read("/bin/ls").unwrap();
        assert!(!is_static_executable(&ls));
    }
}
