//! What one card's guest may make the daemon hold.
//!
//! Every card has a [`Budget`]: how many streams it may have, how large a buffer each
//! stream may ask for and all of them together (the engine allocates one ring per
//! prepared stream, of the guest's buffer size), and how many samples per second
//! (rate × channels) each stream and the whole card may push through the shared endpoint
//! threads, where decoding, resampling and mixing cost grows with exactly that product.
//!
//! The per-stream limits are checked when the guest sets its parameters, the card's
//! totals when a stream is prepared (the moment the ring is allocated); what a prepared
//! stream holds is given back when it is released or its card goes away. A refusal is an
//! [`EngineError::Budget`] that names the card and the limit, published as
//! [`Event::BudgetExceeded`](crate::Event::BudgetExceeded); the transports answer it with
//! their protocol's own error.
//!
//! A card may also have only so many resampler filters designed for rates outside the
//! standard ones at once ([`FILTER_DESIGN_BURST`], then one more every
//! [`FILTER_DESIGN_INTERVAL`]): a filter not yet kept is designed on the thread that
//! serves every guest of a Xen back end, up to 8 ms each, and a Xen guest (which lists
//! its own rates) choosing a new odd rate at every prepare would otherwise keep that
//! thread from the others. Past that, a prepare at such a rate whose filter is not kept
//! is refused with [`EngineError::Busy`]. Standard rates (the few dozen filters of
//! virtio's rate list) and rates whose filters are kept are never refused.
//!
//! The defaults fit what Linux's `virtio_snd` and `xen-snd-front` ask for with their
//! defaults (a few tens of KiB per stream at 48 kHz stereo) with a wide margin, and stop
//! a guest asking for 64 streams of 64 MiB at 768 kHz × 18 channels.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::{EngineError, Result};

/// New resampler filters a card may have designed at once (as many as are kept).
pub const FILTER_DESIGN_BURST: u32 = 16;

/// How soon a card that used its burst may have one more new filter designed.
pub const FILTER_DESIGN_INTERVAL: Duration = Duration::from_millis(250);

/// The most streams any card may have, whatever its budget says.
pub const MAX_STREAMS: u32 = crate::registry::MAX_STREAMS_PER_CARD as u32;

/// One card's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Streams the card may have.
    pub streams: u32,
    /// Largest buffer one stream may ask for, in bytes.
    pub stream_buffer_bytes: u32,
    /// All prepared streams' buffers together, in bytes.
    pub card_buffer_bytes: u64,
    /// Largest rate × channels of one stream (samples per second).
    pub stream_samples_per_second: u64,
    /// All prepared streams' rate × channels together.
    pub card_samples_per_second: u64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            streams: 32,
            stream_buffer_bytes: 4 << 20,
            card_buffer_bytes: 32 << 20,
            // 384 kHz × 8 channels: anything a real guest plays.
            stream_samples_per_second: 384_000 * 8,
            // Two such streams, or 32 streams of 48 kHz stereo.
            card_samples_per_second: 2 * 384_000 * 8,
        }
    }
}

impl Budget {
    /// Checks that the limits are usable: none is zero, and no stream limit exceeds the
    /// card's.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.streams == 0 || self.streams > MAX_STREAMS {
            return Err(format!(
                "streams must be 1..={MAX_STREAMS}, not {}",
                self.streams
            ));
        }
        if self.stream_buffer_bytes == 0 || self.stream_samples_per_second == 0 {
            return Err("a stream limit of 0 would refuse every stream".to_owned());
        }
        if u64::from(self.stream_buffer_bytes) > self.card_buffer_bytes {
            return Err(format!(
                "stream_buffer_bytes ({}) exceeds card_buffer_bytes ({})",
                self.stream_buffer_bytes, self.card_buffer_bytes
            ));
        }
        if self.stream_samples_per_second > self.card_samples_per_second {
            return Err(format!(
                "stream_samples_per_second ({}) exceeds card_samples_per_second ({})",
                self.stream_samples_per_second, self.card_samples_per_second
            ));
        }
        Ok(())
    }
}

/// Which limit a request went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Budget::streams`].
    Streams,
    /// [`Budget::stream_buffer_bytes`].
    StreamBuffer,
    /// [`Budget::card_buffer_bytes`].
    CardBuffer,
    /// [`Budget::stream_samples_per_second`].
    StreamSamples,
    /// [`Budget::card_samples_per_second`].
    CardSamples,
}

