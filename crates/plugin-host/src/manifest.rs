//! The manifest a plugin declares itself with: parsed, bounded and checked before use.

use paravox_engine::plugin::{KernelSetup, StageRole};
use paravox_pcm::Format;
use serde::Deserialize;

use crate::abi::{MAX_MANIFEST_BYTES, MAX_PARAMS};
use crate::error::{PluginError, Result};

/// What kind of stage a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Format or layout conversion: guest format ↔ `f32`, or channel mapping.
    Converter,
    /// Rate conversion.
    Resampler,
    /// N inputs into one output.
    Mixer,
    /// In-place `f32` processing (gain, effects).
    Effect,
}

impl Kind {
    /// The kind's name as the manifest spells it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Converter => "converter",
            Kind::Resampler => "resampler",
            Kind::Mixer => "mixer",
            Kind::Effect => "effect",
        }
    }

    /// The kind a plugin standing in for `role` must be.
    pub fn for_role(role: StageRole) -> Kind {
        match role {
            StageRole::Convert | StageRole::ChannelMap => Kind::Converter,
            StageRole::Resample => Kind::Resampler,
            StageRole::Gain | StageRole::Effect => Kind::Effect,
            StageRole::Mix => Kind::Mixer,
        }
    }
}

/// One parameter a plugin offers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// Its name, as `--plugin gain:volume=0.5` spells it.
    pub name: String,
    /// Lowest value.
    pub min: f32,
    /// Highest value.
    pub max: f32,
    /// Value after `paravox_init`.
    pub default: f32,
    /// Unit for display (`linear`, `dB`, `ms`, `bool`, …).
    #[serde(default)]
    pub unit: String,
}

/// What a plugin says it is and accepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Unique name: lower-case letters, digits, `-` and `_`, at most 64.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// What kind of stage it is.
    pub kind: Kind,
    /// One line for `paravox plugin list`.
    #[serde(default)]
    pub description: String,
    /// Formats it reads (names as in configuration: `s16_le`, `float_le`, …).
    pub input_formats: Vec<String>,
    /// Formats it writes.
    pub output_formats: Vec<String>,
    /// `[min, max]` frames per second.
    pub rates: [u32; 2],
    /// `[min, max]` input channels.
    pub input_channels: [u32; 2],
    /// `[min, max]` output channels.
    pub output_channels: [u32; 2],
    /// Mixers: most inputs mixed at once (others: 1).
    #[serde(default = "one")]
    pub max_inputs: u32,
    /// Parameters, addressed by index in `paravox_set_param`.
    #[serde(default)]
    pub params: Vec<Param>,
}

fn one() -> u32 {
    1
}

fn is_name(name: &str, extra: &str, longest: usize) -> bool {
    !name.is_empty()
        && name.len() <= longest
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

fn formats(list: &[String], field: &str) -> Result<Vec<Format>> {
    if list.is_empty() || list.len() > Format::COUNT {
        return Err(PluginError::Manifest(format!(
            "{field} must list 1 to {} formats",
            Format::COUNT
        )));
    }
    list.iter()
        .map(|name| {
            Format::parse(name)
                .filter(|format| format.is_convertible())
                .ok_or_else(|| {
                    PluginError::Manifest(format!("{field}: '{name}' is not a linear PCM format"))
                })
        })
        .collect()
}

fn range(value: [u32; 2], field: &str, low: u32, high: u32) -> Result<()> {
    if low <= value[0] && value[0] <= value[1] && value[1] <= high {
        Ok(())
    } else {
        Err(PluginError::Manifest(format!(
            "{field} must be [min, max] with {low} <= min <= max <= {high}"
        )))
    }
}

/// Why a parameter setting does not fit a plugin's manifest.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The plugin has no parameter of that name.
    #[error("{plugin} has no parameter '{name}' (it has: {known})")]
    Unknown {
        /// The plugin's name.
        plugin: String,
        /// The name asked for.
        name: String,
        /// The parameters it has, comma-separated, or `none`.
        known: String,
    },
    /// The value lies outside the parameter's range.
    #[error("{name} = {value} is outside {min} to {max}")]
    OutOfRange {
        /// The parameter.
        name: String,
        /// The value asked for.
        value: f32,
        /// Lowest allowed.
        min: f32,
        /// Highest allowed.
        max: f32,
    },
}

