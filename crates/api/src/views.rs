//! What the API answers: JSON views of the engine's cards, streams and endpoints, built
//! from snapshots so a view never holds an engine lock.

use paravox_engine::endpoint::{Activity, Endpoint};
use paravox_engine::{Card, Direction, Engine, Stream, StreamState, Transport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::chain::{ChainStageView, PluginStageView, chain_view, plugin_stages_view};
use crate::meters::MeterLevels;
use crate::model::{ChainStage, DirectionName};

/// Who made an object, and so who may remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Created over the API, saved in `state.json`; the API may delete it.
    Api,
    /// Created by the daemon (configuration file, command line, a transport); change it
    /// there.
    Daemon,
}

/// How a card reaches its guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TransportView {
    /// virtio-snd over a vhost-user socket.
    Virtio {
        /// The socket path.
        socket: String,
    },
    /// A Xen para-virtual sound card.
    Sndif {
        /// The frontend's domain id.
        frontend_domid: u32,
        /// The device index.
        devid: u32,
    },
    /// Streams opened by the host itself.
    Local,
}

/// A sound card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CardView {
    /// Card id (stable while the daemon runs; may change across restarts).
    pub id: u32,
    /// Card name (stable across restarts).
    pub name: String,
    /// How it reaches its guest.
    pub transport: TransportView,
    /// Who made it.
    pub origin: Origin,
    /// Its stream ids, in stream-index order.
    pub streams: Vec<u32>,
}

/// A stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamStateName {
    /// Created, no parameters yet.
    Idle,
    /// Parameters set.
    Configured,
    /// Attached to its endpoint, not moving.
    Prepared,
    /// Moving.
    Running,
    /// Held.
    Paused,
    /// Resources freed.
    Released,
}

impl From<StreamState> for StreamStateName {
    fn from(state: StreamState) -> StreamStateName {
        match state {
            StreamState::Idle => StreamStateName::Idle,
            StreamState::Configured => StreamStateName::Configured,
            StreamState::Prepared => StreamStateName::Prepared,
            StreamState::Running => StreamStateName::Running,
            StreamState::Paused => StreamStateName::Paused,
            StreamState::Released => StreamStateName::Released,
        }
    }
}

/// Parameters the guest negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParamsView {
    /// Sample format (`s16_le`, `float_le`, …).
    pub format: String,
    /// Frames per second.
    pub rate: u32,
    /// Channels.
    pub channels: u32,
    /// Guest buffer size.
    pub buffer_bytes: u32,
    /// Guest period size.
    pub period_bytes: u32,
    /// Bytes per frame.
    pub frame_bytes: u32,
}

/// A stream's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamView {
    /// Stream id (stable while the daemon runs).
    pub id: u32,
    /// Its card's id.
    pub card: u32,
    /// Its place on the card (virtio stream id; stable across restarts).
    pub index: u32,
    /// Stream name.
    pub name: String,
    /// Playback or capture.
    pub direction: DirectionName,
    /// State.
    pub state: StreamStateName,
    /// Negotiated parameters, once set.
    pub params: Option<ParamsView>,
    /// The explicit route; `null`: the default endpoint of its direction.
    pub route: Option<String>,
    /// The endpoint it plays to (or records from), or would once prepared.
    pub endpoint: Option<String>,
    /// Bytes consumed (playback) or produced (capture) since prepare.
    pub position_bytes: u64,
    /// The same in frames.
    pub position_frames: u64,
    /// Bytes between the guest and the endpoint (written and not yet played, or
    /// captured and not yet read).
    pub queued_bytes: u64,
    /// Bytes the endpoint's device holds, plus what the resampler holds back when the
    /// stream's rate is not the endpoint's (what virtio-snd reports as `latency_bytes`).
    pub device_delay_bytes: u64,
    /// Queued and device bytes as time: the stream's latency in milliseconds.
    pub latency_ms: f64,
    /// Xruns so far: gaps in the middle of the stream (its ring ran dry or full and then
    /// moved again, or stayed so for 2 s while running); a natural end counts none.
    pub xruns: u64,
    /// Volume of each guest channel in dB.
    pub volume_db: Vec<f32>,
    /// Mute.
    pub muted: bool,
    /// Level after volume, over the last 40 ms.
    pub meter: MeterLevels,
    /// The effect chain, first stage first, with each stage's state.
    pub chain: Vec<ChainStageView>,
    /// Every plugin in the running chain (effects and the native stages plugins serve),
    /// with its fault state: a faulted one has fallen back to the native stage.
    pub plugin_stages: Vec<PluginStageView>,
    /// Plugin faults in this stream so far.
    pub plugin_faults: u64,
}