impl Limit {
    /// The budget field's name, as the configuration and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Streams => "streams",
            Limit::StreamBuffer => "stream_buffer_bytes",
            Limit::CardBuffer => "card_buffer_bytes",
            Limit::StreamSamples => "stream_samples_per_second",
            Limit::CardSamples => "card_samples_per_second",
        }
    }

    /// Whether the limit is the card's total (the guest asked for little, but too much
    /// is held already) rather than one stream's.
    pub fn is_card_total(self) -> bool {
        matches!(self, Limit::CardBuffer | Limit::CardSamples)
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A refusal: what was asked against what the budget allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The limit.
    pub limit: Limit,
    /// What the request would have made the total (or the stream's own value).
    pub asked: u64,
    /// The budget's value.
    pub allowed: u64,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} would exceed the card's budget of {}",
            self.limit, self.asked, self.allowed
        )
    }
}

#[derive(Debug, Default)]
struct Usage {
    buffer_bytes: u64,
    samples_per_second: u64,
}

#[derive(Debug)]
struct Account {
    budget: Budget,
    /// Set for a budget of the card's own; otherwise it follows the engine's default.
    own: bool,
    used: Usage,
    designs: Designs,
}

/// New filter designs the card may still have, and since when the next one is earned.
#[derive(Debug)]
struct Designs {
    left: u32,
    since: Instant,
}

impl Designs {
    fn full(now: Instant) -> Designs {
        Designs {
            left: FILTER_DESIGN_BURST,
            since: now,
        }
    }

    /// Adds what the time since the last refill earned, up to the burst.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        let earned = elapsed.as_nanos() / FILTER_DESIGN_INTERVAL.as_nanos();
        if earned == 0 {
            return;
        }
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        self.left = self.left.saturating_add(earned).min(FILTER_DESIGN_BURST);
        self.since = if self.left == FILTER_DESIGN_BURST {
            now
        } else {
            self.since + FILTER_DESIGN_INTERVAL * earned
        };
    }
}

/// One card's budget and what its prepared streams hold, shared by the card and its
/// streams.
#[derive(Debug)]
pub(crate) struct CardBudget {
    card: u32,
    account: Mutex<Account>,
}

