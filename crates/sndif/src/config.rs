//! The frontend's card configuration, as the toolstack writes it into XenStore.
//!
//! ```text
//! <frontend>/short-name, long-name                      card names (optional)
//! <frontend>/{sample-rates, sample-formats, channels-min, channels-max, buffer-size}
//! <frontend>/<pcm>/name                                  PCM device name (optional)
//! <frontend>/<pcm>/{same five hardware fields}           narrow the card's
//! <frontend>/<pcm>/<stream>/type                         "p" or "c"
//! <frontend>/<pcm>/<stream>/unique-id                    routing hint (optional)
//! <frontend>/<pcm>/<stream>/{same five hardware fields}  narrow the PCM's
//! <frontend>/<pcm>/<stream>/{ring-ref, event-channel, evt-ring-ref, evt-event-channel}
//! ```
//!
//! PCM devices and streams are numbered from 0 without gaps, as Linux's frontend counts
//! them (at most 32 devices, 8 streams each). Absent hardware fields take Linux's
//! defaults (`u8,s16_le`; 5512–48000 Hz; 1–2 channels; 64 KiB), so both ends agree on
//! what the guest was promised. A lower level narrows the level above: the backend keeps
//! the intersection, warns when the override was not a subset, and refuses the device
//! when nothing is left. Every refusal names the node and quotes the value.

use std::collections::BTreeMap;

use paravox_engine::Direction;
use paravox_pcm::{Format, FormatSet, HwConstraints, Interval, RateSet};

use crate::error::{Error, Result};
use crate::evtchn::Port;
use crate::grant::GrantRef;
use crate::guest_log::guest_warn;
use crate::xenstore::{NO_TX, XsClient};

/// PCM devices a card may have (`SNDRV_PCM_DEVICES`).
pub const MAX_PCM_DEVICES: u32 = 32;
/// Streams a PCM device may have (Linux's `VSND_MAX_STREAM`).
pub const MAX_STREAMS_PER_PCM: u32 = 8;
/// Largest `buffer-size` accepted: 64 MiB.
pub const MAX_BUFFER_SIZE: u32 = 64 << 20;
/// Linux's default formats when none are configured.
pub const DEFAULT_FORMATS: [Format; 2] = [Format::U8, Format::S16Le];
/// Linux's default rates (its table, 5512–48000 Hz) when none are configured.
pub const DEFAULT_RATES: [u32; 8] = [5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000];
/// Linux's default channel range.
pub const DEFAULT_CHANNELS: Interval = Interval { min: 1, max: 2 };
/// Linux's default buffer size in bytes.
pub const DEFAULT_BUFFER_SIZE: u32 = 64 * 1024;

/// Where configuration is read from: XenStore, or a map in tests.
pub trait ConfigSource {
    /// A node's value; `None` when it does not exist.
    fn read(&self, path: &str) -> Result<Option<String>>;
}

impl ConfigSource for XsClient {
    fn read(&self, path: &str) -> Result<Option<String>> {
        self.read_string(NO_TX, path)
    }
}

impl ConfigSource for BTreeMap<String, String> {
    fn read(&self, path: &str) -> Result<Option<String>> {
        if let Some(value) = self.get(path) {
            return Ok(Some(value.clone()));
        }
        // Like XenStore, a node exists when anything below it does.
        let prefix = format!("{path}/");
        Ok(self
            .keys()
            .any(|key| key.starts_with(&prefix))
            .then(String::new))
    }
}

/// The hardware ranges of one level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HwConfig {
    /// Sample formats.
    pub formats: FormatSet,
    /// Frame rates.
    pub rates: RateSet,
    /// Channel counts.
    pub channels: Interval,
    /// Largest shared buffer, in bytes.
    pub buffer_bytes: u32,
}

impl Default for HwConfig {
    fn default() -> HwConfig {
        HwConfig {
            formats: DEFAULT_FORMATS.into_iter().collect(),
            rates: RateSet::new(&DEFAULT_RATES).unwrap_or_default(),
            channels: DEFAULT_CHANNELS,
            buffer_bytes: DEFAULT_BUFFER_SIZE,
        }
    }
}

