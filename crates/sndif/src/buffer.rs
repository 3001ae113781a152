//! The buffer a frontend shares at OPEN, found through its page directory.
//!
//! OPEN names the first directory page (`gref_directory`). Each directory page holds
//! `gref_dir_next_page` (u32 at 0; 0 on the last page) and then up to 1023 grant
//! references of buffer pages from offset 4; the buffer spans `ceil(buffer_sz / 4096)`
//! pages. The walk reads exactly as many directory pages as that count needs — a cycle or
//! an endless chain in a hostile directory cannot make it loop — and every range a later
//! request names is checked against `buffer_sz`, not just the mapped pages.

use crate::error::{Error, Result};
use crate::grant::{DomId, GrantMapper, GrantRef, Mapping};
use crate::wire::{
    DIRECTORY_GREFS_OFFSET, DIRECTORY_NEXT_OFFSET, GREFS_PER_DIRECTORY_PAGE, PAGE_SIZE,
};

/// A stream's mapped shared buffer.
#[derive(Debug)]
pub struct SharedBuffer {
    mapping: Mapping,
    len: usize,
}

impl SharedBuffer {
    /// Maps the `buffer_sz`-byte buffer described by the directory at `gref_directory`.
    pub fn map(
        grants: &dyn GrantMapper,
        domid: DomId,
        gref_directory: GrantRef,
        buffer_sz: u32,
    ) -> Result<SharedBuffer> {
        let grant_error = |problem: String| Error::Grant { domid, problem };
        if buffer_sz == 0 {
            return Err(grant_error("OPEN shares an empty buffer".into()));
        }
        let pages = (buffer_sz as usize).div_ceil(PAGE_SIZE);
        let directory_pages = pages.div_ceil(GREFS_PER_DIRECTORY_PAGE);
        let mut grefs: Vec<GrantRef> = Vec::with_capacity(pages);
        let mut directory = gref_directory;
        for index in 0..directory_pages {
            let page = grants.map(domid, &[directory], false)?;
            let wanted = (pages - grefs.len()).min(GREFS_PER_DIRECTORY_PAGE);
            for slot in 0..wanted {
                grefs.push(page.read_u32(DIRECTORY_GREFS_OFFSET + slot * 4)?);
            }
            if index + 1 < directory_pages {
                directory = page.read_u32(DIRECTORY_NEXT_OFFSET)?;
                if directory == 0 {
                    return Err(grant_error(format!(
                        "the page directory ends after {} pages; {buffer_sz} bytes need {directory_pages}",
                        index + 1
                    )));
                }
            }
        }
        let mapping = grants.map(domid, &grefs, true)?;
        Ok(SharedBuffer {
            mapping,
            len: buffer_sz as usize,
        })
    }

    /// `buffer_sz`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never: OPEN refuses that).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `[offset, offset + length)` lies within `buffer_sz`.
    pub fn check(&self, offset: u32, length: u32) -> Result<()> {
        let end = u64::from(offset) + u64::from(length);
        if end > self.len as u64 {
            return Err(Error::OutOfBounds {
                offset: u64::from(offset),
                len: u64::from(length),
                size: self.len as u64,
            });
        }
        Ok(())
    }

    /// Copies `out.len()` bytes at `offset` out of the buffer.
    pub fn read(&self, offset: u32, out: &mut [u8]) -> Result<()> {
        self.check(offset, u32::try_from(out.len()).unwrap_or(u32::MAX))?;
        self.mapping.read(offset as usize, out)
    }

    /// Copies `data` into the buffer at `offset`.
    pub fn write(&self, offset: u32, data: &[u8]) -> Result<()> {
        self.check(offset, u32::try_from(data.len()).unwrap_or(u32::MAX))?;
        self.mapping.write(offset as usize, data)
    }