/// An endpoint's fixed internal format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndpointFormatView {
    /// Frames per second.
    pub rate: u32,
    /// Channels.
    pub channels: u32,
    /// Frames per cycle.
    pub period_frames: u32,
}

/// What an endpoint's thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EndpointActivity {
    /// Cycling: a stream runs, or a device with a clock of its own is kept running until
    /// its idle time (`idle=` in the spec) is over.
    Running,
    /// No stream runs; the thread sleeps and the device stays open (it keeps no time of
    /// its own).
    Paused,
    /// No stream ran for the idle time: the device is closed until the next start.
    Closed,
}

impl From<Activity> for EndpointActivity {
    fn from(activity: Activity) -> EndpointActivity {
        match activity {
            Activity::Running => EndpointActivity::Running,
            Activity::Paused => EndpointActivity::Paused,
            Activity::Closed => EndpointActivity::Closed,
        }
    }
}

/// What an endpoint's real-time thread counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndpointStatsView {
    /// What the thread is doing now.
    pub activity: EndpointActivity,
    /// Cycles run.
    pub cycles: u64,
    /// Xruns the device reported.
    pub device_xruns: u64,
    /// The device's own latency in frames.
    pub device_delay_frames: u64,
    /// Processing time of the last cycle, ns.
    pub busy_ns: u64,
    /// Processing time of all cycles, ns.
    pub busy_total_ns: u64,
    /// The device is lost (the endpoint keeps time and retries).
    pub device_lost: bool,
}

/// A host endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EndpointView {
    /// Endpoint name.
    pub name: String,
    /// Playback or capture.
    pub direction: DirectionName,
    /// The ENDPOINT spec it was opened with.
    pub spec: String,
    /// Who made it.
    pub origin: Origin,
    /// The default endpoint of its direction.
    pub default: bool,
    /// Streams attached now.
    pub attached_streams: u32,
    /// Internal format.
    pub format: EndpointFormatView,
    /// Counters.
    pub stats: EndpointStatsView,
    /// Mixed output (or captured input) level over the last 40 ms.
    pub meter: MeterLevels,
    /// A browser microphone endpoint (spec `browser`): whether a browser feeds it
    /// (otherwise it delivers silence). Absent for other endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub microphone: Option<MicrophoneView>,
}

/// The state of a browser microphone endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MicrophoneView {
    /// A browser feeds it now; without one it delivers silence.
    pub fed: bool,
    /// Frames received from browsers, in the endpoint's rate.
    pub received_frames: u64,
    /// Frames dropped because a browser sent faster than real time.
    pub dropped_frames: u64,
    /// Periods delivered short because the browser fell behind.
    pub underruns: u64,
}

/// An ALSA PCM the host offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AlsaPcmView {
    /// PCM name.
    pub name: String,
    /// The ENDPOINT spec that opens it (`alsa:NAME`).
    pub spec: String,
    /// ALSA's description.
    pub description: Option<String>,
    /// Usable for playback.
    pub playback: bool,
    /// Usable for capture.
    pub capture: bool,
}

/// The view of a card.
pub fn card_view(card: &Card, origin: Origin) -> CardView {
    CardView {
        id: card.id(),
        name: card.name().to_owned(),
        transport: match card.transport() {
            Transport::Virtio { socket } => TransportView::Virtio {
                socket: socket.clone(),
            },
            Transport::Sndif {
                frontend_domid,
                devid,
            } => TransportView::Sndif {
                frontend_domid: *frontend_domid,
                devid: *devid,
            },
            Transport::Local => TransportView::Local,
        },
        origin,
        streams: card.streams().iter().map(|s| s.id()).collect(),
    }
}

