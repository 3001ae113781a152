//! One connected frontend device: its engine card, its streams and its event loop.
//!
//! Connecting maps every stream's ring and event page, binds their event channels,
//! creates the engine card and streams, and starts one thread: the device's event loop.
//! It sleeps in `epoll` on the device's event-channel descriptor (the frontend's kicks)
//! and on every stream's position waker (the engine's "the position passed N"), and on
//! each wake-up steps the streams concerned: answers their requests, finishes parked
//! WRITEs and READs whose room or data has come, posts due `CUR_POS` events, and arms the
//! wakers again. Nothing in it sleeps on a timer but a parked request's deadline. Dropping
//! the connection stops the loop, unmaps everything and removes the card.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use paravox_engine::{Card, Engine, StreamSpec, Transport};
use tracing::{info, warn};

use crate::config::CardConfig;
use crate::error::{Error, Result};
use crate::event::EventRing;
use crate::evtchn::{EventChannels, Port};
use crate::grant::DomId;
use crate::guest_log::guest_warn;
use crate::platform::Platform;
use crate::position::{FaultSink, Reporter};
use crate::ring::BackRing;
use crate::route;
use crate::stream::{StreamChannel, StreamParts, Wake};
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
/// Stream `i`'s position waker reports `TOKEN_STREAMS + i`.
const TOKEN_STREAMS: u64 = 2;

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
        let card_name = card_name(key, config.short_name.as_deref());
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
            let reporter = Reporter::new(label.clone(), events, channels.clone(), evt_port);
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
        for (index, stream) in streams.iter().enumerate() {
            let waker = stream.engine().shared().waker().event().as_raw_fd();
            epoll
                .add(waker, TOKEN_STREAMS + index as u64)
                .map_err(|e| Error::io("watching a stream's position", e))?;
        }
        let worker_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sndif-{}-{}", key.frontend_domid, key.devid))
            .spawn(move || {
                crate::guest_log::for_domain(key.frontend_domid, || {
                    serve(key, streams, &channels, &epoll, &worker_stop, &fault);
                });
            })
            .map_err(|e| Error::io("spawning the device thread", e))?;
        Ok((stop, thread))
    }
}

/// The engine card's name for device `key`: `dom<domid>-<short-name>`, or
/// `dom<domid>-vsnd<devid>` without one. The guest chooses `short-name`, so it is kept
/// inside its domain's namespace (no guest can take the name of another domain's card, or
/// of a card made over the API or in the configuration, which may not use the `domN-`
/// form) and reduced to the characters card names allow, at most 64 in all.
pub fn card_name(key: DeviceKey, short_name: Option<&str>) -> String {
    let prefix = format!("dom{}-", key.frontend_domid);
    let own: String = match short_name {
        Some(name) if !name.is_empty() => name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        _ => format!("vsnd{}", key.devid),
    };
    let room = 64usize.saturating_sub(prefix.len());
    prefix + &own.chars().take(room).collect::<String>()
}

/// The device's event loop: step every stream something happened to, arm what each
/// waits for, sleep until a kick, a position or a deadline, repeat.
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
    let mut due = vec![true; streams.len()];
    let mut wakes = vec![Wake::default(); streams.len()];
    'serving: loop {
        let mut again = false;
        for (index, stream) in streams.iter_mut().enumerate() {
            if !std::mem::take(&mut due[index]) {
                continue;
            }
            let wake = match stream.step() {
                Ok(wake) => wake,
                Err(error) => {
                    guest_warn!(device = %key, stream = stream.label, %error, "frontend corrupted its ring or event page; cutting the device off");
                    fault(format!("{}: {error}", stream.label));
                    break 'serving;
                }
            };
            wakes[index] = wake;
            if arm(stream, wake.position) {
                // Reached while we looked: step it again before sleeping.
                due[index] = true;
                again = true;
            }
        }
        let now = Instant::now();
        let timeout = if again {
            0
        } else {
            wakes
                .iter()
                .filter_map(|wake| wake.deadline)
                .min()
                .map_or(-1, |deadline| {
                    let left = deadline.saturating_duration_since(now);
                    // Round up: waking a little late is fine, early would spin.
                    left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
                })
        };
        let tokens = match epoll.wait(timeout) {
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
        for token in &tokens {
            if let Some(index) = token.checked_sub(TOKEN_STREAMS).map(|i| i as usize)
                && let Some(stream) = streams.get(index)
            {
                stream.engine().shared().waker().event().drain();
                due[index] = true;
            }
        }
        if tokens.contains(&TOKEN_CHANNELS) {
            match channels.pending() {
                Ok(ports) => {
                    for port in ports {
                        let _ = channels.unmask(port);
                        if let Some(&index) = by_port.get(&port) {
                            due[index] = true;
                        }
                    }
                }
                Err(error) => {
                    fault(format!("reading event channels: {error}"));
                    break;
                }
            }
        }
        let now = Instant::now();
        for (index, wake) in wakes.iter().enumerate() {
            if wake.deadline.is_some_and(|deadline| deadline <= now) {
                due[index] = true;
            }
        }
    }
    for stream in &streams {
        stream.engine().shared().waker().disarm();
    }
    // Dropping the streams releases their engine streams and unmaps their pages.
    drop(streams);
}

/// Arms `stream`'s position waker for `position` (or disarms it); returns whether the
/// position is there already.
fn arm(stream: &StreamChannel, position: Option<u64>) -> bool {
    let engine = stream.engine();
    let waker = engine.shared().waker();
    match position {
        Some(position) => {
            waker.arm(position);
            // It may have moved before the waker was armed.
            if engine.position_bytes() >= position && engine.shared().is_running() {
                waker.disarm();
                return true;
            }
            false
        }
        None => {
            waker.disarm();
            false
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_names_stay_in_their_domain_and_in_the_name_charset() {
        let key = DeviceKey {
            frontend_domid: 7,
            devid: 1,
        };
        assert_eq!(card_name(key, Some("Guest")), "dom7-Guest");
        assert_eq!(card_name(key, None), "dom7-vsnd1");
        assert_eq!(card_name(key, Some("")), "dom7-vsnd1");
        assert_eq!(card_name(key, Some("my card/é")), "dom7-my_card__");
        let long = card_name(key, Some(&"x".repeat(200)));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("dom7-"));
    }
}
