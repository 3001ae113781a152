//! Listening and talking from a browser: WebSockets on the API's port, with its token.
//!
//! **Monitors** (`/api/streams/{id}/listen`, `/api/endpoints/{name}/listen`): the server
//! first sends a text [`ListenMessage::Listening`], then binary messages of about
//! [`SEND_INTERVAL`] of audio each, every one a [`HEADER_BYTES`]-byte little-endian header
//! (`u32` rate, `u16` channels, `u16` format: 1 = s16le, 2 = f32le, `u64` index of its
//! first frame in the monitor's timeline, so a jump is audio dropped) and interleaved
//! samples. Once a second a text [`ListenMessage::MonitorStats`]. The client may send
//! `{"ping": N}` for a `pong` (its round trip is part of the latency it shows).
//!
//! A monitor is a tap: the endpoint thread copies into the monitor's ring or drops (see
//! [`paravox_engine::monitor`]), and this session drops whole messages when the
//! browser does not take them ([`MONITOR_QUEUE`]). Nothing waits for a browser.
//!
//! **Microphones** (`/api/endpoints/{name}/microphone`, for an endpoint with the spec
//! `browser`): the client declares its rate, channels and sample format in the query and
//! sends binary messages of raw interleaved samples; the server converts them to the
//! endpoint's format. One browser feeds an endpoint at a time.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use paravox_engine::microphone::{BROWSER_RATES, MicrophoneFeeder};
use paravox_engine::monitor::{Monitor, MonitorChunk, MonitorInfo, MonitorTarget};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use crate::app::{AppState, blocking};
use crate::error::{ApiError, Problem};
use crate::events::{queued_writer, upgrade_or_problem, websocket_slot};
use crate::extract::{ApiPath, ApiQuery};

/// How often a monitor session sends what was tapped.
pub const SEND_INTERVAL: Duration = Duration::from_millis(20);
/// Binary messages a monitor may have waiting for a slow browser before newer audio is
/// dropped (about 320 ms).
pub const MONITOR_QUEUE: usize = 16;
/// Bytes of the header before each binary message's samples.
pub const HEADER_BYTES: usize = 16;
/// The largest binary message a microphone may send.
pub const MAX_MICROPHONE_MESSAGE: usize = 65_536;
/// How often the sessions report their counters.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// The largest text message a client may send (pings).
const MAX_TEXT_MESSAGE: usize = 4096;

/// The sample format on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WireFormat {
    /// Signed 16-bit little-endian (the default: half the bytes of f32).
    #[default]
    S16,
    /// 32-bit float little-endian.
    F32,
    /// Opus packets of 20 ms, at most two channels, at the stream's rate when Opus
    /// codes it (8, 12, 16, 24, 48 kHz) and else resampled to 48 kHz: about 96 kbit/s
    /// for stereo instead of 1536. Needs libopus on the host (Debian's `libopus0`).
    Opus,
}

impl WireFormat {
    fn code(self) -> u16 {
        match self {
            WireFormat::S16 => 1,
            WireFormat::F32 => 2,
            WireFormat::Opus => 3,
        }
    }

    fn bytes(self) -> usize {
        match self {
            WireFormat::S16 => 2,
            WireFormat::F32 | WireFormat::Opus => 4,
        }
    }
}

/// The query of a `/listen` WebSocket.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListenQuery {
    /// Sample format of the binary messages (default s16).
    pub format: Option<WireFormat>,
    /// The token, for browsers, which cannot set headers on a WebSocket.
    pub token: Option<String>,
}

/// The query of a `/microphone` WebSocket: what the client will send.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MicrophoneQuery {
    /// Frames per second the client sends, 8000 to 192000 (default 48000).
    #[param(minimum = 8000, maximum = 192000)]
    pub rate: Option<u32>,
    /// Interleaved channels the client sends, 1 to 18 (default 1).
    #[param(minimum = 1, maximum = 18)]
    pub channels: Option<u32>,
    /// Sample format the client sends: s16 (the default) or f32.
    pub format: Option<WireFormat>,
    /// The token, for browsers.
    pub token: Option<String>,
}

