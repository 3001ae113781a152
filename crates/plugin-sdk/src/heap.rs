//! A bump allocator over the plugin's linear memory, rewound on every `paravox_init`.
//!
//! Plugins allocate while they are set up (buffers, filter tables) and never after: the
//! host freezes the memory then, and a `memory.grow` while processing is a fault. So a
//! bump pointer is all that is needed; `dealloc` does nothing and [`reset`] starts over
//! (the SDK drops the previous instance first).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;

/// The allocator `paravox_plugin!` installs.
#[derive(Debug)]
pub struct Bump;

struct Heap {
    /// Where the heap starts: the end of the memory the module was instantiated with.
    start: Cell<usize>,
    next: Cell<usize>,
}

// SAFETY: plugins are single-threaded.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap {
    start: Cell::new(0),
    next: Cell::new(0),
};

#[cfg(target_arch = "wasm32")]
const PAGE: usize = 65536;

#[cfg(target_arch = "wasm32")]
fn memory_end() -> usize {
    core::arch::wasm32::memory_size(0) * PAGE
}

#[cfg(target_arch = "wasm32")]
fn grow_to(end: usize) -> bool {
    let have = memory_end();
    if end <= have {
        return true;
    }
    let pages = (end - have).div_ceil(PAGE);
    core::arch::wasm32::memory_grow(0, pages) != usize::MAX
}

// On the build machine (unit tests) the heap is a static arena.
#[cfg(not(target_arch = "wasm32"))]
static mut ARENA: [u8; 4 << 20] = [0; 4 << 20];

#[cfg(not(target_arch = "wasm32"))]
fn memory_end() -> usize {
    // Only the address is taken.
    core::ptr::addr_of_mut!(ARENA) as usize
}

#[cfg(not(target_arch = "wasm32"))]
fn grow_to(end: usize) -> bool {
    end <= memory_end() + (4 << 20)
}

fn start() -> usize {
    if HEAP.start.get() == 0 {
        let end = memory_end().max(16);
        HEAP.start.set(end);
        HEAP.next.set(end);
    }
    HEAP.start.get()
}

/// Forgets every allocation (only once nothing allocated is alive).
pub fn reset() {
    HEAP.next.set(start());
}

/// `size` bytes aligned to `align`, growing the memory if needed.
pub fn allocate(size: usize, align: usize) -> Option<*mut u8> {
    start();
    let at = HEAP.next.get().checked_add(align - 1)? & !(align - 1);
    let end = at.checked_add(size)?;
    if !grow_to(end) {
        return None;
    }
    HEAP.next.set(end);
    Some(at as *mut u8)
}

/// `len` zeroed bytes, 16-aligned (for SIMD).
pub fn allocate_zeroed(len: usize) -> Option<*mut u8> {
    let ptr = allocate(len.max(1), 16)?;
    // SAFETY: `allocate` reserved `len` bytes at `ptr`.
    unsafe { core::ptr::write_bytes(ptr, 0, len) };
    Some(ptr)
}

// SAFETY: `allocate` returns distinct, suitably aligned regions inside the memory; memory
// reused after `reset` is never handed out while an older allocation is alive.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocate(layout.size(), layout.align()).unwrap_or(core::ptr::null_mut())
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}
