//! Real-time: the endpoint's thread. Each cycle it takes commands from the control
//! handle's queue, pulls (pushes) one period through every attached stream's chain, mixes,
//! and does the device I/O; it allocates, locks and blocks on nothing but the device, and
//! hands everything it no longer needs back to be dropped elsewhere.

use super::slot::XRUN_GRACE;
use super::*;

/// The real-time thread's state.
pub(super) struct Worker {
    pub(super) name: String,
    pub(super) format: DeviceFormat,
    pub(super) commands: rtrb::Consumer<Command>,
    pub(super) returned: rtrb::Producer<Returned>,
    // Boxed on purpose: slots travel through the queues as boxes, and unboxing one here
    // would free its allocation on the real-time thread.
    #[allow(clippy::vec_box)]
    pub(super) slots: Vec<Box<Slot>>,
    pub(super) stats: Arc<EndpointStats>,
    pub(super) mix: Box<[f32]>,
    pub(super) scratch: Box<[f32]>,
    /// One period in the direct format, for a stream that goes to the device as it is.
    pub(super) direct: Box<[u8]>,
    pub(super) mixer: Option<Box<MixerStage>>,
    pub(super) timing: CycleTiming,
}

/// Which cycles are timed for the busy figures. Where reading the clock is a system call
/// (see [`crate::clock::precise_clock_is_cheap`]), two reads a cycle would cost more than
/// a small cycle's work, so one cycle in [`SAMPLED_CYCLES`] is timed and counts for all.
#[derive(Debug)]
pub(super) struct CycleTiming {
    every: u32,
    countdown: u32,
}

/// Cycles one timed cycle stands for where the clock is expensive.
pub const SAMPLED_CYCLES: u32 = 16;

impl CycleTiming {
    pub(super) fn new() -> CycleTiming {
        let every = if crate::clock::precise_clock_is_cheap() {
            1
        } else {
            SAMPLED_CYCLES
        };
        CycleTiming {
            every,
            countdown: 0,
        }
    }

    /// The start of this cycle, when it is one to time.
    fn start(&mut self) -> Option<u64> {
        if self.countdown == 0 {
            self.countdown = self.every - 1;
            Some(monotonic_ns())
        } else {
            self.countdown -= 1;
            None
        }
    }
}

/// A device that may be lost and is then replaced by a paced stand-in until reopened.
struct Recovery {
    pacer: Pacer,
    next_attempt: Instant,
    backoff: Duration,
}

impl Recovery {
    fn new(format: &DeviceFormat) -> Recovery {
        Recovery {
            pacer: Pacer::new(format.rate, format.period_frames),
            next_attempt: Instant::now() + REOPEN_BACKOFF.0,
            backoff: REOPEN_BACKOFF.0,
        }
    }

    fn due(&mut self) -> bool {
        if Instant::now() < self.next_attempt {
            return false;
        }
        self.backoff = (self.backoff * 2).min(REOPEN_BACKOFF.1);
        self.next_attempt = Instant::now() + self.backoff;
        true
    }
}

/// Where an endpoint's device stands.
enum Held<D> {
    Open(D),
    /// Lost: a paced stand-in keeps the streams' time until a reopen succeeds.
    Lost(Recovery),
    /// Closed while no stream ran; opened again at the next start.
    Closed,
}

/// How long the endpoint has had no running stream, and whether it stopped cycling.
#[derive(Debug, Default)]
struct Idleness {
    since: Option<Instant>,
    stopped: bool,
}

/// The calls the idle logic makes, alike for both directions.
trait HeldDevice {
    fn idle(&self) -> Idle;
    fn resume(&mut self);
    fn finish(&mut self) -> Result<(), DeviceError>;
}

impl HeldDevice for Box<dyn PlaybackDevice> {
    fn idle(&self) -> Idle {
        self.as_ref().idle()
    }
    fn resume(&mut self) {
        self.as_mut().resume();
    }
    fn finish(&mut self) -> Result<(), DeviceError> {
        self.as_mut().finish()
    }
}

