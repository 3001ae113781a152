//! Opening an [`EndpointRequest`] as an engine endpoint: the name, spec and direction
//! checked, file paths resolved, the device opened. Blocking (a device open may take a
//! moment): call it off the async runtime.

use std::path::Path;
use std::sync::Arc;

use paravox_engine::{Direction, Endpoint, Engine};
use paravox_host_audio::{EndpointKind, EndpointSpec};

use crate::error::ApiError;
use crate::model::{EndpointRequest, valid_name};
use crate::paths;

/// A name that cannot be an endpoint's: `/api/endpoints/alsa` lists the host's PCMs.
pub const RESERVED_NAME: &str = "alsa";
/// The longest spec accepted.
pub const SPEC_MAX: usize = 1024;

/// Checks `request` and resolves its paths, without opening anything; returns the spec
/// text to open and show.
pub fn check(
    engine: &Engine,
    request: &EndpointRequest,
    path_root: Option<&Path>,
) -> Result<(EndpointSpec, String), ApiError> {
    if !valid_name(&request.name) || request.name == RESERVED_NAME {
        return Err(ApiError::unprocessable(format!(
            "endpoint name '{}' must be 1 to 64 letters, digits, '-', '_' or '.' (and not '{RESERVED_NAME}')",
            request.name
        )));
    }
    if request.spec.len() > SPEC_MAX {
        return Err(ApiError::unprocessable(format!(
            "the spec is longer than {SPEC_MAX} bytes"
        )));
    }
    let mut spec: EndpointSpec = request
        .spec
        .parse()
        .map_err(|error| ApiError::unprocessable(format!("{error}")))?;
    let direction = Direction::from(request.direction);
    let fits = match direction {
        Direction::Playback => spec.is_playback(),
        Direction::Capture => spec.is_capture(),
    };
    if !fits {
        return Err(ApiError::unprocessable(format!(
            "endpoint '{}' cannot be used for {direction}: {}",
            request.spec,
            match direction {
                Direction::Playback => "playback goes to wav:PATH, null or alsa:PCM",
                Direction::Capture => "capture comes from tone:FREQ, wavsrc:PATH, alsa:PCM or null",
            }
        )));
    }
    let mut text = request.spec.clone();
    if let EndpointKind::Wav { path } | EndpointKind::WavSource { path, .. } = &mut spec.kind {
        let resolved = paths::resolve(path, path_root, "the WAV file path")?;
        if resolved != *path {
            *path = resolved;
            text = spec.to_string();
        }
    }
    if engine.endpoint(&request.name).is_some() {
        return Err(ApiError::conflict(format!(
            "an endpoint named '{}' exists already",
            request.name
        )));
    }
    Ok((spec, text))
}

/// Opens the endpoint `request` asks for. Returns it and the request as it should be saved
/// (paths resolved).
pub fn open(
    engine: &Engine,
    request: &EndpointRequest,
    path_root: Option<&Path>,
) -> Result<(Arc<Endpoint>, EndpointRequest), ApiError> {
    let (spec, text) = check(engine, request, path_root)?;
    let cannot_open = |error: paravox_host_audio::HostAudioError| {
        ApiError::unprocessable(format!("cannot open '{text}': {error}"))
    };
    let endpoint = match Direction::from(request.direction) {
        Direction::Playback => {
            let opener = spec.playback_opener().map_err(cannot_open)?;
            engine.add_playback_endpoint(&request.name, &text, opener)?
        }
        Direction::Capture => {
            let opener = spec.capture_opener().map_err(cannot_open)?;
            engine.add_capture_endpoint(&request.name, &text, opener)?
        }
    };
    tracing::info!(endpoint = request.name, spec = text, direction = %endpoint.direction(), "endpoint opened over the API");
    Ok((
        endpoint,
        EndpointRequest {
            spec: text,
            ..request.clone()
        },
    ))
}
