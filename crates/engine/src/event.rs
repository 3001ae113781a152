//! Lifecycle events on a broadcast bus: what the API's WebSocket and the logs consume.
//!
//! Only the control plane publishes (stream operations, the housekeeping thread that
//! notices xruns and device trouble); the endpoint threads never touch the bus.

use crate::state::StreamState;
use crate::{CardId, Direction, StreamId};

/// Something that happened in the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A card was created.
    CardAdded {
        /// The card.
        card: CardId,
        /// Its name.
        name: String,
    },
    /// A card was removed.
    CardRemoved {
        /// The card.
        card: CardId,
    },
    /// A stream was created.
    StreamAdded {
        /// The card it belongs to.
        card: CardId,
        /// The stream.
        stream: StreamId,
        /// Playback or capture.
        direction: Direction,
    },
    /// A stream was removed with its card.
    StreamRemoved {
        /// The stream.
        stream: StreamId,
    },
    /// A stream changed state.
    StreamState {
        /// The stream.
        stream: StreamId,
        /// The state it left.
        from: StreamState,
        /// The state it is in now.
        to: StreamState,
    },
    /// A stream had a gap in the middle (see `endpoint::XRUN_GRACE`): its ring ran dry
    /// (playback) or full (capture) and then moved again, or stayed so while running.
    Xrun {
        /// The stream.
        stream: StreamId,
        /// Its xrun count so far.
        total: u64,
    },
    /// A stream's volume or mute changed.
    Volume {
        /// The stream.
        stream: StreamId,
        /// Volume of the first channel in dB.
        volume_db: f32,
        /// Mute flag.
        muted: bool,
    },
    /// A stream was routed to another endpoint.
    Route {
        /// The stream.
        stream: StreamId,
        /// The endpoint's name.
        endpoint: String,
    },
    /// An endpoint lost its device (it keeps time on its own and retries).
    DeviceLost {
        /// The endpoint's name.
        endpoint: String,
        /// What the device said.
        reason: String,
    },
    /// An endpoint's device is back.
    DeviceRecovered {
        /// The endpoint's name.
        endpoint: String,
    },
    /// A prepared stream's chain was rebuilt with a new plugin set (its own chain changed,
    /// or a plugin it uses was replaced) and swapped in at a cycle boundary.
    ChainSwapped {
        /// The stream.
        stream: StreamId,
    },
    /// A plugin was disabled (or refused) and its native stage serves instead; the
    /// stream and everything else go on.
    PluginFault {
        /// The stream whose chain held it (`None` for an endpoint's mixer).
        stream: Option<StreamId>,
        /// The endpoint it ran on.
        endpoint: Option<String>,
        /// The plugin's name.
        plugin: String,
        /// The stage it stood in for (`convert`, `resample`, `channel-map`, `gain`,
        /// `effect`, `mix`).
        stage: String,
        /// What went wrong.
        reason: String,
    },
    /// A guest asked for more than its card's budget allows and was refused.
    BudgetExceeded {
        /// The card.
        card: CardId,
        /// The stream that asked (`None` when the card itself grew, e.g. one stream too
        /// many).
        stream: Option<StreamId>,
        /// The budget field (`stream_buffer_bytes`, …).
        limit: String,
        /// What the request would have made it.
        asked: u64,
        /// What the budget allows.
        allowed: u64,
    },
    /// A listener started monitoring a stream or an endpoint.
    MonitorStarted {
        /// The monitor.
        monitor: u32,
        /// The stream it listens to.
        stream: Option<StreamId>,
        /// The endpoint it listens to.
        endpoint: Option<String>,
    },
    /// A monitor stopped.
    MonitorStopped {
        /// The monitor.
        monitor: u32,
        /// The stream it listened to.
        stream: Option<StreamId>,
        /// The endpoint it listened to.
        endpoint: Option<String>,
    },
    /// A browser started feeding a microphone endpoint.
    MicrophoneAttached {
        /// The endpoint's name.
        endpoint: String,
    },
    /// The browser feeding a microphone endpoint left; it delivers silence.
    MicrophoneDetached {
        /// The endpoint's name.
        endpoint: String,
    },
}

/// How many events a slow subscriber may lag behind before it misses some.
pub const EVENT_BACKLOG: usize = 1024;
