//! Many playback streams on one card at once, shared by the `scale` test and the
//! `capacity` benchmark.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use paravox_engine::Direction;
use paravox_virtio_snd::{CardTopology, StreamTopology};

use super::cpu::process_cpu_time;
use super::pcm::play_together;
use super::signal::tone_s16_stereo;
use super::{Driver, Host, Playback, SetParams, status};

/// Entries of the driver's TX queue (the backend's maximum).
pub const QUEUE_SIZE: usize = 256;

/// What playing `streams` streams at once came to.
#[derive(Debug)]
pub struct Outcome {
    /// Xruns per stream counted while the guest still had audio to send.
    pub xruns_while_fed: Vec<u64>,
    /// Every completion OK and in order.
    pub all_ok: bool,
    /// START of the first stream to the last completion of all.
    pub elapsed: Duration,
    /// CPU the whole process (backend, endpoint and this guest driver) used meanwhile.
    pub cpu: Duration,
    /// When (after START) the driver first saw an xrun counted.
    pub first_xrun: Option<Duration>,
    /// The longest time without any TX completion.
    pub longest_gap: Duration,
}

/// Plays `seconds` of a different tone on each of `streams` playback streams, with
/// buffers of `periods` periods of 10 ms, all at once.
pub fn play_streams(streams: usize, periods: u32, seconds: f64) -> Result<Outcome, String> {
    let topology = CardTopology {
        streams: (0..streams)
            .map(|i| StreamTopology::new(&format!("playback{i}"), Direction::Playback))
            .collect(),
        controls: true,
        budget: None,
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
