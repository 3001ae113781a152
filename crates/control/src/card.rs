//! virtio-snd cards from a [`CardRequest`], whoever asks (a `[[virtio]]` of the
//! configuration file, `--virtio-socket`, `POST /api/cards`): the topology checked against
//! the endpoints streams may route to, the socket path checked so paravox never replaces
//! a file that is not a stale socket, then the card served. Blocking: call it off an
//! async runtime.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paravox_engine::{Direction, Engine, Transport};
use paravox_pcm::{Format, FormatSet, Interval, RateSet};
use paravox_virtio_snd::topology::{self, virtio_convertible_formats};
use paravox_virtio_snd::{CardTopology, StreamTopology, VirtioCard};

use crate::error::{ControlError, Result};
use crate::model::{CardRequest, StreamTopologyRequest, valid_name};
use crate::paths;

/// Listening sockets the service manager handed over, by the path they are bound to
/// (see `Options::inherited_sockets`).
pub type Inherited = std::collections::BTreeMap<PathBuf, UnixListener>;

/// Which endpoints streams may route to: the direction of the endpoint called `name`.
pub type EndpointLookup<'a> = &'a dyn Fn(&str) -> Option<Direction>;

/// Routes may name any endpoint the engine has.
pub fn engine_endpoints(engine: &Engine) -> impl Fn(&str) -> Option<Direction> + '_ {
    |name| engine.endpoint(name).map(|endpoint| endpoint.direction())
}

/// The longest socket path a Unix socket address holds (`sun_path` less its NUL).
pub const SOCKET_PATH_MAX: usize = 107;
/// The most entries a stream's `formats` may list (the API schema says so too).
pub const MAX_FORMATS: usize = 64;
/// The most entries a stream's `rates` may list: virtio-snd has 14 rate codes.
pub const MAX_RATES: usize = 14;

