//! A rate limit for the warnings a guest causes: each card (virtio-snd) or frontend
//! domain (sndif) may log [`GUEST_WARNINGS_PER_SECOND`] a second; more are counted, and
//! the count goes with the next warning let through, so no guest can flood the log.

use std::time::{Duration, Instant};

/// Warnings one guest may cause per second.
pub const GUEST_WARNINGS_PER_SECOND: u32 = 10;

/// One guest's warning budget.
#[derive(Debug)]
pub struct GuestWarnings {
    window: Instant,
    in_window: u32,
    suppressed: u64,
}

impl Default for GuestWarnings {
    fn default() -> Self {
        GuestWarnings::new()
    }
}

impl GuestWarnings {
    /// A fresh budget.
    pub fn new() -> GuestWarnings {
        GuestWarnings {
            window: Instant::now(),
            in_window: 0,
            suppressed: 0,
        }
    }

    /// Whether a warning may be logged now; if so, how many were held back before it.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.in_window = 0;
        }
        if self.in_window >= GUEST_WARNINGS_PER_SECOND {
            self.suppressed += 1;
            return None;
        }
        self.in_window += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_warnings_are_limited_per_second_and_the_held_back_ones_counted() {
        let mut warnings = GuestWarnings::new();
        let allowed: Vec<Option<u64>> = (0..15).map(|_| warnings.allow()).collect();
        assert!(allowed[..10].iter().all(|a| *a == Some(0)), "{allowed:?}");
        assert!(allowed[10..].iter().all(Option::is_none), "{allowed:?}");
        // The next second: the first warning says how many were held back.
        warnings.window -= Duration::from_secs(1);
        assert_eq!(warnings.allow(), Some(5));
        assert_eq!(warnings.allow(), Some(0));
    }
}