impl CardBudget {
    pub(crate) fn new(card: u32, budget: Budget) -> Arc<CardBudget> {
        Arc::new(CardBudget {
            card,
            account: Mutex::new(Account {
                budget,
                own: false,
                used: Usage::default(),
                designs: Designs::full(Instant::now()),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Account> {
        // Plain numbers: a panic elsewhere leaves them consistent.
        self.account
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn budget(&self) -> Budget {
        self.lock().budget
    }

    /// Replaces the limits with the card's own (`own`) or the engine's default; what is
    /// held already stays held (it is checked against the new limits on the next
    /// prepare).
    pub(crate) fn set(&self, budget: Budget, own: bool) {
        let mut account = self.lock();
        account.budget = budget;
        account.own = own;
    }

    /// Takes a new engine default unless the card has a budget of its own.
    pub(crate) fn follow_default(&self, budget: Budget) {
        let mut account = self.lock();
        if !account.own {
            account.budget = budget;
        }
    }

    /// Whether the budget is the card's own.
    pub(crate) fn is_own(&self) -> bool {
        self.lock().own
    }

    /// Bytes and samples per second held by prepared streams now.
    pub(crate) fn used(&self) -> (u64, u64) {
        let account = self.lock();
        (account.used.buffer_bytes, account.used.samples_per_second)
    }

    fn refuse(&self, limit: Limit, asked: u64, allowed: u64) -> EngineError {
        EngineError::Budget {
            card: self.card,
            exceeded: Exceeded {
                limit,
                asked,
                allowed,
            },
        }
    }

    /// Checks one stream's parameters against the per-stream limits.
    pub(crate) fn check_stream(&self, buffer_bytes: u32, samples_per_second: u64) -> Result<()> {
        let budget = self.budget();
        if buffer_bytes > budget.stream_buffer_bytes {
            return Err(self.refuse(
                Limit::StreamBuffer,
                u64::from(buffer_bytes),
                u64::from(budget.stream_buffer_bytes),
            ));
        }
        if samples_per_second > budget.stream_samples_per_second {
            return Err(self.refuse(
                Limit::StreamSamples,
                samples_per_second,
                budget.stream_samples_per_second,
            ));
        }
        Ok(())
    }

    /// Takes one new resampler filter design for a stream at `rate` Hz, or refuses when
    /// the card has used its burst and not yet earned another (see the module
    /// documentation).
    pub(crate) fn take_filter_design(&self, rate: u32, now: Instant) -> Result<()> {
        let mut account = self.lock();
        account.designs.refill(now);
        if account.designs.left == 0 {
            return Err(EngineError::Busy(format!(
                "card {} had {FILTER_DESIGN_BURST} new resampler filters designed lately; \
                 one for {rate} Hz may be in {} ms",
                self.card,
                FILTER_DESIGN_INTERVAL.as_millis()
            )));
        }
        account.designs.left -= 1;
        Ok(())
    }

    /// Checks the stream count before a stream is added to a card holding `existing`.
    pub(crate) fn check_streams(&self, existing: usize) -> Result<()> {
        let allowed = self.budget().streams;
        let asked = existing as u64 + 1;
        if asked > u64::from(allowed) {
            return Err(self.refuse(Limit::Streams, asked, u64::from(allowed)));
        }
        Ok(())
    }

    /// Takes a prepared stream's share, or refuses when the card's totals would pass
    /// their limits (the stream's own limits are checked too: they may have been lowered
    /// since its parameters were set).
    pub(crate) fn reserve(
        self: &Arc<Self>,
        buffer_bytes: u32,
        samples_per_second: u64,
    ) -> Result<Reservation> {
        self.check_stream(buffer_bytes, samples_per_second)?;
        let mut account = self.lock();
        let buffer_total = account.used.buffer_bytes + u64::from(buffer_bytes);
        if buffer_total > account.budget.card_buffer_bytes {
            let allowed = account.budget.card_buffer_bytes;
            drop(account);
            return Err(self.refuse(Limit::CardBuffer, buffer_total, allowed));
        }
        let samples_total = account.used.samples_per_second + samples_per_second;
        if samples_total > account.budget.card_samples_per_second {
            let allowed = account.budget.card_samples_per_second;
            drop(account);
            return Err(self.refuse(Limit::CardSamples, samples_total, allowed));
        }
        account.used.buffer_bytes = buffer_total;
        account.used.samples_per_second = samples_total;
        Ok(Reservation {
            card: self.clone(),
            buffer_bytes: u64::from(buffer_bytes),
            samples_per_second,
        })
    }
}

/// A prepared stream's share of its card's budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    card: Arc<CardBudget>,
    buffer_bytes: u64,
    samples_per_second: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut account = self.card.lock();
        account.used.buffer_bytes = account.used.buffer_bytes.saturating_sub(self.buffer_bytes);
        account.used.samples_per_second = account
            .used
            .samples_per_second
            .saturating_sub(self.samples_per_second);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Budget {
        Budget {
            streams: 2,
            stream_buffer_bytes: 1000,
            card_buffer_bytes: 1500,
            stream_samples_per_second: 96_000,
            card_samples_per_second: 150_000,
        }
    }

    fn limit_of(error: EngineError) -> Limit {
        match error {
            EngineError::Budget { card, exceeded } => {
                assert_eq!(card, 7);
                exceeded.limit
            }
            other => panic!("not a budget refusal: {other}"),
        }
    }

    #[test]
    fn one_stream_past_its_own_limits_is_refused() {
        let card = CardBudget::new(7, small());
        assert_eq!(
            limit_of(card.check_stream(1001, 1).unwrap_err()),
            Limit::StreamBuffer
        );
        assert_eq!(
            limit_of(card.check_stream(1000, 96_001).unwrap_err()),
            Limit::StreamSamples
        );
        card.check_stream(1000, 96_000).unwrap();
    }

    #[test]
    fn the_card_total_counts_prepared_streams_and_is_given_back() {
        let card = CardBudget::new(7, small());
        let first = card.reserve(1000, 96_000).unwrap();
        assert_eq!(
            limit_of(card.reserve(600, 1).unwrap_err()),
            Limit::CardBuffer
        );
        assert_eq!(
            limit_of(card.reserve(500, 96_000).unwrap_err()),
            Limit::CardSamples
        );
        // A refusal holds nothing.
        assert_eq!(card.used(), (1000, 96_000));
        let second = card.reserve(500, 54_000).unwrap();
        assert_eq!(card.used(), (1500, 150_000));
        drop(first);
        assert_eq!(card.used(), (500, 54_000));
        drop(second);
        assert_eq!(card.used(), (0, 0));
    }

    #[test]
    fn the_stream_count_is_bounded() {
        let card = CardBudget::new(7, small());
        card.check_streams(1).unwrap();
        assert_eq!(limit_of(card.check_streams(2).unwrap_err()), Limit::Streams);
    }

    #[test]
    fn unusable_budgets_are_named() {
        assert!(Budget::default().check().is_ok());
        let zero = Budget {
            streams: 0,
            ..small()
        };
        assert!(zero.check().unwrap_err().contains("streams"));
        let inverted = Budget {
            stream_buffer_bytes: 2000,
            ..small()
        };
        assert!(inverted.check().unwrap_err().contains("card_buffer_bytes"));
        let too_many = Budget {
            streams: MAX_STREAMS + 1,
            ..small()
        };
        assert!(too_many.check().is_err());
    }
}
