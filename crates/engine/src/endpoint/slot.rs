//! A stream's place on an endpoint: its ring end and its processing chain, built off the
//! real-time thread (a [`FreshChain`]) and run on it (a [`Slot`] holding a [`SlotChain`]).

use super::*;

/// The processing half of an attached stream.
#[derive(Debug)]
pub enum SlotChain {
    /// Ring consumer and playback chain.
    Playback {
        /// The endpoint's end of the ring.
        ring: Consumer,
        /// Guest format → endpoint format.
        chain: Box<PlaybackChain>,
    },
    /// Ring producer and capture chain.
    Capture {
        /// The endpoint's end of the ring.
        ring: Producer,
        /// Endpoint format → guest format.
        chain: Box<CaptureChain>,
    },
}

/// A chain without its ring, built ahead of a move to another endpoint.
#[derive(Debug)]
pub enum FreshChain {
    /// Playback chain.
    Playback(Box<PlaybackChain>),
    /// Capture chain.
    Capture(Box<CaptureChain>),
}

impl SlotChain {
    /// Builds a native chain for `stream` on an endpoint of `endpoint` format.
    pub fn build(
        direction: Direction,
        stream: &StreamFormat,
        endpoint: &DeviceFormat,
    ) -> Result<FreshChain> {
        let board = Arc::new(FaultBoard::default());
        Ok(Self::build_with(
            direction,
            stream,
            endpoint,
            &ChainPlugins::default(),
            &board,
        )?
        .0)
    }

    /// Builds a chain with plugin stages (control plane: instantiates the plugins).
    pub fn build_with(
        direction: Direction,
        stream: &StreamFormat,
        endpoint: &DeviceFormat,
        plugins: &ChainPlugins,
        board: &Arc<FaultBoard>,
    ) -> Result<(FreshChain, Vec<SetupIssue>)> {
        Ok(match direction {
            Direction::Playback => {
                let (chain, issues) =
                    PlaybackChain::with_plugins(stream, endpoint, plugins, board)?;
                (FreshChain::Playback(Box::new(chain)), issues)
            }
            Direction::Capture => {
                let (chain, issues) = CaptureChain::with_plugins(stream, endpoint, plugins, board)?;
                (FreshChain::Capture(Box::new(chain)), issues)
            }
        })
    }
}

impl FreshChain {
    /// Plugin names by fault-board position.
    pub fn plugin_names(&self) -> Vec<Option<String>> {
        match self {
            FreshChain::Playback(chain) => chain.plugin_names().to_vec(),
            FreshChain::Capture(chain) => chain.plugin_names().to_vec(),
        }
    }

    /// Starts gain at its targets without a ramp.
    pub fn settle_gain(&mut self, control: &GainControl) {
        match self {
            FreshChain::Playback(chain) => chain.settle_gain(control),
            FreshChain::Capture(chain) => chain.settle_gain(control),
        }
    }
}

/// A stream as the endpoint thread holds it.
#[derive(Debug)]
pub struct Slot {
    pub(crate) shared: Arc<StreamShared>,
    pub(crate) chain: SlotChain,
    /// The current dry spell (a playback ring without the audio a cycle needed, a capture
    /// ring without room), judged by the xrun rule of [`Starvation::cycle`].
    pub(crate) starvation: Starvation,
    /// The stream's generation when this slot was made.
    generation: u32,
}

/// One stream's dry spells, and whether each is an xrun.
///
/// An xrun is audio missing in the *middle* of a stream: the ring runs dry and then
/// receives more (counted when the audio comes back), or stays dry while the guest keeps
/// the stream running past [`XRUN_GRACE`] (counted then, once). A guest that lets its
/// stream run out and then stops it, which is how every player ends, causes none; the
/// same rule holds for a capture ring the guest stops reading.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Starvation {
    /// Consecutive dry cycles (0: not dry).
    dry_cycles: u32,
    /// Whether this spell was counted already.
    counted: bool,
    /// Whether audio has moved since the stream started: a dry spell before that is no
    /// gap in the middle (the endpoint may wake for a start before the transport has
    /// handed it the audio the guest queued).
    flowing: bool,
}

