//! `/api/events`: a WebSocket of the engine's lifecycle events and live meter readings.
//!
//! The server sends JSON text messages, each with a `type` tag ([`ServerMessage`]):
//! lifecycle events as the engine publishes them (`stream_state`, `volume`, `route`, …)
//! and, 25 times a second, a `meters` message with the level of every subscribed stream.
//!
//! What a client receives is set by the query (`?streams=3,4&events=false`) and can be
//! changed at any time by sending `{"subscribe": {"streams": [3, 4], "events": true}}`;
//! the server confirms each with a `subscribed` message. By default a client gets every
//! lifecycle event and no meters.
//!
//! Each client has a bounded queue ([`CLIENT_QUEUE`] messages). A client that lets it
//! fill up is disconnected; nothing waits for a client, least of all the engine, whose
//! event bus never blocks its publishers.

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, Stream, StreamExt};
use paravox_engine::Event;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, watch};
use utoipa::{IntoParams, ToSchema};

use crate::app::{AppState, WebSocketSlot};
use crate::error::{ApiError, Problem};
use crate::extract::ApiQuery;
use crate::meters::MeterFrame;
use crate::model::DirectionName;
use crate::views::StreamStateName;

/// Messages one client may have waiting before it is disconnected (several seconds of
/// meters and events).
pub const CLIENT_QUEUE: usize = 256;
/// Streams one client may subscribe to.
pub const MAX_SUBSCRIBED_STREAMS: usize = 1024;
/// The largest message a client may send (a subscription to every stream it may name
/// is about 11 KiB); a larger one ends the session.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// WebSocket sessions served at once; one more is refused with 503 until one closes.
pub const MAX_WEBSOCKET_CLIENTS: usize = 64;

/// One stream's level in a `meters` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamMeter {
    /// Stream id.
    pub stream: u32,
    /// Highest sample of the last 40 ms, dBFS (−120 for silence).
    pub peak_dbfs: f32,
    /// RMS of the last endpoint cycle, dBFS.
    pub rms_dbfs: f32,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// A card was created.
    CardAdded {
        /// Card id.
        card: u32,
        /// Card name.
        name: String,
    },
    /// A card was removed.
    CardRemoved {
        /// Card id.
        card: u32,
    },
    /// A stream was created.
    StreamAdded {
        /// Its card.
        card: u32,
        /// Stream id.
        stream: u32,
        /// Playback or capture.
        direction: DirectionName,
    },
    /// A stream was removed with its card.
    StreamRemoved {
        /// Stream id.
        stream: u32,
    },
    /// A stream changed state (`to: running` is a start).
    StreamState {
        /// Stream id.
        stream: u32,
        /// The state it left.
        from: StreamStateName,
        /// The state it is in.
        to: StreamStateName,
    },
    /// A stream had a gap in the middle (an xrun; a natural end is none).
    Xrun {
        /// Stream id.
        stream: u32,
        /// Its xruns so far.
        total: u64,
    },
    /// A stream's volume or mute changed.
    Volume {
        /// Stream id.
        stream: u32,
        /// Volume of its first channel, dB.
        volume_db: f32,
        /// Mute.
        muted: bool,
    },
    /// A stream was routed to another endpoint.
    Route {
        /// Stream id.
        stream: u32,
        /// The endpoint's name.
        endpoint: String,
    },
    /// An endpoint lost its device.
    DeviceLost {
        /// Endpoint name.
        endpoint: String,
        /// What the device said.
        reason: String,
    },
    /// An endpoint's device is back.
    DeviceRecovered {
        /// Endpoint name.
        endpoint: String,
    },
    /// A stream's plugin chain was rebuilt and swapped in (a chain change, or a new
    /// version of a plugin it uses); `GET /api/streams/{id}` shows the new chain.
    ChainSwapped {
        /// Stream id.
        stream: u32,
    },
    /// A plugin was disabled (or refused) and its native stage serves instead.
    PluginFault {
        /// The stream whose chain held it (`null` for an endpoint's mixer).
        stream: Option<u32>,
        /// The endpoint it ran on.
        endpoint: Option<String>,
        /// The plugin's name.
        plugin: String,
        /// The stage it stood in for.
        stage: String,
        /// What went wrong.
        reason: String,
    },
    /// A guest asked for more than its card's budget allows and was refused.
    BudgetExceeded {
        /// The card.
        card: u32,
        /// The stream that asked (`null` when the card itself grew).
        stream: Option<u32>,
        /// The budget field it went past (`stream_buffer_bytes`, …).
        limit: String,
        /// What the request would have made it.
        asked: u64,
        /// What the budget allows.
        allowed: u64,
    },
    /// A listener started monitoring a stream or an endpoint (`/listen`).
    MonitorStarted {
        /// The monitor's id.
        monitor: u32,
        /// The stream it listens to.
        stream: Option<u32>,
        /// The endpoint it listens to.
        endpoint: Option<String>,
    },
    /// A monitor stopped.
    MonitorStopped {
        /// The monitor's id.
        monitor: u32,
        /// The stream it listened to.
        stream: Option<u32>,
        /// The endpoint it listened to.
        endpoint: Option<String>,
    },
    /// A browser started feeding a microphone endpoint (`/microphone`).
    MicrophoneAttached {
        /// The endpoint.
        endpoint: String,
    },
    /// The browser feeding a microphone endpoint left: it delivers silence.
    MicrophoneDetached {
        /// The endpoint.
        endpoint: String,
    },
    /// Levels of the subscribed streams, 25 times a second.
    Meters {
        /// One entry per subscribed stream that exists.
        streams: Vec<StreamMeter>,
    },
    /// The subscription now in force.
    Subscribed {
        /// Streams whose meters are sent.
        streams: Vec<u32>,
        /// Whether lifecycle events are sent.
        events: bool,
    },
    /// A client message was not understood; the connection stays open.
    Error {
        /// What was wrong.
        detail: String,
    },
}

