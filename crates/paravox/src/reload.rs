//! SIGHUP: reads the configuration file again and hands what it declares to the control
//! layer, which applies every change live (see [`paravox_control`]'s docs for what waits
//! for a restart: a changed virtio card, whose guest must probe it again).

use std::path::PathBuf;

use anyhow::Result;
use paravox_control::{Control, Summary};
use tracing::{info, warn};

use crate::config::{Config, Overrides, Source};

/// What the daemon was started with, kept for the next reload.
#[derive(Debug)]
pub struct Running {
    /// The file to read again; `None` for the embedded default (nothing to reload).
    pub config_path: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// The command line outranks the file, on reload too.
    pub overrides: Overrides,
}

impl Running {
    /// Reads the file again and applies it. A file that does not parse or validate, or
    /// names a plugin that cannot load, changes nothing: the error says what to fix, and
    /// the daemon keeps running.
    pub fn reload(&self, control: &Control) -> Result<Summary> {
        let Some(path) = &self.config_path else {
            info!("no --config file: the embedded default configuration has nothing to reload");
            return Ok(Summary::default());
        };
        let config = Config::load(path, &self.state_dir)?;
        let declaration = config.declaration(
            &Source {
                name: path.display().to_string(),
                text: "",
            },
            &self.overrides,
        )?;
        let summary = control.reload(declaration).map_err(crate::control_error)?;
        for change in &summary.pending {
            let hint = crate::sandbox::hint_for(change);
            warn!(config = %path.display(), "not applied: {change}{hint}");
        }
        info!(
            config = %path.display(),
            added = ?summary.added,
            replaced = ?summary.replaced,
            removed = ?summary.removed,
            updated = ?summary.updated,
            pending = summary.pending.len(),
            "configuration reloaded"
        );
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use paravox_control::Options;
    use paravox_engine::{Direction, Engine};

    use super::*;

    fn running(dir: &Path, text: &str) -> (Running, Arc<Control>) {
        let path = dir.join("paravox.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path, dir).unwrap();
        let source = Source {
            name: "paravox.toml".into(),
            text: "",
        };
        let declaration = config.declaration(&source, &Overrides::default()).unwrap();
        let control =
            Control::start(Arc::new(Engine::new()), Options::new(dir), declaration).unwrap();
        let running = Running {
            config_path: Some(path),
            state_dir: dir.to_owned(),
            overrides: Overrides::default(),
        };
        (running, Arc::new(control))
    }

    fn rewrite(running: &Running, text: &str) {
        std::fs::write(running.config_path.as_ref().unwrap(), text).unwrap();
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

    fn stop(control: Arc<Control>) {
        control.close_cards();
        control.engine().shutdown();
    }

    #[test]
    fn endpoints_defaults_and_new_cards_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (running, control) = running(
            dir.path(),
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n\
             [[output]]\nname = \"change\"\nspec = \"null\"\n\
             [[output]]\nname = \"drop\"\nspec = \"null\"\n\
             [[input]]\nname = \"mic\"\nspec = \"tone:440\"\n\
             [defaults]\noutput = \"keep\"\ninput = \"mic\"\n",
        );
        rewrite(
            &running,
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n\
             [[output]]\nname = \"change\"\nspec = \"wav:${state_dir}/change.wav\"\n\
             [[output]]\nname = \"new\"\nspec = \"null\"\n\
             [[input]]\nname = \"mic\"\nspec = \"tone:440\"\n\
             [defaults]\noutput = \"new\"\ninput = \"mic\"\n\
             [[virtio]]\nname = \"vm\"\nsocket = \"${state_dir}/vm.sock\"\n",
        );
        let summary = running.reload(&control).unwrap();
        assert_eq!(summary.added, ["endpoint 'new'", "card 'vm'"]);
        assert_eq!(summary.replaced, ["endpoint 'change'"]);
        assert_eq!(summary.removed, ["endpoint 'drop'"]);
        assert!(summary.pending.is_empty(), "{:?}", summary.pending);
        let engine = control.engine();
        let change = format!("wav:{}/change.wav", dir.path().display());
        assert_eq!(
            specs(engine),
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
        // The new card serves its socket at once.
        assert!(
            std::os::unix::net::UnixStream::connect(dir.path().join("vm.sock")).is_ok(),
            "the card added by the reload does not listen"
        );
        // Dropping it from the file removes it and its socket.
        rewrite(
            &running,
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n\
             [[output]]\nname = \"change\"\nspec = \"wav:${state_dir}/change.wav\"\n\
             [[output]]\nname = \"new\"\nspec = \"null\"\n\
             [[input]]\nname = \"mic\"\nspec = \"tone:440\"\n\
             [defaults]\noutput = \"new\"\ninput = \"mic\"\n",
        );
        let summary = running.reload(&control).unwrap();
        assert_eq!(summary.removed, ["card 'vm'"]);
        assert!(control.engine().cards().is_empty());
        stop(control);
    }

    #[test]
    fn mixer_dsp_and_chain_changes_apply_live() {
        let dir = tempfile::tempdir().unwrap();
        let (running, control) = running(
            dir.path(),
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n[defaults]\noutput = \"keep\"\n",
        );
        let engine = control.engine().clone();
        let mixer = |name: &str| engine.endpoint(name).and_then(|e| e.mixer_name());
        assert_eq!(mixer("keep").as_deref(), Some("mix"));
        rewrite(
            &running,
            "[[output]]\nname = \"keep\"\nspec = \"null\"\nmixer = \"mix:soft_clip=1\"\n\
             [[output]]\nname = \"native\"\nspec = \"null\"\ndsp = \"native\"\n\
             [defaults]\noutput = \"keep\"\nchain = [\"gain:volume=0.5\"]\n",
        );
        let summary = running.reload(&control).unwrap();
        assert!(summary.pending.is_empty(), "{:?}", summary.pending);
        assert_eq!(summary.added, ["endpoint 'native'"]);
        assert!(
            summary
                .updated
                .contains(&"the mixer of endpoint 'keep'".to_owned()),
            "{:?}",
            summary.updated
        );
        assert_eq!(
            engine.endpoint("keep").unwrap().mixer_params(),
            [("soft_clip".to_owned(), 1.0)]
        );
        assert_eq!(mixer("native"), None);
        let defaults = engine.default_plugins(Direction::Playback);
        assert_eq!(defaults.effects.len(), 1);
        assert_eq!(defaults.effects[0].factory.name(), "gain");
        // Everything native: no converter, no mixer plugin, no effects.
        rewrite(
            &running,
            "[[output]]\nname = \"keep\"\nspec = \"null\"\n[defaults]\noutput = \"keep\"\ndsp = \"native\"\n",
        );
        let summary = running.reload(&control).unwrap();
        assert!(summary.pending.is_empty(), "{:?}", summary.pending);
        assert_eq!(mixer("keep"), None);
        let defaults = engine.default_plugins(Direction::Playback);
        assert!(defaults.convert.is_none() && defaults.effects.is_empty());
        // The same settings again are no change.
        let summary = running.reload(&control).unwrap();
        assert_eq!(summary, Summary::default());
        stop(control);
    }

    #[test]
    fn a_changed_card_waits_for_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (running, control) = running(
            dir.path(),
            "[[output]]\nname = \"a\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n\
             [[virtio]]\nname = \"vm\"\nsocket = \"${state_dir}/vm.sock\"\n",
        );
        let streams = |control: &Control| control.engine().cards()[0].streams().len();
        assert_eq!(streams(&control), 2);
        rewrite(
            &running,
            "[[output]]\nname = \"a\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n\
             [[virtio]]\nname = \"vm\"\nsocket = \"${state_dir}/vm.sock\"\n\
             [[virtio.stream]]\ndirection = \"playback\"\n",
        );
        let summary = running.reload(&control).unwrap();
        assert_eq!(summary.pending.len(), 1, "{:?}", summary.pending);
        assert!(summary.pending[0].contains("card 'vm' changed"));
        assert_eq!(streams(&control), 2);
        // Still pending at the next reload: what runs is compared, not the last file.
        let summary = running.reload(&control).unwrap();
        assert_eq!(summary.pending.len(), 1, "{:?}", summary.pending);
        stop(control);
    }

    #[test]
    fn a_broken_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (running, control) = running(
            dir.path(),
            "[[output]]\nname = \"a\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n",
        );
        for broken in [
            "[[output]]\nname = \"a\"\nspec = \"bogus:1\"\n",
            "[[output]]\nname = \"a\"\nspec = \"wav:${state_dir}/a.wav\"\n[defaults]\nchain = [\"no-such-plugin\"]\n",
        ] {
            rewrite(&running, broken);
            let error = running.reload(&control).unwrap_err().to_string();
            assert!(
                error.contains("line 3") || error.contains("no-such-plugin"),
                "{error}"
            );
            assert_eq!(
                specs(control.engine()),
                [("a".to_owned(), "null".to_owned())]
            );
        }
        stop(control);
    }

    #[test]
    fn the_command_line_default_outranks_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut running, control) = running(
            dir.path(),
            "[[output]]\nname = \"a\"\nspec = \"null\"\n\
             [[output]]\nname = \"b\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n",
        );
        running.overrides.output = Some("a".to_owned());
        rewrite(
            &running,
            "[[output]]\nname = \"a\"\nspec = \"null\"\n\
             [[output]]\nname = \"b\"\nspec = \"null\"\n[defaults]\noutput = \"b\"\n",
        );
        running.reload(&control).unwrap();
        assert_eq!(
            control
                .engine()
                .default_endpoint(Direction::Playback)
                .as_deref(),
            Some("a")
        );
        stop(control);
    }
}
