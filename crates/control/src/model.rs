//! What clients send: request bodies, which are also what `state.json` keeps, so a saved
//! object is recreated at start exactly as it was asked for.
//!
//! Every body rejects unknown fields, and optional fields reject `null` unless `null` means
//! something (a route of `null` is "the default endpoint").

use paravox_engine::Direction;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// Names of cards, endpoints and streams: what the configuration file allows.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// The longest name.
pub const NAME_MAX: usize = 64;

/// Whether `name` fits [`NAME_PATTERN`].
pub fn valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Playback (guest → host) or capture (host → guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DirectionName {
    /// Guest → host.
    Playback,
    /// Host → guest.
    Capture,
}

impl From<Direction> for DirectionName {
    fn from(direction: Direction) -> DirectionName {
        match direction {
            Direction::Playback => DirectionName::Playback,
            Direction::Capture => DirectionName::Capture,
        }
    }
}

impl From<DirectionName> for Direction {
    fn from(direction: DirectionName) -> Direction {
        match direction {
            DirectionName::Playback => Direction::Playback,
            DirectionName::Capture => Direction::Capture,
        }
    }
}

/// A virtio-snd card to create: the daemon listens on `socket` for a VMM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    /// Unique card name.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "vm2")]
    pub name: String,
    /// The vhost-user socket path the VMM connects to: absolute (or, when the daemon
    /// confines API paths to a directory, relative to it); its directory must exist.
    #[schema(min_length = 1, max_length = 107, example = "/run/paravox/vm2.sock")]
    pub socket: String,
    /// Streams in virtio stream-id order, as `[[virtio.stream]]` in the configuration
    /// file; empty: one playback and one capture stream.
    #[serde(default)]
    #[schema(max_items = 32)]
    pub streams: Vec<StreamTopologyRequest>,
    /// Offer volume and mute controls to the guest (default false: QEMU carries them only
    /// with `controls=on`, and offered without it the guest's driver fails to probe).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub controls: Option<bool>,
    /// What the guest may make the daemon hold; absent fields take the daemon's default
    /// budget (`[budget]` in the configuration file).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = BudgetRequest)]
    pub budget: Option<BudgetRequest>,
}

/// The largest `stream_buffer_bytes` a budget may allow (the most a Xen frontend may
/// declare).
pub const BUDGET_MAX_STREAM_BUFFER: u32 = 64 << 20;
/// The largest `card_buffer_bytes` a budget may allow.
pub const BUDGET_MAX_CARD_BUFFER: u64 = 1 << 30;
/// The largest samples-per-second limit a budget may set (768 kHz × 64 channels).
pub const BUDGET_MAX_SAMPLES: u64 = 768_000 * 64;

/// Limits on what one card's guest may make the daemon hold (see the README's "Guest
/// budgets"). Each absent field keeps the value it is laid over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// Streams the card may have.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = u32, minimum = 1, maximum = 64, example = 8)]
    pub streams: Option<u32>,
    /// Largest buffer one stream may ask for, in bytes.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = u32, minimum = 1, maximum = 67108864, example = 1048576)]
    pub stream_buffer_bytes: Option<u32>,
    /// All of the card's prepared buffers together, in bytes.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = u64, minimum = 1, maximum = 1073741824, example = 8388608)]
    pub card_buffer_bytes: Option<u64>,
    /// Largest rate × channels of one stream.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = u64, minimum = 1, maximum = 49152000, example = 384000)]
    pub stream_samples_per_second: Option<u64>,
    /// All of the card's prepared streams' rate × channels together.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = u64, minimum = 1, maximum = 49152000, example = 768000)]
    pub card_samples_per_second: Option<u64>,
}

/// One stream of a card to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamTopologyRequest {
    /// Stream name (default `streamN`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: Option<String>,
    /// Playback or capture.
    pub direction: DirectionName,
    /// Endpoint name (default: the default endpoint of its direction).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub route: Option<String>,
    /// Sample formats offered, by XenStore-style name (`s16_le`, `s32_le`, `float_le`);
    /// default: every format virtio-snd can carry and paravox can convert.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 64)]
    pub formats: Option<Vec<String>>,
    /// Rates offered, each a virtio-snd rate (5512, 8000, 11025, 16000, 22050, 32000,
    /// 44100, 48000, 64000, 88200, 96000, 176400, 192000, 384000); default: all of them.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<u32>, min_items = 1, max_items = 14)]
    pub rates: Option<Vec<u32>>,
    /// `[min, max]` channels, 1 ≤ min ≤ max ≤ 18; default `[1, 2]`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<u32>, min_items = 2, max_items = 2)]
    pub channels: Option<Vec<u32>>,
    /// Offer PCM_XRUN events (default true).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub xrun_events: Option<bool>,
}

