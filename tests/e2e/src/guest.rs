//! The test guest: Debian's bookworm-backports 6.12 kernel (it has `CONFIG_SND_VIRTIO=m`)
//! and an initramfs of busybox, alsa-utils, the sound modules and the test tones.
//!
//! Both are cached under `target/e2e/`: the unpacked kernel package by its version, the
//! finished guest by a key over every input (package versions and the sources of this
//! module, the init script and the tones), so a second run rebuilds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};

use super::audio;
use super::cpio::Archive;
use crate::{cmd, prereqs};

/// Debian's metapackage for the newest 6.12 kernel of the suite; it depends on exactly one
/// versioned image package, which is what gets downloaded.
const KERNEL_METAPACKAGE: &str = "linux-image-6.12-amd64";

/// Modules the guest loads (with their dependencies, found from each module's `depends=`).
const ROOT_MODULES: &[&str] = &["virtio_snd", "virtio_blk"];

/// Host packages whose files go into the guest: their versions are part of the cache key.
const GUEST_PACKAGES: &[&str] = &[
    "busybox-static",
    "alsa-utils",
    "libasound2",
    "libasound2-data",
    "libc6",
];

/// Sources whose change must rebuild the guest.
const GUEST_SOURCES: &[&str] = &[
    include_str!("guest.rs"),
    include_str!("init.sh"),
    include_str!("audio.rs"),
    include_str!("cpio.rs"),
];

/// `/usr/share/alsa` subdirectories the guest does not need (use-case managers, DSP
/// topologies: megabytes of configuration for real hardware).
pub(super) const ALSA_SHARE_SKIPPED: &[&str] = &["ucm", "ucm2", "topology"];

/// A ready guest: what QEMU's `-kernel` and `-initrd` get.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    /// Kernel package and version, for the report.
    pub kernel_package: String,
}

/// Makes sure the guest for the current inputs exists under `cache` and returns it.
pub fn prepare(cache: &Path) -> Result<GuestImage> {
    let kernel_package = KernelPackage::resolve()?;
    let kernel_tree = kernel_package.unpacked(cache)?;
    let kernel_source = KernelTree::open(&kernel_tree)?;

    let mut key = format!("{} {}\n", kernel_package.name, kernel_package.version);
    for package in GUEST_PACKAGES {
        let version =
            cmd::output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]))
                .with_context(|| format!("the guest needs the Debian package {package}"))?;
        let _ = writeln!(key, "{package} {version}");
    }
    for source in GUEST_SOURCES {
        let _ = writeln!(key, "{:016x}", fnv1a(source.as_bytes()));
    }
    let guest_dir = cache.join(format!("guest-{:016x}", fnv1a(key.as_bytes())));
    let image = GuestImage {
        kernel: guest_dir.join("vmlinuz"),
        initramfs: guest_dir.join("initramfs.cpio"),
        kernel_package: format!("{} {}", kernel_package.name, kernel_package.version),
    };
    if guest_dir.join("key.txt").is_file() && image.kernel.is_file() && image.initramfs.is_file() {
        println!("guest: up to date in {}", guest_dir.display());
        return Ok(image);
    }

    println!("guest: building in {}", guest_dir.display());
    let staging = cache.join("guest.partial");
    remove_dir_if_present(&staging)?;
    fs::create_dir_all(&staging)
        .with_context(|| format!("could not create {}", staging.display()))?;
    let archive = build_initramfs(&kernel_source)?;
    let bytes = archive.to_bytes();
    fs::write(staging.join("initramfs.cpio"), &bytes).context("could not write the initramfs")?;
    fs::copy(&kernel_source.vmlinuz, staging.join("vmlinuz"))
        .with_context(|| format!("could not copy {}", kernel_source.vmlinuz.display()))?;
    fs::write(staging.join("key.txt"), &key).context("could not write the guest's cache key")?;
    remove_dir_if_present(&guest_dir)?;
    fs::rename(&staging, &guest_dir)
        .with_context(|| format!("could not move the guest into {}", guest_dir.display()))?;
    println!(
        "guest: initramfs {:.1} MiB",
        bytes.len() as f64 / 1_048_576.0
    );
    Ok(image)
}

