//! A call's deadline against a host that starves the calling thread: the plugin is not
//! the one at fault and stays enabled; one that loops is still stopped, even when every
//! CPU is held by real-time threads.
//!
//! Nothing here is judged by how fast the machine is. The starved call is made to start
//! before its thread is starved and to end only after (a handshake through the plugin's
//! input buffer), and the epoch ticker outranks every thread the tests start, so the
//! deadline passes during the starvation however loaded the host is.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{ENTERED_SAMPLE, HALF_MANIFEST, Misdeed, RELEASED_SAMPLE, half_wat};
use paravox_engine::endpoint::{REALTIME_PRIORITY, set_realtime_priority};
use paravox_engine::plugin::{KernelSetup, PluginFault, PluginKernel, StageRole};
use paravox_pcm::Format;
use paravox_plugin_host::{Kernel, PluginRuntime};

const FRAMES: usize = 480;

/// How long the competitor holds the CPU: eight deadlines' worth of ticks, with room
/// for a ticker that was dozing (one tick per 100 ms) when the call began.
const STARVATION: Duration = Duration::from_millis(160);

/// The tests take turns: each one holds CPUs with real-time threads.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup_of(frames: usize) -> KernelSetup {
    KernelSetup {
        input_rate: 48_000,
        output_rate: 48_000,
        input_channels: 2,
        output_channels: 2,
        input_format: Format::F32Le,
        output_format: Format::F32Le,
        // 480 frames: 10 ms periods, a 20 ms deadline, probe windows of at least 10 ms.
        max_frames: frames as u32,
        inputs: 1,
    }
}

/// A kernel whose process calls, after the set-up's warm-up call, commit `misdeed`.
fn kernel(misdeed: Misdeed) -> Kernel {
    kernel_of(misdeed, FRAMES)
}

/// The same with periods of `frames`.
fn kernel_of(misdeed: Misdeed, frames: usize) -> Kernel {
    let wasm = wat::parse_str(half_wat(HALF_MANIFEST, "", misdeed, 2)).expect("valid WAT");
    let plugin = PluginRuntime::shared(None)
        .expect("runtime")
        .load(&wasm)
        .expect("loads");
    plugin
        .kernel(StageRole::Effect, &setup_of(frames))
        .expect("kernel")
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity get valid
    // pointers to it; 0 names the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "pinning to CPU {cpu}"
        );
    }
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it; CPU_ISSET reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set),
            0,
            "sched_getaffinity"
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn current_cpu() -> usize {
    // SAFETY: sched_getcpu has no preconditions.
    usize::try_from(unsafe { libc::sched_getcpu() }).expect("sched_getcpu")
}

/// Makes the calling thread SCHED_FIFO at `priority`; false where that is not permitted.
fn go_realtime(priority: i32) -> bool {
    set_realtime_priority(priority).is_ok()
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) },
        0
    );
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Without CAP_SYS_NICE (not root, or a container that withholds it) nothing can starve
/// a thread for sure; say so rather than pass on a case never run.
fn skip_without_realtime() {
    eprintln!("SKIPPED: SCHED_FIFO is not permitted here, so the starved case is not exercised");
}

/// A word of the kernel's input buffer that another thread reads or writes while a call
/// runs, as a frontend's shared page would be.
#[derive(Clone, Copy)]
struct SharedWord(*const AtomicU32);

// SAFETY: the word lives in the kernel's linear memory, which stays mapped and in place
// while the kernel lives (its memory may not grow once set up); the tests join every
// thread that holds a SharedWord before the kernel is dropped.
unsafe impl Send for SharedWord {}

impl SharedWord {
    fn of(kernel: &mut Kernel, sample: usize) -> SharedWord {
        let word: *mut f32 = &mut kernel.input_samples(0)[sample];
        SharedWord(word.cast::<AtomicU32>().cast_const())
    }

    fn get(self) -> u32 {
        // SAFETY: see the Send impl; the word is 4-byte aligned (f32) and only accessed
        // atomically from the host side.
        unsafe { (*self.0).load(Ordering::SeqCst) }
    }

    fn set(self, value: u32) {
        // SAFETY: as in `get`.
        unsafe { (*self.0).store(value, Ordering::SeqCst) }
    }
}

