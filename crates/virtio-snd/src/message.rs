//! A guest message as the device sees it: the readable and writable regions of a
//! descriptor chain, read and written as two byte streams.
//!
//! Regions are checked against guest memory when they are used, not trusted when parsed:
//! a hostile address or length turns into a short read or write, which the caller answers
//! with BAD_MSG or IO_ERR.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, Permissions};

/// Most descriptors one message may span (guards against absurd chains).
const MAX_REGIONS: usize = 1024;

/// One contiguous piece of guest memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
}

/// The regions of one descriptor chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Head descriptor index, returned to the used ring on completion.
    pub head: u16,
    /// Device-readable regions, in chain order.
    pub readable: Vec<Region>,
    /// Device-writable regions, in chain order.
    pub writable: Vec<Region>,
}

impl Message {
    /// Collects the regions of `chain`; `None` for a chain with more than
    /// [`MAX_REGIONS`] descriptors or a readable descriptor after a writable one.
    pub fn from_chain<M>(chain: DescriptorChain<M>) -> Option<Message>
    where
        M: Deref,
        M::Target: GuestMemory,
    {
        let head = chain.head_index();
        let mut readable = Vec::new();
        let mut writable = Vec::new();
        for descriptor in chain {
            if readable.len() + writable.len() >= MAX_REGIONS {
                return None;
            }
            let region = Region {
                addr: descriptor.addr(),
                len: descriptor.len(),
            };
            if descriptor.is_write_only() {
                writable.push(region);
            } else if writable.is_empty() {
                readable.push(region);
            } else {
                return None;
            }
        }
        Some(Message {
            head,
            readable,
            writable,
        })
    }

    /// Total readable bytes.
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|r| u64::from(r.len)).sum()
    }

    /// Total writable bytes.
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|r| u64::from(r.len)).sum()
    }

    /// Whether every region lies inside guest memory with the access it needs.
    pub fn fits_in<M: GuestMemory>(&self, mem: &M) -> bool {
        let fits = |region: &Region, access| {
            region.len == 0 || mem.check_range(region.addr, region.len as usize, access)
        };
        self.readable.iter().all(|r| fits(r, Permissions::Read))
            && self.writable.iter().all(|r| fits(r, Permissions::Write))
    }
}

/// Reads `out.len()` bytes starting `offset` bytes into the stream of `regions`;
/// returns how many were read (short at the end of the regions or on bad memory).
pub fn read_at<M: GuestMemory>(mem: &M, regions: &[Region], offset: u64, out: &mut [u8]) -> usize {
    let mut done = 0;
    for (start, region) in spans(regions, offset, out.len()) {
        let len = region.len as usize;
        let Some(addr) = region.addr.checked_add(start) else {
            break;
        };
        if mem.read_slice(&mut out[done..done + len], addr).is_err() {
            break;
        }
        done += len;
    }
    done
}

/// Writes `data` starting `offset` bytes into the stream of `regions`; returns how many
/// bytes were written.
pub fn write_at<M: GuestMemory>(mem: &M, regions: &[Region], offset: u64, data: &[u8]) -> usize {
    let mut done = 0;
    for (start, region) in spans(regions, offset, data.len()) {
        let len = region.len as usize;
        let Some(addr) = region.addr.checked_add(start) else {
            break;
        };
        if mem.write_slice(&data[done..done + len], addr).is_err() {
            break;
        }
        done += len;
    }
    done
}

/// The pieces of `regions` covering `len` bytes from `offset`: (offset inside the region,
/// the region truncated to the piece).
fn spans(regions: &[Region], offset: u64, len: usize) -> impl Iterator<Item = (u64, Region)> + '_ {
    let mut skip = offset;
    let mut left = len as u64;
    regions.iter().filter_map(move |region| {
        let region_len = u64::from(region.len);
        if left == 0 {
            return None;
        }
        if skip >= region_len {
            skip -= region_len;
            return None;
        }
        let start = skip;
        let take = (region_len - start).min(left);
        skip = 0;
        left -= take;
        Some((
            start,
            Region {
                addr: region.addr,
                len: take as u32,
            },
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn memory() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).expect("memory")
    }

    #[test]
    fn a_stream_spans_regions_in_order() {
        let mem = memory();
        let regions = [
            Region {
                addr: GuestAddress(0x100),
                len: 3,
            },
            Region {
                addr: GuestAddress(0x200),
                len: 5,
            },
            Region {
                addr: GuestAddress(0x300),
                len: 4,
            },
        ];
        assert_eq!(
            write_at(&mem, &regions, 0, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
            12
        );
        let mut out = [0u8; 6];
        assert_eq!(read_at(&mem, &regions, 2, &mut out), 6);
        assert_eq!(out, [3, 4, 5, 6, 7, 8]);
        let mut tail = [0u8; 8];
        assert_eq!(
            read_at(&mem, &regions, 10, &mut tail),
            2,
            "short at the end"
        );
    }

    #[test]
    fn hostile_addresses_give_short_reads_not_panics() {
        let mem = memory();
        let regions = [
            Region {
                addr: GuestAddress(0xFFF0),
                len: 64,
            },
            Region {
                addr: GuestAddress(u64::MAX - 2),
                len: 16,
            },
        ];
        let mut out = [0u8; 80];
        assert!(read_at(&mem, &regions, 0, &mut out) < 80);
        assert!(write_at(&mem, &regions, 70, &[1; 8]) < 8);
    }
}
