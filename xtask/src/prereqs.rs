//! Machine prerequisites: the Debian packages and rustup targets the build and the tests
//! need. On a machine xtask may provision (root, Debian, apt-get) missing ones are
//! installed; anywhere else xtask prints the exact commands to run and fails.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd;

/// A Debian package the build or the tests need, and how to tell it is installed.
#[derive(Debug)]
struct DebianPackage {
    name: &'static str,
    probe: Probe,
    needed_for: &'static str,
}

/// How to tell a package is installed without asking dpkg, so the check also holds on
/// machines that got the tool some other way.
#[derive(Debug)]
enum Probe {
    /// An executable of this name is on `PATH`.
    Command(&'static str),
    /// `pkg-config --exists` knows this library.
    PkgConfig(&'static str),
}

/// Every Debian package the workspace needs. Add new needs here (qemu, chromium…): the
/// check, the install and the printed instructions all follow this list.
const DEBIAN_PACKAGES: &[DebianPackage] = &[
    DebianPackage {
        name: "pkg-config",
        probe: Probe::Command("pkg-config"),
        needed_for: "finding the ALSA library at build time",
    },
    DebianPackage {
        name: "libasound2-dev",
        probe: Probe::PkgConfig("alsa"),
        needed_for: "the ALSA headers the alsa crate builds against",
    },
    DebianPackage {
        name: "alsa-utils",
        probe: Probe::Command("aplay"),
        needed_for: "tests that drive ALSA devices",
    },
    DebianPackage {
        name: "sox",
        probe: Probe::Command("sox"),
        needed_for: "tests that generate and measure audio",
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
        }
    }

    fn describe(&self) -> String {
        let probe = match self.probe {
            Probe::Command(name) => format!("`{name}` not on PATH"),
            Probe::PkgConfig(library) => format!("`pkg-config --exists {library}` failed"),
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
        cmd::run(apt_get().arg("update"))?;
        cmd::run(
            apt_get()
                .args(["install", "-y", "--no-install-recommends"])
                .args(missing.package_names()),
        )?;
    }
    for target in &missing.targets {
        println!("installing rust target {target}");
        cmd::run(Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
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
        println!(
            "  {sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends {}",
            missing.package_names().join(" ")
        );
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
