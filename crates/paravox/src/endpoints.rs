//! Opening ENDPOINT specs as engine endpoints, with fallbacks.

use std::sync::Arc;

use anyhow::{Context, Result};
use paravox_engine::{Direction, Endpoint, Engine};
use paravox_host_audio::spec::EndpointSpec;
use tracing::{info, warn};

use crate::usage;

/// Parses an ENDPOINT spec, as a usage error when it is malformed.
pub fn parse(text: &str) -> Result<EndpointSpec> {
    text.parse::<EndpointSpec>()
        .map_err(|error| usage(format!("bad endpoint '{text}': {error}")))
}

/// Checks that `spec` can serve `direction`.
pub fn check_direction(text: &str, spec: &EndpointSpec, direction: Direction) -> Result<()> {
    let fits = match direction {
        Direction::Playback => spec.is_playback(),
        Direction::Capture => spec.is_capture(),
    };
    if fits {
        Ok(())
    } else {
        Err(usage(format!(
            "endpoint '{text}' cannot be used for {direction}: {}",
            match direction {
                Direction::Playback => "playback goes to wav:PATH, null or alsa:PCM",
                Direction::Capture => "capture comes from tone:FREQ, wavsrc:PATH, alsa:PCM or null",
            }
        )))
    }
}

/// Opens `spec` as the endpoint `name`.
pub fn open(
    engine: &Engine,
    name: &str,
    text: &str,
    direction: Direction,
) -> Result<Arc<Endpoint>> {
    let spec = parse(text)?;
    check_direction(text, &spec, direction)?;
    let endpoint = match direction {
        Direction::Playback => {
            let opener = spec.playback_opener().map_err(|e| anyhow::anyhow!("{e}"))?;
            engine.add_playback_endpoint(name, text, opener)
        }
        Direction::Capture => {
            let opener = spec.capture_opener().map_err(|e| anyhow::anyhow!("{e}"))?;
            engine.add_capture_endpoint(name, text, opener)
        }
    };
    endpoint.with_context(|| format!("opening {direction} endpoint '{name}' ({text})"))
}

/// Opens `primary`, or `fallback` if the primary device cannot be opened.
pub fn open_with_fallback(
    engine: &Engine,
    name: &str,
    primary: &str,
    fallback: Option<&str>,
    direction: Direction,
) -> Result<Arc<Endpoint>> {
    match open(engine, name, primary, direction) {
        Ok(endpoint) => Ok(endpoint),
        Err(error) if error.downcast_ref::<crate::UsageError>().is_some() => Err(error),
        Err(error) => match fallback {
            Some(fallback) => {
                warn!(endpoint = name, primary, fallback, error = %format!("{error:#}"), "endpoint unavailable; using its fallback");
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