impl From<&Event> for ServerMessage {
    fn from(event: &Event) -> ServerMessage {
        match event.clone() {
            Event::CardAdded { card, name } => ServerMessage::CardAdded { card, name },
            Event::CardRemoved { card } => ServerMessage::CardRemoved { card },
            Event::StreamAdded {
                card,
                stream,
                direction,
            } => ServerMessage::StreamAdded {
                card,
                stream,
                direction: direction.into(),
            },
            Event::StreamRemoved { stream } => ServerMessage::StreamRemoved { stream },
            Event::StreamState { stream, from, to } => ServerMessage::StreamState {
                stream,
                from: from.into(),
                to: to.into(),
            },
            Event::Xrun { stream, total } => ServerMessage::Xrun { stream, total },
            Event::Volume {
                stream,
                volume_db,
                muted,
            } => ServerMessage::Volume {
                stream,
                volume_db: if volume_db.is_finite() {
                    volume_db
                } else {
                    -120.0
                },
                muted,
            },
            Event::Route { stream, endpoint } => ServerMessage::Route { stream, endpoint },
            Event::DeviceLost { endpoint, reason } => {
                ServerMessage::DeviceLost { endpoint, reason }
            }
            Event::DeviceRecovered { endpoint } => ServerMessage::DeviceRecovered { endpoint },
            Event::ChainSwapped { stream } => ServerMessage::ChainSwapped { stream },
            Event::PluginFault {
                stream,
                endpoint,
                plugin,
                stage,
                reason,
            } => ServerMessage::PluginFault {
                stream,
                endpoint,
                plugin,
                stage,
                reason,
            },
            Event::BudgetExceeded {
                card,
                stream,
                limit,
                asked,
                allowed,
            } => ServerMessage::BudgetExceeded {
                card,
                stream,
                limit,
                asked,
                allowed,
            },
            Event::MonitorStarted {
                monitor,
                stream,
                endpoint,
            } => ServerMessage::MonitorStarted {
                monitor,
                stream,
                endpoint,
            },
            Event::MonitorStopped {
                monitor,
                stream,
                endpoint,
            } => ServerMessage::MonitorStopped {
                monitor,
                stream,
                endpoint,
            },
            Event::MicrophoneAttached { endpoint } => {
                ServerMessage::MicrophoneAttached { endpoint }
            }
            Event::MicrophoneDetached { endpoint } => {
                ServerMessage::MicrophoneDetached { endpoint }
            }
        }
    }
}

