//! `systemctl reload` (SIGHUP): reads the configuration file again and applies what can
//! change while VMs play — endpoints (with their mixers) and default routes — and names,
//! in the log, every change that only a restart applies (virtio cards: their vhost-user
//! sockets are live; dsp, mixer and chain settings of what already runs).

use std::path::{Path, PathBuf};

use anyhow::Result;
use paravox_engine::{Direction, Engine};
use tracing::{info, warn};

use crate::config::{Config, EndpointConfig, Source};
use crate::endpoints;

/// What the daemon was started with, kept for the next reload.
#[derive(Debug)]
pub struct Running {
    /// The file to read again; `None` for the embedded default (nothing to reload).
    pub config_path: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// The configuration now in effect.
    pub config: Config,
    /// `--output` / `--input`: the command line outranks the file, on reload too.
    pub output_override: Option<String>,
    pub input_override: Option<String>,
}

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// Changes in the file that were not applied, each saying why and what to do.
    pub pending: Vec<String>,
}

impl Running {
    fn overridden(&self, direction: Direction) -> Option<&str> {
        match direction {
            Direction::Playback => self.output_override.as_deref(),
            Direction::Capture => self.input_override.as_deref(),
        }
    }

    /// Reads the file again and applies it. A file that does not parse or validate
    /// changes nothing: the error says what to fix, and the daemon keeps running.
    pub fn reload(&mut self, engine: &Engine) -> Result<Summary> {
        let Some(path) = self.config_path.clone() else {
            info!("no --config file: the embedded default configuration has nothing to reload");
            return Ok(Summary::default());
        };
        let config = Config::load(&path, &self.state_dir)?;
        let summary = self.apply(engine, config, &path);
        for change in &summary.pending {
            warn!(config = %path.display(), "not applied until paravox restarts: {change}");
        }
        info!(
            config = %path.display(),
            added = ?summary.added,
            replaced = ?summary.replaced,
            removed = ?summary.removed,
            pending = summary.pending.len(),
            "configuration reloaded"
        );
        Ok(summary)
    }

    fn apply(&mut self, engine: &Engine, config: Config, path: &Path) -> Summary {
        let mut summary = Summary::default();
        for direction in [Direction::Playback, Direction::Capture] {
            self.apply_endpoints(engine, &config, direction, &mut summary);
        }
        self.apply_defaults(engine, &config, &mut summary);
        let source = |config: &Config| {
            config
                .virtio_cards(&Source {
                    name: path.display().to_string(),
                    text: "",
                })
                .map(|cards| format!("{cards:?}"))
                .unwrap_or_default()
        };
        if !self.config.dsp.same_settings(&config.dsp) {
            summary.pending.push(
                "dsp, mixer or chain changed: a restart sets streams and mixers up with them \
                 (endpoints opened by this reload already use the new mixer settings)"
                    .to_owned(),
            );
        }
        if source(&self.config) != source(&config) {
            summary.pending.push(
                "the [[virtio]] cards changed: a restart re-creates their vhost-user sockets, \
                 so VMs must reconnect (QEMU does with `reconnect-ms` on its -chardev)"
                    .to_owned(),
            );
        }
        self.config = config;
        summary
    }