impl HeldDevice for Box<dyn CaptureDevice> {
    fn idle(&self) -> Idle {
        self.as_ref().idle()
    }
    fn resume(&mut self) {
        self.as_mut().resume();
    }
    fn finish(&mut self) -> Result<(), DeviceError> {
        self.as_mut().finish()
    }
}

impl Worker {
    pub(super) fn run(mut self, io: Io) {
        request_realtime(&self.name);
        match io {
            Io::Playback(opener, device) => self.run_playback(opener, Held::Open(device)),
            Io::Capture(opener, device) => self.run_capture(opener, Held::Open(device)),
            Io::LostPlayback(opener) => {
                self.stats.device_lost.store(true, Ordering::Relaxed);
                self.run_playback(opener, Held::Lost(Recovery::new(&self.format)));
            }
            Io::LostCapture(opener) => {
                self.stats.device_lost.store(true, Ordering::Relaxed);
                self.run_capture(opener, Held::Lost(Recovery::new(&self.format)));
            }
        }
        // Hand everything back so the streams can be dropped off this thread's clock.
        for slot in self.slots.drain(..) {
            let _ = self.returned.push(Returned::Slot(slot));
        }
        if let Some(mixer) = self.mixer.take() {
            let _ = self.returned.push(Returned::Mixer(mixer));
        }
    }

    /// Applies pending commands; returns false when told to stop.
    fn apply_commands(&mut self) -> bool {
        while let Ok(command) = self.commands.pop() {
            match command {
                Command::Attach(slot) => {
                    // Capacity is reserved up front and the control plane counts
                    // attachments, so this push never reallocates.
                    if self.slots.len() < self.slots.capacity() {
                        self.slots.push(slot);
                    } else {
                        let _ = self.returned.push(Returned::Slot(slot));
                    }
                }
                Command::Detach(id, waiter) => {
                    if let Some(index) = self.slots.iter().position(|slot| slot.shared.id() == id) {
                        let slot = self.slots.swap_remove(index);
                        let _ = self.returned.push(Returned::Slot(slot));
                    }
                    // One futex wake for a control operation; the waiter holds its own
                    // handle, so dropping this one frees nothing here.
                    waiter.unpark();
                }
                Command::Release(id) => {
                    // The retired slot: the stream may have a current one here already
                    // only if this command came late, which the queue's order rules out.
                    if let Some(index) = self
                        .slots
                        .iter()
                        .position(|slot| slot.shared.id() == id && !slot.is_current())
                    {
                        let slot = self.slots.swap_remove(index);
                        let _ = self.returned.push(Returned::Released(slot));
                    }
                }
                Command::SwapChain(id, fresh) => {
                    let old = match self.slots.iter_mut().find(|slot| slot.shared.id() == id) {
                        Some(slot) => slot.swap_chain(fresh),
                        None => fresh,
                    };
                    let _ = self.returned.push(Returned::Chain(old));
                }
                Command::SetMixer(mixer) => {
                    if let Some(old) = std::mem::replace(&mut self.mixer, mixer) {
                        let _ = self.returned.push(Returned::Mixer(old));
                    }
                }
                Command::Stop => return false,
            }
        }
        true
    }