/// A host endpoint to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// Unique endpoint name streams are routed by (`alsa` is reserved).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "speakers")]
    pub name: String,
    /// Playback or capture.
    pub direction: DirectionName,
    /// An ENDPOINT spec: `alsa:PCM`, `pipewire[:TARGET]`, `wav:PATH`, `null`, `tone:FREQ`,
    /// `wavsrc:PATH`, each with optional `,rate=R,channels=C,format=F,period=FRAMES` (see
    /// the README).
    #[schema(min_length = 1, max_length = 1024, example = "tone:440,amplitude=-12")]
    pub spec: String,
}

/// A volume: one value for every channel, or one per guest channel (first to last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VolumeSetting {
    /// Every channel, in dB.
    All(f32),
    /// Per channel, in dB.
    Channels(Vec<f32>),
}

// By hand: the derive cannot put bounds on an untagged variant's number and array.
impl utoipa::PartialSchema for VolumeSetting {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use paravox_engine::gain::{MAX_DB, MIN_DB};
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let decibels = || {
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(f64::from(MIN_DB)))
                .maximum(Some(f64::from(MAX_DB)))
        };
        OneOfBuilder::new()
            .item(decibels().description(Some("Every channel, dB")))
            .item(
                ArrayBuilder::new()
                    .items(decibels())
                    .min_items(Some(1))
                    .max_items(Some(paravox_engine::MAX_CHANNELS))
                    .description(Some("Each guest channel in order, dB")),
            )
            .description(Some(
                "Volume in dB, -120 (silence) to +24: one number for every channel, or one per channel",
            ))
            .into()
    }
}

impl ToSchema for VolumeSetting {}

/// Changes to a stream, applied live. Absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamPatch {
    /// Volume in dB, −120 (silence) to +24: a number for every channel or an array with
    /// one number per channel.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = VolumeSetting)]
    pub volume_db: Option<VolumeSetting>,
    /// Mute.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = bool)]
    pub muted: Option<bool>,
    /// Endpoint to route to; `null` routes to the default endpoint of the stream's
    /// direction. A prepared stream moves at once, keeping its position.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub route: Option<Option<String>>,
    /// The stream's effect chain, first stage first, replacing the current one (`[]`
    /// removes every stage). Playback streams only. The new chain is built and warmed off
    /// the real-time thread and swapped in at a cycle boundary.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Vec<ChainStage>, max_items = 8)]
    pub chain: Option<Vec<ChainStage>>,
}

/// Plugin names: what the plugin ABI allows.
pub const PLUGIN_NAME_PATTERN: &str = "^[a-z0-9_-]{1,64}$";

/// One effect stage of a stream's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChainStage {
    /// The plugin's name (shipped or installed; see `GET /api/plugins`); it must be an
    /// `effect` plugin.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", example = "gain")]
    pub plugin: String,
    /// Parameter values by name, each within the range the plugin's manifest gives;
    /// parameters not named keep their defaults.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, f32>,
    /// Keep the stage in the chain without running it.
    #[serde(default)]
    pub bypass: bool,
}

/// A field that may be absent but, when present, must not be `null`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A field where absent (`None`) and `null` (`Some(None)`) mean different things.
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_tells_absent_from_null() {
        let patch: StreamPatch = serde_json::from_str("{}").expect("empty");
        assert_eq!(patch, StreamPatch::default());
        let patch: StreamPatch = serde_json::from_str(r#"{"route": null}"#).expect("null");
        assert_eq!(patch.route, Some(None));
        let patch: StreamPatch =
            serde_json::from_str(r#"{"route": "a", "volume_db": [-6, 0]}"#).expect("both");
        assert_eq!(patch.route, Some(Some("a".into())));
        assert_eq!(
            patch.volume_db,
            Some(VolumeSetting::Channels(vec![-6.0, 0.0]))
        );
    }

    #[test]
    fn null_and_unknown_fields_are_refused() {
        assert!(serde_json::from_str::<StreamPatch>(r#"{"muted": null}"#).is_err());
        assert!(serde_json::from_str::<StreamPatch>(r#"{"volume_db": null}"#).is_err());
        assert!(serde_json::from_str::<StreamPatch>(r#"{"mute": true}"#).is_err());
        assert!(serde_json::from_str::<StreamPatch>(r#"{"volume_db": "loud"}"#).is_err());
    }

    #[test]
    fn names_follow_the_config_file_rules() {
        assert!(valid_name("speakers-1.a_b"));
        assert!(!valid_name(""));
        assert!(!valid_name("two words"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
