//! The backend's end of a Xen shared request ring (`ring.h`'s `BACK_RING`).
//!
//! The frontend produces requests up to `req_prod`; the backend consumes them with a
//! private `req_cons`, answers each in the slot of the same index and publishes
//! `rsp_prod`. Every index on the page is written by a guest that may be hostile, so:
//!
//! - `req_prod − req_cons` larger than the ring is corruption: [`RingError`], never a loop
//!   over garbage (the device is then cut off);
//! - each request is copied out of its slot before it is parsed, so the guest cannot
//!   change it half-way;
//! - after draining, [`BackRing::final_check_for_requests`] sets `req_event = req_cons + 1`
//!   and looks again. Without that step the frontend's notification hold-off never
//!   re-arms and it stops notifying after its first request.
//!
//! Responses are published with the classic check: notify when
//! `(new − rsp_event) < (new − old)` (free-running `u32` arithmetic).

use std::sync::atomic::{Ordering, fence};

use crate::error::Result;
use crate::grant::Mapping;
use crate::wire::{
    REQ_EVENT_OFFSET, REQ_PROD_OFFSET, RING_ENTRIES_OFFSET, RING_ENTRY_SIZE, RING_SIZE,
    RSP_EVENT_OFFSET, RSP_PROD_OFFSET,
};

/// A shared ring the frontend corrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// `req_prod` claims more outstanding requests than the ring holds.
    #[error(
        "req_prod {req_prod} is {} requests past req_cons {req_cons}; the ring holds {RING_SIZE}",
        req_prod.wrapping_sub(*req_cons)
    )]
    RequestOverflow {
        /// The frontend's producer index.
        req_prod: u32,
        /// The backend's consumer index.
        req_cons: u32,
    },
}

/// The backend side of one request ring.
#[derive(Debug)]
pub struct BackRing {
    page: Mapping,
    /// Next request to consume.
    req_cons: u32,
    /// Next response slot to fill.
    rsp_prod_pvt: u32,
    /// `rsp_prod` as last published by us (never re-read from the page, which the guest
    /// could have scribbled on).
    rsp_published: u32,
}

impl BackRing {
    /// Attaches to a ring page the frontend initialized, continuing from its `rsp_prod`
    /// (0 for a fresh ring), as `BACK_RING_ATTACH` does.
    pub fn attach(page: Mapping) -> Result<BackRing> {
        let start = page.atomic_u32(RSP_PROD_OFFSET)?.load(Ordering::Acquire);
        // Fail early on a page too small for the ring.
        page.atomic_u32(RSP_EVENT_OFFSET)?;
        let last_slot = RING_ENTRIES_OFFSET + (RING_SIZE as usize - 1) * RING_ENTRY_SIZE;
        let mut probe = [0u8; 1];
        page.read(last_slot + RING_ENTRY_SIZE - 1, &mut probe)?;
        Ok(BackRing {
            page,
            req_cons: start,
            rsp_prod_pvt: start,
            rsp_published: start,
        })
    }

    fn word(&self, offset: usize) -> &std::sync::atomic::AtomicU32 {
        // Offsets are constants of the header, checked by `attach`.
        self.page
            .atomic_u32(offset)
            .unwrap_or_else(|_| unreachable!("ring header offsets were checked at attach"))
    }

    fn slot_offset(index: u32) -> usize {
        RING_ENTRIES_OFFSET + (index % RING_SIZE) as usize * RING_ENTRY_SIZE
    }

    /// Requests published but not consumed, validated against the ring size.
    pub fn unconsumed_requests(&self) -> Result<u32, RingError> {
        let req_prod = self.word(REQ_PROD_OFFSET).load(Ordering::Acquire);
        let pending = req_prod.wrapping_sub(self.req_cons);
        if pending > RING_SIZE {
            return Err(RingError::RequestOverflow {
                req_prod,
                req_cons: self.req_cons,
            });
        }
        // Also bounded by the slots whose responses are still owed (ring.h's
        // RING_HAS_UNCONSUMED_REQUESTS takes the smaller of the two).
        let owed = self.req_cons.wrapping_sub(self.rsp_prod_pvt);
        Ok(pending.min(RING_SIZE.saturating_sub(owed)))
    }

