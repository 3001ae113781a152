//! Host endpoints: an ENDPOINT spec checked for the direction it serves, file paths given
//! over the API resolved, and the device opened as an engine endpoint (with the
//! configuration's fallback spec when the first cannot open). Blocking (a device open may
//! take a moment): call it off an async runtime.

use std::path::Path;
use std::sync::Arc;

use paravox_engine::{Direction, Endpoint, Engine};
use paravox_host_audio::{EndpointKind, EndpointSpec, HostAudioError};
use tracing::{info, warn};

use crate::error::{ControlError, ErrorKind, Result};
use crate::model::{EndpointRequest, valid_name};
use crate::paths;

/// A name that cannot be an endpoint's: `/api/endpoints/alsa` lists the host's PCMs.
pub const RESERVED_NAME: &str = "alsa";
/// The longest spec accepted.
pub const SPEC_MAX: usize = 1024;

/// Checks an endpoint's name.
pub fn check_name(name: &str) -> Result<()> {
    if valid_name(name) && name != RESERVED_NAME {
        Ok(())
    } else {
        Err(ControlError::invalid(format!(
            "endpoint name '{name}' must be 1 to 64 letters, digits, '-', '_' or '.' (and not '{RESERVED_NAME}')"
        ))
        .at("name"))
    }
}

/// Parses `text` as an ENDPOINT spec that can serve `direction`.
pub fn parse_spec(text: &str, direction: Direction) -> Result<EndpointSpec> {
    if text.len() > SPEC_MAX {
        return Err(
            ControlError::invalid(format!("the spec is longer than {SPEC_MAX} bytes")).at("spec"),
        );
    }
    let spec: EndpointSpec = text.parse().map_err(|error| {
        ControlError::invalid(format!("bad endpoint '{text}': {error}")).at("spec")
    })?;
    let fits = match direction {
        Direction::Playback => spec.is_playback(),
        Direction::Capture => spec.is_capture(),
    };
    if !fits {
        return Err(ControlError::invalid(format!(
            "endpoint '{text}' cannot be used for {direction}: {}",
            match direction {
                Direction::Playback => "playback goes to wav:PATH, null, alsa:PCM or pipewire",
                Direction::Capture =>
                    "capture comes from tone:FREQ, wavsrc:PATH, alsa:PCM, pipewire, browser or null",
            }
        ))
        .at("spec"));
    }
    Ok(spec)
}

/// The one directory inside the state directory where WAV files named over the API may
/// be: the rest holds the daemon's own files (`state.json`, `token`, plugins).
pub const OUTPUTS_DIR: &str = "outputs";

/// Checks `request` as the API sends it and resolves the file path in its spec against
/// `path_root`, without opening anything; returns the request as it should be opened and
/// saved. A WAV path inside `state_dir` must lie in its [`OUTPUTS_DIR`].
pub fn check_request(
    engine: &Engine,
    request: &EndpointRequest,
    path_root: Option<&Path>,
    state_dir: Option<&Path>,
) -> Result<EndpointRequest> {
    check_name(&request.name)?;
    let mut spec = parse_spec(&request.spec, Direction::from(request.direction))?;
    let mut text = request.spec.clone();
    if let EndpointKind::Wav { path } | EndpointKind::WavSource { path, .. } = &mut spec.kind {
        let resolved = paths::resolve(path, path_root, "the WAV file path")?;
        if let Some(state_dir) = state_dir {
            check_outside_state(&resolved, state_dir)?;
        }
        if resolved != *path {
            *path = resolved;
            text = spec.to_string();
        }
    }
    if engine.endpoint(&request.name).is_some() {
        return Err(ControlError::conflict(format!(
            "an endpoint named '{}' exists already",
            request.name
        )));
    }
    Ok(EndpointRequest {
        spec: text,
        ..request.clone()
    })
}

/// Refuses a path in the state directory but outside its [`OUTPUTS_DIR`]. The path is
/// compared as written and with its directory's links resolved, so neither `..` nor a
/// link to the state directory gets around it.
fn check_outside_state(path: &Path, state_dir: &Path) -> Result<()> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let state = canonical(state_dir);
    let outputs = state.join(OUTPUTS_DIR);
    let directory = path.parent().map(canonical).unwrap_or_default();
    let resolved = match path.file_name() {
        Some(name) => directory.join(name),
        None => directory,
    };
    let inside = |p: &Path| p.starts_with(&state) && !p.starts_with(&outputs);
    if inside(&resolved) || inside(path) {
        return Err(ControlError::invalid(format!(
            "the WAV file path {} lies in the state directory {}, which holds paravox's own files; use {} or another directory",
            path.display(),
            state_dir.display(),
            state_dir.join(OUTPUTS_DIR).display()
        ))
        .at("spec"));
    }
    Ok(())
}

/// Opens `text` (a spec [`parse_spec`] accepts) as the endpoint `name`.
pub fn open(
    engine: &Engine,
    name: &str,
    text: &str,
    direction: Direction,
) -> Result<Arc<Endpoint>> {
    let spec = parse_spec(text, direction)?;
    let cannot_open = |error: HostAudioError| {
        ControlError::invalid(format!(
            "cannot open {direction} endpoint '{name}' ({text}): {error}"
        ))
    };
    let endpoint = match (direction, spec.stream_devices()) {
        _ if matches!(spec.kind, EndpointKind::Browser) => {
            let format = spec.device_format().map_err(cannot_open)?;
            engine.add_microphone_endpoint(name, text, format)
        }
        (_, Some(devices)) => {
            let format = spec.device_format().map_err(cannot_open)?;
            engine.add_per_stream_endpoint(name, text, direction, format, devices)
        }
        (Direction::Playback, None) => {
            let opener = spec.playback_opener_for(name).map_err(cannot_open)?;
            engine.add_playback_endpoint(name, text, opener)
        }
        (Direction::Capture, None) => {
            let opener = spec.capture_opener_for(name).map_err(cannot_open)?;
            engine.add_capture_endpoint(name, text, opener)
        }
    };
    let endpoint = endpoint.map_err(|error| {
        ControlError::from(error).context(format_args!(
            "cannot open {direction} endpoint '{name}' ({text})"
        ))
    })?;
    info!(endpoint = name, spec = text, %direction, "endpoint opened");
    Ok(endpoint)
}

/// Opens `primary`, or `fallback` if the primary device cannot be opened. A malformed spec
/// is an error either way.
pub fn open_with_fallback(
    engine: &Engine,
    name: &str,
    primary: &str,
    fallback: Option<&str>,
    direction: Direction,
) -> Result<Arc<Endpoint>> {
    // A fallback that could never serve is a mistake to report now, not when needed.
    if let Some(fallback) = fallback {
        parse_spec(fallback, direction)?;
    }
    match open(engine, name, primary, direction) {
        Ok(endpoint) => Ok(endpoint),
        Err(error) if error.field().is_some() || error.kind() == ErrorKind::Conflict => Err(error),
        Err(error) => match fallback {
            Some(fallback) => {
                warn!(endpoint = name, primary, fallback, %error, "endpoint unavailable; using its fallback");
                let endpoint = open(engine, name, fallback, direction)?;
                info!(
                    endpoint = name,
                    spec = fallback,
                    "{direction} goes to the fallback"
                );
                Ok(endpoint)
            }
            None => Err(error),
        },
    }
}
