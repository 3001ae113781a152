//! Routing hints in a stream's `unique-id`.
//!
//! The sndif protocol leaves `unique-id` to the backend. The reference backend (`snd_be`)
//! reads it as `pcmtype<device>propname:propvalue`, every part after `pcmtype` optional:
//! `alsa<hw:0;0>` is ALSA's `hw:0,0` (`;` stands for `,`, which `xl` reserves), and
//! `pulse<sink>` a PulseAudio sink. paravox honours the same convention as a hint: when
//! an engine endpoint of that name exists (or, for `alsa<…>`, an endpoint opened from
//! `alsa:<device>`), the stream is routed there; otherwise it goes to the default endpoint
//! of its direction, and the miss is logged. Any other `unique-id` is just an id.

use paravox_engine::{Direction, Engine};
use tracing::info;

use crate::guest_log::guest_warn;

/// A parsed `unique-id` hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteHint {
    /// `alsa<device>`: the ALSA device name, `;` turned back into `,`.
    Alsa(String),
    /// `pulse<sink>`.
    Pulse(String),
}

impl RouteHint {
    /// Parses `unique-id`; `None` when it is not a hint or names no device (`alsa`,
    /// `pulse<>`: snd_be's "default device", which is paravox's default route too).
    pub fn parse(unique_id: &str) -> Option<RouteHint> {
        let (kind, rest) = if let Some(rest) = unique_id.strip_prefix("alsa") {
            ("alsa", rest)
        } else if let Some(rest) = unique_id.strip_prefix("pulse") {
            ("pulse", rest)
        } else {
            return None;
        };
        let inner = rest.strip_prefix('<')?;
        let device = &inner[..inner.find('>')?];
        if device.is_empty() {
            return None;
        }
        Some(match kind {
            "alsa" => RouteHint::Alsa(device.replace(';', ",")),
            _ => RouteHint::Pulse(device.to_owned()),
        })
    }

    /// The device name.
    pub fn device(&self) -> &str {
        match self {
            RouteHint::Alsa(device) | RouteHint::Pulse(device) => device,
        }
    }
}

/// The endpoint a stream with this `unique-id` should use, or `None` for the default.
pub fn resolve(
    engine: &Engine,
    unique_id: Option<&str>,
    direction: Direction,
    stream: &str,
) -> Option<String> {
    let hint = RouteHint::parse(unique_id?)?;
    let found = engine.endpoints().into_iter().find(|endpoint| {
        endpoint.direction() == direction
            && (endpoint.name() == hint.device()
                || matches!(&hint, RouteHint::Alsa(device)
                    if endpoint.spec() == format!("alsa:{device}")
                        || endpoint.spec().starts_with(&format!("alsa:{device},"))))
    });
    match found {
        Some(endpoint) => {
            info!(
                stream,
                hint = ?hint,
                endpoint = endpoint.name(),
                "routing by unique-id"
            );
            Some(endpoint.name().to_owned())
        }
        None => {
            guest_warn!(
                stream,
                hint = ?hint,
                "no {direction} endpoint matches the unique-id hint; using the default"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snd_be_conventions() {
        assert_eq!(
            RouteHint::parse("alsa<hw:0;0>"),
            Some(RouteHint::Alsa("hw:0,0".into()))
        );
        assert_eq!(
            RouteHint::parse("pulse<pci-0000_00_1f.3.analog-stereo>"),
            Some(RouteHint::Pulse("pci-0000_00_1f.3.analog-stereo".into()))
        );
        assert_eq!(
            RouteHint::parse("pulse<speakers>media.role:navi"),
            Some(RouteHint::Pulse("speakers".into()))
        );
        for not_a_hint in [
            "alsa",
            "pulse",
            "pulse<>media.role:navi",
            "0",
            "alsa<open",
            "x<y>",
        ] {
            assert_eq!(RouteHint::parse(not_a_hint), None, "{not_a_hint}");
        }
    }
}