/// How long a running stream may stay dry before that is an xrun even without more
/// audio after it: past any guest's drain-then-stop, well short of what a listener
/// would call a finished stream.
pub const XRUN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl Starvation {
    /// Real-time: one cycle of a running stream, `dry` when it lacked audio (or room);
    /// `grace_cycles` is [`XRUN_GRACE`] in cycles. Returns whether this cycle makes an
    /// xrun.
    pub(crate) fn cycle(&mut self, dry: bool, grace_cycles: u32) -> bool {
        if dry {
            self.dry_cycles = self.dry_cycles.saturating_add(1);
            if !self.counted && self.dry_cycles > grace_cycles {
                self.counted = true;
                return true;
            }
            return false;
        }
        // Audio again: a spell that was not counted yet, after audio, was a gap in the
        // middle.
        let gap = self.flowing && self.dry_cycles > 0 && !self.counted;
        *self = Starvation {
            flowing: true,
            ..Starvation::default()
        };
        gap
    }
}

impl Slot {
    pub(crate) fn new(shared: Arc<StreamShared>, chain: SlotChain) -> Box<Slot> {
        Box::new(Slot {
            generation: shared.generation(),
            shared,
            chain,
            starvation: Starvation::default(),
        })
    }

    /// Real-time: whether this is the stream's slot now, and not one it left (released,
    /// waiting to be handed back) before it was prepared again.
    pub(crate) fn is_current(&self) -> bool {
        self.generation == self.shared.generation()
    }

    pub(crate) fn direction(&self) -> Direction {
        match self.chain {
            SlotChain::Playback { .. } => Direction::Playback,
            SlotChain::Capture { .. } => Direction::Capture,
        }
    }

    /// Real-time: swaps in a chain built for this endpoint (a new plugin set), carrying
    /// over the old chain's running state; returns the old chain (or `fresh` itself if the
    /// direction does not match) to be dropped off the thread.
    pub(crate) fn swap_chain(&mut self, fresh: FreshChain) -> FreshChain {
        match (&mut self.chain, fresh) {
            (SlotChain::Playback { chain, .. }, FreshChain::Playback(mut new)) => {
                new.adopt_state(chain);
                std::mem::swap(chain, &mut new);
                FreshChain::Playback(new)
            }
            (SlotChain::Capture { chain, .. }, FreshChain::Capture(mut new)) => {
                new.adopt_state(chain);
                std::mem::swap(chain, &mut new);
                FreshChain::Capture(new)
            }
            (_, fresh) => fresh,
        }
    }

    /// Swaps in a chain built for another endpoint, keeping the ring.
    pub(crate) fn replace_chain(&mut self, fresh: FreshChain, gain: &GainControl) {
        match (&mut self.chain, fresh) {
            (SlotChain::Playback { chain, .. }, FreshChain::Playback(mut new)) => {
                new.settle_gain(gain);
                *chain = new;
            }
            (SlotChain::Capture { chain, .. }, FreshChain::Capture(mut new)) => {
                new.settle_gain(gain);
                *chain = new;
            }
            // The stream's direction never changes, so the pair always matches.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xruns(cycles: &[bool], grace: u32) -> usize {
        let mut starvation = Starvation::default();
        cycles
            .iter()
            .filter(|&&dry| starvation.cycle(dry, grace))
            .count()
    }

    #[test]
    fn a_stream_that_runs_out_and_stops_has_no_xrun() {
        // Fed, then dry for less than the grace until the guest stops it.
        assert_eq!(xruns(&[false, false, true, true, true], 10), 0);
    }

    #[test]
    fn a_gap_in_the_middle_is_one_xrun() {
        assert_eq!(xruns(&[false, true, true, false, false], 10), 1);
        // Two gaps, two xruns.
        assert_eq!(xruns(&[false, true, false, true, true, false], 10), 2);
    }

    #[test]
    fn a_late_first_period_is_no_gap_but_a_stream_never_fed_past_the_grace_is_one() {
        // Started a cycle before its first audio reached the ring.
        assert_eq!(xruns(&[true, false, false, true, false], 10), 1);
        assert_eq!(xruns(&[true, true, false, false], 10), 0);
        // Started and never fed: dry past the grace all the same.
        assert_eq!(xruns(&[true; 20], 10), 1);
    }

    #[test]
    fn staying_dry_past_the_grace_is_one_xrun_however_long_it_lasts() {
        let mut cycles = vec![false];
        cycles.extend(std::iter::repeat_n(true, 50));
        assert_eq!(xruns(&cycles, 10), 1);
        // And audio after it does not count the same spell twice.
        cycles.push(false);
        assert_eq!(xruns(&cycles, 10), 1);
    }
}