    fn apply_endpoints(
        &self,
        engine: &Engine,
        config: &Config,
        direction: Direction,
        summary: &mut Summary,
    ) {
        let old = endpoints_of(&self.config, direction);
        let new = endpoints_of(config, direction);
        let overridden = self.overridden(direction);
        for endpoint in new {
            let name = endpoint.name.get_ref();
            if crate::serve::replaced_by_command_line(config, name, direction, overridden) {
                continue;
            }
            let before = old.iter().find(|e| e.name.get_ref() == name);
            let running = engine.endpoint(name);
            match (before, running) {
                (Some(before), Some(_)) if same_endpoint(before, endpoint) => continue,
                (None, Some(_)) => {
                    summary.pending.push(format!(
                        "endpoint '{name}' was added to the file, but an endpoint of that name \
                         already exists (made through the API): remove it there first"
                    ));
                    continue;
                }
                (_, Some(_)) => {
                    if let Err(error) = engine.remove_endpoint(name) {
                        summary.pending.push(format!(
                            "endpoint '{name}' changed, but it cannot close: {error}"
                        ));
                        continue;
                    }
                    summary.replaced.push(name.clone());
                }
                (_, None) => summary.added.push(name.clone()),
            }
            let opened = endpoints::open_with_fallback(
                engine,
                name,
                endpoint.spec.get_ref(),
                endpoint.fallback.as_ref().map(|f| f.get_ref().as_str()),
                direction,
            );
            match opened {
                Ok(endpoint) => {
                    if let Err(error) =
                        crate::dsp::apply_endpoint(&endpoint, &config.dsp, &self.state_dir)
                    {
                        summary.pending.push(format!(
                            "endpoint '{name}' opened, but its mixer could not be set up, so \
                             it mixes natively: {error:#}"
                        ));
                    }
                }
                Err(error) => {
                    summary.replaced.retain(|n| n != name);
                    summary.added.retain(|n| n != name);
                    summary
                        .pending
                        .push(format!("endpoint '{name}' could not open: {error:#}"));
                }
            }
        }
        for endpoint in old {
            let name = endpoint.name.get_ref();
            if new_names(config, direction).any(|n| n == name) || engine.endpoint(name).is_none() {
                continue;
            }
            match engine.remove_endpoint(name) {
                Ok(()) => summary.removed.push(name.clone()),
                Err(error) => summary.pending.push(format!(
                    "endpoint '{name}' left the file, but it cannot close: {error}"
                )),
            }
        }
    }

    fn apply_defaults(&self, engine: &Engine, config: &Config, summary: &mut Summary) {
        for direction in [Direction::Playback, Direction::Capture] {
            if self.overridden(direction).is_some() {
                continue;
            }
            let Some(name) = config.defaults_name(direction) else {
                continue;
            };
            if engine.default_endpoint(direction).as_ref() == Some(name) {
                continue;
            }
            match engine.set_default_endpoint(direction, name) {
                Ok(()) => info!(%direction, endpoint = name, "default endpoint"),
                Err(error) => summary.pending.push(format!(
                    "the default {direction} endpoint '{name}' is not available: {error}"
                )),
            }
        }
    }
}

fn endpoints_of(config: &Config, direction: Direction) -> &[EndpointConfig] {
    match direction {
        Direction::Playback => &config.output,
        Direction::Capture => &config.input,
    }
}

fn new_names(config: &Config, direction: Direction) -> impl Iterator<Item = &String> {
    endpoints_of(config, direction)
        .iter()
        .map(|e| e.name.get_ref())
}

