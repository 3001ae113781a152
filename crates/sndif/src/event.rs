//! The backend's side of a stream's event page: the producer of `XENSND_EVT_CUR_POS`.
//!
//! The page holds `in_cons` (the frontend's) and `in_prod` (ours), then 63 slots of 64
//! bytes from offset 64; the slot of free-running index `i` is `i % 63`, not a power of
//! two. The ring is full when `in_prod − in_cons == 63`. A full ring never loses an event
//! silently: the event waits in a queue and goes out as soon as the frontend has consumed
//! (the caller retries), and the waits are counted and logged. Each event carries the
//! stream's next id: Linux's frontend drops any event whose id is not the one it expects,
//! so ids are consecutive for the whole connection, assigned when the event is written to
//! the page (a queued event takes its id when it finally goes out).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use crate::grant::Mapping;
use crate::guest_log::guest_warn;
use crate::wire::{EVT_CUR_POS, IN_CONS_OFFSET, IN_PROD_OFFSET, IN_RING_LEN, RawEvent};

/// How many events may wait for room before consecutive positions are merged.
const QUEUE_LIMIT: usize = 256;

/// An event page the frontend corrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventPageError {
    /// `in_cons` claims the frontend consumed events we never produced.
    #[error("in_cons {in_cons} is not within the 63 events before in_prod {in_prod}")]
    ConsumerOutOfRange {
        /// The frontend's consumer index.
        in_cons: u32,
        /// Our producer index.
        in_prod: u32,
    },
    /// The page is smaller than an event page.
    #[error("the event page mapping is too small")]
    TooSmall,
}

/// An event to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Bytes played or captured since OPEN.
    CurPos(u64),
}

/// Counters of one event page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Events written to the page.
    pub published: u64,
    /// Events that had to wait for room.
    pub queued: u64,
    /// Queued positions superseded by a newer one while the queue was at its limit.
    pub merged: u64,
}

/// The producer side of one event page.
#[derive(Debug)]
pub struct EventRing {
    page: Mapping,
    in_prod: u32,
    next_id: u16,
    waiting: VecDeque<Event>,
    stats: EventStats,
}

impl EventRing {
    /// Attaches to an event page, producing from its current `in_prod` (0 when fresh).
    /// Event ids start at 0, as a freshly connected frontend expects.
    pub fn attach(page: Mapping) -> Result<EventRing, EventPageError> {
        let end = crate::wire::event_slot_offset(IN_RING_LEN - 1) + crate::wire::EVENT_SIZE;
        if page.len() < end {
            return Err(EventPageError::TooSmall);
        }
        let in_prod = page
            .atomic_u32(IN_PROD_OFFSET)
            .map_err(|_| EventPageError::TooSmall)?
            .load(Ordering::Acquire);
        Ok(EventRing {
            page,
            in_prod,
            next_id: 0,
            waiting: VecDeque::new(),
            stats: EventStats::default(),
        })
    }

    /// Free slots, checking the frontend's `in_cons`.
    pub fn free_slots(&self) -> Result<u32, EventPageError> {
        let in_cons = self
            .page
            .atomic_u32(IN_CONS_OFFSET)
            .map_err(|_| EventPageError::TooSmall)?
            .load(Ordering::Acquire);
        let used = self.in_prod.wrapping_sub(in_cons);
        if used > IN_RING_LEN {
            return Err(EventPageError::ConsumerOutOfRange {
                in_cons,
                in_prod: self.in_prod,
            });
        }
        Ok(IN_RING_LEN - used)
    }

    /// Queues `event` behind any waiting ones and writes as many as fit. Returns how many
    /// events were written (the caller notifies the frontend when that is not 0).
    pub fn post(&mut self, event: Event) -> Result<usize, EventPageError> {
        if self.waiting.len() >= QUEUE_LIMIT {
            // Positions are cumulative: the newest supersedes the last waiting one, so
            // merging loses no information the frontend could use.
            if let Some(last) = self.waiting.back_mut() {
                *last = event;
                self.stats.merged += 1;
            }
        } else {
            self.waiting.push_back(event);
        }
        self.flush()
    }

    /// Writes waiting events while there is room; returns how many were written.
    pub fn flush(&mut self) -> Result<usize, EventPageError> {
        let mut free = self.free_slots()?;
        let mut written = 0;
        while free > 0 {
            let Some(event) = self.waiting.pop_front() else {
                break;
            };
            self.write(event)?;
            free -= 1;
            written += 1;
        }
        if !self.waiting.is_empty() && written == 0 {
            self.stats.queued += 1;
            if self.stats.queued == 1 || self.stats.queued.is_power_of_two() {
                guest_warn!(
                    waiting = self.waiting.len(),
                    queued_total = self.stats.queued,
                    "event page full: the frontend is not consuming events; holding them"
                );
            }
        }
        Ok(written)
    }

    fn write(&mut self, event: Event) -> Result<(), EventPageError> {
        let Event::CurPos(position) = event;
        let raw = RawEvent {
            id: self.next_id,
            kind: EVT_CUR_POS,
            position,
            ..RawEvent::default()
        };
        self.page
            .write(crate::wire::event_slot_offset(self.in_prod), &raw.encode())
            .map_err(|_| EventPageError::TooSmall)?;
        self.in_prod = self.in_prod.wrapping_add(1);
        // Release: the event bytes are visible before the index that announces them.
        self.page
            .atomic_u32(IN_PROD_OFFSET)
            .map_err(|_| EventPageError::TooSmall)?
            .store(self.in_prod, Ordering::Release);
        self.next_id = self.next_id.wrapping_add(1);
        self.stats.published += 1;
        Ok(())
    }