    /// Before a cycle. With a running stream: wakes a paused device (or opens a closed one
    /// again) and returns true. With none: idles the device as it asks ([`Idle`]) and,
    /// once it pauses or closes, waits for a command or a start (the control handle
    /// unparks the thread) and returns false; a device that must be kept fed until its
    /// idle timeout gets its cycle (true) meanwhile.
    fn prepare_turn<D: HeldDevice>(
        &mut self,
        held: &mut Held<D>,
        opener: &dyn Fn() -> Result<D, DeviceError>,
        idleness: &mut Idleness,
    ) -> bool {
        if self
            .slots
            .iter()
            .any(|slot| slot.is_current() && slot.shared.is_running())
        {
            idleness.since = None;
            if std::mem::take(&mut idleness.stopped) {
                match held {
                    Held::Open(device) => device.resume(),
                    Held::Closed => match opener() {
                        Ok(device) => {
                            if self.stats.device_lost() {
                                self.regain_device();
                            }
                            debug!(endpoint = self.name, "device opened again for a stream");
                            *held = Held::Open(device);
                        }
                        Err(error) => {
                            self.lose_device(&error);
                            *held = Held::Lost(Recovery::new(&self.format));
                        }
                    },
                    Held::Lost(_) => {}
                }
                self.stats.set_activity(Activity::Running);
            }
            return true;
        }
        let now = Instant::now();
        let since = *idleness.since.get_or_insert(now);
        let stop = match held {
            Held::Open(device) => match device.idle() {
                Idle::Pause => true,
                Idle::CloseAfter(timeout) if now.duration_since(since) >= timeout => {
                    if let Err(error) = device.finish() {
                        warn!(endpoint = self.name, %error, "closing the idle device failed");
                    }
                    *held = Held::Closed;
                    info!(
                        endpoint = self.name,
                        idle_ms = timeout.as_millis() as u64,
                        "no stream running: device closed until the next start"
                    );
                    true
                }
                Idle::CloseAfter(_) | Idle::Run => false,
            },
            // Nothing needs the time it keeps: stop retrying until a stream does.
            Held::Lost(_) => {
                *held = Held::Closed;
                true
            }
            Held::Closed => true,
        };
        if stop {
            if !std::mem::replace(&mut idleness.stopped, true) {
                self.mix.fill(0.0);
                self.stats.meter.record(&self.mix);
                self.stats.set_activity(match held {
                    Held::Closed => Activity::Closed,
                    _ => Activity::Paused,
                });
            }
            // Woken by `Endpoint::send` and by a stream starting; a spurious return
            // only brings the checks above round again.
            std::thread::park();
        }
        !stop
    }