fn same_endpoint(a: &EndpointConfig, b: &EndpointConfig) -> bool {
    a.spec.get_ref() == b.spec.get_ref()
        && a.fallback.as_ref().map(|f| f.get_ref()) == b.fallback.as_ref().map(|f| f.get_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(dir: &Path, text: &str) -> (Running, Engine) {
        let path = dir.join("paravox.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path, dir).unwrap();
        let engine = crate::serve::build_engine(&config, None, None).unwrap();
        let running = Running {
            config_path: Some(path),
            state_dir: dir.to_owned(),
            config,
            output_override: None,
            input_override: None,
        };
        (running, engine)
    }

    fn specs(engine: &Engine) -> Vec<(String, String)> {
        let mut specs: Vec<_> = engine
            .endpoints()
            .iter()
            .map(|e| (e.name().to_owned(), e.spec().to_owned()))
            .collect();
        specs.sort();
        specs
    }

    #[test]
    fn endpoints_and_defaults_follow_the_file_and_virtio_waits_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut running, engine) = running(
            dir.path(),
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n\
             [[output]]\nname = \"change\"\nspec = \"null\"\n\
             [[output]]\nname = \"drop\"\nspec = \"null\"\n\
             [[input]]\nname = \"mic\"\nspec = \"tone:440\"\n\
             [defaults]\noutput = \"keep\"\ninput = \"mic\"\n",
        );
        std::fs::write(
            running.config_path.as_ref().unwrap(),
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n\
             [[output]]\nname = \"change\"\nspec = \"wav:${state_dir}/change.wav\"\n\
             [[output]]\nname = \"new\"\nspec = \"null\"\n\
             [[input]]\nname = \"mic\"\nspec = \"tone:440\"\n\
             [defaults]\noutput = \"new\"\ninput = \"mic\"\n\
             [[virtio]]\nname = \"vm\"\nsocket = \"${state_dir}/vm.sock\"\n",
        )
        .unwrap();
        let summary = running.reload(&engine).unwrap();
        assert_eq!(summary.added, ["new"]);
        assert_eq!(summary.replaced, ["change"]);
        assert_eq!(summary.removed, ["drop"]);
        assert_eq!(summary.pending.len(), 1, "{:?}", summary.pending);
        assert!(summary.pending[0].contains("[[virtio]]"));
        let change = format!("wav:{}/change.wav", dir.path().display());
        assert_eq!(
            specs(&engine),
            [
                ("change".to_owned(), change),
                ("keep".to_owned(), "null".to_owned()),
                ("mic".to_owned(), "tone:440".to_owned()),
                ("new".to_owned(), "null".to_owned()),
            ]
        );
        assert_eq!(
            engine.default_endpoint(Direction::Playback).as_deref(),
            Some("new")
        );
        engine.shutdown();
    }

    #[test]
    fn endpoints_a_reload_opens_get_their_mixer_and_dsp_changes_wait_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut running, engine) = running(
            dir.path(),
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n[defaults]\noutput = \"keep\"\n",
        );
        std::fs::write(
            running.config_path.as_ref().unwrap(),
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n\
             [[output]]\nname = \"plain\"\nspec = \"null\"\n\
             [[output]]\nname = \"soft\"\nspec = \"null\"\nmixer = \"mix:soft_clip=1\"\n\
             [[output]]\nname = \"native\"\nspec = \"null\"\ndsp = \"native\"\n\
             [defaults]\noutput = \"keep\"\n",
        )
        .unwrap();
        let summary = running.reload(&engine).unwrap();
        assert_eq!(summary.added, ["plain", "soft", "native"]);
        assert_eq!(summary.pending.len(), 1, "{:?}", summary.pending);
        assert!(summary.pending[0].contains("dsp, mixer or chain changed"));
        let mixer = |name: &str| engine.endpoint(name).and_then(|e| e.mixer_name());
        assert_eq!(mixer("plain").as_deref(), Some("mix"));
        assert_eq!(mixer("soft").as_deref(), Some("mix"));
        assert_eq!(
            engine.endpoint("soft").unwrap().mixer_params(),
            [("soft_clip".to_owned(), 1.0)]
        );
        assert_eq!(mixer("native"), None);
        // The same settings written elsewhere in the file are no change.
        std::fs::write(
            running.config_path.as_ref().unwrap(),
            "[defaults]\noutput = \"keep\"\n\
             [[output]]\nname = \"keep\"\nspec = \"null\"\n\
             [[output]]\nname = \"plain\"\nspec = \"null\"\n\
             [[output]]\nname = \"soft\"\nspec = \"null\"\nmixer = \"mix:soft_clip=1\"\n\
             [[output]]\nname = \"native\"\nspec = \"null\"\ndsp = \"native\"\n",
        )
        .unwrap();
        let summary = running.reload(&engine).unwrap();
        assert!(summary.pending.is_empty(), "{:?}", summary.pending);
        engine.shutdown();
    }

    #[test]
    fn a_broken_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut running, engine) = running(
            dir.path(),
            "[[output]]\nname = \"a\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n",
        );
        std::fs::write(
            running.config_path.as_ref().unwrap(),
            "[[output]]\nname = \"a\"\nspec = \"bogus:1\"\n",
        )
        .unwrap();
        let error = running.reload(&engine).unwrap_err();
        assert!(error.to_string().contains("line 3"), "{error}");
        assert_eq!(specs(&engine), [("a".to_owned(), "null".to_owned())]);
        assert_eq!(running.config.output[0].spec.get_ref(), "null");
        engine.shutdown();
    }

    #[test]
    fn the_command_line_default_outranks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut running, engine) = running(
            dir.path(),
            "[[output]]\nname = \"a\"\nspec = \"null\"\n\
             [[output]]\nname = \"b\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n",
        );
        running.output_override = Some("a".to_owned());
        std::fs::write(
            running.config_path.as_ref().unwrap(),
            "[[output]]\nname = \"a\"\nspec = \"null\"\n\
             [[output]]\nname = \"b\"\nspec = \"null\"\n[defaults]\noutput = \"b\"\n",
        )
        .unwrap();
        running.reload(&engine).unwrap();
        assert_eq!(
            engine.default_endpoint(Direction::Playback).as_deref(),
            Some("a")
        );
        engine.shutdown();
    }
}