/// The card's topology, checked against the endpoints `endpoints` knows; its budget is
/// the request's laid over `default_budget`. An error about one stream starts with
/// `streams[INDEX]: ` and names its field.
pub fn topology(
    endpoints: EndpointLookup<'_>,
    request: &CardRequest,
    default_budget: paravox_engine::Budget,
) -> Result<CardTopology> {
    if request.streams.len() > topology::MAX_STREAMS {
        return Err(ControlError::invalid(format!(
            "a card has at most {} streams, not {}",
            topology::MAX_STREAMS,
            request.streams.len()
        )));
    }
    let streams = if request.streams.is_empty() {
        CardTopology::quick_start().streams
    } else {
        request
            .streams
            .iter()
            .enumerate()
            .map(|(index, stream)| {
                stream_topology(endpoints, index, stream)
                    .map_err(|error| error.context(format_args!("streams[{index}]")))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let topology = CardTopology {
        streams,
        controls: request
            .controls
            .unwrap_or(paravox_virtio_snd::CONTROLS_BY_DEFAULT),
        budget: request
            .budget
            .as_ref()
            .map(|budget| crate::budget::resolve(budget, default_budget))
            .transpose()
            .map_err(|error| error.context("budget"))?,
    };
    topology
        .validate()
        .map_err(|error| ControlError::invalid(error.to_string()))?;
    Ok(topology)
}

/// One stream's topology; errors name the field (see [`ControlError::field`]).
pub fn stream_topology(
    endpoints: EndpointLookup<'_>,
    index: usize,
    request: &StreamTopologyRequest,
) -> Result<StreamTopology> {
    let direction = Direction::from(request.direction);
    let name = match &request.name {
        Some(name) if !valid_name(name) => {
            return Err(ControlError::invalid(format!(
                "name '{name}' must be 1 to 64 letters, digits, '-', '_' or '.'"
            ))
            .at("name"));
        }
        Some(name) => name.clone(),
        None => format!("stream{index}"),
    };
    let mut topology = StreamTopology::new(&name, direction);
    if let Some(route) = &request.route {
        check_route(endpoints, route, direction)?;
        topology.route = Some(route.clone());
    }
    if let Some(formats) = &request.formats {
        if formats.is_empty() || formats.len() > MAX_FORMATS {
            return Err(ControlError::invalid(format!(
                "formats lists 1 to {MAX_FORMATS} formats, not {}",
                formats.len()
            ))
            .at("formats"));
        }
        let mut set = FormatSet::EMPTY;
        for name in formats {
            let format = Format::parse(name)
                .filter(|format| virtio_convertible_formats().contains(*format))
                .ok_or_else(|| {
                    ControlError::invalid(format!(
                        "format '{name}' is not one virtio-snd can carry and paravox can convert (e.g. s16_le, s32_le, float_le)"
                    ))
                    .at("formats")
                })?;
            set.insert(format);
        }
        topology.formats = set;
    }
    if let Some(rates) = &request.rates {
        if rates.is_empty() || rates.len() > MAX_RATES {
            return Err(ControlError::invalid(format!(
                "rates lists 1 to {MAX_RATES} rates (each virtio-snd rate once at most), not {}",
                rates.len()
            ))
            .at("rates"));
        }
        topology.rates = RateSet::new(rates)
            .map_err(|error| ControlError::invalid(error.to_string()).at("rates"))?;
    }
    if let Some(channels) = &request.channels {
        match channels.as_slice() {
            [min, max] if (1..=18).contains(min) && (*min..=18).contains(max) => {
                topology.channels = Interval {
                    min: *min,
                    max: *max,
                };
            }
            _ => {
                return Err(ControlError::invalid(
                    "channels must be [min, max] with 1 <= min <= max <= 18",
                )
                .at("channels"));
            }
        }
    }
    if let Some(xruns) = request.xrun_events {
        topology.xrun_events = xruns;
    }
    Ok(topology)
}

/// Checks that `route` names an endpoint of `direction`.
pub fn check_route(endpoints: EndpointLookup<'_>, route: &str, direction: Direction) -> Result<()> {
    match endpoints(route) {
        None => Err(ControlError::invalid(format!(
            "route '{route}' names no endpoint (GET /api/endpoints lists them)"
        ))
        .at("route")),
        Some(other) if other != direction => Err(ControlError::invalid(format!(
            "route '{route}' is a {other} endpoint; this stream needs a {direction} one"
        ))
        .at("route")),
        Some(_) => Ok(()),
    }
}

/// Resolves and checks the socket path: its directory exists, nothing but a stale socket
/// is there, no other card uses it, and a socket can be created there.
pub fn check_socket(
    engine: &Engine,
    given: &str,
    path_root: Option<&Path>,
    inherited: &Inherited,
) -> Result<PathBuf> {
    let path = paths::resolve(Path::new(given), path_root, "the socket path")?;
    let text = path.display().to_string();
    if text.len() > SOCKET_PATH_MAX {
        return Err(ControlError::invalid(format!(
            "the socket path is {} bytes long; a Unix socket path holds at most {SOCKET_PATH_MAX}",
            text.len()
        )));
    }
    let in_use = engine.cards().into_iter().find(|card| {
        matches!(card.transport(), Transport::Virtio { socket } if Path::new(socket) == path)
    });
    if let Some(card) = in_use {
        return Err(ControlError::conflict(format!(
            "card '{}' (id {}) already listens on {text}",
            card.name(),
            card.id()
        )));
    }
    if inherited.contains_key(&path) {
        // The service manager's socket, listening for us: nothing to check or bind.
        return Ok(path);
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(ControlError::invalid(format!(
            "the socket's directory {} does not exist; create it first",
            parent.display()
        )));
    }
    match std::fs::symlink_metadata(&path) {
        Ok(metadata) if !metadata.file_type().is_socket() => Err(ControlError::conflict(format!(
            "{text} exists and is not a socket; paravox will not replace it"
        ))),
        Ok(_) if UnixStream::connect(&path).is_ok() => Err(ControlError::conflict(format!(
            "something is already listening on {text}"
        ))),
        // A stale socket, replaced when the card starts listening.
        Ok(_) => Ok(path),
        Err(_) => {
            // Try it now: the card's server thread could only log the failure.
            UnixListener::bind(&path).map_err(|error| {
                ControlError::invalid(format!("cannot create a socket at {text}: {error}"))
            })?;
            let _ = std::fs::remove_file(&path);
            Ok(path)
        }
    }
}

/// How long a new card may take to bind its socket.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(2);

fn wait_for_socket(path: &Path) -> bool {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    while Instant::now() < deadline {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// Whether `name` has the `dom<N>-` form reserved for Xen guests' cards (see
/// `paravox_sndif`), which no card made here may take.
fn in_guest_namespace(name: &str) -> bool {
    name.strip_prefix("dom")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(domid, _)| !domid.is_empty() && domid.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks a card's name.
pub fn check_name(name: &str) -> Result<()> {
    if in_guest_namespace(name) {
        return Err(ControlError::invalid(format!(
            "card name '{name}' has the form domN-…, which names Xen guests' cards; choose another"
        ))
        .at("name"));
    }
    if valid_name(name) {
        Ok(())
    } else {
        Err(ControlError::invalid(format!(
            "card name '{name}' must be 1 to 64 letters, digits, '-', '_' or '.'"
        ))
        .at("name"))
    }
}

/// Creates and serves the card. Returns it and the request as it should be saved (the
/// socket path resolved).
pub fn spawn(
    engine: &Arc<Engine>,
    request: &CardRequest,
    path_root: Option<&Path>,
    inherited: &Inherited,
) -> Result<(VirtioCard, CardRequest)> {
    check_name(&request.name)?;
    if let Some(card) = engine.cards().iter().find(|c| c.name() == request.name) {
        return Err(ControlError::conflict(format!(
            "a card named '{}' exists already (id {})",
            request.name,
            card.id()
        )));
    }
    let topology = topology(&engine_endpoints(engine), request, engine.default_budget())?;
    let socket = check_socket(engine, &request.socket, path_root, inherited)?;
    let listener = match inherited.get(&socket).map(UnixListener::try_clone) {
        Some(Ok(listener)) => Some(listener),
        Some(Err(error)) => {
            return Err(ControlError::internal(format!(
                "cannot share the socket {} the service manager passed: {error}",
                socket.display()
            )));
        }
        None => None,
    };
    let card = VirtioCard::spawn_on(engine.clone(), &request.name, &socket, topology, listener)
        .map_err(|error| match error {
            paravox_virtio_snd::Error::Topology(what) => ControlError::invalid(what),
            paravox_virtio_snd::Error::Engine(error) => ControlError::from(error),
            other => ControlError::internal(format!("cannot serve the card: {other}")),
        })?;
    // The card's thread binds the socket; answer once a VMM can connect.
    if !wait_for_socket(&socket) {
        let id = card.card();
        drop(card);
        let _ = engine.remove_card(id);
        return Err(ControlError::internal(format!(
            "the card could not listen on {} (the daemon's log says why)",
            socket.display()
        )));
    }
    tracing::info!(card = card.card(), name = request.name, socket = %socket.display(), "virtio-snd card serving");
    Ok((
        card,
        CardRequest {
            socket: socket.display().to_string(),
            ..request.clone()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DirectionName;

    fn playback() -> StreamTopologyRequest {
        StreamTopologyRequest {
            name: None,
            direction: DirectionName::Playback,
            route: None,
            formats: None,
            rates: None,
            channels: None,
            xrun_events: None,
        }
    }

    fn no_endpoints(_: &str) -> Option<Direction> {
        None
    }

    #[test]
    fn every_limit_the_schema_states_is_enforced() {
        let cases = [
            (
                StreamTopologyRequest {
                    rates: Some(vec![48000; 1000]),
                    ..playback()
                },
                "rates",
                "1 to 14 rates",
            ),
            (
                StreamTopologyRequest {
                    rates: Some(Vec::new()),
                    ..playback()
                },
                "rates",
                "not 0",
            ),
            (
                StreamTopologyRequest {
                    formats: Some(vec!["s16_le".into(); 65]),
                    ..playback()
                },
                "formats",
                "1 to 64 formats",
            ),
            (
                StreamTopologyRequest {
                    channels: Some(vec![1, 2, 3]),
                    ..playback()
                },
                "channels",
                "[min, max]",
            ),
            (
                StreamTopologyRequest {
                    name: Some("x".repeat(65)),
                    ..playback()
                },
                "name",
                "1 to 64",
            ),
            (
                StreamTopologyRequest {
                    route: Some("nowhere".into()),
                    ..playback()
                },
                "route",
                "names no endpoint",
            ),
        ];
        for (request, field, words) in cases {
            let error = stream_topology(&no_endpoints, 0, &request).expect_err(field);
            assert_eq!(error.field(), Some(field), "{error}");
            assert!(error.message().contains(words), "{error}");
        }
        let fine = StreamTopologyRequest {
            rates: Some(vec![44100, 48000]),
            formats: Some(vec!["s16_le".into(), "float_le".into()]),
            channels: Some(vec![1, 2]),
            ..playback()
        };
        let topology = stream_topology(&no_endpoints, 3, &fine).expect("accepted");
        assert_eq!(topology.name, "stream3");
    }

    #[test]
    fn card_names_of_the_xen_guests_namespace_are_refused() {
        for name in ["dom0-x", "dom12-Guest", "dom7-vsnd1"] {
            let error = check_name(name).expect_err(name);
            assert!(error.message().contains("Xen guests"), "{error}");
        }
        for name in ["dom", "domain-1", "dom-1", "vm2", "dom1x-a"] {
            assert!(check_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn a_card_holds_at_most_its_stream_limit() {
        let request = CardRequest {
            name: "vm".into(),
            socket: "/run/vm.sock".into(),
            streams: vec![playback(); topology::MAX_STREAMS + 1],
            controls: None,
            budget: None,
        };
        let error =
            topology(&no_endpoints, &request, Default::default()).expect_err("too many streams");
        assert!(error.message().contains("at most"), "{error}");
    }
}
