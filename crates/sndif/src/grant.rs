//! Grant mapping: turning a frontend's grant references into memory the backend can reach.
//!
//! [`GrantMapper`] is the seam between the protocol code and the platform. On Xen,
//! [`XenGrantMapper`] uses `/dev/xen/gntdev` (`IOCTL_GNTDEV_MAP_GRANT_REF`, then `mmap` at
//! the returned offset; `munmap` and `IOCTL_GNTDEV_UNMAP_GRANT_REF` on drop). Without a
//! hypervisor, [`crate::shm::ShmGrantMapper`] maps pages of a memory file the frontend
//! owns. Either way the result is a [`Mapping`]: a bounds-checked window on memory a
//! guest can change at any moment, which the rest of the crate only copies out of, copies
//! into, or reads through atomics.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use crate::error::{Error, Result};
use crate::wire::PAGE_SIZE;

/// A grant reference.
pub type GrantRef = u32;
/// A domain id.
pub type DomId = u32;

/// Maps a frontend's granted pages.
pub trait GrantMapper: Send + Sync + std::fmt::Debug {
    /// Maps the pages `grefs` of domain `domid`, in order, into one contiguous mapping of
    /// `grefs.len()` pages; read-only unless `writable`.
    fn map(&self, domid: DomId, grefs: &[GrantRef], writable: bool) -> Result<Mapping>;
}

/// How a mapping is undone.
type Release = Box<dyn FnOnce(*mut u8, usize) + Send>;

/// A window on shared memory (granted pages, or anonymous memory in tests).
///
/// The other side may write any byte at any time, so the mapping never hands out
/// references to its bytes: [`read`](Mapping::read) and [`write`](Mapping::write) copy,
/// and the ring indexes are read through [`atomic_u32`](Mapping::atomic_u32). Every
/// access is bounds-checked and answers [`Error::OutOfBounds`] rather than panicking.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
    release: Option<Release>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: a Mapping is a plain address range mapped for the whole process; every access
// goes through copies and atomics that are sound from any thread, and the release closure
// is Send.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only allows copies and atomic accesses.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Wraps an existing mapping.
    ///
    /// # Safety
    ///
    /// `base` must point to `len` bytes that stay mapped, readable and (if they will be
    /// written) writable until `release` runs (or forever if it is `None`), and `base`
    /// must be page-aligned.
    pub unsafe fn from_raw(base: NonNull<u8>, len: usize, release: Option<Release>) -> Mapping {
        Mapping { base, len, release }
    }

    /// Zeroed anonymous shared memory of `len` bytes (rounded up to whole pages), for
    /// tests and scratch.
    pub fn anonymous(len: usize) -> Result<Mapping> {
        let len = len.max(1).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        // SAFETY: a fresh anonymous mapping touches no existing memory; the result is
        // checked before use.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::last_os("mmap of anonymous memory"));
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| Error::last_os("mmap returned a null address"))?;
        // SAFETY: `base` is a fresh page-aligned mapping of `len` bytes that only the
        // release closure unmaps.
        Ok(unsafe { Mapping::from_raw(base, len, Some(Box::new(munmap_release))) })
    }

    /// Bytes in the mapping.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfBounds {
                offset: offset as u64,
                len: len as u64,
                size: self.len as u64,
            }),
        }
    }

    /// Copies `out.len()` bytes starting at `offset` out of the mapping.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        self.check(offset, out.len())?;
        // SAFETY: the range is inside the mapping (checked above), which stays mapped for
        // `self`'s lifetime, and `out` is a distinct local buffer. The guest may change the
        // bytes while we copy; `u8` has no invalid values, so a torn copy is only bad data.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` into the mapping at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check(offset, data.len())?;
        // SAFETY: the range is inside the writable mapping (checked above); no Rust
        // reference to these bytes exists (the mapping never hands any out), and `data`
        // is distinct memory.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    /// Fills `len` bytes at `offset` with `pattern`, repeated (a format's silence).
    pub fn fill(&self, offset: usize, len: usize, pattern: &[u8]) -> Result<()> {
        self.check(offset, len)?;
        if pattern.is_empty() {
            return self.write(offset, &vec![0u8; len]);
        }
        let chunk: Vec<u8> = pattern.iter().copied().cycle().take(len).collect();
        self.write(offset, &chunk)
    }

    /// Reads a little-endian `u32` at `offset`.
    pub fn read_u32(&self, offset: usize) -> Result<u32> {
        let mut word = [0u8; 4];
        self.read(offset, &mut word)?;
        Ok(u32::from_le_bytes(word))
    }

    /// The shared `u32` at `offset` as an atomic (ring indexes). The offset must be
    /// 4-aligned.
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.check(offset, 4)?;
        if !offset.is_multiple_of(4) {
            return Err(Error::OutOfBounds {
                offset: offset as u64,
                len: 4,
                size: self.len as u64,
            });
        }
        // SAFETY: the word is inside the mapping and 4-aligned (the base is page-aligned),
        // lives as long as `self`, and is only ever accessed atomically by this crate.
        Ok(unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU32>() })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release(self.base.as_ptr(), self.len);
        }
    }
}

/// Unmaps a plain `mmap` region.
pub(crate) fn munmap_release(base: *mut u8, len: usize) {
    // SAFETY: called once, from Mapping::drop, with the region this mapping created and
    // nothing referring to it any more.
    unsafe { libc::munmap(base.cast(), len) };
}

