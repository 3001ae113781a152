//! The two Linux systems of the Xen test, both on the virtio harness's kernel (Debian's
//! 6.12, which has the Xen dom0 drivers and `CONFIG_SND_XEN_FRONTEND=m`):
//!
//! - **dom0**: busybox, the Xen toolstack with its libraries, the Xen and disk modules,
//!   and the domU's kernel and initramfs; paravox is appended per run (a second cpio
//!   archive after the first: the kernel unpacks both), so a rebuilt daemon never
//!   invalidates the cached part.
//! - **domU**: busybox, aplay/arecord with their libraries, `snd_xen_front` and
//!   `xen-blkfront` with their dependencies, and the test tone.
//!
//! The cached part lives under `target/e2e/xen/images-KEY/`, KEY covering every input.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

use super::super::cpio::Archive;
use super::super::guest::{
    ALSA_SHARE_SKIPPED, KernelPackage, KernelTree, add_dynamic_executable, add_tree, decompress,
    fnv1a, module_load_order, remove_dir_if_present, shared_libraries,
};
use super::packages::XenTree;
use super::{RECORD_SECONDS, SHORT_TONE, TONE};
use crate::{cmd, prereqs};

/// The domU's name in `xl` and in xenconsoled's log file name.
pub const DOMU_NAME: &str = "paravox-domu";

/// dom0's modules: event channels, privcmd and xenfs for the toolstack, gntdev for
/// paravox's grant mappings, blkback and virtio_blk for the disks.
const DOM0_MODULES: &[&str] = &[
    "xen_evtchn",
    "xen_privcmd",
    "xenfs",
    "xen_gntdev",
    "xen_blkback",
    "virtio_blk",
];

/// The domU's: the sound frontend, and blkfront for the recording disk.
const DOMU_MODULES: &[&str] = &["snd_xen_front", "xen_blkfront"];

/// Toolstack programs dom0 runs, under `XenTree::tools_dir()`.
const XEN_TOOLS: &[&str] = &["xl", "xenstored", "xen-init-dom0", "xenconsoled"];

/// Names of the `xenstore` multi-call program (it acts on its `argv[0]`).
const XENSTORE_COMMANDS: &[&str] = &[
    "xenstore-ls",
    "xenstore-read",
    "xenstore-write",
    "xenstore-exists",
];

/// Host packages whose files go into the images: their versions are part of the key.
const HOST_PACKAGES: &[&str] = &[
    "busybox-static",
    "alsa-utils",
    "libasound2",
    "libasound2-data",
    "libc6",
    "libgcc-s1",
    "libuuid1",
    "zlib1g",
    "liblzma5",
    "libzstd1",
];

/// Sources whose change must rebuild the images.
const SOURCES: &[&str] = &[
    include_str!("images.rs"),
    include_str!("dom0.sh"),
    include_str!("domu.sh"),
    include_str!("paravox-block.sh"),
    include_str!("../audio.rs"),
    include_str!("../cpio.rs"),
];

/// The domU's memory. Its initramfs is a few MiB; ALSA needs little.
const DOMU_MEMORY_MIB: u32 = 256;

/// `vsnd = [...]`: one card with one PCM device, a playback and a capture stream.
const VSND: &str = "[['CARD, short-name=paravox, sample-rates=44100;48000, sample-formats=s16_le, \
channels-min=1, channels-max=2', 'PCM, name=Main', 'STREAM, unique-id=pcm0p, type=P', \
'STREAM, unique-id=pcm0c, type=C']]";

/// The cached images.
#[derive(Debug, Clone)]
pub struct Images {
    /// The hypervisor (QEMU `-kernel`, multiboot).
    pub hypervisor: PathBuf,
    /// dom0's kernel (first multiboot module).
    pub kernel: PathBuf,
    /// dom0's initramfs without paravox.
    pub dom0_base: PathBuf,
    /// Kernel package and version, for the report.
    pub kernel_package: String,
    /// The Xen package versions, for the report.
    pub xen_versions: String,
}

