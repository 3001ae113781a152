//! The `alsa:PCM` endpoint: playback and capture through any ALSA PCM.
//!
//! Any PCM name works: `default`, `hw:…`, `plughw:…`, `dmix`, and software PCMs defined in an
//! asoundrc (`null`, `file`, …). Access is read/write interleaved; the sample format is the
//! spec's, else `FLOAT_LE`, else `S16_LE`; the period is the endpoint's and the buffer holds
//! `buffer=` periods (4 by default). Samples are converted between `f32` and the device
//! format with `paravox_pcm::convert`, through buffers allocated at open.
//!
//! **The clock.** A hardware PCM is the endpoint's clock: `writei` blocks while the buffer is
//! full and `readi` until a period has arrived. Software PCMs without a sound card under
//! them (`null`, a `file` PCM whose slave is `null`) have no clock: they take and give
//! periods instantly, and an endpoint on them would spin. They are recognised by what ALSA
//! reports right after a transfer, which a clocked PCM can never show: a playback buffer
//! that is already empty again, or a capture buffer that is still full
//! (`snd_pcm_avail` ≥ the buffer size). While a PCM behaves like that, the device paces
//! itself with a [`Pacer`](paravox_engine::clock::Pacer), exactly like the file and null
//! endpoints; as soon as ALSA shows a real clock the pacer stands aside. No PCM type list
//! is needed, so user-defined plugin chains are handled the same way.
//!
//! **Errors.** An xrun (`EPIPE`) is counted and recovered with `snd_pcm_prepare` (playback
//! is re-primed with silence so it does not underrun again at once); a suspend (`ESTRPIPE`)
//! is resumed; anything else loses the device with ALSA's message, and the endpoint reopens
//! it with backoff.

mod capture;
mod list;
mod log;
mod params;
mod playback;

pub use capture::{AlsaCapture, AlsaCaptureOpener};
pub use list::{AlsaPcmInfo, alsa_pcms};
pub use playback::{AlsaPlayback, AlsaPlaybackOpener};

use std::time::Duration;

use paravox_engine::clock::Pacer;
use paravox_engine::device::Idle;

/// How long an endpoint keeps a PCM running with no stream before it closes it, when the
/// spec gives no `idle=`: long enough that a player skipping tracks finds it open, short
/// enough that a laptop sleeps and other programs get a `hw:` device soon.
pub const DEFAULT_IDLE_CLOSE: Duration = Duration::from_secs(5);

/// What the endpoint does with a PCM while no stream runs: one with a clock of its own
/// is kept running until `idle_close`, then closed; one the guard paces keeps no time
/// of its own and simply pauses.
fn idle_of(clock: &ClocklessGuard, idle_close: Option<Duration>) -> Idle {
    match idle_close {
        _ if clock.is_pacing() => Idle::Pause,
        Some(after) => Idle::CloseAfter(after),
        None => Idle::Run,
    }
}

/// Paces a PCM only while it shows no clock of its own (see the module docs).
#[derive(Debug)]
struct ClocklessGuard {
    pacer: Pacer,
    pacing: bool,
}

impl ClocklessGuard {
    fn new(rate: u32, period_frames: u32) -> ClocklessGuard {
        ClocklessGuard {
            pacer: Pacer::new(rate, period_frames),
            pacing: false,
        }
    }

    /// Called after every period transferred, with whether the PCM looked clockless.
    fn after_transfer(&mut self, clockless: bool) {
        if clockless {
            if !self.pacing {
                tracing::debug!("ALSA PCM shows no clock of its own: pacing it");
            }
            self.pacing = true;
            self.pacer.wait();
        } else if self.pacing {
            tracing::debug!("ALSA PCM shows its own clock again");
            self.pacing = false;
            self.pacer.reset();
        }
    }

    /// Called after every period transferred: asks the PCM how full its buffer is, paces
    /// it if it looks clockless (a clocked PCM blocks in the transfer, so it never has a
    /// whole buffer free after a write, or still full after a read), and returns the
    /// device delay in frames. An error asking counts as clockless: the next transfer
    /// reports whatever is wrong, and the stream keeps time meanwhile.
    fn after_period(
        &mut self,
        pcm: &alsa::pcm::PCM,
        buffer_frames: alsa::pcm::Frames,
    ) -> Option<u64> {
        let (clockless, delay) = match pcm.avail_delay() {
            Ok((avail, delay)) => (
                avail >= buffer_frames,
                Some(u64::try_from(delay).unwrap_or(0)),
            ),
            Err(_) => (true, None),
        };
        self.after_transfer(clockless);
        delay
    }

    /// After a pause: the pacer starts a new timeline instead of catching up.
    fn restart(&mut self) {
        self.pacer.reset();
    }

    /// Whether the device is currently paced by the guard.
    fn is_pacing(&self) -> bool {
        self.pacing
    }
}