/// A stream's place on its card.
pub fn stream_index(engine: &Engine, stream: &Stream) -> u32 {
    engine
        .card(stream.card())
        .and_then(|card| card.streams().iter().position(|s| s.id() == stream.id()))
        .map_or(0, |index| index as u32)
}

/// The view of a stream; `meter` is its latest sampled level, `chain` its effect chain.
pub fn stream_view(
    engine: &Engine,
    stream: &Stream,
    meter: Option<MeterLevels>,
    chain: &[ChainStage],
) -> StreamView {
    let status = stream.status();
    let explicit = stream.route();
    let endpoint = status
        .route
        .clone()
        .or_else(|| engine.default_endpoint(status.direction));
    let frame_bytes = status
        .params
        .and_then(|p| p.frame_bytes().ok())
        .unwrap_or(0);
    let device_delay_bytes = stream.device_delay_bytes();
    let latency_ms = match status.params {
        Some(params) if frame_bytes > 0 && params.rate > 0 => {
            let bytes_per_second = f64::from(frame_bytes) * f64::from(params.rate);
            (status.queued_bytes + device_delay_bytes) as f64 * 1000.0 / bytes_per_second
        }
        _ => 0.0,
    };
    StreamView {
        id: status.id,
        card: status.card,
        index: stream_index(engine, stream),
        name: status.name,
        direction: status.direction.into(),
        state: status.state.into(),
        params: status.params.map(|p| ParamsView {
            format: p.format.name().to_owned(),
            rate: p.rate,
            channels: p.channels,
            buffer_bytes: p.buffer_bytes,
            period_bytes: p.period_bytes,
            frame_bytes,
        }),
        route: explicit,
        endpoint,
        position_bytes: status.position_bytes,
        position_frames: status
            .position_bytes
            .checked_div(u64::from(frame_bytes))
            .unwrap_or(0),
        queued_bytes: status.queued_bytes,
        device_delay_bytes,
        latency_ms,
        xruns: status.xruns,
        volume_db: status.volume_db,
        muted: status.muted,
        meter: meter.unwrap_or(MeterLevels::SILENT),
        chain: chain_view(stream, chain),
        plugin_stages: plugin_stages_view(stream),
        plugin_faults: stream.plugin_faults(),
    }
}

/// The view of an endpoint.
pub fn endpoint_view(
    engine: &Engine,
    endpoint: &Endpoint,
    origin: Origin,
    meter: Option<MeterLevels>,
) -> EndpointView {
    let direction: Direction = endpoint.direction();
    let format = endpoint.format();
    let stats = endpoint.stats();
    EndpointView {
        name: endpoint.name().to_owned(),
        direction: direction.into(),
        spec: endpoint.spec().to_owned(),
        origin,
        default: engine.default_endpoint(direction).as_deref() == Some(endpoint.name()),
        attached_streams: u32::try_from(endpoint.attached()).unwrap_or(u32::MAX),
        format: EndpointFormatView {
            rate: format.rate,
            channels: format.channels,
            period_frames: format.period_frames,
        },
        stats: EndpointStatsView {
            activity: stats.activity().into(),
            cycles: stats.cycles(),
            device_xruns: stats.device_xruns(),
            device_delay_frames: stats.device_delay_frames(),
            busy_ns: stats.busy_ns(),
            busy_total_ns: stats.busy_total_ns(),
            device_lost: stats.device_lost(),
        },
        meter: meter.unwrap_or(MeterLevels::SILENT),
        microphone: endpoint.microphone().map(|feed| {
            let stats = feed.stats();
            MicrophoneView {
                fed: stats.fed,
                received_frames: stats.received_frames,
                dropped_frames: stats.dropped_frames,
                underruns: stats.underruns,
            }
        }),
    }
}