/// Makes sure the images for the current inputs exist under `cache` (`target/e2e/xen/`);
/// `kernel_cache` is the virtio harness's cache of unpacked kernels, shared.
pub fn prepare(cache: &Path, kernel_cache: &Path) -> Result<Images> {
    let kernel_package = KernelPackage::resolve()?;
    let kernel = KernelTree::open(&kernel_package.unpacked(kernel_cache)?)?;
    let xen = XenTree::prepare(cache)?;

    let mut key = format!(
        "{} {}\n{}",
        kernel_package.name, kernel_package.version, xen.versions
    );
    for package in HOST_PACKAGES {
        let version =
            cmd::output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]))
                .with_context(|| format!("the Xen test needs the Debian package {package}"))?;
        let _ = writeln!(key, "{package} {version}");
    }
    for source in SOURCES {
        let _ = writeln!(key, "{:016x}", fnv1a(source.as_bytes()));
    }
    let dir = cache.join(format!("images-{:016x}", fnv1a(key.as_bytes())));
    let images = Images {
        hypervisor: xen.hypervisor(),
        kernel: dir.join("vmlinuz"),
        dom0_base: dir.join("dom0-base.cpio"),
        kernel_package: format!("{} {}", kernel_package.name, kernel_package.version),
        xen_versions: xen.versions.clone(),
    };
    if dir.join("key.txt").is_file() && images.kernel.is_file() && images.dom0_base.is_file() {
        println!("xen: images up to date in {}", dir.display());
        return Ok(images);
    }

    println!("xen: building images in {}", dir.display());
    let staging = cache.join("images.partial");
    remove_dir_if_present(&staging)?;
    fs::create_dir_all(&staging)
        .with_context(|| format!("could not create {}", staging.display()))?;
    let domu = domu_initramfs(&kernel)?.to_bytes();
    let kernel_image = fs::read(&kernel.vmlinuz)
        .with_context(|| format!("could not read {}", kernel.vmlinuz.display()))?;
    let dom0 = dom0_base(&kernel, &xen, kernel_image.clone(), domu.clone())?.to_bytes();
    fs::write(staging.join("dom0-base.cpio"), &dom0).context("could not write dom0's initramfs")?;
    fs::write(staging.join("vmlinuz"), &kernel_image).context("could not write the kernel")?;
    fs::write(staging.join("key.txt"), &key).context("could not write the images' cache key")?;
    remove_dir_if_present(&dir)?;
    fs::rename(&staging, &dir)
        .with_context(|| format!("could not move the images into {}", dir.display()))?;
    remove_siblings(&dir, "images-")?;
    println!(
        "xen: dom0 initramfs {:.1} MiB (domU's {:.1} MiB inside)",
        dom0.len() as f64 / 1_048_576.0,
        domu.len() as f64 / 1_048_576.0
    );
    Ok(images)
}

/// dom0's complete initramfs for one run: the cached base, then paravox (stripped when
/// `strip` is available) with its libraries and the run's settings.
pub fn dom0_initramfs(images: &Images, paravox: &Path, run_conf: &str, out: &Path) -> Result<()> {
    let mut bytes = fs::read(&images.dom0_base)
        .with_context(|| format!("could not read {}", images.dom0_base.display()))?;
    let mut archive = Archive::new();
    archive.file("usr/bin/paravox", stripped(paravox, out)?, true);
    let listing = cmd::output(Command::new("ldd").arg(paravox))?;
    for library in shared_libraries(&listing) {
        let contents = fs::read(&library).with_context(|| format!("could not read {library}"))?;
        archive.file(&library, contents, true);
    }
    archive.file("etc/paravox/run.conf", run_conf.as_bytes().to_vec(), false);
    bytes.extend_from_slice(&archive.to_bytes());
    fs::write(out, &bytes).with_context(|| format!("could not write {}", out.display()))
}

