//! The configuration file and the API are two doors to one control layer: the same change
//! made through either (the file edited and reloaded, or a request) leaves the engine in
//! the same state, and the same bad value is refused with the same words, changing
//! nothing.

use std::path::PathBuf;
use std::sync::Arc;

use paravox::config::{Config, Overrides, Source};
use paravox_api::client::Client;
use paravox_api::model::{
    CardRequest, ChainStage, DirectionName, EndpointRequest, StreamPatch, StreamTopologyRequest,
};
use paravox_api::{ApiConfig, ApiServer};
use paravox_control::{Control, Options};
use paravox_engine::{Direction, Engine};
use tempfile::TempDir;

/// What every daemon of this test starts from: a sink, a tone and a card with a playback
/// and a capture stream, native conversion (the effect plugins are what is compared).
const BASE: &str = "\
[[output]]
name = \"sink\"
spec = \"null\"

[[input]]
name = \"mic\"
spec = \"tone:440\"

[defaults]
output = \"sink\"
input = \"mic\"
dsp = \"native\"

[[virtio]]
name = \"vm\"
socket = \"${state_dir}/vm.sock\"
[[virtio.stream]]
direction = \"playback\"
[[virtio.stream]]
direction = \"capture\"
";

/// A daemon made of the real control layer and API, started from `BASE`.
struct Daemon {
    dir: TempDir,
    control: Arc<Control>,
    client: Client,
    _api: ApiServer,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = parse(dir.path(), BASE).expect("base config");
        let declaration = declare(&config).expect("declaration");
        let engine = Arc::new(Engine::new());
        let control = Arc::new(
            Control::start(engine, Options::new(dir.path()), declaration).expect("control"),
        );
        let mut api_config = ApiConfig::new(dir.path());
        api_config.listen = "127.0.0.1:0".parse().expect("addr");
        let api = ApiServer::start(api_config, control.clone()).expect("api");
        let client = Client::from_state_dir(&format!("http://{}", api.local_addr()), dir.path())
            .expect("client");
        Daemon {
            dir,
            control,
            client,
            _api: api,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` (BASE with additions) as the file and reloads it, as SIGHUP does.
    fn reload(&self, text: &str) -> Result<(), String> {
        let config = parse(self.dir.path(), text).map_err(|error| error.to_string())?;
        let declaration = declare(&config).map_err(|error| error.to_string())?;
        let summary = self
            .control
            .reload(declaration)
            .map_err(|error| error.to_string())?;
        match summary.pending.as_slice() {
            [] => Ok(()),
            pending => Err(pending.join("; ")),
        }
    }

    fn engine(&self) -> &Engine {
        self.control.engine()
    }

    /// The id of stream `index` of card `card`.
    fn stream_id(&self, card: &str, index: usize) -> u32 {
        let card = self
            .engine()
            .cards()
            .into_iter()
            .find(|c| c.name() == card)
            .expect("card");
        card.streams()[index].id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.control.close_cards();
        self.control.engine().shutdown();
    }
}

fn parse(dir: &std::path::Path, text: &str) -> anyhow::Result<Config> {
    Config::parse(
        &Source {
            name: "paravox.toml".into(),
            text,
        },
        dir,
    )
}

fn declare(config: &Config) -> anyhow::Result<paravox_control::Declaration> {
    config.declaration(
        &Source {
            name: "paravox.toml".into(),
            text: "",
        },
        &Overrides::default(),
    )
}

/// What a user can see of the engine: endpoints with their mixers and defaults, cards
/// with their streams' constraints, routes and plugin stages.
fn snapshot(engine: &Engine) -> String {
    let mut lines = Vec::new();
    let mut endpoints = engine.endpoints();
    endpoints.sort_by(|a, b| a.name().cmp(b.name()));
    for endpoint in endpoints {
        lines.push(format!(
            "endpoint {} {} {} mixer {:?} {:?}",
            endpoint.name(),
            endpoint.direction(),
            endpoint.spec(),
            endpoint.mixer_name(),
            endpoint.mixer_params()
        ));
    }
    for direction in [Direction::Playback, Direction::Capture] {
        lines.push(format!(
            "default {direction} {:?}",
            engine.default_endpoint(direction)
        ));
    }
    let mut cards = engine.cards();
    cards.sort_by(|a, b| a.name().cmp(b.name()));
    for card in cards {
        lines.push(format!("card {}", card.name()));
        for stream in card.streams() {
            let plugins = stream
                .plugins()
                .unwrap_or_else(|| engine.default_plugins(stream.direction()));
            let stages: Vec<String> = plugins
                .stages()
                .map(|(role, factory)| format!("{role:?}:{}", factory.name()))
                .collect();
            let effects: Vec<_> = plugins.effects.iter().map(|e| &e.params).collect();
            lines.push(format!(
                "  stream {} {} {:?} route {:?} plugins {stages:?} {effects:?}",
                stream.name(),
                stream.direction(),
                stream.constraints(),
                stream.route()
            ));
        }
    }
    lines.join("\n")
}

/// The message of an API refusal, without the part that says where in the request it
/// was (`streams[0]: `, `stage 0: `), which the file says as a line number instead.
fn api_refusal(error: paravox_api::Error) -> String {
    let paravox_api::Error::Api { status, detail, .. } = error else {
        panic!("not a refusal: {error}");
    };
    assert!(
        (400..500).contains(&status),
        "a bad value got {status}: {detail}"
    );
    for prefix in ["streams[", "stage "] {
        if let Some(rest) = detail.strip_prefix(prefix)
            && let Some((_, message)) = rest.split_once("]: ").or_else(|| rest.split_once(": "))
        {
            return message.to_owned();
        }
    }
    detail
}

fn playback(route: Option<&str>) -> StreamTopologyRequest {
    StreamTopologyRequest {
        name: None,
        direction: DirectionName::Playback,
        route: route.map(str::to_owned),
        formats: None,
        rates: None,
        channels: None,
        xrun_events: None,
    }
}

/// One change, written both ways.
struct Change {
    what: &'static str,
    /// Appended to BASE.
    file: String,
    api: fn(&Daemon) -> Result<(), paravox_api::Error>,
}

fn card_through_api(
    daemon: &Daemon,
    stream: StreamTopologyRequest,
) -> Result<(), paravox_api::Error> {
    daemon
        .client
        .create_card(&CardRequest {
            name: "vm2".into(),
            socket: daemon.path("vm2.sock").display().to_string(),
            streams: vec![
                stream,
                StreamTopologyRequest {
                    direction: DirectionName::Capture,
                    ..playback(None)
                },
            ],
            controls: None,
            budget: None,
        })
        .map(drop)
}

fn card_in_file(stream_lines: &str) -> String {
    format!(
        "[[virtio]]\nname = \"vm2\"\nsocket = \"${{state_dir}}/vm2.sock\"\n\
         [[virtio.stream]]\ndirection = \"playback\"\n{stream_lines}\n\
         [[virtio.stream]]\ndirection = \"capture\"\n"
    )
}

/// BASE with `chain` on its card's playback stream.
fn base_with_chain(chain: &str) -> String {
    BASE.replacen(
        "[[virtio.stream]]\ndirection = \"playback\"\n",
        &format!("[[virtio.stream]]\ndirection = \"playback\"\nchain = [{chain}]\n"),
        1,
    )
}

fn chain_through_api(daemon: &Daemon, plugin: &str, volume: f32) -> Result<(), paravox_api::Error> {
    let id = daemon.stream_id("vm", 0);
    let patch = StreamPatch {
        chain: Some(vec![ChainStage {
            plugin: plugin.into(),
            params: [("volume".to_owned(), volume)].into(),
            bypass: false,
        }]),
        ..StreamPatch::default()
    };
    daemon.client.patch(id, &patch).map(drop)
}

fn endpoint_through_api(daemon: &Daemon, name: &str, spec: &str) -> Result<(), paravox_api::Error> {
    daemon
        .client
        .create_endpoint(&EndpointRequest {
            name: name.into(),
            direction: DirectionName::Playback,
            spec: spec.into(),
        })
        .map(drop)
}

#[test]
fn a_change_through_the_file_or_the_api_gives_the_same_engine() {
    let changes = [
        Change {
            what: "a new playback endpoint",
            file: format!("{BASE}[[output]]\nname = \"spare\"\nspec = \"null\"\n"),
            api: |daemon| endpoint_through_api(daemon, "spare", "null"),
        },
        Change {
            what: "a new card whose playback stream is narrowed and routed",
            file: format!(
                "{BASE}{}",
                card_in_file(
                    "route = \"sink\"\nformats = [\"s16_le\"]\nrates = [48000]\nchannels = [2, 2]"
                )
            ),
            api: |daemon| {
                card_through_api(
                    daemon,
                    StreamTopologyRequest {
                        formats: Some(vec!["s16_le".into()]),
                        rates: Some(vec![48000]),
                        channels: Some(vec![2, 2]),
                        ..playback(Some("sink"))
                    },
                )
            },
        },
        Change {
            what: "an effect chain on a stream of a declared card",
            file: base_with_chain("\"gain:volume=0.5\""),
            api: |daemon| chain_through_api(daemon, "gain", 0.5),
        },
    ];
    for change in changes {
        let by_file = Daemon::start();
        let by_api = Daemon::start();
        assert_eq!(
            snapshot(by_file.engine()),
            snapshot(by_api.engine()),
            "the two daemons start alike"
        );
        let before = snapshot(by_file.engine());
        by_file
            .reload(&change.file)
            .unwrap_or_else(|error| panic!("{}: the reload failed: {error}", change.what));
        (change.api)(&by_api)
            .unwrap_or_else(|error| panic!("{}: the API refused: {error}", change.what));
        let after = snapshot(by_file.engine());
        assert_ne!(before, after, "{}: nothing changed", change.what);
        assert_eq!(after, snapshot(by_api.engine()), "{}", change.what);
    }
}

/// One bad value, written both ways.
struct Refusal {
    what: &'static str,
    file: String,
    api: fn(&Daemon) -> Result<(), paravox_api::Error>,
}

#[test]
fn a_bad_value_through_the_file_or_the_api_is_refused_in_the_same_words() {
    let refusals = [
        Refusal {
            what: "an endpoint spec of no known kind",
            file: format!("{BASE}[[output]]\nname = \"x\"\nspec = \"bogus:1\"\n"),
            api: |daemon| endpoint_through_api(daemon, "x", "bogus:1"),
        },
        Refusal {
            what: "a capture spec for playback",
            file: format!("{BASE}[[output]]\nname = \"x\"\nspec = \"tone:440\"\n"),
            api: |daemon| endpoint_through_api(daemon, "x", "tone:440"),
        },
        Refusal {
            what: "an endpoint name with a space",
            file: format!("{BASE}[[output]]\nname = \"a b\"\nspec = \"null\"\n"),
            api: |daemon| endpoint_through_api(daemon, "a b", "null"),
        },
        Refusal {
            what: "a format virtio-snd cannot carry",
            file: format!("{BASE}{}", card_in_file("formats = [\"mpeg\"]")),
            api: |daemon| {
                card_through_api(
                    daemon,
                    StreamTopologyRequest {
                        formats: Some(vec!["mpeg".into()]),
                        ..playback(None)
                    },
                )
            },
        },
        Refusal {
            what: "channels the wrong way round",
            file: format!("{BASE}{}", card_in_file("channels = [2, 1]")),
            api: |daemon| {
                card_through_api(
                    daemon,
                    StreamTopologyRequest {
                        channels: Some(vec![2, 1]),
                        ..playback(None)
                    },
                )
            },
        },
        Refusal {
            what: "a rate virtio-snd has no code for",
            file: format!("{BASE}{}", card_in_file("rates = [44101]")),
            api: |daemon| {
                card_through_api(
                    daemon,
                    StreamTopologyRequest {
                        rates: Some(vec![44101]),
                        ..playback(None)
                    },
                )
            },
        },
        Refusal {
            what: "a route to no endpoint",
            file: format!("{BASE}{}", card_in_file("route = \"nowhere\"")),
            api: |daemon| card_through_api(daemon, playback(Some("nowhere"))),
        },
        Refusal {
            what: "a route to a capture endpoint",
            file: format!("{BASE}{}", card_in_file("route = \"mic\"")),
            api: |daemon| card_through_api(daemon, playback(Some("mic"))),
        },
        Refusal {
            what: "a chain naming no plugin",
            file: base_with_chain("\"no-such-plugin:volume=1\""),
            api: |daemon| chain_through_api(daemon, "no-such-plugin", 1.0),
        },
        Refusal {
            what: "a chain parameter out of range",
            file: base_with_chain("\"gain:volume=1000\""),
            api: |daemon| chain_through_api(daemon, "gain", 1000.0),
        },
        Refusal {
            what: "a mixer plugin in a chain",
            file: base_with_chain("\"mix:volume=1\""),
            api: |daemon| chain_through_api(daemon, "mix", 1.0),
        },
    ];
    let daemon = Daemon::start();
    let before = snapshot(daemon.engine());
    for refusal in refusals {
        let message = api_refusal(
            (refusal.api)(&daemon).expect_err(&format!("{}: the API accepted it", refusal.what)),
        );
        let from_file = daemon
            .reload(&refusal.file)
            .expect_err(&format!("{}: the reload accepted it", refusal.what));
        assert!(
            from_file.starts_with("paravox.toml line "),
            "{}: the file's error does not say where: {from_file}",
            refusal.what
        );
        assert!(
            from_file.ends_with(&message),
            "{}: the file says '{from_file}', the API '{message}'",
            refusal.what
        );
        assert_eq!(
            snapshot(daemon.engine()),
            before,
            "{}: a refused change changed the engine",
            refusal.what
        );
    }
}