/// What a client receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Streams whose meters to send (default none).
    #[serde(default)]
    pub streams: Vec<u32>,
    /// Send lifecycle events (default true).
    #[serde(default = "yes")]
    pub events: bool,
}

fn yes() -> bool {
    true
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            streams: Vec::new(),
            events: true,
        }
    }
}

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientMessage {
    /// Replace the subscription.
    pub subscribe: Subscription,
}

/// The subscription a client starts with.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Comma-separated ids of the streams whose meters to send (default none).
    #[param(pattern = "^[0-9]{1,10}(,[0-9]{1,10})*$")]
    pub streams: Option<String>,
    /// Send lifecycle events (default true).
    pub events: Option<bool>,
    /// The token, for browsers, which cannot set headers on a WebSocket.
    pub token: Option<String>,
}

impl EventsQuery {
    fn subscription(&self) -> Result<Subscription, ApiError> {
        let streams = match self.streams.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|id| {
                    id.trim().parse::<u32>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "streams: '{id}' is not a stream id (send comma-separated ids, e.g. streams=3,4)"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        check_size(&streams).map_err(ApiError::bad_request)?;
        Ok(Subscription {
            streams,
            events: self.events.unwrap_or(true),
        })
    }
}

fn check_size(streams: &[u32]) -> Result<(), String> {
    if streams.len() > MAX_SUBSCRIBED_STREAMS {
        Err(format!(
            "at most {MAX_SUBSCRIBED_STREAMS} streams per subscription"
        ))
    } else {
        Ok(())
    }
}

/// Opens the event WebSocket. Authenticate with the `Authorization` header or, from a
/// browser, `?token=`.
#[utoipa::path(get, path = "/api/events", tag = "events", operation_id = "events", params(EventsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; the server then sends ServerMessage JSON texts and reads ClientMessage JSON texts"),
        (status = 400, description = "Not a WebSocket request, or a bad query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 426, description = "The connection cannot be upgraded", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many WebSocket clients (MAX_WEBSOCKET_CLIENTS, 64) are connected", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn subscribe(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let subscription = query.subscription()?;
    let upgrade = upgrade_or_problem(upgrade)?;
    let slot = websocket_slot(&state)?;
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            session(state, socket, subscription).await;
            drop(slot);
        }))
}

/// The upgrade, or the problem a request that is not a WebSocket handshake gets.
pub(crate) fn upgrade_or_problem(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    upgrade.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            format!("{}: connect with a WebSocket client", rejection.body_text()),
        )
    })
}

/// A place for one more WebSocket session, or 503 when [`MAX_WEBSOCKET_CLIENTS`] are
/// open.
pub(crate) fn websocket_slot(state: &AppState) -> Result<WebSocketSlot, ApiError> {
    state
        .websocket_slot(MAX_WEBSOCKET_CLIENTS)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many WebSocket clients: at most {MAX_WEBSOCKET_CLIENTS} at once; close one and try again"
                ),
            )
        })
}

/// Splits a session's socket: a writer task sends what is queued (at most `depth`
/// messages wait), then a close frame once the queue is dropped.
pub(crate) fn queued_writer(
    socket: WebSocket,
    depth: usize,
) -> (
    mpsc::Sender<Message>,
    futures_util::stream::SplitStream<WebSocket>,
    tokio::task::JoinHandle<()>,
) {
    let (mut sink, incoming) = socket.split();
    let (queue, mut outgoing) = mpsc::channel::<Message>(depth);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    (queue, incoming, writer)
}