/// The daemon without debug information (a debug build is ~65 MiB, ~10 stripped), or
/// as it is when binutils' `strip` is missing.
fn stripped(binary: &Path, out: &Path) -> Result<Vec<u8>> {
    if cmd::on_path("strip") {
        let copy = out.with_extension("paravox.stripped");
        cmd::output(Command::new("strip").arg("-o").arg(&copy).arg(binary))?;
        let contents = fs::read(&copy)?;
        fs::remove_file(&copy)?;
        return Ok(contents);
    }
    fs::read(binary).with_context(|| format!("could not read {}", binary.display()))
}

fn dom0_base(
    kernel: &KernelTree,
    xen: &XenTree,
    domu_kernel: Vec<u8>,
    domu_initramfs: Vec<u8>,
) -> Result<Archive> {
    let mut archive = Archive::new();
    for dir in ["proc", "sys", "dev", "tmp", "run", "etc/paravox"] {
        archive.directory(dir);
    }
    archive.char_device("dev/console", 5, 1);
    archive.file("init", include_bytes!("dom0.sh").to_vec(), true);
    add_busybox(&mut archive)?;
    add_modules(&mut archive, kernel, DOM0_MODULES)?;

    let tools = XenTree::tools_dir();
    for tool in XEN_TOOLS {
        add_from_tree(&mut archive, xen, &format!("{tools}/{tool}"))?;
    }
    add_from_tree(&mut archive, xen, "usr/bin/xenstore")?;
    for name in XENSTORE_COMMANDS {
        archive.symlink(&format!("usr/bin/{name}"), "xenstore");
    }
    // glibc's pthread_cancel dlopens it; `xl` aborts without it.
    archive.file(
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        read_first(&[
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
        ])?,
        true,
    );
    add_tree(
        &mut archive,
        Path::new("/usr/share/alsa"),
        ALSA_SHARE_SKIPPED,
    )?;

    archive.file(
        "etc/paravox/xen.conf",
        format!("XEN_BIN=/{tools}\nDOMU_NAME={DOMU_NAME}\n").into_bytes(),
        false,
    );
    archive.file(
        "etc/xen/xl.conf",
        b"# dom0 has a fixed allocation (dom0_mem): never balloon it.\nautoballoon=\"off\"\n"
            .to_vec(),
        false,
    );
    archive.file(
        "etc/xen/scripts/paravox-block",
        include_bytes!("paravox-block.sh").to_vec(),
        true,
    );
    archive.file(
        "etc/xen/paravox-domu.cfg",
        domu_config().into_bytes(),
        false,
    );
    archive.file("domu/vmlinuz", domu_kernel, false);
    archive.file("domu/initrd.cpio", domu_initramfs, false);
    Ok(archive)
}

/// The domU's `xl` configuration.
fn domu_config() -> String {
    format!(
        "# Written by tests/e2e/src/xen/images.rs.\n\
         name = \"{DOMU_NAME}\"\n\
         type = \"pv\"\n\
         kernel = \"/domu/vmlinuz\"\n\
         ramdisk = \"/domu/initrd.cpio\"\n\
         memory = {DOMU_MEMORY_MIB}\n\
         vcpus = 1\n\
         # clocksource=xen: the TSC under TCG is not a usable clock for aplay's timing.\n\
         extra = \"console=hvc0 clocksource=xen paravox.file={file} paravox.short_file={short_file} \
         paravox.seconds={RECORD_SECONDS}\"\n\
         on_poweroff = \"destroy\"\n\
         on_reboot = \"destroy\"\n\
         on_crash = \"destroy\"\n\
         vsnd = {VSND}\n\
         # QEMU's second disk, passed through for the recording.\n\
         disk = ['format=raw, vdev=xvda, access=rw, script=paravox-block, target=/dev/vdb']\n",
        file = TONE.file_name,
        short_file = SHORT_TONE.file_name,
    )
}