    /// Fills `length` bytes at `offset` with a repeated pattern.
    pub fn fill(&self, offset: u32, length: u32, pattern: &[u8]) -> Result<()> {
        self.check(offset, length)?;
        self.mapping.fill(offset as usize, length as usize, pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Grants are pages of one anonymous region; gref = page index.
    #[derive(Debug)]
    struct PageGrants {
        pages: Mapping,
        maps: Mutex<usize>,
    }

    impl PageGrants {
        fn new(count: usize) -> PageGrants {
            PageGrants {
                pages: Mapping::anonymous(count * PAGE_SIZE).unwrap(),
                maps: Mutex::new(0),
            }
        }

        fn put_u32(&self, page: u32, offset: usize, value: u32) {
            self.pages
                .write(page as usize * PAGE_SIZE + offset, &value.to_le_bytes())
                .unwrap();
        }
    }

    impl GrantMapper for PageGrants {
        fn map(&self, domid: DomId, grefs: &[GrantRef], _writable: bool) -> Result<Mapping> {
            *self.maps.lock().unwrap() += 1;
            let copy = Mapping::anonymous(grefs.len() * PAGE_SIZE)?;
            for (index, &gref) in grefs.iter().enumerate() {
                let mut page = vec![0u8; PAGE_SIZE];
                self.pages
                    .read(gref as usize * PAGE_SIZE, &mut page)
                    .map_err(|_| Error::Grant {
                        domid,
                        problem: format!("no page {gref}"),
                    })?;
                copy.write(index * PAGE_SIZE, &page)?;
            }
            Ok(copy)
        }
    }

    #[test]
    fn walks_a_two_page_directory() {
        // 1030 buffer pages need two directory pages (1023 + 7).
        let grants = PageGrants::new(1040);
        let (first, second) = (1, 2);
        grants.put_u32(first, 0, second);
        for slot in 0..1023u32 {
            grants.put_u32(first, 4 + slot as usize * 4, 3 + slot % 1000);
        }
        grants.put_u32(second, 0, 0);
        for slot in 0..7u32 {
            grants.put_u32(second, 4 + slot as usize * 4, 1030 + slot);
        }
        grants.put_u32(1036, 8, 0xABCD_EF01);
        let buffer_sz = (1029 * PAGE_SIZE + 100) as u32;
        let buffer = SharedBuffer::map(&grants, 5, first, buffer_sz).unwrap();
        assert_eq!(buffer.len(), buffer_sz as usize);
        // Buffer page 1029 is gref 1036 (second directory page, slot 6).
        let mut word = [0u8; 4];
        buffer
            .read((1029 * PAGE_SIZE + 8) as u32, &mut word)
            .unwrap();
        assert_eq!(u32::from_le_bytes(word), 0xABCD_EF01);
        assert!(buffer.read(buffer_sz - 3, &mut word).is_err());
        assert!(buffer.check(u32::MAX, 2).is_err());
        assert!(buffer.check(buffer_sz, 0).is_ok());
        assert_eq!(*grants.maps.lock().unwrap(), 3);
    }

    #[test]
    fn a_short_directory_is_refused_and_a_cycle_cannot_loop() {
        let grants = PageGrants::new(8);
        grants.put_u32(1, 0, 0);
        let needs_two = (1024 * PAGE_SIZE) as u32;
        let error = SharedBuffer::map(&grants, 5, 1, needs_two).unwrap_err();
        assert!(error.to_string().contains("ends after 1 pages"), "{error}");
        // A directory pointing at itself is read only as often as the size needs.
        grants.put_u32(1, 0, 1);
        for slot in 0..1023usize {
            grants.put_u32(1, 4 + slot * 4, 2);
        }
        SharedBuffer::map(&grants, 5, 1, needs_two).expect("bounded walk");
        // A grant outside the table fails cleanly.
        grants.put_u32(1, 4, 999);
        assert!(SharedBuffer::map(&grants, 5, 1, 4096).is_err());
        assert!(SharedBuffer::map(&grants, 5, 1, 0).is_err());
    }
}