impl HwConfig {
    /// The smallest frame of these formats at `channels` channels (1 if none has a size).
    pub fn min_frame_bytes(formats: FormatSet, channels: u32) -> u32 {
        formats
            .iter()
            .filter_map(Format::bytes_per_sample)
            .min()
            .unwrap_or(1)
            .max(1)
            .saturating_mul(channels.max(1))
    }

    /// The engine constraints of a stream with this configuration: buffers and periods
    /// up to what `buffer-size` bytes hold in the smallest frame.
    pub fn constraints(&self) -> HwConstraints {
        let max_frames =
            (self.buffer_bytes / HwConfig::min_frame_bytes(self.formats, self.channels.min)).max(1);
        HwConstraints {
            formats: self.formats,
            rates: self.rates.clone(),
            channels: self.channels,
            buffer_frames: Interval {
                min: 1,
                max: max_frames,
            },
            period_frames: Interval {
                min: 1,
                max: max_frames,
            },
        }
    }
}

/// A stream's transport: its ring and event page grants and their event channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTransport {
    /// The request ring page.
    pub ring_ref: GrantRef,
    /// The request ring's event channel (the frontend's port).
    pub event_channel: Port,
    /// The event page.
    pub evt_ring_ref: GrantRef,
    /// The event page's event channel (the frontend's port).
    pub evt_event_channel: Port,
}

/// One stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Its XenStore directory.
    pub path: String,
    /// Its PCM device's index.
    pub pcm: u32,
    /// Its index within the PCM device.
    pub index: u32,
    /// `p` or `c`.
    pub direction: Direction,
    /// `unique-id`, if set.
    pub unique_id: Option<String>,
    /// Its narrowed hardware ranges.
    pub hw: HwConfig,
    /// Its rings and channels.
    pub transport: StreamTransport,
}

/// One PCM device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcmConfig {
    /// Its index.
    pub index: u32,
    /// `name`, if set.
    pub name: Option<String>,
    /// Its streams.
    pub streams: Vec<StreamConfig>,
}

/// A frontend's whole card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardConfig {
    /// The frontend directory it was read from.
    pub path: String,
    /// `short-name`, if set.
    pub short_name: Option<String>,
    /// `long-name`, if set.
    pub long_name: Option<String>,
    /// PCM devices in index order.
    pub pcms: Vec<PcmConfig>,
}

impl CardConfig {
    /// Every stream, in order.
    pub fn streams(&self) -> impl Iterator<Item = &StreamConfig> {
        self.pcms.iter().flat_map(|pcm| pcm.streams.iter())
    }
}

/// Reads and checks a card's configuration below `frontend_path`.
pub fn parse_card(source: &dyn ConfigSource, frontend_path: &str) -> Result<CardConfig> {
    let card_hw = read_hw(source, frontend_path, &HwConfig::default(), true)?;
    let mut pcms = Vec::new();
    for index in 0..MAX_PCM_DEVICES {
        let path = format!("{frontend_path}/{index}");
        if source.read(&path)?.is_none() {
            break;
        }
        pcms.push(parse_pcm(source, &path, index, &card_hw)?);
    }
    if pcms.is_empty() {
        return Err(Error::config(
            format!("{frontend_path}/0"),
            "the card has no PCM device (expected a directory named 0)",
        ));
    }
    if pcms.iter().all(|pcm| pcm.streams.is_empty()) {
        return Err(Error::config(
            format!("{frontend_path}/0/0"),
            "the card has no stream (expected a directory named 0 in a PCM device)",
        ));
    }
    Ok(CardConfig {
        path: frontend_path.to_owned(),
        short_name: source.read(&format!("{frontend_path}/short-name"))?,
        long_name: source.read(&format!("{frontend_path}/long-name"))?,
        pcms,
    })
}