/// A text message from the server on a `/listen` or `/microphone` WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ListenMessage {
    /// The first message of a monitor: what it listens to and the format it starts in
    /// (each binary message's header gives its own).
    Listening {
        /// The monitor's id.
        monitor: u32,
        /// `stream ID` or `endpoint NAME`.
        target: String,
        /// Frames per second now.
        rate: u32,
        /// Channels now.
        channels: u32,
        /// Sample format of the binary messages.
        format: WireFormat,
    },
    /// A monitor's counters, once a second.
    MonitorStats {
        /// Frames sent to this client.
        sent_frames: u64,
        /// Frames dropped because this client was behind (at the tap or in the queue).
        dropped_frames: u64,
    },
    /// The first message of a microphone: the endpoint's own format (what the server
    /// converts to).
    Microphone {
        /// The endpoint.
        endpoint: String,
        /// Its rate.
        rate: u32,
        /// Its channels.
        channels: u32,
    },
    /// A microphone's counters, once a second.
    MicrophoneStats {
        /// Frames received (in the endpoint's rate).
        received_frames: u64,
        /// Frames dropped because they came faster than real time.
        dropped_frames: u64,
    },
    /// The monitor's stream or endpoint is gone (its VM shut down): the server closes
    /// the connection after this.
    Ended {
        /// Why.
        reason: String,
    },
    /// The answer to `{"ping": N}`.
    Pong {
        /// The client's number.
        ping: f64,
    },
    /// A client message was not understood; the connection stays open.
    Error {
        /// What was wrong.
        detail: String,
    },
}

/// A text message from the client.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PingMessage {
    /// Any number; the server echoes it in a `pong`.
    pub ping: f64,
}

/// A monitor in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MonitorView {
    /// Its id.
    pub monitor: u32,
    /// The stream it listens to.
    pub stream: Option<u32>,
    /// The endpoint it listens to.
    pub endpoint: Option<String>,
    /// Rate of the last audio tapped (0 before the first).
    pub rate: u32,
    /// Channels of the last audio tapped (0 before the first).
    pub channels: u32,
    /// Frames sent to its client.
    pub sent_frames: u64,
    /// Frames dropped because its client was behind (at the tap or in the server's
    /// queue).
    pub dropped_frames: u64,
}

impl From<MonitorInfo> for MonitorView {
    fn from(info: MonitorInfo) -> MonitorView {
        let (stream, endpoint) = match info.target {
            MonitorTarget::Stream(id) => (Some(id), None),
            MonitorTarget::Endpoint(name) => (None, Some(name)),
        };
        MonitorView {
            monitor: info.id,
            stream,
            endpoint,
            rate: info.rate,
            channels: info.channels,
            sent_frames: info.sent_frames,
            dropped_frames: info.dropped_frames,
        }
    }
}