#[test]
fn a_plugin_whose_thread_is_starved_past_its_deadline_stays_enabled() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut kernel = kernel(Misdeed::Handshake);
    kernel.input_samples(0).fill(0.0);
    let entered = SharedWord::of(&mut kernel, ENTERED_SAMPLE);
    let released = SharedWord::of(&mut kernel, RELEASED_SAMPLE);

    let cpu = current_cpu();
    pin_to(cpu);
    // The competitor, real-time and pinned to our CPU, waits until the plugin is inside
    // its call, then holds the CPU for STARVATION (eight deadlines), during which this
    // thread cannot run at all, and only then lets the plugin return.
    let (ready, prioritized) = std::sync::mpsc::channel::<bool>();
    let spun = Arc::new(AtomicBool::new(false));
    let competitor = {
        let spun = spun.clone();
        std::thread::spawn(move || {
            pin_to(cpu);
            let fifo = go_realtime(1);
            ready.send(fifo).expect("test waits");
            if !fifo {
                return;
            }
            let give_up = Instant::now() + Duration::from_secs(10);
            while entered.get() == 0 {
                if Instant::now() > give_up {
                    return;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let until = Instant::now() + STARVATION;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            spun.store(true, Ordering::SeqCst);
            released.set(1);
        })
    };
    if !prioritized.recv().expect("competitor") {
        competitor.join().expect("competitor");
        skip_without_realtime();
        return;
    }
    let started = Instant::now();
    let result = kernel.process(FRAMES, FRAMES);
    let took = started.elapsed();
    competitor.join().expect("competitor");

    assert!(
        spun.load(Ordering::SeqCst),
        "the competitor never saw the plugin enter its call"
    );
    assert!(took >= STARVATION, "the call took {took:?}");
    assert_eq!(
        result,
        Ok(FRAMES),
        "a starved call is not the plugin's fault (the call took {took:?})"
    );
    assert_eq!(
        kernel.late_calls(),
        1,
        "the deadline passed while the thread waited (the call took {took:?})"
    );
    // And the plugin goes on working.
    released.set(1);
    assert_eq!(kernel.process(FRAMES, FRAMES), Ok(FRAMES));
    assert_eq!(kernel.late_calls(), 1);
}

#[test]
fn a_plugin_that_loops_is_still_stopped_after_its_deadline_and_one_probe() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut kernel = kernel(Misdeed::Spin);
    let result = kernel.process(FRAMES, FRAMES);
    assert_eq!(result, Err(PluginFault::Deadline));
    assert_eq!(kernel.late_calls(), 0);
}

/// The worst case for the ticker: a plugin loops on a real-time endpoint thread while
/// real-time threads of the same priority hold every other CPU. A ticker at normal
/// priority would get a CPU only when the kernel throttles real-time threads (about once
/// a second), so the loop would burn a second or more of CPU; the ticker outranks them.
#[test]
fn a_plugin_that_loops_is_stopped_while_realtime_threads_hold_every_cpu() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let cpus = allowed_cpus();
    let mut kernel = kernel(Misdeed::Spin);
    let done = Arc::new(AtomicBool::new(false));
    // Everyone is real-time (or has failed to be) before the loop starts.
    let lined_up = Arc::new(std::sync::Barrier::new(cpus.len()));
    let caller_cpu = cpus[0];
    let hogs: Vec<_> = cpus[1..]
        .iter()
        .map(|&cpu| {
            let (done, lined_up) = (done.clone(), lined_up.clone());
            std::thread::spawn(move || {
                pin_to(cpu);
                let fifo = go_realtime(REALTIME_PRIORITY);
                lined_up.wait();
                // Bounded, so that a ticker that never runs cannot hang the machine.
                let until = Instant::now() + Duration::from_secs(5);
                while fifo && !done.load(Ordering::Relaxed) && Instant::now() < until {
                    std::hint::spin_loop();
                }
                fifo
            })
        })
        .collect();
    let caller = std::thread::spawn(move || {
        pin_to(caller_cpu);
        let fifo = go_realtime(REALTIME_PRIORITY);
        lined_up.wait();
        if !fifo {
            return None;
        }
        let before = thread_cpu_time();
        let result = kernel.process(FRAMES, FRAMES);
        Some((result, thread_cpu_time() - before))
    });
    let outcome = caller.join().expect("caller");
    done.store(true, Ordering::Relaxed);
    let mut all_realtime = true;
    for hog in hogs {
        all_realtime &= hog.join().expect("hog");
    }
    let Some((result, burned)) = outcome.filter(|_| all_realtime) else {
        skip_without_realtime();
        return;
    };
    assert_eq!(result, Err(PluginFault::Deadline));
    // The deadline (20–30 ms) and one probe window (10–20 ms) are about 50 ms of CPU; a
    // starved ticker lets the loop run until the kernel's real-time throttling (950 ms
    // of every second) gives it a turn.
    assert!(
        burned < Duration::from_millis(500),
        "the looping call burned {burned:?} of CPU before it was stopped"
    );
}