fn parse_pcm(
    source: &dyn ConfigSource,
    path: &str,
    index: u32,
    card_hw: &HwConfig,
) -> Result<PcmConfig> {
    let hw = read_hw(source, path, card_hw, false)?;
    let mut streams = Vec::new();
    for stream in 0..MAX_STREAMS_PER_PCM {
        let stream_path = format!("{path}/{stream}");
        if source.read(&stream_path)?.is_none() {
            break;
        }
        streams.push(parse_stream(source, &stream_path, index, stream, &hw)?);
    }
    Ok(PcmConfig {
        index,
        name: source.read(&format!("{path}/name"))?,
        streams,
    })
}

fn parse_stream(
    source: &dyn ConfigSource,
    path: &str,
    pcm: u32,
    index: u32,
    pcm_hw: &HwConfig,
) -> Result<StreamConfig> {
    let type_node = format!("{path}/type");
    let direction = match source.read(&type_node)?.as_deref().map(str::trim) {
        Some("p" | "P") => Direction::Playback,
        Some("c" | "C") => Direction::Capture,
        Some(other) => {
            return Err(Error::config(
                type_node,
                format!("'{other}' is not a stream type (\"p\" or \"c\")"),
            ));
        }
        None => return Err(Error::config(type_node, "missing (\"p\" or \"c\")")),
    };
    let transport = StreamTransport {
        ring_ref: required_number(source, path, "ring-ref")?,
        event_channel: required_number(source, path, "event-channel")?,
        evt_ring_ref: required_number(source, path, "evt-ring-ref")?,
        evt_event_channel: required_number(source, path, "evt-event-channel")?,
    };
    Ok(StreamConfig {
        path: path.to_owned(),
        pcm,
        index,
        direction,
        unique_id: source
            .read(&format!("{path}/unique-id"))?
            .filter(|id| !id.is_empty()),
        hw: read_hw(source, path, pcm_hw, false)?,
        transport,
    })
}

fn required_number(source: &dyn ConfigSource, path: &str, field: &str) -> Result<u32> {
    let node = format!("{path}/{field}");
    match source.read(&node)? {
        Some(value) => parse_u32(&node, &value),
        None => Err(Error::config(
            node,
            "missing: the frontend has not published its rings",
        )),
    }
}

fn parse_u32(node: &str, value: &str) -> Result<u32> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|_| Error::config(node, format!("'{value}' is not an unsigned decimal number")))
}

