//! The event queue: buffers posted ahead, events read as the device fills them.

use std::time::Duration;

use super::Driver;
use crate::support::spec::{Event, queue};
use crate::support::virtqueue::Segment;

impl Driver {
    /// Posts `count` event buffers, as the driver does at probe.
    pub fn post_event_buffers(&mut self, count: usize) {
        for _ in 0..count {
            let buffer = self.ram.alloc(8, 8);
            let head = self.queues[usize::from(queue::EVENT)].add(
                &mut self.ram,
                &[Segment::writable(buffer, 8)],
                self.options.indirect,
            );
            self.event_buffers.insert(head, buffer);
        }
        self.kick(queue::EVENT);
    }

    /// The next event within `timeout`; its buffer is posted again, as Linux does.
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let used = self.wait_raw(queue::EVENT, timeout)?;
        let buffer = self.event_buffers.remove(&used.head).unwrap_or_else(|| {
            panic!(
                "event queue returned head {} that holds no event buffer",
                used.head
            )
        });
        assert_eq!(used.len, 8, "an event is 8 bytes");
        let event = Event::parse(&self.ram.read(buffer, 8));
        let head = self.queues[usize::from(queue::EVENT)].add(
            &mut self.ram,
            &[Segment::writable(buffer, 8)],
            self.options.indirect,
        );
        self.event_buffers.insert(head, buffer);
        self.kick(queue::EVENT);
        Some(event)
    }
}