/// The kernel image package the metapackage currently points at.
#[derive(Debug)]
pub(super) struct KernelPackage {
    pub(super) name: String,
    pub(super) version: String,
}

impl KernelPackage {
    pub(super) fn resolve() -> Result<Self> {
        let meta = match apt_show(KERNEL_METAPACKAGE) {
            Ok(meta) => meta,
            // The backports suite or its package lists are missing: add them once.
            Err(_) => {
                println!(
                    "guest: {KERNEL_METAPACKAGE} unknown to apt; refreshing the backports suite"
                );
                prereqs::ensure_backports_suite(true)?;
                apt_show(KERNEL_METAPACKAGE)?
            }
        };
        let depends = field(&meta, "Depends").context("the kernel metapackage has no Depends")?;
        let name = depends
            .split([',', ' ', '('])
            .find(|word| word.starts_with("linux-image-"))
            .context("the kernel metapackage depends on no linux-image package")?
            .to_owned();
        let version = field(&apt_show(&name)?, "Version")
            .with_context(|| format!("apt shows no version of {name}"))?
            .to_owned();
        Ok(Self { name, version })
    }

    /// The package unpacked under `cache/kernel/`, downloading it the first time.
    pub(super) fn unpacked(&self, cache: &Path) -> Result<PathBuf> {
        let tree = cache
            .join("kernel")
            .join(format!("{}_{}", self.name, self.version));
        let complete = tree.join(".complete");
        if complete.is_file() {
            println!("guest: kernel {} {} (cached)", self.name, self.version);
            return Ok(tree);
        }
        println!("guest: downloading kernel {} {}", self.name, self.version);
        let downloads = cache.join("downloads");
        fs::create_dir_all(&downloads)
            .with_context(|| format!("could not create {}", downloads.display()))?;
        let mut download = Command::new("apt-get");
        download
            .args(["download", &format!("{}={}", self.name, self.version)])
            .current_dir(&downloads);
        cmd::output(&mut download)?;
        let deb = fs::read_dir(&downloads)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .find(|path| {
                path.file_name().is_some_and(|name| {
                    name.to_string_lossy()
                        .starts_with(&format!("{}_", self.name))
                })
            })
            .with_context(|| {
                format!(
                    "apt-get download left no {} package in {}",
                    self.name,
                    downloads.display()
                )
            })?;
        remove_dir_if_present(&tree)?;
        fs::create_dir_all(&tree)
            .with_context(|| format!("could not create {}", tree.display()))?;
        println!("guest: unpacking {}", deb.display());
        cmd::output(Command::new("dpkg").arg("-x").arg(&deb).arg(&tree))?;
        fs::write(&complete, "")?;
        fs::remove_file(&deb).with_context(|| format!("could not remove {}", deb.display()))?;
        Ok(tree)
    }
}

pub(super) fn apt_show(package: &str) -> Result<String> {
    cmd::output(Command::new("apt-cache").args(["show", "--no-all-versions", package]))
}

/// The value of `name:` in a Debian control stanza.
pub(super) fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The files of an unpacked kernel package the guest needs.
#[derive(Debug)]
pub(super) struct KernelTree {
    pub(super) vmlinuz: PathBuf,
    /// `lib/modules/VERSION/`.
    pub(super) modules: PathBuf,
}

impl KernelTree {
    pub(super) fn open(tree: &Path) -> Result<Self> {
        let vmlinuz = only_entry(&tree.join("boot"), "vmlinuz-")?;
        // Merged-/usr packages (trixie on) ship usr/lib/modules.
        let modules_root = [tree.join("lib/modules"), tree.join("usr/lib/modules")]
            .into_iter()
            .find(|path| path.is_dir())
            .with_context(|| format!("no lib/modules in {}", tree.display()))?;
        let modules = only_entry(&modules_root, "")?;
        Ok(Self { vmlinuz, modules })
    }
}

/// The single entry of `dir` whose name starts with `prefix`.
fn only_entry(dir: &Path, prefix: &str) -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("could not list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(prefix))
        })
        .collect();
    ensure!(
        found.len() == 1,
        "expected one {prefix}* in {}, found {found:?}",
        dir.display()
    );
    Ok(found.remove(0))
}