/// Calls `kernel` until the ticker's stride is `wanted` (the ticker changes it at its
/// next wake-up, and wakes only while calls are made); false if it never is.
fn stride_becomes(kernel: &mut Kernel, frames: usize, wanted: u64) -> bool {
    let runtime = PluginRuntime::shared(None).expect("runtime");
    // A bound on progress, not a timing: the ticker needs a few of its wake-ups.
    let give_up = Instant::now() + Duration::from_secs(10);
    while Instant::now() < give_up {
        assert_eq!(kernel.process(frames, frames), Ok(frames));
        if runtime.ticker_stride() == wanted {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// A kernel with 40 ms periods, called until the ticker strides 40 ms at a time.
fn striding() -> Kernel {
    let mut slow = kernel_of(Misdeed::None, 4 * FRAMES);
    slow.input_samples(0).fill(0.25);
    let runtime = PluginRuntime::shared(None).expect("runtime");
    assert!(
        stride_becomes(&mut slow, 4 * FRAMES, 4),
        "the stride stayed at {}",
        runtime.ticker_stride()
    );
    slow
}

/// The ticker wakes only as often as the live kernels' deadlines need: every 40 ms
/// while only 40 ms periods (80 ms deadlines) are played, every 10 ms again as soon as
/// a 10 ms kernel exists, and back once it is gone.
#[test]
fn the_ticker_wakes_as_seldom_as_the_live_deadlines_allow() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut slow = striding();
    {
        let mut fast = kernel(Misdeed::None);
        fast.input_samples(0).fill(0.25);
        assert!(
            stride_becomes(&mut fast, FRAMES, 1),
            "a 10 ms kernel did not narrow the stride"
        );
    }
    assert!(
        stride_becomes(&mut slow, 4 * FRAMES, 4),
        "the stride did not widen again"
    );
}

/// With the ticker striding 40 ms at a time, a plugin that loops is still stopped (after
/// its 80 ms deadline, a stride late at most, and a probe window).
#[test]
fn a_plugin_that_loops_is_stopped_while_the_ticker_strides() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let _slow = striding();
    let mut looping = kernel_of(Misdeed::Spin, 4 * FRAMES);
    let before = thread_cpu_time();
    assert_eq!(
        looping.process(4 * FRAMES, 4 * FRAMES),
        Err(PluginFault::Deadline)
    );
    let burned = thread_cpu_time() - before;
    assert_eq!(looping.late_calls(), 0);
    // Deadline 80–160 ms, a probe window of 40–80 ms: well under a second of CPU.
    assert!(
        burned < Duration::from_secs(1),
        "the looping call burned {burned:?} of CPU before it was stopped"
    );
}

/// A plugin whose `paravox_init` loops is refused when its set-up deadline passes, even
/// though no other plugin is being called meanwhile (the ticker must not go to sleep
/// while a set-up call runs).
#[test]
fn a_plugin_whose_init_loops_is_refused_not_waited_for() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let wat = half_wat(HALF_MANIFEST, "", Misdeed::None, 0).replace(
        "(global.set $channels (local.get $in_ch))",
        "(loop $forever (br $forever))",
    );
    let wasm = wat::parse_str(wat).expect("valid WAT");
    let plugin = PluginRuntime::shared(None)
        .expect("runtime")
        .load(&wasm)
        .expect("loads (its manifest is fine)");
    let (done, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = plugin.kernel(StageRole::Effect, &setup_of(FRAMES));
        let _ = done.send(result.map(|_| ()).map_err(|error| error.to_string()));
    });
    // A bound on progress, not a timing: the set-up deadline is one second.
    let result = outcome
        .recv_timeout(Duration::from_secs(60))
        .expect("the looping set-up call was never interrupted");
    let error = result.expect_err("a looping init must not set up");
    assert!(error.contains("paravox_init"), "{error}");
}
