//! `cargo xtask dist`: what an operator installs. The release binary's man pages and
//! shell completions (from its clap definitions, via the hidden `paravox generate-docs`),
//! and a Debian package built here with `dpkg-deb --build`: binary, systemd unit, example
//! configuration (also the conffile `/etc/paravox/paravox.toml`), man pages, completions
//! and the maintainer scripts in `deploy/debian/`. Everything lands in `TARGET/dist/`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cmd, e2e};

/// The package's version: the workspace's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Libraries the binary links against, by the Debian package that must provide them:
/// the computed `Depends` must name each (ALSA, glibc, the unwinder).
const EXPECTED_DEPENDS: [&str; 3] = ["libasound2", "libc6", "libgcc-s1"];

/// Used by the maintainer scripts and not Essential, so declared by hand.
const SCRIPT_DEPENDS: &str = "passwd";

/// What `dist` made.
#[derive(Debug)]
pub struct Package {
    pub deb: PathBuf,
    pub size_bytes: u64,
    pub depends: String,
}

pub fn run() -> Result<()> {
    let package = build()?;
    println!(
        "dist: {} ({:.1} MiB), Depends: {}",
        package.deb.display(),
        package.size_bytes as f64 / (1024.0 * 1024.0),
        package.depends
    );
    Ok(())
}

/// Builds the release binary, the docs and the package.
pub fn build() -> Result<Package> {
    let target = e2e::target_directory()?;
    let binary = e2e::build_paravox_release(&target)?;
    let dist = target.join("dist");
    let docs = dist.join("docs");
    remove_dir(&docs)?;
    cmd::run(Command::new(&binary).arg("generate-docs").arg(&docs))?;
    let depends = depends_of(&binary, &dist.join("shlibdeps"))?;
    let root = dist.join("deb-root");
    remove_dir(&root)?;
    lay_out(&root, &binary, &docs)?;
    write_control(&root, &depends)?;
    let architecture = cmd::output(Command::new("dpkg").arg("--print-architecture"))?;
    let deb = dist.join(format!("paravox_{VERSION}_{}.deb", architecture.trim()));
    cmd::run(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zxz"])
            .arg(&root)
            .arg(&deb),
    )?;
    let size_bytes = fs::metadata(&deb)
        .with_context(|| format!("{} was not written", deb.display()))?
        .len();
    Ok(Package {
        deb,
        size_bytes,
        depends,
    })
}

fn remove_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Copies `from` to `root/to` with `mode`, creating parents.
fn install(root: &Path, from: &Path, to: &str, mode: u32) -> Result<()> {
    let dest = root.join(to.trim_start_matches('/'));
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::copy(from, &dest)
        .with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
    fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dest.display()))?;
    Ok(())
}

/// The files of `dir` in name order.
fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn lay_out(root: &Path, binary: &Path, docs: &Path) -> Result<()> {
    let workspace = cmd::workspace_root();
    let deploy = workspace.join("deploy");
    // The release profile keeps line tables for profiling; a package does not need them.
    let stripped = root.with_file_name("paravox.stripped");
    cmd::run(
        Command::new("strip")
            .args(["--strip-debug", "-o"])
            .arg(&stripped)
            .arg(binary),
    )?;
    install(root, &stripped, "/usr/bin/paravox", 0o755)?;
    install(
        root,
        &deploy.join("systemd/paravox.service"),
        "/lib/systemd/system/paravox.service",
        0o644,
    )?;
    install(
        root,
        &deploy.join("systemd/paravox-vm@.socket"),
        "/lib/systemd/system/paravox-vm@.socket",
        0o644,
    )?;
    // Desktop mode: `systemctl --user enable --now paravox`.
    for unit in ["paravox.service", "paravox-vm@.socket"] {
        install(
            root,
            &deploy.join("systemd/user").join(unit),
            &format!("/usr/lib/systemd/user/{unit}"),
            0o644,
        )?;
    }
    install(
        root,
        &deploy.join("examples/paravox.toml"),
        "/etc/paravox/paravox.toml",
        0o644,
    )?;
    for example in files_in(&deploy.join("examples"))? {
        let name = file_name(&example)?;
        install(
            root,
            &example,
            &format!("/usr/share/doc/paravox/examples/{name}"),
            0o644,
        )?;
    }
    write_copyright(root, &workspace)?;
    for page in files_in(&docs.join("man/man1"))? {
        let name = file_name(&page)?;
        let dest = root.join("usr/share/man/man1").join(format!("{name}.gz"));
        gzip(&page, &dest)?;
    }
    let completions = docs.join("completions");
    for (file, to) in [
        (
            "paravox.bash",
            "/usr/share/bash-completion/completions/paravox",
        ),
        ("_paravox", "/usr/share/zsh/vendor-completions/_paravox"),
        (
            "paravox.fish",
            "/usr/share/fish/vendor_completions.d/paravox.fish",
        ),
    ] {
        install(root, &completions.join(file), to, 0o644)?;
    }
    for script in ["postinst", "prerm", "postrm"] {
        install(
            root,
            &deploy.join("debian").join(script),
            &format!("/DEBIAN/{script}"),
            0o755,
        )?;
    }
    fs::write(root.join("DEBIAN/conffiles"), "/etc/paravox/paravox.toml\n")
        .context("writing DEBIAN/conffiles")?;
    Ok(())
}