    /// Copies out the next request, if any.
    pub fn next_request(&mut self) -> Result<Option<[u8; RING_ENTRY_SIZE]>> {
        if self.unconsumed_requests()? == 0 {
            return Ok(None);
        }
        // The Acquire load of req_prod orders the slot read after it.
        let mut bytes = [0u8; RING_ENTRY_SIZE];
        self.page
            .read(Self::slot_offset(self.req_cons), &mut bytes)?;
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(bytes))
    }

    /// Writes a response into the next response slot (not yet visible to the frontend).
    pub fn push_response(&mut self, bytes: &[u8; RING_ENTRY_SIZE]) -> Result<()> {
        self.page
            .write(Self::slot_offset(self.rsp_prod_pvt), bytes)?;
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the pushed responses; returns whether the frontend asked to be notified
    /// (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`).
    pub fn publish_responses(&mut self) -> bool {
        let old = self.rsp_published;
        let new = self.rsp_prod_pvt;
        if old == new {
            return false;
        }
        // The Release store orders the response slots before the index.
        self.word(RSP_PROD_OFFSET).store(new, Ordering::Release);
        self.rsp_published = new;
        // Full barrier: our rsp_prod store must be visible before we read rsp_event, or
        // we and the frontend could both decide the other will act.
        fence(Ordering::SeqCst);
        let rsp_event = self.word(RSP_EVENT_OFFSET).load(Ordering::Acquire);
        new.wrapping_sub(rsp_event) < new.wrapping_sub(old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: whether more requests are waiting. When none are,
    /// re-arms the frontend's notification (`req_event = req_cons + 1`) and checks once
    /// more, closing the race with a request published meanwhile.
    pub fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.word(REQ_EVENT_OFFSET)
            .store(self.req_cons.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        Ok(self.unconsumed_requests()? > 0)
    }

    /// The private consumer index (for tests and logs).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::wire::PAGE_SIZE;

    /// A ring page plus a second mapping of the same memory playing the frontend.
    fn ring_at(start: u32) -> (BackRing, std::sync::Arc<Mapping>) {
        let page = Mapping::anonymous(PAGE_SIZE).expect("page");
        // Both views share the bytes: the test reads the raw words through a pointer copy.
        let raw = std::sync::Arc::new(page);
        let front = raw.clone();
        for offset in [REQ_PROD_OFFSET, RSP_PROD_OFFSET] {
            front
                .atomic_u32(offset)
                .unwrap()
                .store(start, Ordering::SeqCst);
        }
        front
            .atomic_u32(REQ_EVENT_OFFSET)
            .unwrap()
            .store(start + 1, Ordering::SeqCst);
        front
            .atomic_u32(RSP_EVENT_OFFSET)
            .unwrap()
            .store(start + 1, Ordering::SeqCst);
        let shared = alias(&raw);
        (BackRing::attach(shared).expect("attach"), front)
    }

    /// A second Mapping over the same bytes that unmaps nothing.
    fn alias(page: &Mapping) -> Mapping {
        let base = std::ptr::NonNull::new(page.atomic_u32(0).unwrap() as *const _ as *mut u8)
            .expect("non-null");
        // SAFETY: the test keeps the owning mapping alive for the alias's lifetime.
        unsafe { Mapping::from_raw(base, page.len(), None) }
    }

    fn produce(front: &Mapping, id: u8) {
        let prod = front.atomic_u32(REQ_PROD_OFFSET).unwrap();
        let index = prod.load(Ordering::SeqCst);
        let mut slot = [0u8; RING_ENTRY_SIZE];
        slot[0] = id;
        front.write(BackRing::slot_offset(index), &slot).unwrap();
        prod.store(index.wrapping_add(1), Ordering::SeqCst);
    }

    #[test]
    fn consumes_in_order_and_wraps_u32() {
        for start in [0, 30, u32::MAX - 3] {
            let (mut ring, front) = ring_at(start);
            for round in 0..3u8 {
                for id in 0..20u8 {
                    produce(&front, round * 20 + id);
                }
                for id in 0..20u8 {
                    let request = ring.next_request().unwrap().expect("request");
                    assert_eq!(request[0], round * 20 + id, "start {start}");
                    ring.push_response(&request).unwrap();
                }
                assert!(ring.next_request().unwrap().is_none());
                ring.publish_responses();
            }
            assert_eq!(ring.req_cons(), start.wrapping_add(60));
        }
    }

    #[test]
    fn hostile_req_prod_is_an_error_not_a_loop() {
        let (mut ring, front) = ring_at(5);
        let prod = front.atomic_u32(REQ_PROD_OFFSET).unwrap();
        for hostile in [5 + RING_SIZE + 1, 4, 5u32.wrapping_sub(1000), u32::MAX] {
            prod.store(hostile, Ordering::SeqCst);
            assert!(
                matches!(
                    ring.next_request(),
                    Err(Error::Ring(RingError::RequestOverflow { .. }))
                ),
                "req_prod {hostile}"
            );
            assert!(ring.final_check_for_requests().is_err());
        }
        // Exactly a full ring is legal.
        prod.store(5 + RING_SIZE, Ordering::SeqCst);
        assert_eq!(ring.unconsumed_requests(), Ok(RING_SIZE));
    }

    #[test]
    fn requests_beyond_the_owed_responses_wait() {
        let (mut ring, front) = ring_at(0);
        for id in 0..RING_SIZE as u8 {
            produce(&front, id);
        }
        // Consume the whole ring without answering: nothing more may be taken even if the
        // frontend (wrongly) publishes more.
        for _ in 0..RING_SIZE {
            ring.next_request().unwrap().expect("request");
        }
        front
            .atomic_u32(REQ_PROD_OFFSET)
            .unwrap()
            .store(RING_SIZE + 3, Ordering::SeqCst);
        assert_eq!(ring.unconsumed_requests(), Ok(0));
    }

    #[test]
    fn final_check_rearms_req_event() {
        let (mut ring, front) = ring_at(0);
        produce(&front, 1);
        produce(&front, 2);
        assert!(ring.final_check_for_requests().unwrap());
        while ring.next_request().unwrap().is_some() {}
        assert!(!ring.final_check_for_requests().unwrap());
        let req_event = front
            .atomic_u32(REQ_EVENT_OFFSET)
            .unwrap()
            .load(Ordering::SeqCst);
        assert_eq!(req_event, 3, "req_event must be req_cons + 1");
        // A request published after the re-arm is seen by the check.
        produce(&front, 3);
        assert!(ring.final_check_for_requests().unwrap());
    }

    #[test]
    fn notify_follows_rsp_event() {
        let (mut ring, front) = ring_at(0);
        let rsp_event = front.atomic_u32(RSP_EVENT_OFFSET).unwrap();
        let response = [0u8; RING_ENTRY_SIZE];
        // Frontend waits for response 1 (rsp_event = 1): the first publish notifies.
        ring.push_response(&response).unwrap();
        assert!(ring.publish_responses());
        // Frontend has not re-armed (rsp_event still 1): no notification for the next.
        ring.push_response(&response).unwrap();
        assert!(!ring.publish_responses());
        // Re-armed at 3: publishing responses 3 and 4 at once notifies once.
        rsp_event.store(3, Ordering::SeqCst);
        ring.push_response(&response).unwrap();
        ring.push_response(&response).unwrap();
        assert!(ring.publish_responses());
        // Nothing new: no notification.
        assert!(!ring.publish_responses());
        let rsp_prod = front
            .atomic_u32(RSP_PROD_OFFSET)
            .unwrap()
            .load(Ordering::SeqCst);
        assert_eq!(rsp_prod, 4);
    }

    #[test]
    fn notify_arithmetic_across_the_u32_wrap() {
        let (mut ring, front) = ring_at(u32::MAX - 1);
        let rsp_event = front.atomic_u32(RSP_EVENT_OFFSET).unwrap();
        rsp_event.store(u32::MAX, Ordering::SeqCst);
        ring.push_response(&[0; RING_ENTRY_SIZE]).unwrap();
        assert!(ring.publish_responses());
        rsp_event.store(1, Ordering::SeqCst);
        ring.push_response(&[0; RING_ENTRY_SIZE]).unwrap();
        assert!(
            !ring.publish_responses(),
            "new = 0 has not reached rsp_event = 1"
        );
        ring.push_response(&[0; RING_ENTRY_SIZE]).unwrap();
        assert!(ring.publish_responses(), "new = 1 reached rsp_event = 1");
    }
}
