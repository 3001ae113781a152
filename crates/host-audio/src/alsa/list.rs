//! Listing the host's ALSA PCMs, as `aplay -L` does, for the API's endpoint picker.

use ::alsa::Direction;
use ::alsa::device_name::HintIter;

use crate::error::HostAudioError;

/// One PCM the ALSA configuration advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlsaPcmInfo {
    /// The name to put after `alsa:` (`default`, `hw:CARD=PCH,DEV=0`, `null`, …).
    pub name: String,
    /// ALSA's description, its lines joined with ", ".
    pub description: Option<String>,
    /// Usable for playback.
    pub playback: bool,
    /// Usable for capture.
    pub capture: bool,
}

/// The PCMs ALSA's name hints list (cards and configured software PCMs). Not real-time:
/// this reads the whole ALSA configuration.
pub fn alsa_pcms() -> Result<Vec<AlsaPcmInfo>, HostAudioError> {
    let hints =
        HintIter::new_str(None, "pcm").map_err(|source| HostAudioError::AlsaList { source })?;
    Ok(hints
        .filter_map(|hint| {
            let name = hint.name?;
            // No IOID hint means the PCM works both ways.
            let (playback, capture) = match hint.direction {
                Some(Direction::Playback) => (true, false),
                Some(Direction::Capture) => (false, true),
                None => (true, true),
            };
            Some(AlsaPcmInfo {
                name,
                description: hint
                    .desc
                    .map(|desc| desc.lines().map(str::trim).collect::<Vec<_>>().join(", ")),
                playback,
                capture,
            })
        })
        .collect())
}