/// What a session listens to.
#[derive(Debug)]
pub struct Feeds {
    /// The engine's event bus.
    pub events: broadcast::Receiver<Event>,
    /// The meter sampler.
    pub meters: watch::Receiver<Arc<MeterFrame>>,
    /// The server stopping.
    pub stopping: watch::Receiver<bool>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed the connection.
    ClientClosed,
    /// The client did not keep up and was dropped.
    TooSlow,
    /// The server is stopping.
    Stopping,
    /// The engine's bus or the meter sampler is gone.
    EngineGone,
}

async fn session(state: AppState, socket: WebSocket, subscription: Subscription) {
    let (queue, incoming, writer) = queued_writer(socket, CLIENT_QUEUE);
    // The sampler runs while this client is connected.
    let (meters, _watching) = state.watch_meters();
    let feeds = Feeds {
        events: state.engine().subscribe(),
        meters,
        stopping: state.stopping(),
    };
    tracing::debug!(?subscription, "WebSocket client connected");
    let ending = pump(feeds, incoming, queue, subscription).await;
    if ending == Ending::TooSlow {
        tracing::warn!("dropping a WebSocket client that does not keep up with its messages");
        writer.abort();
    } else {
        // The queue is closed: the writer sends what is left, then a close frame.
        let _ = writer.await;
    }
    tracing::debug!(?ending, "WebSocket client gone");
}

/// Moves events and meters into the client's queue and reads its subscriptions, until
/// the client leaves, falls behind, or the server stops.
pub async fn pump<I>(
    mut feeds: Feeds,
    mut incoming: I,
    queue: mpsc::Sender<Message>,
    mut subscription: Subscription,
) -> Ending
where
    I: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    if *feeds.stopping.borrow() {
        return Ending::Stopping;
    }
    if let Err(ending) = offer(&queue, &subscribed(&subscription)) {
        return ending;
    }
    loop {
        let step = tokio::select! {
            event = feeds.events.recv() => match event {
                Ok(event) if subscription.events => offer(&queue, &ServerMessage::from(&event)),
                Ok(_) => Ok(()),
                Err(broadcast::error::RecvError::Lagged(_)) => Err(Ending::TooSlow),
                Err(broadcast::error::RecvError::Closed) => Err(Ending::EngineGone),
            },
            changed = feeds.meters.changed() => match changed {
                Ok(()) => {
                    let frame = feeds.meters.borrow_and_update().clone();
                    match meters_message(&frame, &subscription) {
                        Some(message) => offer(&queue, &message),
                        None => Ok(()),
                    }
                }
                Err(_) => Err(Ending::EngineGone),
            },
            message = incoming.next() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Err(Ending::ClientClosed),
                Some(Ok(Message::Text(text))) => {
                    let reply = match parse_client_message(text.as_str()) {
                        Ok(next) => {
                            subscription = next;
                            subscribed(&subscription)
                        }
                        Err(detail) => ServerMessage::Error { detail },
                    };
                    offer(&queue, &reply)
                }
                // Pings are answered by the WebSocket layer; binary messages mean nothing.
                Some(Ok(_)) => Ok(()),
            },
            _ = feeds.stopping.changed() => Err(Ending::Stopping),
        };
        if let Err(ending) = step {
            return ending;
        }
    }
}

fn subscribed(subscription: &Subscription) -> ServerMessage {
    ServerMessage::Subscribed {
        streams: subscription.streams.clone(),
        events: subscription.events,
    }
}

fn parse_client_message(text: &str) -> Result<Subscription, String> {
    let message: ClientMessage = serde_json::from_str(text).map_err(|error| {
        format!(
            "not understood ({error}); send {{\"subscribe\": {{\"streams\": [ids], \"events\": true}}}}"
        )
    })?;
    check_size(&message.subscribe.streams)?;
    Ok(message.subscribe)
}

fn meters_message(frame: &MeterFrame, subscription: &Subscription) -> Option<ServerMessage> {
    let streams: Vec<StreamMeter> = subscription
        .streams
        .iter()
        .filter_map(|id| {
            frame.streams.get(id).map(|levels| StreamMeter {
                stream: *id,
                peak_dbfs: levels.peak_dbfs,
                rms_dbfs: levels.rms_dbfs,
            })
        })
        .collect();
    (!streams.is_empty()).then_some(ServerMessage::Meters { streams })
}

