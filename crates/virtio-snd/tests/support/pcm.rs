//! Playing and recording the way Linux's `virtio_snd` does: one message per period, the
//! whole buffer queued up front (playback before PCM_START), then one new message for each
//! one the device completes, so at most buffer/period messages are ever in flight.

use std::collections::VecDeque;
use std::time::Instant;

use super::driver::{Driver, IoDone};
use super::spec::{SetParams, queue, status};

/// One completed message, as the stream's runner saw it.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// Which period of the stream (0 = first sent).
    pub period: usize,
    /// `virtio_snd_pcm_status.status`.
    pub status: u32,
    /// `virtio_snd_pcm_status.latency_bytes`.
    pub latency_bytes: u32,
    /// Used length.
    pub used_len: u32,
    /// When the driver saw it.
    pub at: Instant,
    /// It was the oldest message in flight (completions must come in order).
    pub in_order: bool,
}

/// Messages of one stream in flight, oldest first.
#[derive(Debug, Default)]
struct InFlight {
    /// (ticket, period index).
    messages: VecDeque<(u64, usize)>,
}

impl InFlight {
    fn push(&mut self, ticket: u64, period: usize) {
        self.messages.push_back((ticket, period));
    }

    /// Removes `ticket`: its period, and whether it was the oldest.
    fn take(&mut self, ticket: u64) -> (usize, bool) {
        let position = self
            .messages
            .iter()
            .position(|&(t, _)| t == ticket)
            .unwrap_or_else(|| {
                panic!("completion of message {ticket}, which this stream did not send")
            });
        let (_, period) = self.messages.remove(position).expect("found above");
        (period, position == 0)
    }

    fn len(&self) -> usize {
        self.messages.len()
    }
}

fn completion(done: &IoDone, period: usize, in_order: bool) -> Completion {
    Completion {
        period,
        status: done.status,
        latency_bytes: done.latency_bytes,
        used_len: done.used_len,
        at: done.at,
        in_order,
    }
}

/// The guest side of one playback stream.
#[derive(Debug)]
pub struct Playback {
    /// The virtio stream id.
    pub stream_id: u32,
    period_bytes: usize,
    max_in_flight: usize,
    /// The audio, padded with silence to whole periods.
    data: Vec<u8>,
    posted: usize,
    in_flight: InFlight,
    /// Completions in the order they arrived.
    pub completions: Vec<Completion>,
    /// TX kicks sent: with EVENT_IDX, only those the device asked for.
    pub kicks: usize,
}

impl Playback {
    /// Plays `data` with the buffer and period sizes of `params`.
    pub fn new(params: &SetParams, data: &[u8]) -> Playback {
        let period_bytes = params.period_bytes as usize;
        let mut data = data.to_vec();
        data.resize(data.len().next_multiple_of(period_bytes), 0);
        Playback {
            stream_id: params.stream_id,
            period_bytes,
            max_in_flight: (params.buffer_bytes / params.period_bytes) as usize,
            data,
            posted: 0,
            in_flight: InFlight::default(),
            completions: Vec::new(),
            kicks: 0,
        }
    }

    /// Periods in the whole stream.
    pub fn periods(&self) -> usize {
        self.data.len() / self.period_bytes
    }

    /// Messages the device holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Every period handed to the device (the guest has nothing more to keep the buffer
    /// full with).
    pub fn all_sent(&self) -> bool {
        self.posted == self.periods()
    }

    /// Every period sent and completed.
    pub fn finished(&self) -> bool {
        self.all_sent() && self.in_flight.len() == 0
    }

    /// Queues periods until the buffer is full (or the audio ends) and kicks once; returns
    /// how many were queued.
    pub fn fill(&mut self, driver: &mut Driver) -> usize {
        let mut queued = 0;
        while self.in_flight.len() < self.max_in_flight && self.posted < self.periods() {
            let start = self.posted * self.period_bytes;
            let ticket =
                driver.post_tx(self.stream_id, &self.data[start..start + self.period_bytes]);
            self.in_flight.push(ticket, self.posted);
            self.posted += 1;
            queued += 1;
        }
        if queued > 0 && driver.kick(queue::TX) {
            self.kicks += 1;
        }
        queued
    }

    /// Records a completion of this stream's message.
    pub fn complete(&mut self, done: &IoDone) {
        assert_eq!(done.stream_id, self.stream_id);
        let (period, in_order) = self.in_flight.take(done.ticket);
        self.completions.push(completion(done, period, in_order));
    }

    /// Waits for the next completion, then refills.
    pub fn step(&mut self, driver: &mut Driver) -> Completion {
        let done = driver.expect_io(queue::TX);
        self.complete(&done);
        self.fill(driver);
        *self.completions.last().expect("just pushed")
    }

    /// Plays to the end (the stream must be started, or start on its own).
    pub fn run(&mut self, driver: &mut Driver) {
        while !self.finished() {
            self.step(driver);
        }
    }
}

