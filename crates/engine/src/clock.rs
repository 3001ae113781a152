//! Real-time: the absolute-deadline clock that paces devices without a hardware clock.
//!
//! A file, null or tone device is paced so that period `k` is released at
//! `start + k × period` on `CLOCK_MONOTONIC`. Deadlines are absolute, so a late wake-up
//! never accumulates into drift: the next period simply sleeps less. If the thread falls
//! more than a whole buffer behind (stopped in a debugger, machine suspended) the clock
//! re-anchors instead of bursting to catch up, and counts it.
//!
//! A period costs one system call here, the sleep: where reading `CLOCK_MONOTONIC` is a
//! system call of its own (a Xen PV dom0 has no vDSO clock, and there each system call
//! costs the emulated host a page-table switch), the check for a pacer that fell behind
//! reads `CLOCK_MONOTONIC_COARSE`, which the vDSO serves from memory everywhere.

use std::sync::OnceLock;
use std::time::Duration;

/// Paces periods of `period_frames` at `rate` frames per second.
#[derive(Debug)]
pub struct Pacer {
    rate: u32,
    period_frames: u64,
    anchor_ns: Option<u64>,
    frames_released: u64,
    resyncs: u64,
}

/// How far behind the clock may fall before it re-anchors instead of catching up.
const MAX_LAG: Duration = Duration::from_millis(200);

impl Pacer {
    /// A pacer for periods of `period_frames` at `rate` Hz; starts on the first `wait`.
    pub fn new(rate: u32, period_frames: u32) -> Pacer {
        Pacer {
            rate: rate.max(1),
            period_frames: u64::from(period_frames),
            anchor_ns: None,
            frames_released: 0,
            resyncs: 0,
        }
    }

    /// Call right after handing a period to the device: waits until that period has
    /// been "played", i.e. until the device has room for the next one. The first call
    /// anchors the timeline, so `k` calls take `k` periods of wall time.
    pub fn wait(&mut self) {
        let anchor = *self.anchor_ns.get_or_insert_with(monotonic_ns);
        self.frames_released += self.period_frames;
        let due = anchor + frames_to_ns(self.frames_released, self.rate);
        // The coarse clock trails the precise one by at most a scheduler tick: far less
        // than MAX_LAG, and it never runs ahead, so it cannot re-anchor a pacer on time.
        if coarse_monotonic_ns() > due + MAX_LAG.as_nanos() as u64 {
            // Far behind: start a new timeline from now instead of bursting.
            self.anchor_ns = Some(monotonic_ns());
            self.frames_released = 0;
            self.resyncs += 1;
        } else {
            // Returns at once when `due` has passed.
            sleep_until_ns(due);
        }
    }

    /// Times the clock re-anchored after falling behind.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Forgets the anchor: the next `wait` starts a new timeline.
    pub fn reset(&mut self) {
        self.anchor_ns = None;
        self.frames_released = 0;
    }
}

fn frames_to_ns(frames: u64, rate: u32) -> u64 {
    // u128 keeps frames × 1e9 exact for any realistic run length.
    (u128::from(frames) * 1_000_000_000 / u128::from(rate)) as u64
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Nanoseconds on `CLOCK_MONOTONIC_COARSE`: the same timeline as [`monotonic_ns`], as of
/// the last scheduler tick, and read without a system call on every Linux host.
pub fn coarse_monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// Nanoseconds on `clock`, one Linux always has (both above exist since 2.6.32).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; `clock` is a constant Linux knows.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether reading [`monotonic_ns`] is cheap here (the vDSO reads it from memory), not a
/// system call. Measured once: the quickest of a few back-to-back reads. A system call
/// takes at least a few hundred nanoseconds even natively; a vDSO read some tens.
pub fn precise_clock_is_cheap() -> bool {
    static CHEAP: OnceLock<bool> = OnceLock::new();
    *CHEAP.get_or_init(|| {
        let quickest = (0..16)
            .map(|_| {
                let first = monotonic_ns();
                monotonic_ns().saturating_sub(first)
            })
            .min()
            .unwrap_or(u64::MAX);
        quickest < CHEAP_CLOCK_NS
    })
}

/// A clock read quicker than this is not a system call.
const CHEAP_CLOCK_NS: u64 = 250;

/// Sleeps until `deadline_ns` on `CLOCK_MONOTONIC`, resuming after signals.
pub fn sleep_until_ns(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; the remaining-time pointer may be null with
        // TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_periods_on_an_absolute_timeline() {
        // 10 periods of 10 ms must take at least 100 ms; only the lower bound is
        // asserted, the machine may be slow.
        let mut pacer = Pacer::new(48_000, 480);
        let start = monotonic_ns();
        for _ in 0..10 {
            pacer.wait();
        }
        let elapsed = monotonic_ns() - start;
        assert!(elapsed >= 100_000_000, "elapsed {elapsed} ns");
        assert_eq!(pacer.resyncs(), 0);
    }

    #[test]
    fn the_coarse_clock_is_the_precise_timeline_a_tick_behind() {
        let before = monotonic_ns();
        let coarse = coarse_monotonic_ns();
        let after = monotonic_ns();
        // Never ahead of the precise clock; behind by about a tick (10 ms at HZ=100).
        assert!(coarse <= after, "coarse {coarse} after {after}");
        assert!(
            coarse + 50_000_000 >= before,
            "coarse {coarse} before {before}"
        );
    }

    #[test]
    fn a_pacer_far_behind_starts_a_new_timeline() {
        let mut pacer = Pacer::new(48_000, 480);
        pacer.wait();
        // Fall 300 ms behind (more than MAX_LAG).
        std::thread::sleep(Duration::from_millis(300));
        pacer.wait();
        assert_eq!(pacer.resyncs(), 1);
        // And then paces on without bursting or another resync.
        pacer.wait();
        assert_eq!(pacer.resyncs(), 1);
    }

    #[test]
    fn frame_time_math_is_exact() {
        assert_eq!(frames_to_ns(48_000, 48_000), 1_000_000_000);
        assert_eq!(frames_to_ns(441, 44_100), 10_000_000);
        assert_eq!(
            frames_to_ns(u64::from(u32::MAX) * 1000, 8000),
            536_870_911_875_000_000
        );
    }
}