    fn run_playback(
        &mut self,
        opener: Box<dyn PlaybackOpener>,
        mut held: Held<Box<dyn PlaybackDevice>>,
    ) {
        let mut idleness = Idleness::default();
        let open = || opener.open();
        while self.apply_commands() {
            if !self.prepare_turn(&mut held, &open, &mut idleness) {
                continue;
            }
            let started = self.timing.start();
            let grace_cycles = self.grace_cycles();
            let running = self.running_slots();
            if let Held::Open(live) = &mut held
                && let Some(audible) = self.direct_cycle(live.as_mut(), running, grace_cycles)
            {
                self.finish_cycle_accounting(started);
                match live.write_cycle_bytes(&self.direct, audible) {
                    Ok(()) => self.note_device_stats(live.stats()),
                    Err(error) => {
                        let _ = live.finish();
                        self.lose_device(&error);
                        held = Held::Lost(Recovery::new(&self.format));
                    }
                }
                self.publish_positions();
                continue;
            }
            self.mix.fill(0.0);
            let mut audible_frames = 0;
            // A mixer that hands one input back unchanged is not called for one stream.
            let mut mixer = self
                .mixer
                .as_mut()
                .filter(|mixer| mixer.slot.active() && !(mixer.alone_is_identity && running == 1));
            let mut handed = 0;
            let mut overflow = false;
            for slot in self.slots.iter_mut() {
                if !slot.is_current() || !slot.shared.is_running() {
                    // Stopped (or retired): whatever dry spell it ended in is over, not
                    // an xrun.
                    slot.starvation = Default::default();
                    continue;
                }
                let SlotChain::Playback { ring, chain } = &mut slot.chain else {
                    continue;
                };
                // With a mixer plugin the chain writes straight into the plugin's input
                // buffer: no copy between the stream and the mixer.
                let period = self.scratch.len();
                let input = mixer
                    .as_mut()
                    .filter(|mixer| handed < mixer.inputs)
                    .and_then(|mixer| {
                        mixer
                            .slot
                            .raw_kernel()
                            .input_samples(handed)
                            .get_mut(..period)
                    });
                let outcome = match input {
                    Some(input) => {
                        let outcome = chain.pull(ring, slot.shared.gain(), input);
                        slot.shared.meter().record(input);
                        slot.shared.tap().feed(input, &self.format);
                        handed += 1;
                        outcome
                    }
                    None => {
                        let outcome = chain.pull(ring, slot.shared.gain(), &mut self.scratch);
                        slot.shared.meter().record(&self.scratch);
                        slot.shared.tap().feed(&self.scratch, &self.format);
                        if mixer.is_some() {
                            overflow = true;
                        }
                        for (mixed, sample) in self.mix.iter_mut().zip(self.scratch.iter()) {
                            *mixed += *sample;
                        }
                        outcome
                    }
                };
                if slot.starvation.cycle(outcome.underrun, grace_cycles) {
                    slot.shared.count_xrun();
                }
                audible_frames = audible_frames.max(outcome.audible_frames);
            }
            if let Some(mixer) = mixer.filter(|_| handed > 0) {
                let frames = self.format.period_frames as usize;
                if overflow {
                    // More streams than mixer inputs: this cycle is summed natively.
                    mixer.sum_inputs(handed, &mut self.scratch);
                    for (mixed, sample) in self.mix.iter_mut().zip(self.scratch.iter()) {
                        *mixed += *sample;
                    }
                } else if !mixer.run(handed, frames, &mut self.mix) {
                    mixer.sum_inputs(handed, &mut self.mix);
                }
            }
            self.stats.meter.record(&self.mix);
            self.stats.tap.feed(&self.mix, &self.format);
            self.finish_cycle_accounting(started);
            match &mut held {
                Held::Open(live) => {
                    if let Err(error) = live.write_cycle(&self.mix, audible_frames) {
                        let _ = live.finish();
                        self.lose_device(&error);
                        held = Held::Lost(Recovery::new(&self.format));
                    } else {
                        self.note_device_stats(live.stats());
                    }
                }
                Held::Lost(waiting) => {
                    waiting.pacer.wait();
                    if waiting.due()
                        && let Ok(reopened) = opener.open()
                    {
                        self.regain_device();
                        held = Held::Open(reopened);
                    }
                }
                // `prepare_turn` opens a closed device before any cycle.
                Held::Closed => {}
            }
            self.publish_positions();
        }
        if let Held::Open(mut live) = held
            && let Err(error) = live.finish()
        {
            warn!(endpoint = self.name, %error, "finishing the device failed");
        }
    }

    fn run_capture(
        &mut self,
        opener: Box<dyn CaptureOpener>,
        mut held: Held<Box<dyn CaptureDevice>>,
    ) {
        let mut idleness = Idleness::default();
        let open = || opener.open();
        while self.apply_commands() {
            if !self.prepare_turn(&mut held, &open, &mut idleness) {
                continue;
            }
            match &mut held {
                Held::Open(live) => match live.read(&mut self.mix) {
                    Ok(()) => self.note_device_stats(live.stats()),
                    Err(error) => {
                        let _ = live.finish();
                        self.lose_device(&error);
                        held = Held::Lost(Recovery::new(&self.format));
                        self.mix.fill(0.0);
                    }
                },
                Held::Lost(waiting) => {
                    self.mix.fill(0.0);
                    waiting.pacer.wait();
                    if waiting.due()
                        && let Ok(reopened) = opener.open()
                    {
                        self.regain_device();
                        held = Held::Open(reopened);
                    }
                }
                // `prepare_turn` opens a closed device before any cycle.
                Held::Closed => self.mix.fill(0.0),
            }
            let started = self.timing.start();
            let grace_cycles = self.grace_cycles();
            self.stats.meter.record(&self.mix);
            self.stats.tap.feed(&self.mix, &self.format);
            for slot in self.slots.iter_mut() {
                if !slot.is_current() || !slot.shared.is_running() {
                    // Stopped (or retired): whatever dry spell it ended in is over, not
                    // an xrun.
                    slot.starvation = Default::default();
                    continue;
                }
                let SlotChain::Capture { ring, chain } = &mut slot.chain else {
                    continue;
                };
                // A capture stream's monitor hears what the endpoint gives it.
                slot.shared.tap().feed(&self.mix, &self.format);
                let outcome = chain.push(&self.mix, ring, slot.shared.gain());
                if slot.starvation.cycle(outcome.overrun, grace_cycles) {
                    slot.shared.count_xrun();
                }
            }
            self.finish_cycle_accounting(started);
            self.publish_positions();
        }
        if let Held::Open(mut live) = held {
            let _ = live.finish();
        }
    }

