//! One stream, Linux style: one request at a time with a timeout, notification hold-off,
//! consecutive event ids, ALSA-like negotiation.

use super::*;

/// Ring header offsets (ring.h) and event page offsets (sndif.h).
const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
const RING_SLOTS: u32 = 32;
const IN_CONS: usize = 0;
const IN_PROD: usize = 4;
const IN_RING_LEN: u32 = 63;

struct RequestRing {
    req_prod_pvt: u32,
    rsp_cons: u32,
    next_id: u16,
}

#[derive(Debug, Clone, Copy)]
pub struct CurPos {
    pub position: u64,
    pub at: Instant,
    /// What the sampler said at receipt (the engine's own position, in tests that ask).
    pub sampled: Option<u64>,
}

#[derive(Default)]
pub struct EventState {
    pub positions: Vec<CurPos>,
    pub expected_id: u16,
    /// Events whose id was not the next one (Linux drops these).
    pub dropped: u64,
}

type Sampler = Box<dyn Fn() -> u64 + Send>;

pub struct EventLog {
    state: Mutex<EventState>,
    changed: Condvar,
    sampler: Mutex<Option<Sampler>>,
}

impl EventLog {
    pub fn state(&self) -> MutexGuard<'_, EventState> {
        lock(&self.state)
    }

    pub fn last_position(&self) -> u64 {
        self.state().positions.last().map_or(0, |p| p.position)
    }

    /// Waits until `ready(last position)` or the timeout; returns the last position.
    pub fn wait_until(&self, timeout: Duration, ready: impl Fn(u64) -> bool) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            let last = state.positions.last().map_or(0, |p| p.position);
            if ready(last) {
                return Some(last);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }

    pub fn set_sampler(&self, sampler: Sampler) {
        *lock(&self.sampler) = Some(sampler);
    }

    /// Forgets positions (a new OPEN starts them from 0; ids carry on).
    pub fn reset_positions(&self) {
        self.state().positions.clear();
    }
}

/// A buffer shared with OPEN: its pages and its directory.
pub struct SharedBuffer {
    pub gref_directory: u32,
    pub pages: Vec<u32>,
    pub bytes: u32,
}

#[derive(Debug)]
pub struct Timeout;

pub struct FrontStream {
    pub pcm: u32,
    pub index: u32,
    pub direction: Direction,
    pub path: String,
    table: Arc<GrantTable>,
    pub(crate) ring_gref: u32,
    pub(crate) evt_gref: u32,
    pub req: Channel,
    pub evt: Arc<Channel>,
    ring: Mutex<RequestRing>,
    pub events: Arc<EventLog>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    buffer: Mutex<Option<SharedBuffer>>,
}

