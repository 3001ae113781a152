//! The configuration file (TOML) and the embedded default.
//!
//! ```toml
//! [[output]]                         # playback endpoints
//! name = "speakers"
//! spec = "alsa:default"              # ENDPOINT spec
//! fallback = "wav:/var/lib/paravox/output.wav"   # used when spec cannot be opened
//!
//! [[input]]                          # capture endpoints
//! name = "mic"
//! spec = "tone:440"
//!
//! [defaults]                         # where streams without a route go
//! output = "speakers"
//! input = "mic"
//! dsp = "wasm"                       # the default; "native": no plugins for conversion and mixing
//! chain = ["gain:volume=0.5"]        # effect plugins on every playback stream
//! ```
//!
//! `dsp` can also be set per `[[output]]` (its mixing), per `[[virtio]]` card and per
//! `[[virtio.stream]]` (their format conversion); `chain` per playback
//! `[[virtio.stream]]`; `mixer` per `[[output]]` (`mixer = "mix:soft_clip=1"`). A chain or
//! mixer entry is `NAME[:param=value,...]`, NAME a shipped plugin or one installed in
//! `STATE_DIR/plugins` (`paravox plugin add`); see [`paravox_control::dsp`].
//!
//! In `spec` and `fallback`, `${state_dir}` stands for the state directory. Unknown keys
//! are errors, and every error names the line and what is allowed. Values are checked by
//! the control layer, the same checks the API's requests go through, so a bad value reads
//! the same whichever door it came in by; the file becomes a
//! [`Declaration`](paravox_control::Declaration) (see [`Config::declaration`]).

use std::path::{Path, PathBuf};

use anyhow::Result;
use paravox_control::dsp::{CardDsp, ChainEntry, Dsp, DspPlan, StreamDsp};
use paravox_control::model::{BudgetRequest, CardRequest, DirectionName, StreamTopologyRequest};
use paravox_control::{ControlError, Declaration, DeclaredEndpoint, card, endpoint};
use paravox_engine::{Budget, Direction};
use serde::Deserialize;
use toml::Spanned;

use crate::usage;

/// The configuration used when no file is given: ALSA `default` when it opens, else a WAV
/// file in the state directory (playback) or silence-free tone-less null input.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The desktop mode's configuration (`serve --user` without a file), before the specs
/// are chosen; see [`Config::desktop_for`].
pub const DESKTOP_CONFIG: &str = include_str!("desktop.toml");

/// A parsed, validated configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Playback endpoints.
    #[serde(default)]
    pub output: Vec<EndpointConfig>,
    /// Capture endpoints.
    #[serde(default)]
    pub input: Vec<EndpointConfig>,
    /// Default routes.
    #[serde(default)]
    pub defaults: Defaults,
    /// virtio-snd cards, one vhost-user socket each.
    #[serde(default)]
    pub virtio: Vec<VirtioConfig>,
    /// What every card's guest may make the daemon hold, unless the card has a budget of
    /// its own (fields as in the API's `BudgetRequest`).
    pub budget: Option<Spanned<BudgetRequest>>,
    /// `dsp` and `chain`, checked and resolved to lines for later messages.
    #[serde(skip)]
    pub dsp: DspPlan,
}

/// A virtio-snd card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtioConfig {
    /// Card name.
    pub name: Spanned<String>,
    /// vhost-user socket path the VMM connects to.
    pub socket: Spanned<String>,
    /// Streams in virtio stream-id order; none: one playback and one capture stream.
    #[serde(default)]
    pub stream: Vec<VirtioStreamConfig>,
    /// Offer volume and mute controls (default false: QEMU carries them only with
    /// `controls=on`, and offered without it the guest's driver fails to probe).
    pub controls: Option<bool>,
    /// Where this card's streams convert formats: "wasm" or "native".
    pub dsp: Option<Spanned<String>>,
    /// This card's own budget, laid over `[budget]`.
    pub budget: Option<Spanned<BudgetRequest>>,
}