/// `copyright` in Debian's machine-readable format: the dual licence, the MIT text in
/// full and Apache-2.0 by reference to base-files' copy.
fn write_copyright(root: &Path, workspace: &Path) -> Result<()> {
    let mit = fs::read_to_string(workspace.join("LICENSE-MIT")).context("reading LICENSE-MIT")?;
    let mit: String = mit
        .lines()
        .map(|line| {
            if line.trim().is_empty() {
                " .\n".to_owned()
            } else {
                format!(" {line}\n")
            }
        })
        .collect();
    let text = format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: paravox\n\n\
         Files: *\n\
         Copyright: The paravox developers\n\
         License: Apache-2.0 or MIT\n\n\
         License: Apache-2.0\n \
         On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n\n\
         License: MIT\n{mit}"
    );
    let path = root.join("usr/share/doc/paravox/copyright");
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", path.display()))
}

/// `gzip -9n`: no name or timestamp, so the package is reproducible.
fn gzip(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let file = fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
    let status = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(from)
        .stdout(file)
        .status()
        .context("could not start gzip")?;
    if !status.success() {
        bail!("gzip {} failed ({status})", from.display());
    }
    fs::set_permissions(to, fs::Permissions::from_mode(0o644))
        .with_context(|| format!("chmod {}", to.display()))
}

/// The shared-library dependencies of `binary` as `dpkg-shlibdeps` computes them from
/// the packages that provide its libraries, plus what the maintainer scripts use.
fn depends_of(binary: &Path, scratch: &Path) -> Result<String> {
    // dpkg-shlibdeps runs in a source tree and reads nothing but debian/control.
    fs::create_dir_all(scratch.join("debian"))
        .with_context(|| format!("creating {}", scratch.display()))?;
    fs::write(
        scratch.join("debian/control"),
        "Source: paravox\n\nPackage: paravox\nArchitecture: any\n",
    )
    .context("writing the scratch debian/control")?;
    let output = cmd::output(
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .arg(binary)
            .current_dir(scratch),
    )?;
    let shlibs = parse_shlibdeps(&output)?;
    let names: Vec<&str> = shlibs
        .split(',')
        .filter_map(|entry| entry.split_whitespace().next())
        .collect();
    for expected in EXPECTED_DEPENDS {
        if !names.contains(&expected) {
            bail!("dpkg-shlibdeps found no {expected} in `{shlibs}`: the binary's links changed");
        }
    }
    Ok(format!("{shlibs}, {SCRIPT_DEPENDS}"))
}

/// The value of `shlibs:Depends=…` in dpkg-shlibdeps' `-O` output.
fn parse_shlibdeps(output: &str) -> Result<String> {
    output
        .lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .with_context(|| format!("dpkg-shlibdeps printed no shlibs:Depends: {output}"))
}

fn write_control(root: &Path, depends: &str) -> Result<()> {
    let architecture = cmd::output(Command::new("dpkg").arg("--print-architecture"))?;
    let installed_kib = directory_kib(root)?;
    let control = format!(
        "Package: paravox\n\
         Version: {VERSION}\n\
         Architecture: {}\n\
         Maintainer: The paravox developers <paravox@localhost>\n\
         Installed-Size: {installed_kib}\n\
         Depends: {depends}\n\
         Section: sound\n\
         Priority: optional\n\
         Description: sound cards for virtual machines\n \
         One daemon that gives virtual machines sound cards: virtio-snd over vhost-user\n \
         (QEMU's vhost-user-snd-pci) and Xen's para-virtual sound (sndif), a real-time\n \
         mixing engine with WebAssembly effect plugins, and a REST + WebSocket API with\n \
         a browser dashboard.\n",
        architecture.trim()
    );
    fs::write(root.join("DEBIAN/control"), control).context("writing DEBIAN/control")
}

/// The size of the files below `dir` (DEBIAN excluded) in KiB, rounded up per file, as
/// dpkg counts `Installed-Size`.
fn directory_kib(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.file_name().is_some_and(|name| name == "DEBIAN") {
            continue;
        }
        if path.is_dir() {
            total += directory_kib(&path)?;
        } else {
            total += fs::metadata(&path)?.len().div_ceil(1024);
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shlibdeps_output_gives_the_depends_value() {
        let output = "shlibs:Depends=libasound2 (>= 1.0.16), libc6 (>= 2.34), libgcc-s1 (>= 4.2)\n";
        assert_eq!(
            parse_shlibdeps(output).unwrap(),
            "libasound2 (>= 1.0.16), libc6 (>= 2.34), libgcc-s1 (>= 4.2)"
        );
        assert!(parse_shlibdeps("misc:Depends=\n").is_err());
        assert!(parse_shlibdeps("shlibs:Depends=\n").is_err());
    }
}
