//! ALSA-like playback (aplay over xen-snd-front) and capture (arecord).

use super::*;

pub struct PlayReport {
    pub started: Instant,
    pub finished: Instant,
    pub events: Vec<CurPos>,
}

/// Plays `data` like aplay over xen-snd-front: fill the buffer, START, then refill a
/// period whenever CUR_POS shows room, wait for the end (drain), STOP, CLOSE.
pub fn play(
    stream: &FrontStream,
    params: &Params,
    data: &[u8],
    mut between: impl FnMut(u64),
) -> PlayReport {
    assert_eq!(stream.open(params), 0, "OPEN");
    let (buffer, period) = (params.buffer_bytes as u64, params.period_bytes as u64);
    let total = data.len() as u64;
    let mut appl = 0u64;
    let write_some = |appl: &mut u64, position: u64| {
        while *appl < total {
            let room = buffer - (*appl - position);
            let offset = *appl % buffer;
            let chunk = period.min(total - *appl).min(buffer - offset);
            if room < chunk {
                break;
            }
            let status = stream.write(
                offset as u32,
                &data[*appl as usize..(*appl + chunk) as usize],
            );
            assert_eq!(status, 0, "WRITE at {appl}");
            *appl += chunk;
        }
    };
    write_some(&mut appl, 0);
    let started = Instant::now();
    assert_eq!(stream.trigger(TriggerKind::Start), 0, "START");
    while appl < total {
        let before = appl;
        let position = stream
            .events
            .wait_until(REQUEST_TIMEOUT, |pos| {
                buffer - (before - pos) >= period.min(total - before)
            })
            .expect("CUR_POS shows room within 3 s");
        write_some(&mut appl, position);
        between(appl);
    }
    let drain = Duration::from_secs_f64(buffer as f64 / params.byte_rate()) + REQUEST_TIMEOUT;
    stream
        .events
        .wait_until(drain, |pos| pos >= total)
        .expect("the stream drains");
    let finished = Instant::now();
    // The positions of the run (STOP may add one more: the pointer's realignment).
    let events = stream.events.state().positions.clone();
    assert_eq!(stream.trigger(TriggerKind::Stop), 0, "STOP");
    assert_eq!(stream.close(), 0, "CLOSE");
    PlayReport {
        started,
        finished,
        events,
    }
}

/// Records `total` bytes like arecord: START, then READ each period CUR_POS announces.
pub fn record(stream: &FrontStream, params: &Params, total: u64) -> Vec<u8> {
    assert_eq!(stream.open(params), 0, "OPEN");
    let (buffer, period) = (params.buffer_bytes as u64, params.period_bytes as u64);
    assert_eq!(stream.trigger(TriggerKind::Start), 0, "START");
    let mut captured = Vec::with_capacity(total as usize);
    let mut done = 0u64;
    while done < total {
        let offset = done % buffer;
        let chunk = period.min(total - done).min(buffer - offset);
        stream
            .events
            .wait_until(REQUEST_TIMEOUT, |pos| pos >= done + chunk)
            .expect("capture progresses");
        let status = stream.status(&Request::Read(RwRequest {
            offset: offset as u32,
            length: chunk as u32,
        }));
        assert_eq!(status, 0, "READ");
        let mut bytes = vec![0u8; chunk as usize];
        stream.read_buffer(offset as u32, &mut bytes);
        captured.extend_from_slice(&bytes);
        done += chunk;
    }
    assert_eq!(stream.trigger(TriggerKind::Stop), 0, "STOP");
    assert_eq!(stream.close(), 0, "CLOSE");
    captured
}