/// One stream of a virtio-snd card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtioStreamConfig {
    /// Stream name.
    pub name: Option<String>,
    /// "playback" or "capture".
    pub direction: Spanned<String>,
    /// Endpoint name (default: the default endpoint of its direction).
    pub route: Option<Spanned<String>>,
    /// Sample formats offered (XenStore-style names); default: every one paravox converts.
    pub formats: Option<Spanned<Vec<String>>>,
    /// Rates offered; default: every virtio rate.
    pub rates: Option<Spanned<Vec<u32>>>,
    /// `[min, max]` channels; default `[1, 2]`.
    pub channels: Option<Spanned<Vec<u32>>>,
    /// Offer PCM_XRUN events (default true).
    pub xrun_events: Option<bool>,
    /// Where this stream converts formats: "wasm" or "native".
    pub dsp: Option<Spanned<String>>,
    /// Effect plugins after the chain (playback), replacing `defaults.chain`.
    pub chain: Option<Spanned<Vec<String>>>,
}

/// One endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Unique name streams are routed by.
    pub name: Spanned<String>,
    /// ENDPOINT spec.
    pub spec: Spanned<String>,
    /// ENDPOINT spec used when `spec` cannot be opened.
    #[serde(default)]
    pub fallback: Option<Spanned<String>>,
    /// Where a playback endpoint mixes its streams: "wasm" or "native".
    pub dsp: Option<Spanned<String>>,
    /// A playback endpoint's mixer plugin, `NAME[:param=value,...]`.
    pub mixer: Option<Spanned<String>>,
}

/// Where unrouted streams go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Name of the default playback endpoint.
    pub output: Option<Spanned<String>>,
    /// Name of the default capture endpoint.
    pub input: Option<Spanned<String>>,
    /// Where conversion and mixing run unless overridden: "wasm" (default) or "native".
    pub dsp: Option<Spanned<String>>,
    /// Effect plugins on every playback stream without a chain of its own.
    pub chain: Option<Spanned<Vec<String>>>,
}

/// Where a configuration came from, for messages.
#[derive(Debug, Clone)]
pub struct Source<'a> {
    pub name: String,
    pub text: &'a str,
}

impl Source<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn error_at<T>(&self, value: &Spanned<T>, message: impl std::fmt::Display) -> anyhow::Error {
        self.error_at_span(value.span(), message)
    }

    fn error_at_span(
        &self,
        span: std::ops::Range<usize>,
        message: impl std::fmt::Display,
    ) -> anyhow::Error {
        usage(format!(
            "{} line {}: {message}",
            self.name,
            self.line_of(span.start)
        ))
    }
}

impl Config {
    /// Parses and validates `text`; `state_dir` replaces `${state_dir}`.
    pub fn parse(source: &Source<'_>, state_dir: &Path) -> Result<Config> {
        let mut config: Config = toml::from_str(source.text)
            .map_err(|error| usage(format!("{}: {}", source.name, error.to_string().trim_end())))?;
        let state = state_dir.display().to_string();
        for card in config.virtio.iter_mut() {
            expand(&mut card.socket, &state);
        }
        for endpoint in config.output.iter_mut().chain(config.input.iter_mut()) {
            expand(&mut endpoint.spec, &state);
            if let Some(fallback) = endpoint.fallback.as_mut() {
                expand(fallback, &state);
            }
        }
        config.validate(source)?;
        config.dsp = config.dsp_plan(source)?;
        Ok(config)
    }