/// `IOCTL_GNTDEV_MAP_GRANT_REF`: `_IOC(_IOC_NONE, 'G', 0, 24)`.
const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc_none(b'G', 0, 24);
/// `IOCTL_GNTDEV_UNMAP_GRANT_REF`: `_IOC(_IOC_NONE, 'G', 1, 16)`.
const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 = ioc_none(b'G', 1, 16);

/// `_IOC(_IOC_NONE, kind, number, size)` on Linux (direction bits 0).
pub(crate) const fn ioc_none(kind: u8, number: u8, size: u32) -> u32 {
    (size << 16) | ((kind as u32) << 8) | number as u32
}

/// A u64 whose memory holds `first` then `second` (native byte order, as the kernel's
/// structs are laid out).
fn two_u32(first: u32, second: u32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&first.to_ne_bytes());
    bytes[4..].copy_from_slice(&second.to_ne_bytes());
    u64::from_ne_bytes(bytes)
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
struct GntdevUnmap {
    index: u64,
    count: u32,
    pad: u32,
}

const _: () = assert!(std::mem::size_of::<GntdevUnmap>() == 16);

/// Maps grants through `/dev/xen/gntdev`.
#[derive(Debug, Clone)]
pub struct XenGrantMapper {
    device: Arc<File>,
}

impl XenGrantMapper {
    /// Opens `/dev/xen/gntdev`.
    pub fn open() -> Result<XenGrantMapper> {
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/xen/gntdev")
            .map_err(|source| Error::io("opening /dev/xen/gntdev", source))?;
        Ok(XenGrantMapper {
            device: Arc::new(device),
        })
    }
}

impl GrantMapper for XenGrantMapper {
    fn map(&self, domid: DomId, grefs: &[GrantRef], writable: bool) -> Result<Mapping> {
        let grant_error = |problem: String| Error::Grant { domid, problem };
        if grefs.is_empty() {
            return Err(grant_error("no grant references to map".into()));
        }
        let count = u32::try_from(grefs.len())
            .map_err(|_| grant_error(format!("{} grants are too many", grefs.len())))?;
        // struct ioctl_gntdev_map_grant_ref: count u32, pad u32, index u64, then `count`
        // pairs {domid u32, ref u32}; built in u64 words so it is 8-aligned, each word
        // holding two u32 fields in memory order.
        let mut words = vec![0u64; 2 + grefs.len()];
        words[0] = two_u32(count, 0);
        for (slot, &gref) in words[2..].iter_mut().zip(grefs) {
            *slot = two_u32(domid, gref);
        }
        let fd = self.device.as_raw_fd();
        // SAFETY: `words` holds the header plus `count` grant pairs the driver reads, and
        // the 8-byte index it writes back; it outlives the call.
        let rc = unsafe { libc::ioctl(fd, IOCTL_GNTDEV_MAP_GRANT_REF as _, words.as_mut_ptr()) };
        if rc < 0 {
            return Err(grant_error(format!(
                "IOCTL_GNTDEV_MAP_GRANT_REF of {grefs:?}: {}",
                std::io::Error::last_os_error()
            )));
        }
        let index = words[1];
        let len = grefs.len() * PAGE_SIZE;
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        let unmap_grants = move |fd: i32| {
            let mut request = GntdevUnmap {
                index,
                count,
                pad: 0,
            };
            // SAFETY: a valid unmap request for the grants mapped above.
            unsafe { libc::ioctl(fd, IOCTL_GNTDEV_UNMAP_GRANT_REF as _, &mut request) };
        };
        // SAFETY: maps the grants registered above at the offset the driver chose; the
        // result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                index as libc::off_t,
            )
        };
        if base == libc::MAP_FAILED {
            let error = std::io::Error::last_os_error();
            unmap_grants(fd);
            return Err(grant_error(format!("mmap of grants {grefs:?}: {error}")));
        }
        let Some(base) = NonNull::new(base.cast::<u8>()) else {
            unmap_grants(fd);
            return Err(grant_error("mmap returned a null address".into()));
        };
        let device = self.device.clone();
        let release: Release = Box::new(move |base, len| {
            munmap_release(base, len);
            unmap_grants(device.as_raw_fd());
        });
        // SAFETY: `base` maps `len` bytes of granted pages until the release closure runs.
        Ok(unsafe { Mapping::from_raw(base, len, Some(release)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_linux_headers() {
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
    }

    #[test]
    fn accesses_are_bounds_checked() {
        let mapping = Mapping::anonymous(100).expect("mapping");
        assert_eq!(mapping.len(), PAGE_SIZE);
        mapping.write(4090, &[1, 2, 3, 4, 5, 6]).expect("fits");
        let mut out = [0u8; 6];
        mapping.read(4090, &mut out).expect("fits");
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        assert!(matches!(
            mapping.read(4091, &mut out),
            Err(Error::OutOfBounds { .. })
        ));
        assert!(mapping.write(usize::MAX, &[1]).is_err());
        assert!(mapping.atomic_u32(4094).is_err());
        assert!(mapping.atomic_u32(2).is_err());
        mapping.fill(0, 5, &[0x80, 0]).expect("fill");
        let mut filled = [0u8; 5];
        mapping.read(0, &mut filled).expect("read");
        assert_eq!(filled, [0x80, 0, 0x80, 0, 0x80]);
    }
}