impl FrontStream {
    pub(crate) fn new(
        table: Arc<GrantTable>,
        hub: &HubLink,
        path: String,
        pcm: u32,
        index: u32,
        direction: Direction,
    ) -> FrontStream {
        let pages = table.alloc(2);
        let (ring_gref, evt_gref) = (pages[0], pages[1]);
        // SHARED_RING_INIT: producers 0, both events 1.
        table.word(ring_gref, REQ_EVENT).store(1, Ordering::SeqCst);
        table.word(ring_gref, RSP_EVENT).store(1, Ordering::SeqCst);
        let req = Channel::new(hub);
        let evt = Arc::new(Channel::new(hub));
        let events = Arc::new(EventLog {
            state: Mutex::new(EventState::default()),
            changed: Condvar::new(),
            sampler: Mutex::new(None),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (table, evt, events, stop) =
                (table.clone(), evt.clone(), events.clone(), stop.clone());
            std::thread::spawn(move || consume_events(&table, evt_gref, &evt, &events, &stop))
        };
        FrontStream {
            pcm,
            index,
            direction,
            path,
            table,
            ring_gref,
            evt_gref,
            req,
            evt,
            ring: Mutex::new(RequestRing {
                req_prod_pvt: 0,
                rsp_cons: 0,
                next_id: 0,
            }),
            events,
            stop,
            thread: Some(thread),
            buffer: Mutex::new(None),
        }
    }

    /// Sends one request and waits for its response, like `be_stream_do_io` +
    /// `be_stream_wait_io`.
    pub fn request(&self, request: &Request) -> Result<Response, Timeout> {
        let mut ring = lock(&self.ring);
        let id = ring.next_id;
        ring.next_id = ring.next_id.wrapping_add(1);
        let slot = 64 + (ring.req_prod_pvt % RING_SLOTS) as usize * 64;
        self.table
            .write(self.ring_gref, slot, &encode_request(id, request));
        self.push_and_kick(&mut ring, 1);
        self.wait_response(&mut ring, id)
    }

    /// RING_PUSH_REQUESTS_AND_CHECK_NOTIFY after `count` new requests.
    fn push_and_kick(&self, ring: &mut RequestRing, count: u32) {
        let old = ring.req_prod_pvt;
        let new = old.wrapping_add(count);
        ring.req_prod_pvt = new;
        self.table
            .word(self.ring_gref, REQ_PROD)
            .store(new, Ordering::Release);
        fence(Ordering::SeqCst);
        let req_event = self
            .table
            .word(self.ring_gref, REQ_EVENT)
            .load(Ordering::Acquire);
        if new.wrapping_sub(req_event) < new.wrapping_sub(old) {
            self.req.kick.signal().unwrap();
        }
    }

    fn wait_response(&self, ring: &mut RequestRing, id: u16) -> Result<Response, Timeout> {
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let rsp_prod = self
                .table
                .word(self.ring_gref, RSP_PROD)
                .load(Ordering::Acquire);
            let mut found = None;
            while ring.rsp_cons != rsp_prod {
                let mut bytes = [0u8; 64];
                let slot = 64 + (ring.rsp_cons % RING_SLOTS) as usize * 64;
                self.table.read(self.ring_gref, slot, &mut bytes);
                ring.rsp_cons = ring.rsp_cons.wrapping_add(1);
                let response = Response::decode(&bytes);
                if response.id == id {
                    found = Some(response);
                }
            }
            // Ask to be notified of the next response, then look once more.
            self.table
                .word(self.ring_gref, RSP_EVENT)
                .store(ring.rsp_cons.wrapping_add(1), Ordering::Release);
            fence(Ordering::SeqCst);
            if let Some(response) = found {
                return Ok(response);
            }
            if self
                .table
                .word(self.ring_gref, RSP_PROD)
                .load(Ordering::Acquire)
                != ring.rsp_cons
            {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Timeout);
            }
            self.req.notify.wait(left.as_millis().max(1) as i32);
        }
    }

    /// Sends raw request bytes (the id is filled in); for codes the codec cannot build.
    pub fn request_bytes(&self, mut bytes: [u8; 64]) -> Result<Response, Timeout> {
        let mut ring = lock(&self.ring);
        let id = ring.next_id;
        ring.next_id = ring.next_id.wrapping_add(1);
        bytes[0..2].copy_from_slice(&id.to_le_bytes());
        let slot = 64 + (ring.req_prod_pvt % RING_SLOTS) as usize * 64;
        self.table.write(self.ring_gref, slot, &bytes);
        self.push_and_kick(&mut ring, 1);
        self.wait_response(&mut ring, id)
    }

    /// A hostile frontend: claims to have consumed events never produced.
    pub fn corrupt_in_cons(&self, in_cons: u32) {
        self.table
            .word(self.evt_gref, IN_CONS)
            .store(in_cons, Ordering::SeqCst);
    }

    /// A hostile frontend: publishes a garbage `req_prod` and kicks.
    pub fn corrupt_req_prod(&self, req_prod: u32) {
        self.table
            .word(self.ring_gref, REQ_PROD)
            .store(req_prod, Ordering::SeqCst);
        self.req.kick.signal().unwrap();
    }

    /// The status of a request (panics on a timeout).
    pub fn status(&self, request: &Request) -> i32 {
        self.request(request).expect("response within 3 s").status
    }

    pub fn query(&self, block: HwParamBlock) -> Result<HwParamBlock, i32> {
        let response = self
            .request(&Request::HwParamQuery(block))
            .expect("response");
        if response.status == 0 {
            Ok(response.hw_param)
        } else {
            Err(response.status)
        }
    }

    /// Allocates a shared buffer with its page directory (1023 references per page).
    pub fn alloc_buffer(&self, bytes: u32) -> SharedBuffer {
        let pages = (bytes as usize).div_ceil(PAGE);
        let grefs = self.table.alloc(pages);
        let directory = self.table.alloc(pages.div_ceil(1023));
        for (index, &page) in directory.iter().enumerate() {
            let next = directory.get(index + 1).copied().unwrap_or(0);
            self.table.write(page, 0, &next.to_le_bytes());
            for (slot, gref) in grefs.iter().skip(index * 1023).take(1023).enumerate() {
                self.table.write(page, 4 + slot * 4, &gref.to_le_bytes());
            }
        }
        SharedBuffer {
            gref_directory: directory[0],
            pages: grefs,
            bytes,
        }
    }

    /// Copies into the current shared buffer at `offset` (may cross pages).
    pub fn fill_buffer(&self, offset: u32, data: &[u8]) {
        let guard = lock(&self.buffer);
        let buffer = guard.as_ref().expect("a buffer");
        let mut done = 0;
        while done < data.len() {
            let at = offset as usize + done;
            let page = buffer.pages[at / PAGE];
            let within = at % PAGE;
            let n = (PAGE - within).min(data.len() - done);
            self.table.write(page, within, &data[done..done + n]);
            done += n;
        }
    }

    /// Copies out of the current shared buffer.
    pub fn read_buffer(&self, offset: u32, out: &mut [u8]) {
        let guard = lock(&self.buffer);
        let buffer = guard.as_ref().expect("a buffer");
        let mut done = 0;
        while done < out.len() {
            let at = offset as usize + done;
            let page = buffer.pages[at / PAGE];
            let within = at % PAGE;
            let n = (PAGE - within).min(out.len() - done);
            self.table.read(page, within, &mut out[done..done + n]);
            done += n;
        }
    }

    /// ALSA-style negotiation: a few HW_PARAM_QUERY rounds narrowing to `params`, then
    /// OPEN with a freshly shared buffer. Returns OPEN's status.
    pub fn open(&self, params: &Params) -> i32 {
        let mut block = any_params();
        let full = self
            .query(block)
            .expect("the unconstrained query has an answer");
        assert!(
            full.formats & (1 << params.format) != 0,
            "format offered: {full:?}"
        );
        block = full;
        block.formats = 1 << params.format;
        block.rates = WireRange {
            min: params.rate,
            max: params.rate,
        };
        block.channels = WireRange {
            min: params.channels,
            max: params.channels,
        };
        let narrowed = self
            .query(block)
            .expect("the chosen format, rate and channels fit");
        let (buffer_frames, period_frames) = (
            params.buffer_bytes / params.frame_bytes(),
            params.period_bytes / params.frame_bytes(),
        );
        assert!(narrowed.buffer.min <= buffer_frames && buffer_frames <= narrowed.buffer.max);
        block = narrowed;
        block.buffer = WireRange {
            min: buffer_frames,
            max: buffer_frames,
        };
        block.period = WireRange {
            min: period_frames,
            max: period_frames,
        };
        self.query(block).expect("the chosen sizes fit");
        self.open_raw(params, None)
    }

    /// OPEN without negotiation, optionally with a forged directory reference.
    pub fn open_raw(&self, params: &Params, gref_directory: Option<u32>) -> i32 {
        let buffer = self.alloc_buffer(params.buffer_bytes.max(1));
        let request = Request::Open(OpenRequest {
            pcm_rate: params.rate,
            pcm_format: params.format,
            pcm_channels: params.channels as u8,
            reserved: 0,
            buffer_sz: params.buffer_bytes,
            gref_directory: gref_directory.unwrap_or(buffer.gref_directory),
            period_sz: params.period_bytes,
        });
        *lock(&self.buffer) = Some(buffer);
        self.events.reset_positions();
        self.status(&request)
    }

    pub fn trigger(&self, kind: TriggerKind) -> i32 {
        self.status(&Request::Trigger(kind))
    }

    pub fn close(&self) -> i32 {
        self.status(&Request::Close)
    }

    pub fn write(&self, offset: u32, data: &[u8]) -> i32 {
        self.fill_buffer(offset, data);
        self.status(&Request::Write(RwRequest {
            offset,
            length: data.len() as u32,
        }))
    }

    pub fn set_volume(&self, millibels: &[i32]) -> i32 {
        let bytes: Vec<u8> = millibels.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.fill_buffer(0, &bytes);
        self.status(&Request::SetVolume(RwRequest {
            offset: 0,
            length: bytes.len() as u32,
        }))
    }

    pub fn get_volume(&self, channels: usize) -> (i32, Vec<i32>) {
        let status = self.status(&Request::GetVolume(RwRequest {
            offset: 0,
            length: channels as u32 * 4,
        }));
        let mut bytes = vec![0u8; channels * 4];
        self.read_buffer(0, &mut bytes);
        let values = bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (status, values)
    }

    pub fn mute(&self, flags: &[u8], mute: bool) -> i32 {
        self.fill_buffer(0, flags);
        let rw = RwRequest {
            offset: 0,
            length: flags.len() as u32,
        };
        self.status(&if mute {
            Request::Mute(rw)
        } else {
            Request::Unmute(rw)
        })
    }
}

