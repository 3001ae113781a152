//! How many concurrent 48 kHz stereo playback streams (10 ms periods) one virtio-snd card
//! serves in real time without xruns, driven over the real vhost-user socket.
//!
//! `cargo bench -p paravox-virtio-snd --bench capacity`

#[path = "../tests/support/mod.rs"]
mod support;

use support::scale::{QUEUE_SIZE, play_streams};

fn main() {
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
