//! An idle card sleeps: neither held event buffers nor playback messages held before
//! START make the backend spin.
//!
//! Alone in its test binary so the process's CPU time is the daemon's (backend and
//! endpoint threads) plus a sleeping test thread. The bound is generous on purpose: it
//! tells a thread that sleeps from one that spins, it is not a performance claim.

mod support;

use std::time::Duration;

use paravox_virtio_snd::CardTopology;
use support::cpu::process_cpu_time;
use support::signal::tone_s16_stereo;
use support::{Driver, Host, Playback, SetParams, queue};

/// CPU the whole process may use in one idle second.
const IDLE_CPU_LIMIT: Duration = Duration::from_millis(500);

fn cpu_over_one_idle_second() -> Duration {
    let before = process_cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    process_cpu_time() - before
}

#[test]
fn held_event_buffers_and_held_messages_cost_no_cpu() {
    let host = Host::new()
        .null_output()
        .tone_input(440)
        .serve(CardTopology::quick_start());
    let mut driver = Driver::connect(host.socket());

    // Linux posts a whole queue of event buffers at probe.
    driver.post_event_buffers(64);
    let used = cpu_over_one_idle_second();
    assert!(
        used < IDLE_CPU_LIMIT,
        "{used:?} of CPU in one idle second with event buffers held"
    );
    assert_eq!(
        driver.in_flight(queue::EVENT),
        64,
        "the event buffers are still held"
    );
    assert!(driver.next_event(Duration::ZERO).is_none());

    // A prepared playback stream with its buffer queued, not started.
    let params = SetParams::s16_stereo_48k(0, 16);
    driver.configure(&params);
    let mut playback = Playback::new(&params, &tone_s16_stereo(440.0, 0.5, 0.5));
    assert_eq!(playback.fill(&mut driver), 16);
    let used = cpu_over_one_idle_second();
    assert!(
        used < IDLE_CPU_LIMIT,
        "{used:?} of CPU in one second with messages held before START"
    );
    assert_eq!(
        driver.in_flight(queue::TX),
        16,
        "the messages are still held"
    );
    assert_eq!(driver.release(0), support::status::OK);
}
