//! The Xen hypervisor and toolstack, from Debian's packages: downloaded with
//! `apt-get download` and unpacked with `dpkg -x` into `target/e2e/xen/`, never installed
//! on the host. The unpacked tree is cached under a key over every package's version.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use super::super::guest::{apt_show, decompress, field, fnv1a, remove_dir_if_present};
use crate::{cmd, prereqs};

/// The Xen release Debian 12 ships; its tools live under `/usr/lib/xen-4.17/bin`.
pub const XEN_SERIES: &str = "4.17";

/// The hypervisor, the toolstack (`xl`, `xenstored`, `xen-init-dom0`, `xenconsoled`),
/// `xenstore-ls`, and every library they load that is not on a Debian host anyway (libc,
/// libuuid, zlib, liblzma, libzstd and libgcc_s are taken from the host).
const PACKAGES: &[&str] = &[
    "xen-hypervisor-4.17-amd64",
    "xen-utils-4.17",
    "xenstore-utils",
    "libxenmisc4.17",
    "libxenstore4",
    "libxentoollog1",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libxentoolcore1",
    "libyajl2",
];

/// The unpacked packages.
#[derive(Debug, Clone)]
pub struct XenTree {
    pub root: PathBuf,
    /// `name version` per package, one a line: part of the images' cache key.
    pub versions: String,
}

impl XenTree {
    /// The unpacked tree for the packages' current versions, downloading it the first time.
    pub fn prepare(cache: &Path) -> Result<Self> {
        let versions = resolve_versions()?;
        let root = cache.join(format!("packages-{:016x}", fnv1a(versions.as_bytes())));
        let tree = Self { root, versions };
        if tree.root.join(".complete").is_file() {
            println!("xen: packages up to date in {}", tree.root.display());
            return Ok(tree);
        }
        tree.download_and_unpack(cache)?;
        Ok(tree)
    }

    fn download_and_unpack(&self, cache: &Path) -> Result<()> {
        let downloads = cache.join("downloads");
        remove_dir_if_present(&downloads)?;
        fs::create_dir_all(&downloads)
            .with_context(|| format!("could not create {}", downloads.display()))?;
        let wanted: Vec<String> = self
            .versions
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(name, version)| format!("{name}={version}"))
            .collect();
        println!("xen: downloading {}", wanted.join(" "));
        cmd::output(
            Command::new("apt-get")
                .arg("download")
                .args(&wanted)
                .current_dir(&downloads),
        )?;
        let staging = cache.join("packages.partial");
        remove_dir_if_present(&staging)?;
        fs::create_dir_all(&staging)
            .with_context(|| format!("could not create {}", staging.display()))?;
        let mut debs: Vec<PathBuf> = fs::read_dir(&downloads)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|extension| extension == "deb"))
            .collect();
        debs.sort();
        ensure!(
            debs.len() == PACKAGES.len(),
            "apt-get download left {} packages in {}, expected {}",
            debs.len(),
            downloads.display(),
            PACKAGES.len()
        );
        for deb in &debs {
            cmd::output(Command::new("dpkg").arg("-x").arg(deb).arg(&staging))?;
        }
        // QEMU's multiboot loader takes the hypervisor as an uncompressed ELF.
        let compressed = staging.join(format!("boot/xen-{XEN_SERIES}-amd64.gz"));
        fs::write(
            staging.join(format!("boot/xen-{XEN_SERIES}-amd64")),
            decompress(&compressed)?,
        )
        .context("could not write the uncompressed hypervisor")?;
        fs::write(staging.join("versions.txt"), &self.versions)?;
        fs::write(staging.join(".complete"), "")?;
        remove_dir_if_present(&self.root)?;
        fs::rename(&staging, &self.root)
            .with_context(|| format!("could not move the packages into {}", self.root.display()))?;
        remove_dir_if_present(&downloads)?;
        super::images::remove_siblings(&self.root, "packages-")
    }

    /// The hypervisor as QEMU's `-kernel` (multiboot).
    pub fn hypervisor(&self) -> PathBuf {
        self.root.join(format!("boot/xen-{XEN_SERIES}-amd64"))
    }

    /// Where the toolstack's programs are, inside the tree and in dom0.
    pub fn tools_dir() -> String {
        format!("usr/lib/xen-{XEN_SERIES}/bin")
    }

    /// The directory of the packages' shared libraries.
    pub fn library_dir(&self) -> PathBuf {
        self.root.join("usr/lib/x86_64-linux-gnu")
    }
}

/// `name version` of every package, as apt would download it now.
fn resolve_versions() -> Result<String> {
    let mut versions = String::new();
    for package in PACKAGES {
        let stanza = match apt_show(package) {
            Ok(stanza) => stanza,
            // Package lists never fetched on this machine: fetch them once.
            Err(_) => {
                println!("xen: {package} unknown to apt; refreshing the package lists");
                prereqs::ensure_backports_suite(true)?;
                apt_show(package)?
            }
        };
        let version = field(&stanza, "Version")
            .with_context(|| format!("apt shows no version of {package}"))?;
        let _ = writeln!(versions, "{package} {version}");
    }
    Ok(versions)
}