    /// Events waiting for room.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Counters.
    pub fn stats(&self) -> EventStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EVENTS_OFFSET, PAGE_SIZE, event_slot_offset};

    fn alias(page: &Mapping) -> Mapping {
        let base = std::ptr::NonNull::new(page.atomic_u32(0).unwrap() as *const _ as *mut u8)
            .expect("non-null");
        // SAFETY: the test keeps the owning mapping alive for the alias's lifetime.
        unsafe { Mapping::from_raw(base, page.len(), None) }
    }

    fn page_at(start: u32) -> (EventRing, Mapping) {
        let front = Mapping::anonymous(PAGE_SIZE).expect("page");
        front
            .atomic_u32(IN_PROD_OFFSET)
            .unwrap()
            .store(start, Ordering::SeqCst);
        front
            .atomic_u32(IN_CONS_OFFSET)
            .unwrap()
            .store(start, Ordering::SeqCst);
        (EventRing::attach(alias(&front)).expect("attach"), front)
    }

    fn read_event(front: &Mapping, index: u32) -> (u16, u8, u64) {
        let mut bytes = [0u8; 64];
        front.read(event_slot_offset(index), &mut bytes).unwrap();
        let mut position = [0u8; 8];
        position.copy_from_slice(&bytes[8..16]);
        (
            u16::from_le_bytes([bytes[0], bytes[1]]),
            bytes[2],
            u64::from_le_bytes(position),
        )
    }

    #[test]
    fn fills_63_slots_then_queues_then_drains_in_order() {
        let (mut ring, front) = page_at(0);
        for n in 0..63u64 {
            assert_eq!(ring.post(Event::CurPos(n * 100)), Ok(1));
        }
        assert_eq!(ring.free_slots(), Ok(0));
        // Full: the 64th waits instead of overwriting slot 0.
        assert_eq!(ring.post(Event::CurPos(6300)), Ok(0));
        assert_eq!(ring.waiting(), 1);
        assert_eq!(read_event(&front, 0), (0, EVT_CUR_POS, 0));
        // The frontend consumes 10; the waiting event goes out into slot 63 % 63 = 0.
        front
            .atomic_u32(IN_CONS_OFFSET)
            .unwrap()
            .store(10, Ordering::SeqCst);
        assert_eq!(ring.flush(), Ok(1));
        assert_eq!(read_event(&front, 63), (63, EVT_CUR_POS, 6300));
        assert_eq!(event_slot_offset(63), EVENTS_OFFSET);
        let in_prod = front
            .atomic_u32(IN_PROD_OFFSET)
            .unwrap()
            .load(Ordering::SeqCst);
        assert_eq!(in_prod, 64);
        assert_eq!(ring.stats().published, 64);
        assert_eq!(ring.stats().queued, 1);
    }

    #[test]
    fn ids_are_consecutive_across_the_wrap() {
        let (mut ring, front) = page_at(u32::MAX - 5);
        for n in 0..200u32 {
            ring.post(Event::CurPos(u64::from(n))).unwrap();
            let index = (u32::MAX - 5).wrapping_add(n);
            assert_eq!(read_event(&front, index), (n as u16, 0, u64::from(n)));
            front
                .atomic_u32(IN_CONS_OFFSET)
                .unwrap()
                .store(index.wrapping_add(1), Ordering::SeqCst);
        }
    }

    #[test]
    fn a_hostile_in_cons_is_an_error() {
        let (mut ring, front) = page_at(100);
        ring.post(Event::CurPos(1)).unwrap();
        for hostile in [102, 200, 0, 101 - 64] {
            front
                .atomic_u32(IN_CONS_OFFSET)
                .unwrap()
                .store(hostile, Ordering::SeqCst);
            assert!(
                matches!(
                    ring.post(Event::CurPos(2)),
                    Err(EventPageError::ConsumerOutOfRange { .. })
                ),
                "in_cons {hostile}"
            );
        }
    }

    #[test]
    fn a_long_wait_merges_positions_without_losing_the_newest() {
        let (mut ring, front) = page_at(0);
        for n in 0..(63 + QUEUE_LIMIT as u64 + 10) {
            ring.post(Event::CurPos(n)).unwrap();
        }
        assert_eq!(ring.waiting(), QUEUE_LIMIT);
        assert_eq!(ring.stats().merged, 10);
        front
            .atomic_u32(IN_CONS_OFFSET)
            .unwrap()
            .store(63, Ordering::SeqCst);
        ring.flush().unwrap();
        // Drain everything and check the newest position arrived last.
        let mut last = (0, 0, 0);
        let mut cons = 63u32;
        while ring.waiting() > 0 || cons < 63 + QUEUE_LIMIT as u32 {
            let prod = front
                .atomic_u32(IN_PROD_OFFSET)
                .unwrap()
                .load(Ordering::SeqCst);
            while cons != prod {
                last = read_event(&front, cons);
                cons += 1;
            }
            front
                .atomic_u32(IN_CONS_OFFSET)
                .unwrap()
                .store(cons, Ordering::SeqCst);
            ring.flush().unwrap();
        }
        assert_eq!(last.2, 63 + QUEUE_LIMIT as u64 + 9);
        assert_eq!(
            last.0 as usize,
            63 + QUEUE_LIMIT - 1,
            "ids stay consecutive"
        );
    }
}