    /// Running streams of this generation.
    fn running_slots(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.is_current() && slot.shared.is_running())
            .count()
    }

    /// A playback cycle for one stream whose bytes go to the device as they are: the
    /// device takes periods as bytes, the stream runs alone (`running` is 1), its chain
    /// [passes them through](PlaybackChain::passes_through), the mixer (if any) hands one
    /// input back unchanged, and no monitor listens to the stream or the endpoint. Reads
    /// the period into `direct`, meters it as integers and judges the dry spell as the
    /// float cycle would; returns the audible frames for the device, or `None` (nothing
    /// done) when this cycle needs the float path.
    fn direct_cycle(
        &mut self,
        device: &mut dyn PlaybackDevice,
        running: usize,
        grace_cycles: u32,
    ) -> Option<usize> {
        let format = device.byte_format().filter(|&f| is_direct_format(f))?;
        if running != 1
            || self.stats.tap.listened()
            || self
                .mixer
                .as_ref()
                .is_some_and(|mixer| mixer.slot.active() && !mixer.alone_is_identity)
        {
            return None;
        }
        let period_bytes = self.format.period_samples() * DIRECT_SAMPLE_BYTES;
        let direct = self.direct.get_mut(..period_bytes)?;
        let mut chosen = None;
        for slot in self.slots.iter_mut() {
            if !slot.is_current() || !slot.shared.is_running() {
                slot.starvation = Default::default();
                continue;
            }
            chosen = Some(slot);
        }
        let slot = chosen?;
        let control = slot.shared.gain();
        let SlotChain::Playback { ring, chain } = &mut slot.chain else {
            return None;
        };
        if slot.shared.tap().listened() || !chain.passes_through(format, control) {
            return None;
        }
        let outcome = chain.pull_bytes(ring, direct);
        let levels = MeterReading::of_s16le(direct);
        slot.shared.meter().record_levels(levels.peak, levels.rms);
        self.stats.meter.record_levels(levels.peak, levels.rms);
        if slot.starvation.cycle(outcome.underrun, grace_cycles) {
            slot.shared.count_xrun();
        }
        Some(outcome.audible_frames)
    }

    fn note_device_stats(&self, stats: DeviceStats) {
        self.stats
            .device_xruns
            .store(stats.xruns, Ordering::Relaxed);
        self.stats
            .device_delay_frames
            .store(stats.delay_frames, Ordering::Relaxed);
    }

    /// [`XRUN_GRACE`] in this endpoint's cycles.
    fn grace_cycles(&self) -> u32 {
        let per_second = self.format.rate / self.format.period_frames.max(1);
        (XRUN_GRACE.as_secs() as u32).saturating_mul(per_second.max(1))
    }

    fn finish_cycle_accounting(&self, started_ns: Option<u64>) {
        if let Some(started_ns) = started_ns {
            let busy = monotonic_ns().saturating_sub(started_ns);
            self.stats.busy_ns.store(busy, Ordering::Relaxed);
            self.stats.busy_total_ns.fetch_add(
                busy.saturating_mul(u64::from(self.timing.every)),
                Ordering::Relaxed,
            );
        }
        self.stats.cycles.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes positions once the device has taken (or given) the cycle, so a position
    /// never runs ahead of what was really played.
    fn publish_positions(&self) {
        // A retired slot's position is its old one: the stream counts from 0 again.
        for slot in self.slots.iter().filter(|slot| slot.is_current()) {
            let position = match &slot.chain {
                SlotChain::Playback { ring, .. } => ring.position(),
                SlotChain::Capture { ring, .. } => ring.written(),
            };
            slot.shared.publish_position(position);
        }
    }

    fn lose_device(&self, error: &DeviceError) {
        // Off the happy path: one log line per loss is worth the syscall.
        warn!(endpoint = self.name, %error, "device lost; keeping time without it and retrying");
        self.stats.device_lost.store(true, Ordering::Relaxed);
    }

    fn regain_device(&self) {
        info!(endpoint = self.name, "device reopened");
        self.stats.device_lost.store(false, Ordering::Relaxed);
    }
}