/// Reads one level's hardware fields over `parent`. At the card level the values replace
/// Linux's defaults; below, they narrow the parent's.
fn read_hw(
    source: &dyn ConfigSource,
    path: &str,
    parent: &HwConfig,
    card_level: bool,
) -> Result<HwConfig> {
    let mut hw = parent.clone();
    let node = |field: &str| format!("{path}/{field}");

    if let Some(value) = source.read(&node("sample-formats"))? {
        let formats = parse_formats(&node("sample-formats"), &value)?;
        hw.formats = narrow_set(
            &node("sample-formats"),
            &value,
            formats,
            parent.formats,
            card_level,
            FormatSet::intersect,
            |a, b| a.intersect(*b) == *a,
            |set| set.is_empty(),
        )?;
        if hw.formats.iter().all(|format| !format.is_convertible()) {
            guest_warn!(
                node = node("sample-formats"),
                value,
                "no format paravox can convert; every OPEN of this stream will fail"
            );
        }
    }

    if let Some(value) = source.read(&node("sample-rates"))? {
        let rates = parse_rates(&node("sample-rates"), &value)?;
        hw.rates = narrow_set(
            &node("sample-rates"),
            &value,
            rates,
            parent.rates.clone(),
            card_level,
            |a, b| a.intersect(&b),
            |a, b| a.intersect(b) == *a,
            RateSet::is_empty,
        )?;
    }

    let min = source.read(&node("channels-min"))?;
    let max = source.read(&node("channels-max"))?;
    if min.is_some() || max.is_some() {
        let min_value = min
            .as_deref()
            .map(|v| parse_channels(&node("channels-min"), v))
            .transpose()?;
        let max_value = max
            .as_deref()
            .map(|v| parse_channels(&node("channels-max"), v))
            .transpose()?;
        let mut wanted = Interval {
            min: min_value.unwrap_or(parent.channels.min),
            max: max_value.unwrap_or(parent.channels.max),
        };
        if (min_value.is_none() || max_value.is_none()) && wanted.min > wanted.max {
            // One bound inherited: Linux lowers the minimum to the maximum, so do we.
            wanted.min = wanted.max;
        }
        if wanted.min > wanted.max {
            return Err(Error::config(
                node("channels-min"),
                format!(
                    "channels-min {} is above channels-max {}",
                    wanted.min, wanted.max
                ),
            ));
        }
        hw.channels = if card_level {
            wanted
        } else {
            let narrowed = wanted.intersect(parent.channels).ok_or_else(|| {
                Error::config(
                    node("channels-max"),
                    format!(
                        "channels {wanted} share nothing with the enclosing level's {}",
                        parent.channels
                    ),
                )
            })?;
            if narrowed != wanted {
                guest_warn!(
                    node = path,
                    channels = %wanted,
                    enclosing = %parent.channels,
                    "channel range is not within the enclosing level's; using {narrowed}"
                );
            }
            narrowed
        };
    }

    if let Some(value) = source.read(&node("buffer-size"))? {
        let bytes = parse_u32(&node("buffer-size"), &value)?;
        if bytes == 0 || bytes > MAX_BUFFER_SIZE {
            return Err(Error::config(
                node("buffer-size"),
                format!("'{value}' is outside 1..={MAX_BUFFER_SIZE} bytes"),
            ));
        }
        hw.buffer_bytes = if card_level || bytes <= parent.buffer_bytes {
            bytes
        } else {
            guest_warn!(
                node = node("buffer-size"),
                bytes,
                enclosing = parent.buffer_bytes,
                "buffer-size exceeds the enclosing level's; keeping the smaller"
            );
            parent.buffer_bytes
        };
    }
    Ok(hw)
}

/// Narrows a set-valued field: at the card level the value replaces, below it intersects.
#[allow(clippy::too_many_arguments)]
fn narrow_set<T: Clone + std::fmt::Display>(
    node: &str,
    value: &str,
    wanted: T,
    parent: T,
    card_level: bool,
    intersect: impl Fn(T, T) -> T,
    is_subset: impl Fn(&T, &T) -> bool,
    is_empty: impl Fn(&T) -> bool,
) -> Result<T> {
    if card_level {
        return Ok(wanted);
    }
    let narrowed = intersect(wanted.clone(), parent.clone());
    if is_empty(&narrowed) {
        return Err(Error::config(
            node,
            format!("'{value}' shares nothing with the enclosing level's {parent}"),
        ));
    }
    if !is_subset(&wanted, &parent) {
        guest_warn!(
            node,
            value,
            enclosing = %parent,
            "not within the enclosing level's values; using {narrowed}"
        );
    }
    Ok(narrowed)
}

fn list_items<'a>(node: &str, value: &'a str) -> Result<Vec<&'a str>> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if items.iter().any(|item| item.is_empty()) {
        return Err(Error::config(
            node,
            format!("'{value}' has an empty item (expected a comma-separated list)"),
        ));
    }
    Ok(items)
}

fn parse_formats(node: &str, value: &str) -> Result<FormatSet> {
    let mut formats = FormatSet::EMPTY;
    for item in list_items(node, value)? {
        let format = Format::from_xenstore_name(&item.to_ascii_lowercase()).ok_or_else(|| {
            Error::config(
                node,
                format!("'{item}' in '{value}' is not a sndif sample format (s16_le, float_le, …)"),
            )
        })?;
        formats.insert(format);
    }
    Ok(formats)
}

