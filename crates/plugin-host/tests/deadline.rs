//! A call's deadline against a host that starves the calling thread: the plugin is not
//! the one at fault and stays enabled; one that loops is still stopped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{HALF_MANIFEST, Misdeed, half_wat};
use paravox_engine::plugin::{KernelSetup, PluginFault, PluginKernel, StageRole};
use paravox_pcm::Format;
use paravox_plugin_host::{Kernel, PluginRuntime};

const FRAMES: usize = 480;

/// The tests take turns: the epoch ticker must find a CPU that neither the starving
/// competitor nor a spinning plugin holds.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn setup() -> KernelSetup {
    KernelSetup {
        input_rate: 48_000,
        output_rate: 48_000,
        input_channels: 2,
        output_channels: 2,
        input_format: Format::F32Le,
        output_format: Format::F32Le,
        // 10 ms periods: a 20 ms deadline, probe windows of 10 ms.
        max_frames: FRAMES as u32,
        inputs: 1,
    }
}

fn kernel(misdeed: Misdeed) -> Kernel {
    let wasm = wat::parse_str(half_wat(HALF_MANIFEST, "", misdeed, 2)).expect("valid WAT");
    let plugin = PluginRuntime::shared(None)
        .expect("runtime")
        .load(&wasm)
        .expect("loads");
    plugin.kernel(StageRole::Effect, &setup()).expect("kernel")
}

/// One call in which the `Toil` plugin loops `iterations` times.
fn toil(kernel: &mut Kernel, iterations: u32) -> (Result<usize, PluginFault>, Duration) {
    kernel.input_samples(0).fill(0.0);
    kernel.input_samples(0)[0] = f32::from_bits(iterations);
    let started = Instant::now();
    let result = kernel.process(FRAMES, FRAMES);
    (result, started.elapsed())
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

#[test]
fn a_plugin_whose_thread_is_starved_past_its_deadline_stays_enabled() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut kernel = kernel(Misdeed::Toil);
    // Calibrate: about 2 ms of looping, a tenth of the deadline.
    let mut iterations = 100_000u32;
    loop {
        let (result, took) = toil(&mut kernel, iterations);
        assert_eq!(result, Ok(FRAMES), "calibrating");
        if took >= Duration::from_millis(2) || iterations >= 1 << 30 {
            break;
        }
        iterations *= 2;
    }
    assert_eq!(kernel.late_calls(), 0);

    // SAFETY: sched_getcpu has no preconditions.
    let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).expect("sched_getcpu");
    pin_to(cpu);
    // Starve ourselves: a real-time (SCHED_FIFO) competitor pinned to our CPU wakes 1 ms
    // into the call and spins for 80 ms, four deadlines, during which this thread cannot
    // run at all. Real-time policies need CAP_SYS_NICE, which CI (root) has.
    let spun = Arc::new(AtomicBool::new(false));
    let (start, wake) = std::sync::mpsc::channel::<Instant>();
    let (ready, prioritized) = std::sync::mpsc::channel::<bool>();
    let competitor = {
        let spun = spun.clone();
        std::thread::spawn(move || {
            pin_to(cpu);
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: a valid sched_param for SCHED_FIFO; 0 names this thread.
            let fifo = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0 };
            ready.send(fifo).expect("test waits");
            if !fifo {
                return;
            }
            let Ok(wake_at) = wake.recv() else { return };
            std::thread::sleep(wake_at.saturating_duration_since(Instant::now()));
            let until = Instant::now() + Duration::from_millis(80);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            spun.store(true, Ordering::SeqCst);
        })
    };
    if !prioritized.recv().expect("competitor") {
        // Without CAP_SYS_NICE (not root, or a container that withholds it) nothing can
        // starve this thread for sure; say so rather than pass on a case never run.
        competitor.join().expect("competitor");
        eprintln!(
            "SKIPPED: SCHED_FIFO is not permitted here, so the starved case is not exercised"
        );
        return;
    }
    start
        .send(Instant::now() + Duration::from_millis(1))
        .expect("competitor waits");
    let (result, took) = toil(&mut kernel, iterations);
    competitor.join().expect("competitor");

    assert!(
        spun.load(Ordering::SeqCst) && took >= Duration::from_millis(40),
        "the call took {took:?}: the competitor never starved it, so this proves nothing"
    );
    assert_eq!(
        kernel.late_calls(),
        1,
        "the deadline passed while the thread waited (the call took {took:?})"
    );
    assert_eq!(
        result,
        Ok(FRAMES),
        "a starved call is not the plugin's fault"
    );
    // And the plugin goes on working.
    assert_eq!(toil(&mut kernel, 1).0, Ok(FRAMES));
}

#[test]
fn a_plugin_that_loops_is_still_stopped_after_its_deadline_and_one_probe() {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut kernel = kernel(Misdeed::Spin);
    let started = Instant::now();
    let result = kernel.process(FRAMES, FRAMES);
    let took = started.elapsed();
    assert_eq!(result, Err(PluginFault::Deadline));
    assert_eq!(kernel.late_calls(), 0);
    // 20 ms deadline + 10 ms probe; a loaded host may starve the spinning thread too,
    // which only adds probes (at most 20), never an endless call.
    assert!(took >= Duration::from_millis(25), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}
