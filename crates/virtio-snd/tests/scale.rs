//! Many playback streams on one card at once: the backend keeps every one of them fed in
//! real time while the guest keeps their buffers full.
//!
//! The in-suite test is small; `concurrent_stream_capacity` (ignored, run it with
//! `cargo test --release -p paravox-virtio-snd --test scale -- --ignored --nocapture`)
//! prints how far one backend goes.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use paravox_engine::Direction;
use paravox_virtio_snd::{CardTopology, StreamTopology};
use support::cpu::process_cpu_time;
use support::pcm::play_together;
use support::signal::tone_s16_stereo;
use support::{Driver, Host, Playback, SetParams, status};

/// Entries of the driver's TX queue (the backend's maximum).
const QUEUE_SIZE: usize = 256;

/// What playing `streams` streams at once came to.
#[derive(Debug)]
struct Outcome {
    /// Xruns per stream counted while the guest still had audio to send.
    xruns_while_fed: Vec<u64>,
    /// Every completion OK and in order.
    all_ok: bool,
    /// START of the first stream to the last completion of all.
    elapsed: Duration,
    /// CPU the whole process (backend, endpoint and this guest driver) used meanwhile.
    cpu: Duration,
    /// When (after START) the driver first saw an xrun counted.
    first_xrun: Option<Duration>,
    /// The longest time without any TX completion.
    longest_gap: Duration,
}

/// Plays `seconds` of a different tone on each of `streams` playback streams, with
/// buffers of `periods` periods of 10 ms, all at once.
fn play_streams(streams: usize, periods: u32, seconds: f64) -> Result<Outcome, String> {
    let topology = CardTopology {
        streams: (0..streams)
            .map(|i| StreamTopology::new(&format!("playback{i}"), Direction::Playback))
            .collect(),
        controls: true,
    };
    if let Err(error) = topology.validate() {
        return Err(format!("the topology is refused: {error}"));
    }
    let host = Host::new().null_output().serve(topology);
    let mut driver = Driver::connect(host.socket());
    let mut playbacks: Vec<Playback> = (0..streams as u32)
        .map(|id| {
            let params = SetParams::s16_stereo_48k(id, periods);
            driver.configure(&params);
            let tone = tone_s16_stereo(200.0 + 10.0 * f64::from(id), 0.1, seconds);
            Playback::new(&params, &tone)
        })
        .collect();
    for playback in &mut playbacks {
        playback.fill(&mut driver);
    }
    let started = Instant::now();
    let cpu_before = process_cpu_time();
    for id in 0..streams as u32 {
        assert_eq!(driver.start(id), status::OK);
    }
    // Xruns count until a stream has sent its last period: from then on the guest has
    // nothing left to keep the buffer full with.
    let mut xruns = HashMap::new();
    let mut first_xrun = None;
    let mut longest_gap = Duration::ZERO;
    let mut previous = started;
    play_together(&mut driver, &mut playbacks, |playback, done| {
        longest_gap = longest_gap.max(done.at - previous);
        previous = done.at;
        if first_xrun.is_none() && (0..streams as u32).any(|id| host.stream(id).xruns() > 0) {
            first_xrun = Some(done.at - started);
        }
        if playback.all_sent() {
            xruns
                .entry(playback.stream_id)
                .or_insert_with(|| host.stream(playback.stream_id).xruns());
        }
    });
    let elapsed = started.elapsed();
    let cpu = process_cpu_time() - cpu_before;
    for id in 0..streams as u32 {
        assert_eq!(driver.stop(id), status::OK);
        assert_eq!(driver.release(id), status::OK);
    }
    let all_ok = playbacks.iter().all(|p| {
        p.completions
            .iter()
            .enumerate()
            .all(|(i, c)| c.status == status::OK && c.in_order && c.period == i)
    });
    Ok(Outcome {
        xruns_while_fed: (0..streams as u32).map(|id| xruns[&id]).collect(),
        all_ok,
        elapsed,
        cpu,
        first_xrun,
        longest_gap,
    })
}

#[test]
fn four_streams_play_at_once_without_xruns() {
    // Linux's default buffer, 160 ms, so a busy test machine cannot starve a stream.
    let outcome = play_streams(4, 16, 1.0).expect("four streams");
    assert!(outcome.all_ok, "every completion OK and in order");
    assert_eq!(
        outcome.xruns_while_fed, [0; 4],
        "xruns while the guest kept every buffer full"
    );
    assert!(
        outcome.elapsed >= Duration::from_millis(900),
        "1 s of audio took {:?}",
        outcome.elapsed
    );
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn concurrent_stream_capacity() {
    // 40 ms buffers (4 periods) are strict; 160 ms is what Linux asks for by default.
    for periods in [4, 8, 16] {
        for streams in [8, 16, 32, 64] {
            let label = format!("{streams:>3} streams, {:>3} ms buffers", periods * 10);
            // All streams share the TX queue, one descriptor (indirect) per message.
            if streams * periods as usize > QUEUE_SIZE {
                println!(
                    "{label}: {} messages in flight do not fit a {QUEUE_SIZE}-entry TX queue",
                    streams * periods as usize
                );
                continue;
            }
            match play_streams(streams, periods, 2.0) {
                Ok(outcome) => {
                    let total: u64 = outcome.xruns_while_fed.iter().sum();
                    let affected = outcome.xruns_while_fed.iter().filter(|&&x| x > 0).count();
                    println!(
                        "{label}: {total} xruns on {affected} streams while fed (first at {:?}); \
                         all completions OK and in order: {}; longest wait for a completion {:.1} ms; \
                         2 s took {:.3} s using {:.3} s of CPU (backend, endpoint and guest driver)",
                        outcome.first_xrun,
                        outcome.all_ok,
                        outcome.longest_gap.as_secs_f64() * 1000.0,
                        outcome.elapsed.as_secs_f64(),
                        outcome.cpu.as_secs_f64()
                    );
                }
                Err(why) => println!("{label}: {why}"),
            }
        }
    }
}