fn domu_initramfs(kernel: &KernelTree) -> Result<Archive> {
    let mut archive = Archive::new();
    for dir in ["proc", "sys", "dev", "tmp", "etc/paravox"] {
        archive.directory(dir);
    }
    archive.char_device("dev/console", 5, 1);
    archive.file("init", include_bytes!("domu.sh").to_vec(), true);
    add_busybox(&mut archive)?;
    add_modules(&mut archive, kernel, DOMU_MODULES)?;
    add_dynamic_executable(&mut archive, Path::new("/usr/bin/aplay"))?;
    archive.symlink("usr/bin/arecord", "aplay");
    add_tree(
        &mut archive,
        Path::new("/usr/share/alsa"),
        ALSA_SHARE_SKIPPED,
    )?;
    for tone in [&TONE, &SHORT_TONE] {
        archive.file(&format!("audio/{}", tone.file_name), tone.wav_file(), false);
    }
    Ok(archive)
}

fn add_busybox(archive: &mut Archive) -> Result<()> {
    let contents = fs::read("/bin/busybox")
        .context("could not read /bin/busybox (Debian package busybox-static)")?;
    ensure!(
        prereqs::is_static_executable(&contents),
        "/bin/busybox is dynamically linked: the Xen test needs busybox-static"
    );
    archive.file("bin/busybox", contents, true);
    archive.symlink("bin/sh", "busybox");
    Ok(())
}

/// `roots` and their dependencies as plain `.ko` files, and the order to load them in
/// `/etc/paravox/modules`.
fn add_modules(archive: &mut Archive, kernel: &KernelTree, roots: &[&str]) -> Result<()> {
    let modules = module_load_order(&kernel.modules, roots)?;
    let mut order = String::new();
    for module in &modules {
        archive.file(
            &format!("lib/modules/{}.ko", module.name),
            decompress(&module.path)?,
            false,
        );
        let _ = writeln!(order, "{}", module.name);
    }
    println!(
        "xen: modules {}",
        order.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    archive.file("etc/paravox/modules", order.into_bytes(), false);
    Ok(())
}

/// A program of the unpacked packages at its own path, and the libraries it loads: from
/// the packages where they have them, from the host otherwise.
fn add_from_tree(archive: &mut Archive, xen: &XenTree, relative: &str) -> Result<()> {
    let program = xen.root.join(relative);
    let contents =
        fs::read(&program).with_context(|| format!("could not read {}", program.display()))?;
    archive.file(relative, contents, true);
    let listing = cmd::output(
        Command::new("ldd")
            .arg(&program)
            .env("LD_LIBRARY_PATH", xen.library_dir()),
    )?;
    for library in shared_libraries(&listing) {
        let in_image = Path::new(&library).strip_prefix(&xen.root).map_or_else(
            |_| library.clone(),
            |inside| format!("/{}", inside.display()),
        );
        if !archive.contains(&in_image) {
            let contents =
                fs::read(&library).with_context(|| format!("could not read {library}"))?;
            archive.file(&in_image, contents, true);
        }
    }
    Ok(())
}

/// Removes the other `prefix*` directories beside `keep`: images of older inputs.
pub fn remove_siblings(keep: &Path, prefix: &str) -> Result<()> {
    let Some(parent) = keep.parent() else {
        return Ok(());
    };
    for entry in fs::read_dir(parent)? {
        let path = entry?.path();
        let stale = path != keep
            && path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(prefix));
        if stale && path.is_dir() {
            remove_dir_if_present(&path)?;
        }
    }
    Ok(())
}

fn read_first(candidates: &[&str]) -> Result<Vec<u8>> {
    candidates
        .iter()
        .find_map(|path| fs::read(path).ok())
        .with_context(|| format!("none of {candidates:?} is readable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domu_config_names_the_card_the_disk_and_the_tone() {
        let config = domu_config();
        assert!(config.contains("vsnd = [['CARD, short-name=paravox, sample-rates=44100;48000"));
        assert!(config.contains("'STREAM, unique-id=pcm0c, type=C']]"));
        assert!(config.contains("script=paravox-block, target=/dev/vdb"));
        assert!(config.contains(&format!("paravox.file={}", TONE.file_name)));
        assert!(config.contains(&format!("paravox.short_file={}", SHORT_TONE.file_name)));
        assert!(config.contains(&format!("name = \"{DOMU_NAME}\"")));
    }
}
