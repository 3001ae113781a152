//! The QEMU machine Xen runs on: TCG, the hypervisor as a multiboot kernel, dom0's
//! kernel and initramfs as multiboot modules, and two raw disks — dom0's results
//! (`/dev/vda`) and the domU's recording (`/dev/vdb`, passed through to the domU).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, ensure};

use super::super::qemu::QEMU;

/// `vendor=GenuineIntel`: with TCG's default AMD vendor Xen 4.17 takes its AMD paths,
/// and dom0's processes crash at random (corrupted `%fs`-relative TLS) as soon as a
/// domU runs. `max` keeps every feature TCG emulates.
pub const CPU: &str = "max,vendor=GenuineIntel";

/// Two vCPUs (the host has two cores): dom0 gets both, the domU one.
pub const SMP: &str = "2";

pub const MEMORY: &str = "2048M";

/// The hypervisor's command line: dom0's fixed memory, the console on the serial port,
/// every message.
pub const XEN_ARGS: &str =
    "dom0_mem=1024M,max:1024M console=com1 com1=115200,8n1 loglvl=all guest_loglvl=all";

/// dom0's kernel command line. `panic=-1`: a dom0 panic reboots Xen, and `-no-reboot`
/// turns that into QEMU exiting.
pub const DOM0_ARGS: &str = "console=hvc0 earlyprintk=xen clocksource=xen quiet panic=-1";

/// What one boot needs.
#[derive(Debug, Clone)]
pub struct MachineFiles {
    pub hypervisor: PathBuf,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub results_disk: PathBuf,
    pub recording_disk: PathBuf,
}

/// The QEMU command line.
pub fn command_line(files: &MachineFiles) -> Result<Command> {
    let mut command = Command::new(QEMU);
    command
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-accel", "tcg", "-cpu", CPU, "-smp", SMP, "-m", MEMORY])
        .args(["-serial", "stdio", "-monitor", "none"])
        .arg("-kernel")
        .arg(&files.hypervisor)
        .args(["-append", XEN_ARGS])
        .arg("-initrd")
        .arg(multiboot_modules(&files.kernel, &files.initramfs)?);
    for disk in [&files.results_disk, &files.recording_disk] {
        command
            .arg("-drive")
            .arg(format!("file={},format=raw,if=virtio", plain(disk)?));
    }
    Ok(command)
}

/// QEMU's multiboot `-initrd`: modules separated by commas, each a path and its
/// command line separated by a space.
fn multiboot_modules(kernel: &Path, initramfs: &Path) -> Result<String> {
    Ok(format!(
        "{} {DOM0_ARGS},{}",
        plain(kernel)?,
        plain(initramfs)?
    ))
}

/// A path that QEMU's option syntax can carry as it is.
fn plain(path: &Path) -> Result<String> {
    let text = path.display().to_string();
    ensure!(
        !text.contains([',', ' ']),
        "{text}: QEMU's multiboot module list cannot carry a path with a comma or a space \
         (set CARGO_TARGET_DIR to a plain path)"
    );
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_modules_are_the_kernel_with_its_arguments_then_the_initramfs() {
        let modules =
            multiboot_modules(Path::new("/t/vmlinuz"), Path::new("/t/dom0.cpio")).unwrap();
        assert_eq!(modules, format!("/t/vmlinuz {DOM0_ARGS},/t/dom0.cpio"));
        assert!(multiboot_modules(Path::new("/my dir/vmlinuz"), Path::new("/t/i")).is_err());
        assert!(multiboot_modules(Path::new("/t/v"), Path::new("/a,b/i")).is_err());
    }
}