/// The monitors listening now.
#[utoipa::path(get, path = "/api/monitors", tag = "listen", operation_id = "list_monitors",
    responses(
        (status = 200, description = "Every monitor listening now", body = Vec<MonitorView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn monitors(State(state): State<AppState>) -> Json<Vec<MonitorView>> {
    Json(
        state
            .control()
            .monitors()
            .into_iter()
            .map(MonitorView::from)
            .collect(),
    )
}

/// Listens to a stream: its audio after its chain (a capture stream: what its endpoint
/// captures for it) as binary WebSocket messages. Authenticate with the `Authorization`
/// header or, from a browser, `?token=`.
#[utoipa::path(get, path = "/api/streams/{id}/listen", tag = "listen", operation_id = "listen_to_stream",
    params(("id" = u32, Path, description = "Stream id"), ListenQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; the server sends a ListenMessage text, then binary audio messages (see the module documentation) and MonitorStats texts"),
        (status = 400, description = "Not a WebSocket request, a bad id or a bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 426, description = "The connection cannot be upgraded", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every monitor (MAX_MONITORS, 8) or WebSocket place (64) is taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn listen_to_stream(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
    ApiQuery(query): ApiQuery<ListenQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    listen(state, MonitorTarget::Stream(id), query, upgrade).await
}

/// Listens to an endpoint: its mix (playback) or what it captures, as binary WebSocket
/// messages.
#[utoipa::path(get, path = "/api/endpoints/{name}/listen", tag = "listen", operation_id = "listen_to_endpoint",
    params(("name" = String, Path, description = "Endpoint name"), ListenQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; the server sends a ListenMessage text, then binary audio messages and MonitorStats texts"),
        (status = 400, description = "Not a WebSocket request or a bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The endpoint gives each stream a device of its own and mixes nothing", body = Problem, content_type = "application/problem+json"),
        (status = 426, description = "The connection cannot be upgraded", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every monitor (MAX_MONITORS, 8) or WebSocket place (64) is taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn listen_to_endpoint(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListenQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    listen(state, MonitorTarget::Endpoint(name), query, upgrade).await
}

/// What both `/listen` routes do: refuse what would fail before the handshake, then
/// start the monitor and its session.
async fn listen(
    state: AppState,
    target: MonitorTarget,
    query: ListenQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_codec(&query)?;
    state.control().check_listen(&target)?;
    let upgrade = upgrade_or_problem(upgrade)?;
    let slot = websocket_slot(&state)?;
    let control = state.control().clone();
    let wanted = target.clone();
    let monitor = blocking(move || control.listen(&wanted)).await?;
    let starts_in = target_format(&state, &target);
    let format = query.format.unwrap_or_default();
    Ok(upgrade
        .max_message_size(MAX_TEXT_MESSAGE)
        .max_frame_size(MAX_TEXT_MESSAGE)
        .on_upgrade(move |socket| async move {
            monitor_session(state, socket, monitor, format, starts_in).await;
            drop(slot);
        }))
}

/// Feeds a browser microphone endpoint (spec `browser`): the client sends binary
/// messages of raw interleaved samples in the rate, channels and format its query
/// declares, at most 65536 bytes each.
#[utoipa::path(get, path = "/api/endpoints/{name}/microphone", tag = "listen", operation_id = "feed_microphone",
    params(("name" = String, Path, description = "Endpoint name"), MicrophoneQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; the server sends a Microphone text, then MicrophoneStats texts, and reads binary audio messages"),
        (status = 400, description = "Not a WebSocket request or a bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a browser microphone, another browser feeds it, or a rate or channel count out of range", body = Problem, content_type = "application/problem+json"),
        (status = 426, description = "The connection cannot be upgraded", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Every WebSocket place (64) is taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn feed_microphone(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<MicrophoneQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let rate = query.rate.unwrap_or(48_000);
    let channels = query.channels.unwrap_or(1);
    if !(BROWSER_RATES.0..=BROWSER_RATES.1).contains(&rate) {
        return Err(ApiError::bad_request(format!(
            "rate: {rate} is outside {} to {} Hz",
            BROWSER_RATES.0, BROWSER_RATES.1
        )));
    }
    if channels == 0 || channels as usize > paravox_engine::MAX_CHANNELS {
        return Err(ApiError::bad_request(format!(
            "channels: {channels} is outside 1 to {}",
            paravox_engine::MAX_CHANNELS
        )));
    }
    if query.format == Some(WireFormat::Opus) {
        return Err(ApiError::bad_request(
            "format: a microphone sends s16 or f32 samples",
        ));
    }
    state.control().check_microphone(&name)?;
    let upgrade = upgrade_or_problem(upgrade)?;
    let slot = websocket_slot(&state)?;
    let control = state.control().clone();
    let endpoint = name.clone();
    let feeder = blocking(move || control.feed_microphone(&endpoint, rate, channels)).await?;
    let format = query.format.unwrap_or_default();
    Ok(upgrade
        .max_message_size(MAX_MICROPHONE_MESSAGE)
        .max_frame_size(MAX_MICROPHONE_MESSAGE)
        .on_upgrade(move |socket| async move {
            microphone_session(state, socket, name, feeder, format, channels as usize).await;
            drop(slot);
        }))
}

/// Opus asked of a host without libopus: 503, saying what to install.
fn check_codec(query: &ListenQuery) -> Result<(), ApiError> {
    if query.format == Some(WireFormat::Opus) {
        crate::opus::available().map_err(|why| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("format=opus is not available here: {why}; format=s16 needs nothing"),
            )
        })?;
    }
    Ok(())
}

/// The format a monitor starts in: its endpoint's (for a stream not routed anywhere yet,
/// the default one's); (0, 0) when there is none.
fn target_format(state: &AppState, target: &MonitorTarget) -> (u32, u32) {
    let engine = state.engine();
    let name = match target {
        MonitorTarget::Stream(id) => engine.stream(*id).and_then(|stream| {
            stream
                .route()
                .or_else(|| engine.default_endpoint(stream.direction()))
        }),
        MonitorTarget::Endpoint(name) => Some(name.clone()),
    };
    name.and_then(|name| engine.endpoint(&name))
        .map_or((0, 0), |endpoint| {
            (endpoint.format().rate, endpoint.format().channels)
        })
}

/// Sends what the monitor tapped until the client leaves or the server stops.
async fn monitor_session(
    state: AppState,
    socket: WebSocket,
    mut monitor: Monitor,
    format: WireFormat,
    (rate, channels): (u32, u32),
) {
    let (queue, mut incoming, mut writer) = queued_writer(socket, MONITOR_QUEUE);
    let mut stopping = state.stopping();
    let first = ListenMessage::Listening {
        monitor: monitor.id(),
        target: monitor.target().to_string(),
        rate,
        channels,
        format,
    };
    let mut batcher = Batcher::new(format);
    let mut send_tick = tokio::time::interval(SEND_INTERVAL);
    send_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
    stats_tick.reset();
    let mut open = queue.try_send(text(&first)).is_ok();
    while open {
        tokio::select! {
            _ = send_tick.tick() => {
                for (frames, message) in batcher.drain(&mut monitor) {
                    match queue.try_send(Message::Binary(message.into())) {
                        Ok(()) => monitor.note_sent(frames),
                        // The browser is behind: this audio is lost for it alone.
                        Err(mpsc::error::TrySendError::Full(_)) => monitor.note_dropped(frames),
                        Err(mpsc::error::TrySendError::Closed(_)) => open = false,
                    }
                }
            }
            _ = stats_tick.tick() => {
                let stats = match gone(&state, monitor.target()) {
                    Some(reason) => {
                        open = false;
                        ListenMessage::Ended { reason }
                    }
                    None => ListenMessage::MonitorStats {
                        sent_frames: monitor.sent_frames(),
                        dropped_frames: monitor.dropped_frames(),
                    },
                };
                if let Err(mpsc::error::TrySendError::Closed(_)) = queue.try_send(text(&stats)) {
                    open = false;
                }
            }
            message = incoming.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => open = false,
                Some(Ok(Message::Text(body))) => {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = queue.try_send(text(&answer_ping(body.as_str()))) {
                        open = false;
                    }
                }
                Some(Ok(_)) => {}
            },
            _ = stopping.changed() => open = false,
        }
    }
    drop(queue);
    // Stop the tap first, then give the writer a moment to send what is queued (the
    // `ended` message) and a close frame; a writer stuck on a frozen browser is dropped.
    drop(monitor);
    if tokio::time::timeout(Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Why a monitor's target no longer exists, if it does not.
fn gone(state: &AppState, target: &MonitorTarget) -> Option<String> {
    let engine = state.engine();
    match target {
        MonitorTarget::Stream(id) => engine
            .stream(*id)
            .is_none()
            .then(|| format!("stream {id} is gone (its card was removed)")),
        MonitorTarget::Endpoint(name) => engine
            .endpoint(name)
            .is_none()
            .then(|| format!("endpoint '{name}' is gone")),
    }
}

/// Groups tapped periods into messages of one format and an unbroken timeline.
struct Batcher {
    format: WireFormat,
    samples: Vec<f32>,
    opus: OpusPacker,
}

impl Batcher {
    fn new(format: WireFormat) -> Batcher {
        Batcher {
            format,
            samples: Vec::new(),
            opus: OpusPacker::default(),
        }
    }

    /// Every message the monitor holds now, with its frame count.
    fn drain(&mut self, monitor: &mut Monitor) -> Vec<(u64, Vec<u8>)> {
        if self.format == WireFormat::Opus {
            let mut messages = Vec::new();
            self.samples.clear();
            while let Some(chunk) = monitor.read(&mut self.samples) {
                self.opus.pack(&chunk, &self.samples, &mut messages);
                self.samples.clear();
            }
            return messages;
        }
        let mut messages = Vec::new();
        let mut current: Option<MonitorChunk> = None;
        self.samples.clear();
        loop {
            let start = self.samples.len();
            let Some(chunk) = monitor.read(&mut self.samples) else {
                break;
            };
            match current.as_mut() {
                Some(open)
                    if open.rate == chunk.rate
                        && open.channels == chunk.channels
                        && open.first_frame + u64::from(open.frames) == chunk.first_frame =>
                {
                    open.frames += chunk.frames;
                }
                Some(open) => {
                    let done = *open;
                    messages.push(self.encode(&done, &self.samples[..start]));
                    self.samples.drain(..start);
                    current = Some(chunk);
                }
                None => current = Some(chunk),
            }
        }
        if let Some(done) = current {
            messages.push(self.encode(&done, &self.samples));
        }
        messages
    }

    fn encode(&self, chunk: &MonitorChunk, samples: &[f32]) -> (u64, Vec<u8>) {
        let mut bytes = Vec::with_capacity(HEADER_BYTES + samples.len() * self.format.bytes());
        bytes.extend_from_slice(&chunk.rate.to_le_bytes());
        bytes.extend_from_slice(&(chunk.channels as u16).to_le_bytes());
        bytes.extend_from_slice(&self.format.code().to_le_bytes());
        bytes.extend_from_slice(&chunk.first_frame.to_le_bytes());
        match self.format {
            WireFormat::S16 => {
                for sample in samples {
                    let value = (sample.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                    bytes.extend_from_slice(&value.to_le_bytes());
                }
            }
            WireFormat::F32 | WireFormat::Opus => {
                for sample in samples {
                    bytes.extend_from_slice(&sample.to_le_bytes());
                }
            }
        }
        (u64::from(chunk.frames), bytes)
    }
}

/// Bits per second per channel of the Opus stream.
const OPUS_BITRATE_PER_CHANNEL: i32 = 48_000;

/// Turns tapped periods into Opus packets: the first two channels, at an Opus rate.
#[derive(Default)]
struct OpusPacker {
    encoder: Option<crate::opus::Encoder>,
    resampler: Option<paravox_engine::resample::Resampler>,
    /// The tapped format the encoder was made for.
    source: (u32, u32),
    /// The next tapped frame expected (a different one is a gap).
    expected: u64,
    /// Coded-rate samples not yet in a packet.
    pending: Vec<f32>,
    /// The first pending frame's index in the coded-rate timeline.
    next_frame: u64,
}

impl OpusPacker {
    fn pack(&mut self, chunk: &MonitorChunk, samples: &[f32], out: &mut Vec<(u64, Vec<u8>)>) {
        let coded_rate = if crate::opus::OPUS_RATES.contains(&chunk.rate) {
            chunk.rate
        } else {
            48_000
        };
        let coded_channels = chunk.channels.min(2);
        let scale = |frame: u64| frame * u64::from(coded_rate) / u64::from(chunk.rate);
        if self.source != (chunk.rate, chunk.channels) || self.encoder.is_none() {
            self.source = (chunk.rate, chunk.channels);
            self.encoder = crate::opus::Encoder::new(
                coded_rate,
                coded_channels,
                OPUS_BITRATE_PER_CHANNEL * coded_channels as i32,
            )
            .inspect_err(|error| tracing::warn!(%error, "no Opus encoder for a monitor"))
            .ok();
            self.resampler = (coded_rate != chunk.rate)
                .then(|| {
                    paravox_engine::resample::Resampler::new(
                        chunk.rate,
                        coded_rate,
                        coded_channels as usize,
                    )
                    .ok()
                })
                .flatten();
            self.pending.clear();
            self.next_frame = scale(chunk.first_frame);
        } else if chunk.first_frame != self.expected {
            // Audio was dropped: start the coded timeline again after the gap.
            self.pending.clear();
            self.next_frame = scale(chunk.first_frame);
            if let Some(resampler) = self.resampler.as_mut() {
                resampler.reset();
            }
        }
        self.expected = chunk.first_frame + u64::from(chunk.frames);
        let Some(encoder) = self.encoder.as_mut() else {
            return;
        };
        let channels = chunk.channels as usize;
        let kept: Vec<f32> = samples
            .chunks_exact(channels)
            .flat_map(|frame| frame[..coded_channels as usize].iter().copied())
            .collect();
        match self.resampler.as_mut() {
            None => self.pending.extend_from_slice(&kept),
            Some(resampler) => {
                let coded = coded_channels as usize;
                let frames = kept.len() / coded;
                let mut output =
                    vec![0.0; (frames * coded_rate as usize / chunk.rate as usize + 8) * coded];
                let (mut consumed, mut produced) = (0, 0);
                while consumed < frames {
                    let (took, gave) = resampler
                        .process(&kept[consumed * coded..], &mut output[produced * coded..]);
                    consumed += took;
                    produced += gave;
                    if took == 0 && gave == 0 {
                        output.resize(output.len() + 64 * coded, 0.0);
                    }
                }
                self.pending.extend_from_slice(&output[..produced * coded]);
            }
        }
        let packet_samples = encoder.frame_frames() * coded_channels as usize;
        while self.pending.len() >= packet_samples {
            match encoder.encode(&self.pending[..packet_samples]) {
                Ok(packet) => {
                    let mut bytes = Vec::with_capacity(HEADER_BYTES + packet.len());
                    bytes.extend_from_slice(&coded_rate.to_le_bytes());
                    bytes.extend_from_slice(&(coded_channels as u16).to_le_bytes());
                    bytes.extend_from_slice(&WireFormat::Opus.code().to_le_bytes());
                    bytes.extend_from_slice(&self.next_frame.to_le_bytes());
                    bytes.extend_from_slice(&packet);
                    out.push((encoder.frame_frames() as u64, bytes));
                }
                Err(error) => tracing::warn!(%error, "an Opus packet failed to encode"),
            }
            self.next_frame += encoder.frame_frames() as u64;
            self.pending.drain(..packet_samples);
        }
    }
}

fn text(message: &ListenMessage) -> Message {
    Message::Text(serde_json::to_string(message).unwrap_or_default().into())
}

fn answer_ping(body: &str) -> ListenMessage {
    match serde_json::from_str::<PingMessage>(body) {
        Ok(ping) if ping.ping.is_finite() => ListenMessage::Pong { ping: ping.ping },
        _ => ListenMessage::Error {
            detail: "not understood; send {\"ping\": NUMBER}".into(),
        },
    }
}

/// Feeds the microphone until the client leaves or the server stops.
async fn microphone_session(
    state: AppState,
    socket: WebSocket,
    endpoint: String,
    mut feeder: MicrophoneFeeder,
    format: WireFormat,
    channels: usize,
) {
    let (mut sink, mut incoming) = socket.split();
    let own = feeder.format();
    let name = endpoint.clone();
    let first = ListenMessage::Microphone {
        endpoint,
        rate: own.rate,
        channels: own.channels,
    };
    if sink.send(text(&first)).await.is_err() {
        return;
    }
    let mut stopping = state.stopping();
    let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
    stats_tick.reset();
    let mut samples = Vec::new();
    loop {
        let reply = tokio::select! {
            message = incoming.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(Message::Binary(bytes))) => {
                    decode(&bytes, format, &mut samples);
                    // A trailing partial frame is dropped with the message's remainder.
                    let whole = samples.len() / channels * channels;
                    feeder.push(&samples[..whole]);
                    None
                }
                Some(Ok(Message::Text(body))) => Some(answer_ping(body.as_str())),
                Some(Ok(_)) => None,
            },
            _ = stats_tick.tick() => {
                if let Some(reason) = gone(&state, &MonitorTarget::Endpoint(name.clone())) {
                    let _ = sink.send(text(&ListenMessage::Ended { reason })).await;
                    break;
                }
                let stats = feeder.stats();
                Some(ListenMessage::MicrophoneStats {
                    received_frames: stats.received_frames,
                    dropped_frames: stats.dropped_frames,
                })
            }
            _ = stopping.changed() => break,
        };
        if let Some(reply) = reply
            && sink.send(text(&reply)).await.is_err()
        {
            break;
        }
    }
    drop(feeder);
    let _ = sink.close().await;
}

/// Raw little-endian samples to `f32` (a trailing partial sample is ignored).
fn decode(bytes: &[u8], format: WireFormat, out: &mut Vec<f32>) {
    out.clear();
    match format {
        WireFormat::S16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0),
        ),
        WireFormat::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        // Refused before the upgrade.
        WireFormat::Opus => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_decode_from_both_wire_formats() {
        let mut out = Vec::new();
        decode(&[0x00, 0x40, 0x00, 0xc0, 0x01], WireFormat::S16, &mut out);
        assert_eq!(out, [0.5, -0.5]);
        decode(&0.25f32.to_le_bytes(), WireFormat::F32, &mut out);
        assert_eq!(out, [0.25]);
    }

    #[test]
    fn a_ping_is_answered_and_anything_else_is_an_error() {
        assert_eq!(
            answer_ping(r#"{"ping": 12.5}"#),
            ListenMessage::Pong { ping: 12.5 }
        );
        assert!(matches!(
            answer_ping(r#"{"listen": 1}"#),
            ListenMessage::Error { .. }
        ));
    }
}