impl Drop for FrontStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.evt.notify.signal();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The event channel's handler: consume from in_cons to in_prod, drop unexpected ids.
fn consume_events(
    table: &GrantTable,
    gref: u32,
    channel: &Channel,
    log: &EventLog,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        channel.notify.wait(50);
        let prod = table.word(gref, IN_PROD).load(Ordering::Acquire);
        let mut cons = table.word(gref, IN_CONS).load(Ordering::Acquire);
        if prod == cons || prod.wrapping_sub(cons) > IN_RING_LEN {
            // Nothing new (or a page this test corrupted on purpose).
            continue;
        }
        let mut state = log.state();
        while cons != prod {
            let mut bytes = [0u8; 64];
            table.read(gref, 64 + (cons % IN_RING_LEN) as usize * 64, &mut bytes);
            cons = cons.wrapping_add(1);
            let id = u16::from_le_bytes([bytes[0], bytes[1]]);
            let expected = state.expected_id;
            state.expected_id = expected.wrapping_add(1);
            if id != expected || bytes[2] != 0 {
                state.dropped += 1;
                continue;
            }
            let mut position = [0u8; 8];
            position.copy_from_slice(&bytes[8..16]);
            let sampled = lock(&log.sampler).as_ref().map(|sample| sample());
            state.positions.push(CurPos {
                position: u64::from_le_bytes(position),
                at: Instant::now(),
                sampled,
            });
        }
        table.word(gref, IN_CONS).store(cons, Ordering::Release);
        drop(state);
        log.changed.notify_all();
    }
}