    /// Checks every `dsp` and `chain` and resolves them, with the line each came from.
    fn dsp_plan(&self, source: &Source<'_>) -> Result<DspPlan> {
        let dsp = |value: &Option<Spanned<String>>, key: &str| -> Result<Option<Dsp>> {
            value
                .as_ref()
                .map(|value| {
                    Dsp::parse(value.get_ref()).ok_or_else(|| {
                        source.error_at(
                            value,
                            format!(
                                "{key} = '{}' must be \"wasm\" or \"native\"",
                                value.get_ref()
                            ),
                        )
                    })
                })
                .transpose()
        };
        let chain = |value: &Option<Spanned<Vec<String>>>,
                     key: &str|
         -> Result<Option<Vec<ChainEntry>>> {
            value
                .as_ref()
                .map(|value| {
                    let place = format!(
                        "{} line {}",
                        source.name,
                        source.line_of(value.span().start)
                    );
                    value
                        .get_ref()
                        .iter()
                        .map(|spec| {
                            ChainEntry::parse(spec, &format!("{place}: {key} entry '{spec}'"))
                                .map_err(|reason| {
                                    source
                                        .error_at(value, format!("{key} entry '{spec}': {reason}"))
                                })
                        })
                        .collect()
                })
                .transpose()
        };
        if let Some(value) = &self.defaults.chain {
            paravox_control::chain::check_shape(Direction::Playback, value.get_ref().len())
                .map_err(|error| source.error_at(value, error))?;
        }
        let default = dsp(&self.defaults.dsp, "defaults.dsp")?;
        let mut plan = DspPlan {
            default: default.unwrap_or_default(),
            explicit: default.is_some(),
            chain: chain(&self.defaults.chain, "defaults.chain")?.unwrap_or_default(),
            ..DspPlan::default()
        };
        for endpoint in &self.output {
            let mixing = dsp(&endpoint.dsp, "dsp")?;
            if let Some(mixing) = mixing {
                plan.endpoints
                    .insert(endpoint.name.get_ref().clone(), mixing);
            }
            if let Some(value) = &endpoint.mixer {
                if mixing == Some(Dsp::Native) {
                    return Err(source.error_at(
                        value,
                        "mixer names a plugin, but dsp = \"native\" on the same [[output]] asks for the native mixer: keep one",
                    ));
                }
                let whence = format!(
                    "{} line {}: mixer '{}'",
                    source.name,
                    source.line_of(value.span().start),
                    value.get_ref()
                );
                let entry = ChainEntry::parse(value.get_ref(), &whence).map_err(|reason| {
                    source.error_at(value, format!("mixer '{}': {reason}", value.get_ref()))
                })?;
                plan.mixers.insert(endpoint.name.get_ref().clone(), entry);
            }
        }
        for endpoint in &self.input {
            let what = match (&endpoint.dsp, &endpoint.mixer) {
                (Some(value), _) => Some((value, "dsp")),
                (None, Some(value)) => Some((value, "mixer")),
                (None, None) => None,
            };
            if let Some((value, key)) = what {
                return Err(source.error_at(
                    value,
                    format!(
                        "{key} on an [[input]] has nothing to choose: only [[output]] endpoints mix"
                    ),
                ));
            }
        }
        for card in &self.virtio {
            let mut settings = CardDsp {
                dsp: dsp(&card.dsp, "dsp")?,
                ..CardDsp::default()
            };
            for (index, stream) in card.stream.iter().enumerate() {
                let own_chain = chain(&stream.chain, "chain")?;
                if let Some(value) = &stream.chain {
                    let direction = match stream.direction.get_ref().as_str() {
                        "capture" => Direction::Capture,
                        _ => Direction::Playback,
                    };
                    paravox_control::chain::check_shape(direction, value.get_ref().len())
                        .map_err(|error| source.error_at(value, error))?;
                }
                let name = stream
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("stream{index}"));
                settings.streams.insert(
                    name,
                    StreamDsp {
                        dsp: dsp(&stream.dsp, "dsp")?,
                        chain: own_chain,
                    },
                );
            }
            plan.cards.insert(card.name.get_ref().clone(), settings);
        }
        Ok(plan)
    }

    /// Reads a file.
    pub fn load(path: &Path, state_dir: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| usage(format!("cannot read config {}: {error}", path.display())))?;
        Config::parse(
            &Source {
                name: path.display().to_string(),
                text: &text,
            },
            state_dir,
        )
    }

    /// The embedded default.
    pub fn default_for(state_dir: &Path) -> Result<Config> {
        Config::parse(
            &Source {
                name: "embedded default config".into(),
                text: DEFAULT_CONFIG,
            },
            state_dir,
        )
    }

    /// The desktop mode's configuration: the desktop's PipeWire when `pipewire` (its socket
    /// exists), a node per guest stream named after its VM, falling back to ALSA's
    /// `default`; else ALSA's `default`, falling back to
    /// a WAV file in the state directory (playback) or silence (capture).
    pub fn desktop_for(state_dir: &Path, pipewire: bool) -> Result<Config> {
        let (output, output_fallback, input, input_fallback) = if pipewire {
            (
                "pipewire,mode=stream",
                "alsa:default",
                "pipewire,mode=stream",
                "alsa:default",
            )
        } else {
            (
                "alsa:default",
                "wav:${state_dir}/output.wav",
                "alsa:default",
                "null",
            )
        };
        let text = DESKTOP_CONFIG
            .replace("@OUTPUT@", output)
            .replace("@OUTPUT_FALLBACK@", output_fallback)
            .replace("@INPUT@", input)
            .replace("@INPUT_FALLBACK@", input_fallback);
        Config::parse(
            &Source {
                name: "embedded desktop config".into(),
                text: &text,
            },
            state_dir,
        )
    }

    /// The name of the default endpoint of `direction`.
    pub fn defaults_name(&self, direction: Direction) -> Option<&String> {
        match direction {
            Direction::Playback => self.defaults.output.as_ref(),
            Direction::Capture => self.defaults.input.as_ref(),
        }
        .map(|name| name.get_ref())
    }

    /// Whether a virtio stream routes to `endpoint` by name.
    pub fn is_routed_explicitly(&self, endpoint: &str) -> bool {
        self.virtio
            .iter()
            .flat_map(|card| &card.stream)
            .any(|stream| {
                stream
                    .route
                    .as_ref()
                    .is_some_and(|route| route.get_ref() == endpoint)
            })
    }

    /// The virtio cards as requests, checked as the API checks `POST /api/cards`.
    /// `[budget]` laid over the built-in default, checked.
    pub fn default_budget(&self, source: &Source<'_>) -> Result<Budget> {
        let Some(budget) = &self.budget else {
            return Ok(Budget::default());
        };
        paravox_control::budget::resolve(budget.get_ref(), Budget::default())
            .map_err(|error| source.error_at(budget, error))
    }

    pub fn virtio_cards(
        &self,
        source: &Source<'_>,
        default_budget: Budget,
    ) -> Result<Vec<CardRequest>> {
        let endpoints = |name: &str| {
            let found = |list: &[EndpointConfig]| list.iter().any(|e| e.name.get_ref() == name);
            if found(&self.output) {
                Some(Direction::Playback)
            } else if found(&self.input) {
                Some(Direction::Capture)
            } else {
                None
            }
        };
        let mut cards: Vec<CardRequest> = Vec::new();
        for card in &self.virtio {
            let name = card.name.get_ref();
            card::check_name(name).map_err(|error| source.error_at(&card.name, error))?;
            if cards.iter().any(|other| other.name == *name) {
                return Err(
                    source.error_at(&card.name, format!("card name '{name}' is used twice"))
                );
            }
            if card.socket.get_ref().is_empty() {
                return Err(source.error_at(&card.socket, "socket must be a path"));
            }
            let socket = std::path::absolute(card.socket.get_ref())
                .map_err(|error| source.error_at(&card.socket, error))?;
            let mut streams = Vec::new();
            for (index, stream) in card.stream.iter().enumerate() {
                let request = stream.request(source)?;
                card::stream_topology(&endpoints, index, &request)
                    .map_err(|error| source.error_at_span(stream.span_of(&error), error))?;
                streams.push(request);
            }
            let request = CardRequest {
                name: name.clone(),
                socket: socket.display().to_string(),
                streams,
                controls: card.controls,
                budget: card.budget.as_ref().map(|budget| budget.get_ref().clone()),
            };
            let error_at = |error: ControlError| match &card.budget {
                Some(budget) if error.message().starts_with("budget") => {
                    source.error_at(budget, error)
                }
                _ => source.error_at(&card.name, error),
            };
            card::topology(&endpoints, &request, default_budget).map_err(error_at)?;
            cards.push(request);
        }
        Ok(cards)
    }

    /// What this file and the command line's `overrides` declare, for the control layer.
    pub fn declaration(&self, source: &Source<'_>, overrides: &Overrides) -> Result<Declaration> {
        let budget = self
            .budget
            .as_ref()
            .map(|budget| budget.get_ref().clone())
            .unwrap_or_default();
        let default_budget = self.default_budget(source)?;
        let mut declaration = Declaration {
            cards: self.virtio_cards(source, default_budget)?,
            dsp: self.dsp.clone(),
            budget,
            ..Declaration::default()
        };
        for (direction, list) in [
            (Direction::Playback, &self.output),
            (Direction::Capture, &self.input),
        ] {
            let overridden = overrides.endpoint(direction);
            for endpoint in list {
                let name = endpoint.name.get_ref();
                if self.replaced_by_command_line(name, direction, overridden) {
                    continue;
                }
                declaration.endpoints.push(DeclaredEndpoint {
                    name: name.clone(),
                    direction,
                    spec: endpoint.spec.get_ref().clone(),
                    fallback: endpoint.fallback.as_ref().map(|f| f.get_ref().clone()),
                });
            }
            let default = match overridden {
                // A configured endpoint's name, or a spec opened as a new endpoint.
                Some(value) if list.iter().any(|e| e.name.get_ref() == value) => {
                    Some(value.to_owned())
                }
                Some(spec) => {
                    let flag = overrides.flag(direction);
                    let name = format!("cli-{flag}");
                    endpoint::parse_spec(spec, direction)
                        .map_err(|error| usage(format!("--{flag} {spec}: {error}")))?;
                    declaration.endpoints.push(DeclaredEndpoint {
                        name: name.clone(),
                        direction,
                        spec: spec.to_owned(),
                        fallback: None,
                    });
                    Some(name)
                }
                None => self.defaults_name(direction).cloned(),
            };
            match direction {
                Direction::Playback => declaration.default_output = default,
                Direction::Capture => declaration.default_input = default,
            }
        }
        for (index, socket) in overrides.virtio_sockets.iter().enumerate() {
            let name = socket.file_stem().map_or_else(
                || format!("virtio{index}"),
                |stem| stem.to_string_lossy().into_owned(),
            );
            let socket = std::path::absolute(socket)
                .map_err(|error| usage(format!("--virtio-socket {}: {error}", socket.display())))?;
            declaration.cards.push(CardRequest {
                name,
                socket: socket.display().to_string(),
                streams: Vec::new(),
                controls: Some(overrides.virtio_controls),
                budget: None,
            });
        }
        for (name, socket) in &overrides.activated_sockets {
            let claimed = declaration
                .cards
                .iter()
                .any(|card| Path::new(&card.socket) == socket.as_path());
            if claimed {
                continue;
            }
            let mut name = name.clone();
            // A name a card of the file has already is made unique.
            while declaration.cards.iter().any(|card| card.name == name) {
                name.push('_');
            }
            declaration.cards.push(CardRequest {
                name,
                socket: socket.display().to_string(),
                streams: Vec::new(),
                controls: Some(overrides.virtio_controls),
                budget: None,
            });
        }
        Ok(declaration)
    }

    /// Whether `name` only served as the default of `direction` and the command line
    /// replaced it with another endpoint: such an endpoint is not opened, as it would hold
    /// a device and a thread for nothing.
    fn replaced_by_command_line(
        &self,
        name: &str,
        direction: Direction,
        overridden: Option<&str>,
    ) -> bool {
        overridden.is_some_and(|value| value != name)
            && self.defaults_name(direction).map(String::as_str) == Some(name)
            && !self.is_routed_explicitly(name)
    }

    fn validate(&self, source: &Source<'_>) -> Result<()> {
        let mut names: Vec<&str> = Vec::new();
        for (direction, list) in [
            (Direction::Playback, &self.output),
            (Direction::Capture, &self.input),
        ] {
            for endpoint in list {
                let name = endpoint.name.get_ref();
                endpoint::check_name(name)
                    .map_err(|error| source.error_at(&endpoint.name, error))?;
                if names.contains(&name.as_str()) {
                    return Err(source.error_at(
                        &endpoint.name,
                        format!("endpoint name '{name}' is used twice"),
                    ));
                }
                names.push(name);
                for spec in std::iter::once(&endpoint.spec).chain(endpoint.fallback.as_ref()) {
                    endpoint::parse_spec(spec.get_ref(), direction)
                        .map_err(|error| source.error_at(spec, error))?;
                }
            }
        }
        for (default, list, key) in [
            (&self.defaults.output, &self.output, "output"),
            (&self.defaults.input, &self.input, "input"),
        ] {
            if let Some(name) = default
                && !list.iter().any(|e| e.name.get_ref() == name.get_ref())
            {
                let known: Vec<_> = list.iter().map(|e| e.name.get_ref().as_str()).collect();
                return Err(source.error_at(
                    name,
                    format!(
                        "defaults.{key} = '{}' names no [[{key}]] endpoint (known: {})",
                        name.get_ref(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
        self.virtio_cards(source, self.default_budget(source)?)?;
        Ok(())
    }
}

impl VirtioStreamConfig {
    /// This stream as the API's request type.
    fn request(&self, source: &Source<'_>) -> Result<StreamTopologyRequest> {
        let direction = match self.direction.get_ref().as_str() {
            "playback" => DirectionName::Playback,
            "capture" => DirectionName::Capture,
            other => {
                return Err(source.error_at(
                    &self.direction,
                    format!("direction '{other}' must be \"playback\" or \"capture\""),
                ));
            }
        };
        Ok(StreamTopologyRequest {
            name: self.name.clone(),
            direction,
            route: self.route.as_ref().map(|route| route.get_ref().clone()),
            formats: self
                .formats
                .as_ref()
                .map(|formats| formats.get_ref().clone()),
            rates: self.rates.as_ref().map(|rates| rates.get_ref().clone()),
            channels: self
                .channels
                .as_ref()
                .map(|channels| channels.get_ref().clone()),
            xrun_events: self.xrun_events,
        })
    }

    /// Where in the file the field `error` is about was written.
    fn span_of(&self, error: &ControlError) -> std::ops::Range<usize> {
        let span = match error.field() {
            Some("route") => self.route.as_ref().map(Spanned::span),
            Some("formats") => self.formats.as_ref().map(Spanned::span),
            Some("rates") => self.rates.as_ref().map(Spanned::span),
            Some("channels") => self.channels.as_ref().map(Spanned::span),
            _ => None,
        };
        span.unwrap_or_else(|| self.direction.span())
    }
}

/// What the command line sets beside the file: `--output`, `--input` (an endpoint's name
/// or a spec opened as `cli-output` / `cli-input`) and `--virtio-socket`.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--output`.
    pub output: Option<String>,
    /// `--input`.
    pub input: Option<String>,
    /// `--virtio-socket`, each a card with one playback and one capture stream.
    pub virtio_sockets: Vec<PathBuf>,
    /// `--virtio-controls`.
    pub virtio_controls: bool,
    /// Sockets the service manager passed, as (card name, path): each one no card of
    /// the file or `--virtio-socket` names is served like a `--virtio-socket` card.
    pub activated_sockets: Vec<(String, PathBuf)>,
}

impl Overrides {
    fn endpoint(&self, direction: Direction) -> Option<&str> {
        match direction {
            Direction::Playback => self.output.as_deref(),
            Direction::Capture => self.input.as_deref(),
        }
    }

    fn flag(&self, direction: Direction) -> &'static str {
        match direction {
            Direction::Playback => "output",
            Direction::Capture => "input",
        }
    }
}

fn expand(value: &mut Spanned<String>, state_dir: &str) {
    let span = value.span();
    let text = value.get_ref().replace("${state_dir}", state_dir);
    *value = Spanned::new(span, text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(
            &Source {
                name: "test.toml".into(),
                text,
            },
            Path::new("/state"),
        )
    }

    fn message(text: &str) -> String {
        let error = parse(text).expect_err("accepted a bad config");
        assert!(
            error.downcast_ref::<crate::UsageError>().is_some(),
            "not a usage error"
        );
        error.to_string()
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let config = Config::default_for(Path::new("/var/lib/paravox")).expect("default config");
        assert!(
            config.output[0]
                .fallback
                .as_ref()
                .unwrap()
                .get_ref()
                .contains("/var/lib/paravox/")
        );
        assert!(config.defaults.output.is_some() && config.defaults.input.is_some());
    }

    #[test]
    fn budgets_are_declared_for_every_card_and_per_card() {
        let config = parse(
            "[budget]\nstream_buffer_bytes = 65536\ncard_buffer_bytes = 1048576\n\
             [[virtio]]\nname = \"vm\"\nsocket = \"/s\"\nbudget = { streams = 2 }\n",
        )
        .expect("config");
        let source = Source {
            name: "test.toml".into(),
            text: "",
        };
        let declaration = config
            .declaration(&source, &Overrides::default())
            .expect("declaration");
        assert_eq!(declaration.budget.stream_buffer_bytes, Some(65536));
        assert_eq!(
            config.default_budget(&source).expect("budget"),
            Budget {
                stream_buffer_bytes: 65536,
                card_buffer_bytes: 1 << 20,
                ..Budget::default()
            }
        );
        assert_eq!(
            declaration.cards[0].budget.as_ref().and_then(|b| b.streams),
            Some(2)
        );
    }

    #[test]
    fn a_full_config_parses() {
        let config = parse(
            "[[output]]\nname = \"a\"\nspec = \"wav:${state_dir}/a.wav,rate=44100\"\n\
             [[input]]\nname = \"b\"\nspec = \"tone:440\"\n[defaults]\noutput = \"a\"\ninput = \"b\"\n",
        )
        .expect("config");
        assert_eq!(
            config.output[0].spec.get_ref(),
            "wav:/state/a.wav,rate=44100"
        );
    }

    #[test]
    fn virtio_cards_parse_with_their_streams() {
        let config = parse(
            "[[output]]\nname = \"a\"\nspec = \"null\"\n\
             [[virtio]]\nname = \"vm\"\nsocket = \"${state_dir}/vm.sock\"\n\
             [[virtio.stream]]\ndirection = \"playback\"\nroute = \"a\"\nformats = [\"s16_le\", \"float_le\"]\nrates = [48000]\nchannels = [2, 6]\n\
             [[virtio.stream]]\ndirection = \"capture\"\n",
        )
        .expect("config");
        let source = Source {
            name: "t".into(),
            text: "",
        };
        let cards = config
            .virtio_cards(&source, Budget::default())
            .expect("cards");
        assert_eq!(cards[0].socket, "/state/vm.sock");
        let streams = &cards[0].streams;
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].route.as_deref(), Some("a"));
        assert_eq!(streams[0].channels, Some(vec![2, 6]));
        assert_eq!(
            streams[0].formats,
            Some(vec!["s16_le".to_owned(), "float_le".to_owned()])
        );
    }

    #[test]
    fn dsp_and_chains_parse_with_their_overrides() {
        let config = parse(
            "[[output]]\nname = \"a\"\nspec = \"null\"\ndsp = \"native\"\n\
             [[output]]\nname = \"b\"\nspec = \"null\"\n\
             [defaults]\ndsp = \"wasm\"\nchain = [\"gain:volume=0.5,mute=0\"]\n\
             [[virtio]]\nname = \"vm\"\nsocket = \"/s\"\ndsp = \"native\"\n\
             [[virtio.stream]]\nname = \"music\"\ndirection = \"playback\"\nchain = [\"my-effect\", \"gain\"]\n\
             [[virtio.stream]]\ndirection = \"capture\"\ndsp = \"wasm\"\n",
        )
        .expect("config");
        let plan = &config.dsp;
        assert_eq!(plan.default, Dsp::Wasm);
        assert_eq!(plan.chain.len(), 1);
        assert_eq!(plan.chain[0].name, "gain");
        assert_eq!(
            plan.chain[0].params,
            vec![("volume".to_owned(), 0.5), ("mute".to_owned(), 0.0)]
        );
        assert!(plan.chain[0].whence.contains("test.toml line 10"));
        assert_eq!(plan.endpoints.get("a"), Some(&Dsp::Native));
        assert_eq!(plan.endpoints.get("b"), None);
        let card = &plan.cards["vm"];
        assert_eq!(card.dsp, Some(Dsp::Native));
        let music = &card.streams["music"];
        assert_eq!(music.dsp, None);
        let names: Vec<_> = music
            .chain
            .as_ref()
            .expect("own chain")
            .iter()
            .map(|entry| entry.name.as_str())
            .collect();
        assert_eq!(names, ["my-effect", "gain"]);
        assert_eq!(card.streams["stream1"].dsp, Some(Dsp::Wasm));
        assert!(card.streams["stream1"].chain.is_none());
    }

    #[test]
    fn without_dsp_conversion_and_mixing_default_to_the_plugins() {
        let config = Config::default_for(Path::new("/state")).expect("default config");
        assert_eq!(config.dsp.default, Dsp::Wasm);
        assert!(!config.dsp.explicit);
        assert!(config.dsp.chain.is_empty() && config.dsp.endpoints.is_empty());
        assert!(config.dsp.mixers.is_empty());
        let native = parse("[defaults]\ndsp = \"native\"\n").expect("config");
        assert_eq!(native.dsp.default, Dsp::Native);
        assert!(native.dsp.explicit);
    }

    #[test]
    fn a_mixer_names_its_plugin_and_parameters() {
        let config = parse(
            "[[output]]\nname = \"a\"\nspec = \"null\"\nmixer = \"mix:soft_clip=1,knee=0.85\"\n",
        )
        .expect("config");
        let mixer = &config.dsp.mixers["a"];
        assert_eq!(mixer.name, "mix");
        assert_eq!(
            mixer.params,
            vec![("soft_clip".to_owned(), 1.0), ("knee".to_owned(), 0.85)]
        );
        assert!(
            mixer.whence.contains("test.toml line 4"),
            "{}",
            mixer.whence
        );
        for (text, expected) in [
            (
                "[[output]]\nname = \"a\"\nspec = \"null\"\ndsp = \"native\"\nmixer = \"mix\"\n",
                "keep one",
            ),
            (
                "[[input]]\nname = \"a\"\nspec = \"null\"\nmixer = \"mix\"\n",
                "only [[output]] endpoints mix",
            ),
            (
                "[[output]]\nname = \"a\"\nspec = \"null\"\nmixer = \"mix:knee\"\n",
                "'knee' is not param=value",
            ),
        ] {
            let error = parse(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn errors_name_the_line_and_what_is_allowed() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[[output]]\nname = \"a\"\nspec = \"bogus:1\"\n",
                &["line 3", "bogus", "wav:PATH"],
            ),
            (
                "[[output]]\nname = \"a\"\nspec = \"tone:440\"\n",
                &["line 3", "playback"],
            ),
            (
                "[[input]]\nname = \"a\"\nspec = \"wav:/x.wav\"\n",
                &["line 3", "capture"],
            ),
            (
                "[[output]]\nname = \"a\"\nspec = \"null\"\nvolume = 3\n",
                &["line 4", "volume"],
            ),
            (
                "[[output]]\nname = \"a\"\nspec = \"null\"\n[[output]]\nname = \"a\"\nspec = \"null\"\n",
                &["line 5", "twice"],
            ),
            (
                "[defaults]\noutput = \"x\"\n",
                &["line 2", "names no [[output]]"],
            ),
            (
                "[[output]]\nname = \"a b\"\nspec = \"null\"\n",
                &["line 2", "letters"],
            ),
            (
                "[[output]]\nname = \"a\"\nspec = \"wav:/x.wav,rate=banana\"\n",
                &["line 3", "rate"],
            ),
            ("[[output]]\nname = \"a\"\n", &["spec"]),
            ("[[output]\n", &["line 1"]),
            (
                "[budget]\nstreams = 0\n",
                &["line 1", "budget streams must be 1..=64"],
            ),
            ("[budget]\nframes = 3\n", &["frames"]),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\nbudget = { card_buffer_bytes = 10 }\n",
                &["line 4", "card_buffer_bytes"],
            ),
            ("frobnicate = 1\n", &["frobnicate"]),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n[[virtio.stream]]\ndirection = \"sideways\"\n",
                &["line 5", "playback"],
            ),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n[[virtio.stream]]\ndirection = \"playback\"\nformats = [\"mpeg\"]\n",
                &["line 6", "mpeg"],
            ),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n[[virtio.stream]]\ndirection = \"playback\"\nchannels = [2, 1]\n",
                &["line 6", "channels"],
            ),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n[[virtio.stream]]\ndirection = \"playback\"\nroute = \"nowhere\"\n",
                &["line 6", "nowhere"],
            ),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n[[virtio.stream]]\ndirection = \"playback\"\nrates = [44101]\n",
                &["line 2", "rate"],
            ),
            ("[[virtio]]\nname = \"vm\"\n", &["socket"]),
            (
                "[defaults]\ndsp = \"gpu\"\n",
                &["line 2", "defaults.dsp", "gpu", "\"wasm\" or \"native\""],
            ),
            (
                "[[output]]\nname = \"a\"\nspec = \"null\"\ndsp = \"fast\"\n",
                &["line 4", "dsp", "fast"],
            ),
            (
                "[[input]]\nname = \"a\"\nspec = \"null\"\ndsp = \"wasm\"\n",
                &["line 4", "[[input]]", "mix"],
            ),
            (
                "[defaults]\nchain = [\"gain:volume\"]\n",
                &[
                    "line 2",
                    "defaults.chain entry 'gain:volume'",
                    "param=value",
                ],
            ),
            (
                "[defaults]\nchain = [\"gain:volume=loud\"]\n",
                &["line 2", "'loud' is not a number"],
            ),
            (
                "[defaults]\nchain = [\":volume=1\"]\n",
                &["line 2", "name is missing"],
            ),
            ("[defaults]\nchain = \"gain\"\n", &["chain", "sequence"]),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n[[virtio.stream]]\ndirection = \"capture\"\nchain = [\"gain\"]\n",
                &["line 6", "playback streams only"],
            ),
            (
                "[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n[[virtio.stream]]\ndirection = \"playback\"\ndsp = \"both\"\n",
                &["line 6", "dsp = 'both'"],
            ),
        ];
        for (text, expected) in cases {
            let message = message(text);
            for fragment in *expected {
                assert!(
                    message.contains(fragment),
                    "{text:?}: '{message}' lacks '{fragment}'"
                );
            }
        }
    }
}