/// The SCHED_FIFO priority endpoint threads ask for. Threads that must be able to
/// preempt them (the plugin host's epoch ticker, which stops a looping plugin running on
/// an endpoint thread) ask for more.
pub const REALTIME_PRIORITY: i32 = 20;

/// Makes the calling thread SCHED_FIFO at `priority` (refused without CAP_SYS_NICE or an
/// rtprio limit).
pub fn set_realtime_priority(priority: i32) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param for the calling thread.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

/// The nice value of a transport's event loop (the sndif device loop, the virtio-snd
/// position loop). One thread does what a thread per device did, and on a busy host (a
/// VMM's vCPU threads, many guests) an ordinary thread waits its turn behind all of them
/// while the guests' buffers run down: measured in the soak with 128 sndif guests, the
/// loop's xruns went from 0 to 67–284 a minute at nice 0 and back to 0 at -10. Below the
/// endpoint threads' real-time class, which it must never delay.
pub const TRANSPORT_LOOP_NICE: i32 = -10;

/// Raises the calling thread to [`TRANSPORT_LOOP_NICE`] where that is permitted
/// (CAP_SYS_NICE, or the unit's `LimitNICE=`), and says which it got.
pub fn raise_transport_loop(what: &str) {
    // SAFETY: no memory is passed; both calls act on the calling thread only.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, TRANSPORT_LOOP_NICE)
    };
    if rc == 0 {
        info!(
            nice = TRANSPORT_LOOP_NICE,
            "{what} runs above normal priority"
        );
    } else {
        info!(
            error = %std::io::Error::last_os_error(),
            "the {what} runs at normal priority (grant CAP_SYS_NICE or LimitNICE=-10 to raise it)"
        );
    }
}

/// Asks for SCHED_FIFO; logs once if the system refuses.
fn request_realtime(name: &str) {
    match set_realtime_priority(REALTIME_PRIORITY) {
        Ok(()) => info!(
            endpoint = name,
            priority = REALTIME_PRIORITY,
            "endpoint thread runs SCHED_FIFO"
        ),
        Err(error) => info!(
            endpoint = name,
            %error,
            "SCHED_FIFO refused; the endpoint thread runs at normal priority (grant CAP_SYS_NICE or an rtprio limit for real-time scheduling)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cycle_in_sampled_cycles_is_timed_where_the_clock_is_expensive() {
        let mut sampled = CycleTiming {
            every: SAMPLED_CYCLES,
            countdown: 0,
        };
        let timed: Vec<bool> = (0..3 * SAMPLED_CYCLES)
            .map(|_| sampled.start().is_some())
            .collect();
        assert_eq!(timed.iter().filter(|&&timed| timed).count(), 3);
        // The first cycle is timed, then every SAMPLED_CYCLES-th.
        for (cycle, &timed) in timed.iter().enumerate() {
            assert_eq!(timed, cycle % SAMPLED_CYCLES as usize == 0, "cycle {cycle}");
        }
        let mut every = CycleTiming {
            every: 1,
            countdown: 0,
        };
        assert!((0..10).all(|_| every.start().is_some()));
    }
}
