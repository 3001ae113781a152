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
    /// Whether the previous cycle already ran dry (an xrun is counted once per episode).
    pub(crate) starved: bool,
}

impl Slot {
    pub(crate) fn new(shared: Arc<StreamShared>, chain: SlotChain) -> Box<Slot> {
        Box::new(Slot {
            shared,
            chain,
            starved: false,
        })
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
