//! Deadlines that tell a runaway plugin from a preempted one.
//!
//! A call's deadline is wall-clock time (epoch ticks), but on a loaded host the thread
//! that runs a healthy plugin can be descheduled for longer than the whole deadline, and
//! disabling that plugin would punish it for the host's load. So when a deadline passes,
//! the store's callback does not trap at once: it grants a probe window and reads the
//! thread's own CPU clock and the wall clock at its start and end. A plugin that really
//! loops keeps its thread busy, so it is interrupted after the first window in which the
//! thread ran for at least half of the time that passed; one that merely waits for a CPU
//! gets another window, up to [`MAX_PROBES`] (a bound on how late a starved call can make
//! its cycle). The windows last at least half the deadline (up to one tick more): a call
//! that loops is interrupted after about two deadlines, and a healthy one, which needs
//! microseconds once it runs again, finishes inside the window in which its thread gets
//! the CPU back. The normal path pays nothing: the callback runs only once a deadline
//! has passed.

use std::time::Instant;

use wasmtime::{Store, UpdateDeadline};

use crate::runtime::{HostState, base_ticks};

/// Probe windows granted after a deadline before the call is interrupted regardless.
pub const MAX_PROBES: u32 = 20;

/// What happened to the current call's deadline so far.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Overrun {
    /// The thread's CPU clock (ns) and the wall clock when the current probe window
    /// began; `None` until the deadline first passes.
    window: Option<(u64, Instant)>,
    /// Probe windows granted.
    probes: u32,
}

/// The per-store deadline settings and the state of the call in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// Length of a probe window, in epoch ticks before the stride's allowance.
    probe_ticks: u64,
    overrun: Overrun,
    /// Calls that ran past their deadline and then finished.
    pub(crate) late: u64,
}

impl Deadline {
    /// Probe windows of at least `probe_ms` milliseconds. A window of "the next tick"
    /// could end a moment after it began, and a thread that ran for that whole moment
    /// would look busy however little it needed: a starved healthy call just given its
    /// CPU back would be interrupted as a loop.
    pub(crate) fn new(probe_ms: u64) -> Deadline {
        Deadline {
            probe_ticks: base_ticks(probe_ms),
            overrun: Overrun::default(),
            late: 0,
        }
    }

    /// Before a call: nothing has overrun yet.
    #[inline(always)]
    pub(crate) fn start_call(&mut self) {
        self.overrun = Overrun::default();
    }

    /// After a call that returned: counts it when it finished past its deadline.
    #[inline(always)]
    pub(crate) fn finish_call(&mut self) {
        if self.overrun.probes > 0 {
            self.late += 1;
        }
    }
}

/// The decision at the end of a deadline or probe window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Trap the call with an interrupt.
    Interrupt,
    /// Grant another probe window.
    Probe,
}

/// Judges a passed deadline. `window` is the CPU time the thread used and the wall time
/// that passed during the probe window that just ended (`None` when the call's own
/// deadline just passed); `probes` the windows granted so far.
pub fn judge(window: Option<(u64, u64)>, probes: u32) -> Verdict {
    if probes >= MAX_PROBES {
        return Verdict::Interrupt;
    }
    match window {
        // The deadline itself: how busy the thread was is not known yet; measure.
        None => Verdict::Probe,
        Some((ran_ns, elapsed_ns)) => {
            if ran_ns.saturating_mul(2) >= elapsed_ns {
                Verdict::Interrupt
            } else {
                Verdict::Probe
            }
        }
    }
}

/// The CPU time the calling thread has used, in nanoseconds (`None` if unknown).
fn thread_cpu_ns() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant Linux knows.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (status == 0).then(|| {
        (now.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(now.tv_nsec as u64)
    })
}

/// Installs the deadline callback on `store`.
pub(crate) fn arm(store: &mut Store<HostState>) {
    store.epoch_deadline_callback(|mut context| {
        let state = context.data_mut();
        // A call is running: the ticker must keep ticking.
        state.note_call();
        let deadline = &mut state.deadline;
        let Some(cpu) = thread_cpu_ns() else {
            // Cannot tell a starved thread from a busy one: the plain deadline.
            return Ok(UpdateDeadline::Interrupt);
        };
        let wall = Instant::now();
        let overrun = &mut deadline.overrun;
        let window = overrun.window.map(|(cpu_then, wall_then)| {
            let elapsed = wall.saturating_duration_since(wall_then).as_nanos();
            (
                cpu.saturating_sub(cpu_then),
                u64::try_from(elapsed).unwrap_or(u64::MAX),
            )
        });
        match judge(window, overrun.probes) {
            Verdict::Interrupt => Ok(UpdateDeadline::Interrupt),
            Verdict::Probe => {
                overrun.window = Some((cpu, wall));
                overrun.probes += 1;
                let ticks = deadline.probe_ticks;
                Ok(UpdateDeadline::Continue(state.deadline_ticks(ticks)))
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_deadline_itself_starts_a_probe() {
        assert_eq!(judge(None, 0), Verdict::Probe);
    }

    #[test]
    fn a_busy_thread_is_interrupted_after_one_probe() {
        // The thread ran for the whole 10 ms window: a loop.
        assert_eq!(judge(Some((10 * MS, 10 * MS)), 1), Verdict::Interrupt);
        // Half the window is enough.
        assert_eq!(judge(Some((5 * MS, 10 * MS)), 1), Verdict::Interrupt);
    }

    #[test]
    fn a_starved_thread_gets_more_windows_up_to_the_bound() {
        // 0.2 ms of CPU in a 10 ms window: the thread waited for a CPU.
        assert_eq!(judge(Some((MS / 5, 10 * MS)), 1), Verdict::Probe);
        assert_eq!(judge(Some((0, 10 * MS)), MAX_PROBES - 1), Verdict::Probe);
        assert_eq!(judge(Some((0, 10 * MS)), MAX_PROBES), Verdict::Interrupt);
    }

    #[test]
    fn the_thread_clock_advances_with_work() {
        let before = thread_cpu_ns().expect("thread CPU clock");
        let mut x = 1u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns().expect("thread CPU clock") > before);
    }
}