// ----------------------------------------------------------------------------------------
// Stream parameters.

/// A HW_PARAM_QUERY that constrains nothing: every format, rate, channel count and size.
pub fn any_params() -> HwParamBlock {
    let all = WireRange {
        min: 0,
        max: u32::MAX,
    };
    HwParamBlock {
        formats: u64::MAX >> 39,
        rates: all,
        channels: all,
        buffer: all,
        period: all,
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// sndif format code.
    pub format: u8,
    pub rate: u32,
    pub channels: u32,
    pub buffer_bytes: u32,
    pub period_bytes: u32,
}

impl Params {
    /// S16_LE stereo at 48 kHz with a buffer of 4 periods of `period_ms`.
    pub fn s16_stereo(period_ms: u32) -> Params {
        let period_bytes = 48 * period_ms * 4;
        Params {
            format: 2,
            rate: 48_000,
            channels: 2,
            buffer_bytes: period_bytes * 4,
            period_bytes,
        }
    }

    pub fn frame_bytes(&self) -> u32 {
        let sample = match self.format {
            0 | 1 | 20 | 21 => 1,
            2..=5 => 2,
            16 | 17 => 8,
            _ => 4,
        };
        sample * self.channels
    }

    pub fn byte_rate(&self) -> f64 {
        f64::from(self.rate * self.frame_bytes())
    }
}