impl Manifest {
    /// The parameter `name`, if `value` is within its range.
    pub fn check_param(&self, name: &str, value: f32) -> std::result::Result<&Param, ParamError> {
        let param = self.params.iter().find(|p| p.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
            ParamError::Unknown {
                plugin: self.name.clone(),
                name: name.to_owned(),
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            }
        })?;
        if !(param.min..=param.max).contains(&value) {
            return Err(ParamError::OutOfRange {
                name: name.to_owned(),
                value,
                min: param.min,
                max: param.max,
            });
        }
        Ok(param)
    }

    /// Parses and checks a manifest read from a plugin's memory.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(PluginError::Manifest(format!(
                "{} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                bytes.len()
            )));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|error| PluginError::Manifest(format!("not UTF-8: {error}")))?;
        let manifest: Manifest = serde_json::from_str(text)
            .map_err(|error| PluginError::Manifest(format!("not the manifest JSON: {error}")))?;
        manifest.check()?;
        Ok(manifest)
    }

    fn check(&self) -> Result<()> {
        if !is_name(&self.name, "-_", 64) {
            return Err(PluginError::Manifest(format!(
                "name '{}' must be 1 to 64 lower-case letters, digits, '-' or '_'",
                self.name
            )));
        }
        if self.version.is_empty()
            || self.version.len() > 32
            || !self.version.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(PluginError::Manifest(
                "version must be 1 to 32 printable ASCII characters".into(),
            ));
        }
        if self.description.len() > 256 {
            return Err(PluginError::Manifest(
                "description is longer than 256 bytes".into(),
            ));
        }
        let inputs = formats(&self.input_formats, "input_formats")?;
        let outputs = formats(&self.output_formats, "output_formats")?;
        if self.kind != Kind::Converter && (inputs != [Format::F32Le] || outputs != [Format::F32Le])
        {
            return Err(PluginError::Manifest(format!(
                "a {} reads and writes float_le only",
                self.kind.name()
            )));
        }
        range(
            self.rates,
            "rates",
            paravox_pcm::MIN_RATE,
            paravox_pcm::MAX_RATE,
        )?;
        let channels = paravox_engine::MAX_CHANNELS as u32;
        range(self.input_channels, "input_channels", 1, channels)?;
        range(self.output_channels, "output_channels", 1, channels)?;
        match self.kind {
            Kind::Mixer if !(1..=1024).contains(&self.max_inputs) => {
                return Err(PluginError::Manifest("max_inputs must be 1 to 1024".into()));
            }
            Kind::Mixer => {}
            _ if self.max_inputs != 1 => {
                return Err(PluginError::Manifest(
                    "only mixers take more than one input".into(),
                ));
            }
            _ => {}
        }
        if self.params.len() > MAX_PARAMS {
            return Err(PluginError::Manifest(format!(
                "{} parameters, more than the {MAX_PARAMS} allowed",
                self.params.len()
            )));
        }
        for (index, param) in self.params.iter().enumerate() {
            if !is_name(&param.name, "_.-", 32) {
                return Err(PluginError::Manifest(format!(
                    "parameter name '{}' must be 1 to 32 lower-case letters, digits, '_', '.' or '-'",
                    param.name
                )));
            }
            if self.params[..index].iter().any(|p| p.name == param.name) {
                return Err(PluginError::Manifest(format!(
                    "parameter '{}' is declared twice",
                    param.name
                )));
            }
            let ordered = param.min.is_finite()
                && param.max.is_finite()
                && param.min <= param.default
                && param.default <= param.max;
            if !ordered {
                return Err(PluginError::Manifest(format!(
                    "parameter '{}' needs finite min <= default <= max",
                    param.name
                )));
            }
            if param.unit.len() > 16 {
                return Err(PluginError::Manifest(format!(
                    "parameter '{}' has a unit longer than 16 bytes",
                    param.name
                )));
            }
        }
        Ok(())
    }

    /// The index of the parameter called `name`.
    pub fn param_index(&self, name: &str) -> Option<u32> {
        self.params
            .iter()
            .position(|param| param.name == name)
            .map(|index| index as u32)
    }

    /// Why this plugin cannot serve `role` with `setup`, if it cannot.
    pub fn check_setup(&self, role: StageRole, setup: &KernelSetup) -> Result<()> {
        let refuse = |why: String| {
            Err(PluginError::Unsupported(format!(
                "plugin '{}' cannot serve as {role}: {why}",
                self.name
            )))
        };
        let wanted = Kind::for_role(role);
        if self.kind != wanted {
            return refuse(format!(
                "it is a {}, the stage needs a {}",
                self.kind.name(),
                wanted.name()
            ));
        }
        let accepts = |list: &[String], format: Format| {
            list.iter().any(|name| Format::parse(name) == Some(format))
        };
        if !accepts(&self.input_formats, setup.input_format) {
            return refuse(format!("it does not read {}", setup.input_format));
        }
        if !accepts(&self.output_formats, setup.output_format) {
            return refuse(format!("it does not write {}", setup.output_format));
        }
        let within = |value: u32, [low, high]: [u32; 2]| (low..=high).contains(&value);
        if !within(setup.input_rate, self.rates) || !within(setup.output_rate, self.rates) {
            return refuse(format!(
                "{} -> {} Hz is outside its rates {}..={}",
                setup.input_rate, setup.output_rate, self.rates[0], self.rates[1]
            ));
        }
        if !within(setup.input_channels, self.input_channels)
            || !within(setup.output_channels, self.output_channels)
        {
            return refuse(format!(
                "{} -> {} channels is outside what it maps",
                setup.input_channels, setup.output_channels
            ));
        }
        if setup.input_rate != setup.output_rate && self.kind != Kind::Resampler {
            return refuse("only a resampler changes the rate".into());
        }
        if setup.inputs > 1 && self.kind != Kind::Mixer {
            return refuse("only a mixer takes several inputs".into());
        }
        Ok(())
    }

    /// How many inputs this plugin gets for a stage that offers `offered`.
    pub fn inputs_for(&self, offered: u32) -> u32 {
        offered.min(self.max_inputs).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"name":"gain","version":"1.0.0","kind":"effect",
        "input_formats":["float_le"],"output_formats":["float_le"],
        "rates":[8000,192000],"input_channels":[1,18],"output_channels":[1,18],
        "params":[{"name":"volume","min":0,"max":16,"default":1,"unit":"linear"}]}"#;

    #[test]
    fn a_good_manifest_parses() {
        let manifest = Manifest::parse(GOOD.as_bytes()).expect("manifest");
        assert_eq!(manifest.kind, Kind::Effect);
        assert_eq!(manifest.param_index("volume"), Some(0));
    }

    #[test]
    fn bad_manifests_say_why() {
        let cases = [
            (GOOD.replace("\"gain\"", "\"Gain!\""), "name"),
            (
                GOOD.replace("\"effect\"", "\"synth\""),
                "expected one of `converter`",
            ),
            (GOOD.replace("[8000,192000]", "[0,192000]"), "rates"),
            (
                GOOD.replace("\"default\":1", "\"default\":20"),
                "min <= default",
            ),
            (
                GOOD.replace(
                    "\"input_formats\":[\"float_le\"]",
                    "\"input_formats\":[\"s16_le\"]",
                ),
                "float_le only",
            ),
            (
                GOOD.replace("\"kind\"", "\"flavour\":1,\"kind\""),
                "flavour",
            ),
            ("\u{ff}".to_owned(), "JSON"),
        ];
        for (text, fragment) in cases {
            let error = Manifest::parse(text.as_bytes())
                .expect_err("accepted")
                .to_string();
            assert!(error.contains(fragment), "{error} lacks {fragment}");
        }
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(
            Manifest::parse(&huge)
                .unwrap_err()
                .to_string()
                .contains("allowed")
        );
    }
}
