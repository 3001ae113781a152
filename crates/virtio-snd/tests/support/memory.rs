//! Guest RAM: a memfd mapped as one `GuestMemoryMmap` region at guest address 0, as QEMU's
//! `memory-backend-memfd,share=on` provides it, so the backend can map the same pages,
//! and a small allocator handing out pieces of it for rings and buffers.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::FromRawFd;

use vhost::VhostUserMemoryRegionInfo;
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    GuestRegionMmap,
};

/// Guest RAM size: rings plus a few seconds of audio buffers in flight.
pub const RAM_BYTES: u64 = 16 << 20;

/// Shared guest memory with a first-fit allocator.
pub struct GuestRam {
    memory: GuestMemoryMmap,
    /// Next never-used byte.
    next: u64,
    /// Freed blocks by size, reused before `next` moves (messages repeat their sizes).
    free: HashMap<u64, Vec<GuestAddress>>,
}

impl std::fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestRam")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl GuestRam {
    /// Creates [`RAM_BYTES`] of memfd-backed guest RAM.
    pub fn new() -> GuestRam {
        // SAFETY: memfd_create takes a valid NUL-terminated name and flags; the returned
        // descriptor is checked and then owned by exactly one `File`.
        let file = unsafe {
            let fd = libc::memfd_create(c"paravox-test-guest".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
            File::from_raw_fd(fd)
        };
        file.set_len(RAM_BYTES).expect("sizing the memfd");
        let region = GuestRegionMmap::from_range(
            GuestAddress(0),
            RAM_BYTES as usize,
            Some(FileOffset::new(file, 0)),
        )
        .expect("mapping the memfd");
        let memory = GuestMemoryMmap::from_regions(vec![region]).expect("guest memory");
        GuestRam {
            memory,
            // Keep guest address 0 unused so a zeroed descriptor never points at a buffer.
            next: 4096,
            free: HashMap::new(),
        }
    }

    /// The mapped memory.
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// The region as VHOST_USER_SET_MEM_TABLE describes it (with the memfd).
    pub fn region_info(&self) -> VhostUserMemoryRegionInfo {
        let region = self.memory.iter().next().expect("one region");
        VhostUserMemoryRegionInfo::from_guest_region(region).expect("a file-backed region")
    }

    /// The VMM's virtual address of guest address `addr` (what SET_VRING_ADDR carries).
    pub fn vmm_address(&self, addr: GuestAddress) -> u64 {
        let region = self.memory.iter().next().expect("one region");
        region.as_ptr() as u64 + addr.0 - region.start_addr().0
    }

    /// First guest address past the RAM: anything from here on is outside guest memory.
    pub fn end(&self) -> GuestAddress {
        GuestAddress(RAM_BYTES)
    }

    /// `len` bytes aligned to `align`, zeroed.
    pub fn alloc(&mut self, len: u64, align: u64) -> GuestAddress {
        let size = Self::block_size(len);
        let reused = self.free.get_mut(&size).and_then(|blocks| {
            blocks
                .iter()
                .position(|a| a.0 % align == 0)
                .map(|i| blocks.swap_remove(i))
        });
        let addr = reused.unwrap_or_else(|| {
            let start = self.next.next_multiple_of(align);
            assert!(start + size <= RAM_BYTES, "guest RAM exhausted");
            self.next = start + size;
            GuestAddress(start)
        });
        self.memory
            .write_slice(&vec![0; size as usize], addr)
            .expect("zeroing a block");
        addr
    }

    /// Returns a block from [`GuestRam::alloc`].
    pub fn free(&mut self, addr: GuestAddress, len: u64) {
        self.free
            .entry(Self::block_size(len))
            .or_default()
            .push(addr);
    }

    fn block_size(len: u64) -> u64 {
        len.max(1).next_multiple_of(16)
    }

    /// Writes `data` at `addr`.
    pub fn write(&self, addr: GuestAddress, data: &[u8]) {
        self.memory.write_slice(data, addr).expect("guest write");
    }

    /// Reads `len` bytes at `addr`.
    pub fn read(&self, addr: GuestAddress, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.memory.read_slice(&mut out, addr).expect("guest read");
        out
    }
}

impl Default for GuestRam {
    fn default() -> Self {
        GuestRam::new()
    }
}