/// Queues a message without waiting: a full queue means the client is too slow.
fn offer(queue: &mpsc::Sender<Message>, message: &ServerMessage) -> Result<(), Ending> {
    let Ok(text) = serde_json::to_string(message) else {
        return Ok(());
    };
    queue
        .try_send(Message::Text(text.into()))
        .map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Ending::TooSlow,
            mpsc::error::TrySendError::Closed(_) => Ending::ClientClosed,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meters::MeterLevels;

    fn feeds() -> (
        broadcast::Sender<Event>,
        watch::Sender<Arc<MeterFrame>>,
        watch::Sender<bool>,
        Feeds,
    ) {
        let (events, events_rx) = broadcast::channel(16);
        let (meters, meters_rx) = watch::channel(Arc::new(MeterFrame::default()));
        let (stopping, stopping_rx) = watch::channel(false);
        (
            events,
            meters,
            stopping,
            Feeds {
                events: events_rx,
                meters: meters_rx,
                stopping: stopping_rx,
            },
        )
    }

    fn text(message: Option<Message>) -> serde_json::Value {
        match message {
            Some(Message::Text(text)) => serde_json::from_str(text.as_str()).expect("json"),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    #[test]
    fn events_serialize_with_a_type_tag() {
        let message = ServerMessage::from(&Event::StreamState {
            stream: 7,
            from: paravox_engine::StreamState::Prepared,
            to: paravox_engine::StreamState::Running,
        });
        assert_eq!(
            serde_json::to_value(&message).expect("json"),
            serde_json::json!({"type": "stream_state", "stream": 7, "from": "prepared", "to": "running"})
        );
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_dropped_without_blocking_the_bus() {
        let (events, _meters, _stopping, feeds) = feeds();
        let (queue, _outgoing) = mpsc::channel(4);
        let pump = tokio::spawn(pump(
            feeds,
            futures_util::stream::pending(),
            queue,
            Subscription::default(),
        ));
        for total in 0..8 {
            // Publishing never waits, whatever the client does.
            let _ = events.send(Event::Xrun { stream: 1, total });
        }
        assert_eq!(pump.await.expect("pump"), Ending::TooSlow);
    }

    #[tokio::test]
    async fn meters_go_only_to_subscribers_and_subscriptions_change_live() {
        let (_events, meters, stopping, feeds) = feeds();
        let (queue, mut outgoing) = mpsc::channel(16);
        let (client, client_rx) = mpsc::unbounded_channel::<Result<Message, axum::Error>>();
        let incoming = Box::pin(futures_util::stream::unfold(client_rx, |mut rx| async {
            rx.recv().await.map(|message| (message, rx))
        }));
        let pump = tokio::spawn(pump(feeds, incoming, queue, Subscription::default()));
        assert_eq!(text(outgoing.recv().await)["type"], "subscribed");
        client
            .send(Ok(Message::Text(
                r#"{"subscribe": {"streams": [5], "events": false}}"#.into(),
            )))
            .expect("send");
        let reply = text(outgoing.recv().await);
        assert_eq!(reply["streams"], serde_json::json!([5]));
        assert_eq!(reply["events"], false);
        let mut frame = MeterFrame::default();
        frame.streams.insert(
            5,
            MeterLevels {
                peak_dbfs: -3.0,
                rms_dbfs: -6.0,
            },
        );
        frame.streams.insert(6, MeterLevels::SILENT);
        meters.send_replace(Arc::new(frame));
        let message = text(outgoing.recv().await);
        assert_eq!(message["type"], "meters");
        assert_eq!(
            message["streams"],
            serde_json::json!([{"stream": 5, "peak_dbfs": -3.0, "rms_dbfs": -6.0}])
        );
        client
            .send(Ok(Message::Text("{\"subscribe\": 1}".into())))
            .expect("send");
        assert_eq!(text(outgoing.recv().await)["type"], "error");
        stopping.send_replace(true);
        assert_eq!(pump.await.expect("pump"), Ending::Stopping);
    }
}