/// Plays several streams at once over the one TX queue until all are finished;
/// `after` sees each completion once its stream has been refilled.
pub fn play_together(
    driver: &mut Driver,
    streams: &mut [Playback],
    mut after: impl FnMut(&Playback, &IoDone),
) {
    while streams.iter().any(|s| !s.finished()) {
        let done = driver.expect_io(queue::TX);
        let stream = streams
            .iter_mut()
            .find(|s| s.stream_id == done.stream_id)
            .unwrap_or_else(|| {
                panic!(
                    "a completion for stream {}, which is not playing",
                    done.stream_id
                )
            });
        stream.complete(&done);
        stream.fill(driver);
        after(stream, &done);
    }
}

/// The guest side of one capture stream.
#[derive(Debug)]
pub struct Capture {
    /// The virtio stream id.
    pub stream_id: u32,
    period_bytes: usize,
    max_in_flight: usize,
    periods: usize,
    posted: usize,
    in_flight: InFlight,
    /// Captured periods by index.
    captured: Vec<Option<Vec<u8>>>,
    /// Completions in the order they arrived.
    pub completions: Vec<Completion>,
    /// RX kicks sent: with EVENT_IDX, only those the device asked for.
    pub kicks: usize,
}

impl Capture {
    /// Records `total_bytes` (rounded up to whole periods) with the sizes of `params`.
    pub fn new(params: &SetParams, total_bytes: usize) -> Capture {
        let period_bytes = params.period_bytes as usize;
        let periods = total_bytes.div_ceil(period_bytes);
        Capture {
            stream_id: params.stream_id,
            period_bytes,
            max_in_flight: (params.buffer_bytes / params.period_bytes) as usize,
            periods,
            posted: 0,
            in_flight: InFlight::default(),
            captured: vec![None; periods],
            completions: Vec::new(),
            kicks: 0,
        }
    }

    /// Messages the device holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Every period asked for and returned.
    pub fn finished(&self) -> bool {
        self.posted == self.periods && self.in_flight.len() == 0
    }

    /// Queues empty periods until the buffer is covered; kicks once.
    pub fn fill(&mut self, driver: &mut Driver) -> usize {
        let mut queued = 0;
        while self.in_flight.len() < self.max_in_flight && self.posted < self.periods {
            let ticket = driver.post_rx(self.stream_id, self.period_bytes);
            self.in_flight.push(ticket, self.posted);
            self.posted += 1;
            queued += 1;
        }
        if queued > 0 && driver.kick(queue::RX) {
            self.kicks += 1;
        }
        queued
    }

    /// Records a completion of this stream's message.
    pub fn complete(&mut self, done: IoDone) {
        assert_eq!(done.stream_id, self.stream_id);
        let (period, in_order) = self.in_flight.take(done.ticket);
        self.completions.push(completion(&done, period, in_order));
        self.captured[period] = Some(done.data);
    }

    /// Records to the end.
    pub fn run(&mut self, driver: &mut Driver) {
        while !self.finished() {
            let done = driver.expect_io(queue::RX);
            self.complete(done);
            self.fill(driver);
        }
    }

    /// The captured bytes in stream order (periods not returned count as empty).
    pub fn recording(&self) -> Vec<u8> {
        self.captured.iter().flatten().flatten().copied().collect()
    }
}

/// One whole play as Linux's driver and aplay do it: SET_PARAMS and PREPARE, the buffer
/// queued before START, the rest in real time, then STOP and RELEASE; every message must
/// come back OK.
pub fn play_through(driver: &mut Driver, params: &SetParams, data: &[u8]) -> Playback {
    let stream = params.stream_id;
    driver.configure(params);
    let mut playback = Playback::new(params, data);
    playback.fill(driver);
    assert_eq!(driver.start(stream), status::OK, "PCM_START");
    playback.run(driver);
    assert!(
        playback.completions.iter().all(|c| c.status == status::OK),
        "a TX message failed"
    );
    assert_eq!(driver.stop(stream), status::OK, "PCM_STOP");
    assert_eq!(driver.release(stream), status::OK, "PCM_RELEASE");
    playback
}

/// One whole recording of `total_bytes` as arecord does it: the buffer queued at START,
/// then STOP and RELEASE; every message must come back OK. Returns what was captured.
pub fn record_through(driver: &mut Driver, params: &SetParams, total_bytes: usize) -> Vec<u8> {
    let stream = params.stream_id;
    driver.configure(params);
    let mut capture = Capture::new(params, total_bytes);
    capture.fill(driver);
    assert_eq!(driver.start(stream), status::OK, "PCM_START");
    capture.run(driver);
    assert!(
        capture.completions.iter().all(|c| c.status == status::OK),
        "an RX message failed"
    );
    assert_eq!(driver.stop(stream), status::OK, "PCM_STOP");
    assert_eq!(driver.release(stream), status::OK, "PCM_RELEASE");
    capture.recording()
}
