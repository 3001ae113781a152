//! What a virtio-snd card looks like to its guest: its streams with their constraints and
//! routes, its jacks, channel maps and control elements.

use paravox_engine::Direction;
use paravox_pcm::{ChannelMap, Format, FormatSet, HwConstraints, Interval, RateSet, VIRTIO_RATES};

use crate::error::{Error, Result};

/// The largest guest buffer a stream accepts (its ring is this big).
pub const MAX_BUFFER_BYTES: u32 = 4 << 20;
/// Streams a card may have.
pub const MAX_STREAMS: usize = 32;

/// Whether a card offers control elements unless told otherwise: no. A guest can only
/// use them when the VMM's config space has the `controls` field, and the back end cannot
/// tell before it must answer: QEMU (10.x) asks for the feature bits while it realizes
/// the device and passes `VIRTIO_SND_F_CTLS` to the guest whatever its own `controls`
/// property says, but sizes the config space with the field only for `controls=on`; the
/// first config read, which shows the size, comes after the guest has accepted the
/// features. Offered over QEMU's plain `-device vhost-user-snd-pci,chardev=…`, the bit
/// makes the Linux driver read 0xffffffff controls and fail to probe (-ENOMEM); not
/// offered, every VMM line gives a working card. `controls = true` (with `controls=on`)
/// adds volume and mute.
pub const CONTROLS_BY_DEFAULT: bool = false;

/// One guest-visible PCM stream.
#[derive(Debug, Clone)]
pub struct StreamTopology {
    /// A name for logs and the API.
    pub name: String,
    /// Playback or capture.
    pub direction: Direction,
    /// Formats offered.
    pub formats: FormatSet,
    /// Rates offered.
    pub rates: RateSet,
    /// Channel counts offered.
    pub channels: Interval,
    /// Endpoint name, or the default endpoint of its direction.
    pub route: Option<String>,
    /// Offer PCM_XRUN events.
    pub xrun_events: bool,
}

impl StreamTopology {
    /// A stream offering everything the engine converts that virtio can express, at every
    /// virtio rate, mono or stereo.
    pub fn new(name: &str, direction: Direction) -> StreamTopology {
        StreamTopology {
            name: name.to_owned(),
            direction,
            formats: virtio_convertible_formats(),
            rates: RateSet::from_virtio_mask(u64::MAX),
            channels: Interval { min: 1, max: 2 },
            route: None,
            xrun_events: true,
        }
    }

    /// The engine constraints of this stream.
    pub fn constraints(&self) -> HwConstraints {
        HwConstraints {
            formats: self.formats,
            rates: self.rates.clone(),
            channels: self.channels,
            buffer_frames: Interval {
                min: 1,
                max: MAX_BUFFER_BYTES,
            },
            period_frames: Interval {
                min: 1,
                max: MAX_BUFFER_BYTES,
            },
        }
    }

    /// The channel map for its largest channel count.
    pub fn channel_map(&self) -> ChannelMap {
        ChannelMap::standard(self.channels.max).unwrap_or_else(ChannelMap::stereo)
    }
}

/// Formats both virtio-snd can name and the engine can convert.
pub fn virtio_convertible_formats() -> FormatSet {
    Format::ALL
        .into_iter()
        .filter(|format| format.to_virtio().is_some() && format.is_convertible())
        .collect()
}

/// Every stream of a card.
#[derive(Debug, Clone)]
pub struct CardTopology {
    /// Streams, in virtio stream-id order.
    pub streams: Vec<StreamTopology>,
    /// Offer control elements (`VIRTIO_SND_F_CTLS`: volume and mute per stream). QEMU
    /// carries them only with `-device vhost-user-snd-pci,controls=on` (see
    /// [`CONTROLS_BY_DEFAULT`]).
    pub controls: bool,
    /// What the guest may make the daemon hold; `None` takes the engine's default
    /// (see `paravox_engine::budget`).
    pub budget: Option<paravox_engine::Budget>,
}

impl CardTopology {
    /// One playback and one capture stream, as `paravox serve --virtio-socket` offers.
    pub fn quick_start() -> CardTopology {
        CardTopology {
            streams: vec![
                StreamTopology::new("playback", Direction::Playback),
                StreamTopology::new("capture", Direction::Capture),
            ],
            controls: CONTROLS_BY_DEFAULT,
            budget: None,
        }
    }

    /// Checks the topology can be offered to a guest.
    pub fn validate(&self) -> Result<()> {
        if self.streams.is_empty() || self.streams.len() > MAX_STREAMS {
            return Err(Error::Topology(format!(
                "a card needs 1..={MAX_STREAMS} streams, not {}",
                self.streams.len()
            )));
        }
        for stream in &self.streams {
            if stream.formats.is_empty() || stream.rates.is_empty() {
                return Err(Error::Topology(format!(
                    "stream '{}' offers no format or rate",
                    stream.name
                )));
            }
            if stream.channels.min == 0
                || stream.channels.max > 18
                || stream.channels.min > stream.channels.max
            {
                return Err(Error::Topology(format!(
                    "stream '{}': channels {}..={} must lie in 1..=18",
                    stream.name, stream.channels.min, stream.channels.max
                )));
            }
            if stream
                .rates
                .iter()
                .any(|rate| !VIRTIO_RATES.contains(&rate))
            {
                return Err(Error::Topology(format!(
                    "stream '{}' offers a rate virtio-snd cannot name (allowed: {VIRTIO_RATES:?})",
                    stream.name
                )));
            }
        }
        Ok(())
    }

    /// One jack per stream (speaker out, microphone in), always connected.
    pub fn jacks(&self) -> usize {
        self.streams.len()
    }

    /// One channel map per stream.
    pub fn chmaps(&self) -> usize {
        self.streams.len()
    }

    /// Two controls per stream (volume and switch), when controls are offered.
    pub fn controls(&self) -> usize {
        if self.controls {
            self.streams.len() * 2
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_start_card_is_valid() {
        let mut card = CardTopology::quick_start();
        card.validate().expect("valid");
        // No controls unless asked for: QEMU's plain line cannot carry them.
        assert_eq!((card.jacks(), card.chmaps(), card.controls()), (2, 2, 0));
        card.controls = true;
        assert_eq!(card.controls(), 4);
        let formats = virtio_convertible_formats();
        assert!(formats.contains(Format::S16Le) && formats.contains(Format::F32Le));
        assert!(
            !formats.contains(Format::S16Be),
            "virtio has no big-endian formats"
        );
        assert!(!formats.contains(Format::ImaAdpcm));
    }

    #[test]
    fn impossible_topologies_are_refused() {
        let mut card = CardTopology::quick_start();
        card.streams[0].channels = Interval { min: 0, max: 2 };
        assert!(card.validate().is_err());
        let mut card = CardTopology::quick_start();
        card.streams[0].rates = RateSet::new(&[44_101]).expect("set");
        assert!(card.validate().is_err());
        assert!(
            CardTopology {
                streams: vec![],
                controls: true,
                budget: None,
            }
            .validate()
            .is_err()
        );
    }
}