fn parse_rates(node: &str, value: &str) -> Result<RateSet> {
    let mut rates = Vec::new();
    for item in list_items(node, value)? {
        let rate = item.parse::<u32>().map_err(|_| {
            Error::config(node, format!("'{item}' in '{value}' is not a rate in Hz"))
        })?;
        rates.push(rate);
    }
    RateSet::new(&rates).map_err(|error| Error::config(node, format!("'{value}': {error}")))
}

fn parse_channels(node: &str, value: &str) -> Result<u32> {
    let channels = parse_u32(node, value)?;
    if channels == 0 || channels as usize > paravox_engine::MAX_CHANNELS {
        return Err(Error::config(
            node,
            format!(
                "'{value}' is outside 1..={} channels",
                paravox_engine::MAX_CHANNELS
            ),
        ));
    }
    Ok(channels)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FE: &str = "/local/domain/3/device/vsnd/0";

    fn store(nodes: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> = nodes
            .iter()
            .map(|(path, value)| (format!("{FE}/{path}"), (*value).to_owned()))
            .collect();
        for stream in ["0/0", "0/1", "1/0"] {
            if map.contains_key(&format!("{FE}/{stream}/type")) {
                for (field, value) in [
                    ("ring-ref", "10"),
                    ("event-channel", "11"),
                    ("evt-ring-ref", "12"),
                    ("evt-event-channel", "13"),
                ] {
                    map.entry(format!("{FE}/{stream}/{field}"))
                        .or_insert_with(|| value.to_owned());
                }
            }
        }
        map
    }

    fn error_of(nodes: &[(&str, &str)]) -> (String, String) {
        match parse_card(&store(nodes), FE) {
            Err(Error::Config { node, problem }) => (node, problem),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_follow_linux() {
        let card = parse_card(&store(&[("0/0/type", "p")]), FE).unwrap();
        let stream = &card.pcms[0].streams[0];
        assert_eq!(stream.direction, Direction::Playback);
        assert_eq!(stream.hw, HwConfig::default());
        assert_eq!(stream.hw.rates.as_slice(), &DEFAULT_RATES);
        assert_eq!(
            stream.transport,
            StreamTransport {
                ring_ref: 10,
                event_channel: 11,
                evt_ring_ref: 12,
                evt_event_channel: 13
            }
        );
        let constraints = stream.hw.constraints();
        // 64 KiB of u8 mono frames.
        assert_eq!(constraints.buffer_frames.max, 65_536);
    }

    #[test]
    fn a_full_card_with_overrides() {
        let card = parse_card(
            &store(&[
                ("short-name", "VCard"),
                ("long-name", "Virtual sound card"),
                ("sample-rates", "44100,48000,96000"),
                ("sample-formats", "s16_le,float_le,S32_LE"),
                ("channels-max", "8"),
                ("buffer-size", "262144"),
                ("0/name", "General analog"),
                ("0/channels-max", "2"),
                ("0/0/type", "p"),
                ("0/0/unique-id", "alsa<hw:0;0>"),
                ("0/0/sample-rates", "48000"),
                ("0/1/type", "c"),
                ("0/1/sample-formats", "s16_le"),
                ("0/1/buffer-size", "65536"),
                ("1/0/type", "P"),
                ("1/0/channels-min", "2"),
            ]),
            FE,
        )
        .unwrap();
        assert_eq!(card.short_name.as_deref(), Some("VCard"));
        assert_eq!(card.pcms.len(), 2);
        assert_eq!(card.pcms[0].name.as_deref(), Some("General analog"));
        let streams: Vec<_> = card.streams().collect();
        assert_eq!(streams.len(), 3);
        let (p, c, hdmi) = (streams[0], streams[1], streams[2]);
        assert_eq!(p.unique_id.as_deref(), Some("alsa<hw:0;0>"));
        assert_eq!(p.hw.rates.as_slice(), &[48_000]);
        assert_eq!(p.hw.channels, Interval { min: 1, max: 2 });
        assert_eq!(p.hw.buffer_bytes, 262_144);
        assert_eq!(p.hw.formats.len(), 3);
        assert_eq!(c.direction, Direction::Capture);
        assert_eq!(c.hw.formats, FormatSet::EMPTY.with(Format::S16Le));
        assert_eq!(c.hw.rates.as_slice(), &[44_100, 48_000, 96_000]);
        assert_eq!(c.hw.buffer_bytes, 65_536);
        assert_eq!(hdmi.pcm, 1);
        assert_eq!(hdmi.hw.channels, Interval { min: 2, max: 8 });
    }

    #[test]
    fn overrides_only_narrow() {
        let card = parse_card(
            &store(&[
                ("sample-rates", "44100,48000"),
                ("buffer-size", "4096"),
                ("0/0/type", "p"),
                ("0/0/sample-rates", "48000,96000"),
                ("0/0/buffer-size", "1000000"),
            ]),
            FE,
        )
        .unwrap();
        let stream = &card.pcms[0].streams[0];
        assert_eq!(stream.hw.rates.as_slice(), &[48_000]);
        assert_eq!(stream.hw.buffer_bytes, 4096);
    }

    /// Nodes, the field expected in the error, and a word the message must contain.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

    #[test]
    fn bad_values_name_the_node_and_the_value() {
        let cases: [Case; 12] = [
            (
                &[("sample-rates", "44100,fast"), ("0/0/type", "p")],
                "sample-rates",
                "'fast'",
            ),
            (
                &[("sample-rates", "44100,,48000"), ("0/0/type", "p")],
                "sample-rates",
                "empty item",
            ),
            (
                &[("sample-rates", "100"), ("0/0/type", "p")],
                "sample-rates",
                "100",
            ),
            (
                &[("sample-formats", "s16_le,s17_le"), ("0/0/type", "p")],
                "sample-formats",
                "'s17_le'",
            ),
            (
                &[("channels-max", "0"), ("0/0/type", "p")],
                "channels-max",
                "'0'",
            ),
            (
                &[("channels-min", "two"), ("0/0/type", "p")],
                "channels-min",
                "'two'",
            ),
            (
                &[
                    ("channels-min", "4"),
                    ("channels-max", "2"),
                    ("0/0/type", "p"),
                ],
                "channels-min",
                "above",
            ),
            (
                &[("buffer-size", "-1"), ("0/0/type", "p")],
                "buffer-size",
                "'-1'",
            ),
            (&[("0/0/type", "x")], "0/0/type", "'x'"),
            (
                &[("0/0/type", "p"), ("0/0/ring-ref", "ten")],
                "0/0/ring-ref",
                "'ten'",
            ),
            (
                &[
                    ("sample-rates", "44100"),
                    ("0/0/type", "p"),
                    ("0/0/sample-rates", "48000"),
                ],
                "0/0/sample-rates",
                "shares nothing",
            ),
            (
                &[("0/0/type", "p"), ("0/0/sample-formats", "float_le")],
                "0/0/sample-formats",
                "shares nothing",
            ),
        ];
        for (nodes, field, needle) in cases {
            let (node, problem) = error_of(nodes);
            assert_eq!(node, format!("{FE}/{field}"), "{problem}");
            assert!(problem.contains(needle), "{node}: {problem} lacks {needle}");
        }
    }

    #[test]
    fn missing_structure_is_explained() {
        let (node, problem) = error_of(&[("short-name", "x")]);
        assert_eq!(node, format!("{FE}/0"));
        assert!(problem.contains("no PCM device"));
        let mut nodes = store(&[("0/0/type", "p")]);
        nodes.remove(&format!("{FE}/0/0/evt-ring-ref"));
        match parse_card(&nodes, FE) {
            Err(Error::Config { node, problem }) => {
                assert!(node.ends_with("0/0/evt-ring-ref"));
                assert!(problem.contains("missing"));
            }
            other => panic!("{other:?}"),
        }
    }
}
