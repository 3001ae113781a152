//! One connected frontend device: its engine card, its streams and its request thread.
//!
//! Connecting maps every stream's ring and event page, binds their event channels,
//! creates the engine card and streams, and starts one thread that sleeps in `epoll` on
//! the device's event-channel descriptor and serves whichever stream's ring was kicked.
//! Each stream also has its position reporter thread (the `position` module). Dropping the
//! connection stops the threads, unmaps everything and removes the card.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use paravox_engine::{Card, Engine, StreamSpec, Transport};
use tracing::{info, warn};

use crate::config::CardConfig;
use crate::error::{Error, Result};
use crate::event::EventRing;
use crate::evtchn::{EventChannels, Port};
use crate::grant::DomId;
use crate::platform::Platform;
use crate::position::{FaultSink, PositionReporter, ReporterParts};
use crate::ring::BackRing;
use crate::route;
use crate::stream::{StreamChannel, StreamParts};
use crate::sys::{Epoll, EventFd};

/// Identifies a frontend device: `(frontend domain, device index)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    /// The frontend's domain id.
    pub frontend_domid: DomId,
    /// The `vsnd` device index.
    pub devid: u32,
}

impl std::fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dom{}/vsnd{}", self.frontend_domid, self.devid)
    }
}

const TOKEN_CHANNELS: u64 = 0;
const TOKEN_STOP: u64 = 1;

/// A connected device.
#[derive(Debug)]
pub(crate) struct Connection {
    key: DeviceKey,
    engine: Arc<Engine>,
    card: Arc<Card>,
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl Connection {
    /// Connects to the rings `config` names.
    pub fn connect(
        key: DeviceKey,
        config: &CardConfig,
        engine: &Arc<Engine>,
        platform: &dyn Platform,
        fault: FaultSink,
    ) -> Result<Connection> {
        let card_name = config
            .short_name
            .clone()
            .unwrap_or_else(|| format!("vsnd-{}-{}", key.frontend_domid, key.devid));
        let card = engine.create_card(
            &card_name,
            Transport::Sndif {
                frontend_domid: key.frontend_domid,
                devid: key.devid,
            },
        )?;
        match Connection::build(key, config, engine, platform, fault, &card) {
            Ok((stop, thread)) => {
                info!(device = %key, card = card.id(), streams = card.streams().len(), "device connected");
                Ok(Connection {
                    key,
                    engine: engine.clone(),
                    card,
                    stop,
                    thread: Some(thread),
                })
            }
            Err(error) => {
                let _ = engine.remove_card(card.id());
                Err(error)
            }
        }
    }

    /// The engine card's id.
    pub fn card_id(&self) -> u32 {
        self.card.id()
    }

    fn build(
        key: DeviceKey,
        config: &CardConfig,
        engine: &Arc<Engine>,
        platform: &dyn Platform,
        fault: FaultSink,
        card: &Card,
    ) -> Result<(Arc<EventFd>, JoinHandle<()>)> {
        let domid = key.frontend_domid;
        let grants = platform.grant_mapper();
        let channels = platform.event_channels()?;
        let mut streams = Vec::new();
        for stream in config.streams() {
            let label = format!("{key}/pcm{}/stream{}", stream.pcm, stream.index);
            let route = route::resolve(
                engine,
                stream.unique_id.as_deref(),
                stream.direction,
                &label,
            );
            let name = match config
                .pcms
                .get(stream.pcm as usize)
                .and_then(|p| p.name.clone())
            {
                Some(pcm) => format!("{pcm} {}", stream.index),
                None => format!("pcm{} stream{}", stream.pcm, stream.index),
            };
            let engine_stream = engine.create_stream(
                card.id(),
                StreamSpec {
                    name,
                    direction: stream.direction,
                    constraints: stream.hw.constraints(),
                    route,
                },
            )?;
            let transport = stream.transport;
            let ring = BackRing::attach(grants.map(domid, &[transport.ring_ref], true)?)?;
            let events = EventRing::attach(grants.map(domid, &[transport.evt_ring_ref], true)?)?;
            let req_port = channels.bind_interdomain(domid, transport.event_channel)?;
            let evt_port = channels.bind_interdomain(domid, transport.evt_event_channel)?;
            let reporter = PositionReporter::spawn(ReporterParts {
                label: label.clone(),
                stream: engine_stream.clone(),
                events,
                channels: channels.clone(),
                port: evt_port,
                fault: fault.clone(),
            })
            .map_err(|e| Error::io("spawning a position reporter", e))?;
            streams.push(StreamChannel::new(StreamParts {
                label,
                config: stream.clone(),
                engine: engine_stream,
                domid,
                grants: grants.clone(),
                ring,
                req_port,
                channels: channels.clone(),
                reporter,
            }));
        }
        let stop = Arc::new(EventFd::new().map_err(|e| Error::io("eventfd", e))?);
        let epoll = Epoll::new().map_err(|e| Error::io("epoll_create", e))?;
        epoll
            .add(channels.fd(), TOKEN_CHANNELS)
            .map_err(|e| Error::io("watching the event channels", e))?;
        epoll
            .add(stop.as_raw_fd(), TOKEN_STOP)
            .map_err(|e| Error::io("watching the stop signal", e))?;
        let worker_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sndif-{}-{}", key.frontend_domid, key.devid))
            .spawn(move || serve(key, streams, &channels, &epoll, &worker_stop, &fault))
            .map_err(|e| Error::io("spawning the device thread", e))?;
        Ok((stop, thread))
    }
}

/// The device's request loop: wait for a kick, serve that stream's ring, repeat.
fn serve(
    key: DeviceKey,
    mut streams: Vec<StreamChannel>,
    channels: &Arc<dyn EventChannels>,
    epoll: &Epoll,
    stop: &EventFd,
    fault: &FaultSink,
) {
    let _span = tracing::info_span!("sndif_device", device = %key).entered();
    let by_port: HashMap<Port, usize> = streams
        .iter()
        .enumerate()
        .map(|(index, stream)| (stream.req_port(), index))
        .collect();
    // Requests may have been queued before we were listening.
    let mut pending: Vec<usize> = (0..streams.len()).collect();
    'serving: loop {
        for index in pending.drain(..) {
            let Some(stream) = streams.get_mut(index) else {
                continue;
            };
            if let Err(error) = stream.service() {
                warn!(device = %key, stream = stream.label, %error, "frontend corrupted its ring; cutting the device off");
                fault(format!("{}: {error}", stream.label));
                break 'serving;
            }
        }
        let tokens = match epoll.wait(-1) {
            Ok(tokens) => tokens,
            Err(error) => {
                fault(format!("epoll_wait: {error}"));
                break;
            }
        };
        if tokens.contains(&TOKEN_STOP) {
            stop.drain();
            break;
        }
        match channels.pending() {
            Ok(ports) => {
                for port in ports {
                    let _ = channels.unmask(port);
                    if let Some(&index) = by_port.get(&port)
                        && !pending.contains(&index)
                    {
                        pending.push(index);
                    }
                }
            }
            Err(error) => {
                fault(format!("reading event channels: {error}"));
                break;
            }
        }
    }
    // Dropping the streams stops their reporters and unmaps their pages.
    drop(streams);
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.stop.signal();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(error) = self.engine.remove_card(self.card.id()) {
            warn!(device = %self.key, %error, "removing the card failed");
        }
        info!(device = %self.key, "device disconnected");
    }
}
