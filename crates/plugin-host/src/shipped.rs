//! The plugins paravox ships, built from `plugins/` by this crate's build script and
//! embedded in the binary.

/// `(name, module)` of every shipped plugin.
pub const SHIPPED: [(&str, &[u8]); 5] = [
    ("convert", CONVERT),
    ("resample", RESAMPLE),
    ("channel-map", CHANNEL_MAP),
    ("gain", GAIN),
    ("mix", MIX),
];

/// Every linear format and G.711 to and from `f32`, bit-exact with the native converters.
pub const CONVERT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/convert.wasm"));
/// Band-limited polyphase resampling.
pub const RESAMPLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/resample.wasm"));
/// Channel up/down-mixing.
pub const CHANNEL_MAP: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/plugins/channel_map.wasm"));
/// Volume and mute with a ramp.
pub const GAIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/gain.wasm"));
/// N streams into one with per-input gain and soft clipping.
pub const MIX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plugins/mix.wasm"));

/// The module of the shipped plugin called `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    SHIPPED
        .iter()
        .find(|(shipped, _)| *shipped == name)
        .map(|(_, module)| *module)
}
