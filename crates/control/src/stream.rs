//! A stream's operator settings (volume, mute, route): checked as a whole first, then
//! applied live, route first, so a refused move leaves the volume untouched too.
//! Applying may wait for an endpoint thread to hand the stream over: call it off an
//! async runtime.

use paravox_engine::gain::{MAX_DB, MIN_DB};
use paravox_engine::{Direction, Engine, MAX_CHANNELS, Stream};

use crate::card::{check_route as check_named_route, engine_endpoints};
use crate::error::{ControlError, Result};
use crate::model::{StreamPatch, VolumeSetting};

/// Checks `patch` against the stream and the engine's endpoints.
pub fn check(engine: &Engine, stream: &Stream, patch: &StreamPatch) -> Result<()> {
    if let Some(volume) = &patch.volume_db {
        let channels = (stream.constraints().channels.max as usize).min(MAX_CHANNELS);
        check_volume(volume, channels)?;
    }
    if let Some(route) = &patch.route {
        check_route(engine, stream.direction(), route.as_deref())?;
    }
    Ok(())
}

fn check_volume(volume: &VolumeSetting, channels: usize) -> Result<()> {
    let values = match volume {
        VolumeSetting::All(db) => std::slice::from_ref(db),
        VolumeSetting::Channels(list) => {
            if list.is_empty() || list.len() > channels {
                return Err(ControlError::invalid(format!(
                    "volume_db has {} values; this stream has 1 to {channels} channels",
                    list.len()
                )));
            }
            list.as_slice()
        }
    };
    match values.iter().find(|db| !(MIN_DB..=MAX_DB).contains(*db)) {
        Some(db) => Err(ControlError::invalid(format!(
            "volume_db {db} is outside {MIN_DB} to {MAX_DB} dB ({MIN_DB} is silence)"
        ))),
        None => Ok(()),
    }
}

fn check_route(engine: &Engine, direction: Direction, route: Option<&str>) -> Result<()> {
    match route {
        Some(name) => check_named_route(&engine_endpoints(engine), name, direction),
        None if engine.default_endpoint(direction).is_none() => Err(ControlError::conflict(
            format!("there is no default {direction} endpoint to route to; name an endpoint"),
        )),
        None => Ok(()),
    }
}

/// Applies a checked `patch`: route, then volume, then mute.
pub fn apply(stream: &Stream, patch: &StreamPatch) -> Result<()> {
    if let Some(route) = &patch.route {
        stream.set_route(route.clone())?;
    }
    match &patch.volume_db {
        Some(VolumeSetting::All(db)) => stream.set_volume_db(*db),
        Some(VolumeSetting::Channels(list)) => {
            for (channel, db) in list.iter().enumerate() {
                stream.set_channel_volume_db(channel, *db)?;
            }
        }
        None => {}
    }
    if let Some(muted) = patch.muted {
        stream.set_muted(muted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_outside_the_gain_range_are_refused() {
        assert!(check_volume(&VolumeSetting::All(0.0), 2).is_ok());
        assert!(check_volume(&VolumeSetting::All(-120.0), 2).is_ok());
        assert!(check_volume(&VolumeSetting::All(1000.0), 2).is_err());
        assert!(check_volume(&VolumeSetting::All(f32::NAN), 2).is_err());
        assert!(check_volume(&VolumeSetting::All(f32::NEG_INFINITY), 2).is_err());
        assert!(check_volume(&VolumeSetting::Channels(vec![0.0, -6.0]), 2).is_ok());
        assert!(check_volume(&VolumeSetting::Channels(vec![0.0; 3]), 2).is_err());
        assert!(check_volume(&VolumeSetting::Channels(vec![]), 2).is_err());
    }
}