fn build_initramfs(kernel: &KernelTree) -> Result<Archive> {
    let mut archive = Archive::new();
    for dir in ["proc", "sys", "dev", "tmp", "etc/paravox"] {
        archive.directory(dir);
    }
    archive.char_device("dev/console", 5, 1);
    archive.file("init", include_bytes!("init.sh").to_vec(), true);

    let busybox = Path::new("/bin/busybox");
    let contents =
        fs::read(busybox).context("could not read /bin/busybox (Debian package busybox-static)")?;
    ensure!(
        prereqs::is_static_executable(&contents),
        "/bin/busybox is dynamically linked: the guest needs busybox-static"
    );
    archive.file("bin/busybox", contents, true);
    archive.symlink("bin/sh", "busybox");

    for program in ["aplay", "amixer"] {
        add_dynamic_executable(&mut archive, &Path::new("/usr/bin").join(program))?;
    }
    archive.symlink("usr/bin/arecord", "aplay");
    add_tree(
        &mut archive,
        Path::new("/usr/share/alsa"),
        ALSA_SHARE_SKIPPED,
    )?;

    let modules = module_load_order(&kernel.modules, ROOT_MODULES)?;
    println!(
        "guest: modules {}",
        modules
            .iter()
            .map(|module| module.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut order = String::new();
    for module in &modules {
        archive.file(
            &format!("lib/modules/{}.ko", module.name),
            decompress(&module.path)?,
            false,
        );
        let _ = writeln!(order, "{}", module.name);
    }
    archive.file("etc/paravox/modules", order.into_bytes(), false);

    for tone in audio::all_tones() {
        archive.file(&format!("audio/{}", tone.file_name), tone.wav_file(), false);
    }
    Ok(archive)
}

/// Adds a dynamically linked program and every shared library `ldd` names for it, each
/// at the path the dynamic loader will look for it.
pub(super) fn add_dynamic_executable(archive: &mut Archive, program: &Path) -> Result<()> {
    let contents = fs::read(program).with_context(|| {
        format!(
            "could not read {} (Debian package alsa-utils)",
            program.display()
        )
    })?;
    archive.file(&program.to_string_lossy(), contents, true);
    let listing = cmd::output(Command::new("ldd").arg(program))?;
    for library in shared_libraries(&listing) {
        if !archive.contains(&library) {
            let contents =
                fs::read(&library).with_context(|| format!("could not read {library}"))?;
            archive.file(&library, contents, true);
        }
    }
    Ok(())
}

/// The absolute library paths in `ldd` output (`libc.so.6 => /lib/…/libc.so.6 (0x…)` and
/// the loader's own `/lib64/ld-linux-x86-64.so.2 (0x…)`).
pub(super) fn shared_libraries(ldd_output: &str) -> Vec<String> {
    ldd_output
        .lines()
        .filter_map(|line| {
            let path = line.split_once("=>").map_or(line, |(_, path)| path);
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

/// Adds every regular file under `root` (following symlinks), skipping the named
/// top-level subdirectories.
pub(super) fn add_tree(archive: &mut Archive, root: &Path, skipped: &[&str]) -> Result<()> {
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            fs::read_dir(&dir).with_context(|| format!("could not list {}", dir.display()))?
        {
            let path = entry?.path();
            if dir == root
                && path
                    .file_name()
                    .is_some_and(|name| skipped.iter().any(|s| name == *s))
            {
                continue;
            }
            // Dangling symlinks (a configuration for absent hardware) are left out.
            let Ok(metadata) = fs::metadata(&path) else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(path);
            } else if metadata.is_file() {
                let contents = fs::read(&path)
                    .with_context(|| format!("could not read {}", path.display()))?;
                archive.file(&path.to_string_lossy(), contents, false);
            }
        }
    }
    Ok(())
}

/// A module file to load in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Module {
    /// Canonical name (underscores), as `depends=` and `/proc/modules` spell it.
    pub(super) name: String,
    pub(super) path: PathBuf,
}

/// `roots` and everything they depend on, dependencies first. Modules built into the
/// kernel (`modules.builtin`) need no loading and are left out.
pub(super) fn module_load_order(modules_dir: &Path, roots: &[&str]) -> Result<Vec<Module>> {
    let files = index_module_files(&modules_dir.join("kernel"))?;
    let builtin_list = fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin_list
        .lines()
        .filter_map(|line| module_name(Path::new(line)))
        .collect();

    let mut order = Vec::new();
    let mut visited = BTreeSet::new();
    for root in roots {
        visit(
            &canonical(root),
            &files,
            &builtin,
            &mut visited,
            &mut order,
            0,
        )?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    visited: &mut BTreeSet<String>,
    order: &mut Vec<Module>,
    depth: usize,
) -> Result<()> {
    ensure!(
        depth < 32,
        "module dependencies nest deeper than 32 at {name}: a cycle?"
    );
    if !visited.insert(name.to_owned()) || builtin.contains(name) {
        return Ok(());
    }
    let path = files
        .get(name)
        .with_context(|| format!("kernel module {name} is neither a module file nor built in"))?;
    for dependency in module_depends(&decompress(path)?) {
        visit(&dependency, files, builtin, visited, order, depth + 1)?;
    }
    order.push(Module {
        name: name.to_owned(),
        path: path.clone(),
    });
    Ok(())
}

/// Every `*.ko[.xz|.zst]` under `dir`, by canonical module name.
fn index_module_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            fs::read_dir(&dir).with_context(|| format!("could not list {}", dir.display()))?
        {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if let Some(name) = module_name(&path) {
                files.insert(name, path);
            }
        }
    }
    Ok(files)
}

/// `…/snd-pcm.ko.xz` → `snd_pcm`.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))?;
    Some(canonical(stem))
}

fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// The module names in a module's `.modinfo` `depends=` string.
fn module_depends(module: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    let Some(start) = module.windows(KEY.len()).position(|window| window == KEY) else {
        return Vec::new();
    };
    let value = &module[start + KEY.len()..];
    let end = value
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end])
        .split(',')
        .filter(|name| !name.is_empty())
        .map(canonical)
        .collect()
}

/// A module file's contents, decompressed (busybox `insmod` takes plain ELF only).
pub(super) fn decompress(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        "xz"
    } else if name.ends_with(".zst") {
        "zstd"
    } else if name.ends_with(".gz") {
        "gzip"
    } else {
        return fs::read(path).with_context(|| format!("could not read {name}"));
    };
    let output = Command::new(tool)
        .arg("-dc")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{tool}` to decompress {name}"))?;
    if !output.status.success() {
        bail!(
            "`{tool} -dc {name}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    Ok(output.stdout)
}

pub(super) fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("could not remove {}", dir.display())),
    }
}

/// 64-bit FNV-1a: a hash whose value never changes between Rust releases, for cache keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_paths() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibasound.so.2 => /lib/x86_64-linux-gnu/libasound.so.2 (0x00007f55)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f54)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f55)\n";
        assert_eq!(
            shared_libraries(listing),
            [
                "/lib/x86_64-linux-gnu/libasound.so.2",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn depends_is_read_from_modinfo() {
        let module = b"\x7fELF...\0license=GPL\0depends=snd-pcm,snd\0name=virtio_snd\0";
        assert_eq!(module_depends(module), ["snd_pcm", "snd"]);
        assert!(module_depends(b"\0depends=\0name=soundcore\0").is_empty());
        assert!(module_depends(b"no modinfo").is_empty());
    }

    #[test]
    fn module_names_are_canonical() {
        assert_eq!(
            module_name(Path::new("kernel/sound/core/snd-pcm.ko.xz")).as_deref(),
            Some("snd_pcm")
        );
        assert_eq!(
            module_name(Path::new("kernel/drivers/virtio/virtio.ko")).as_deref(),
            Some("virtio")
        );
        assert_eq!(module_name(Path::new("modules.order")), None);
    }

    #[test]
    fn control_fields_are_found() {
        let stanza = "Package: linux-image-6.12-amd64\nVersion: 6.12.117-1\nDepends: linux-image-6.12.117+deb12-amd64 (= 6.12.117-1)\n";
        assert_eq!(field(stanza, "Version"), Some("6.12.117-1"));
        assert_eq!(
            field(stanza, "Depends"),
            Some("linux-image-6.12.117+deb12-amd64 (= 6.12.117-1)")
        );
        assert_eq!(field(stanza, "Recommends"), None);
    }
}
