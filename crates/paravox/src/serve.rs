//! `paravox serve`: the daemon.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use paravox_engine::{Direction, Engine};
use paravox_virtio_snd::VirtioCard;
use tracing::info;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::{endpoints, reload, sd_notify, signals, usage};

/// The state directory: `--state-dir`, else `/var/lib/paravox` for root, else
/// `$XDG_STATE_HOME/paravox` (or `~/.local/state/paravox`).
pub fn state_dir(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/paravox");
    }
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("paravox")
}

/// Builds the engine's endpoints from the configuration and command-line overrides.
pub fn build_engine(config: &Config, output: Option<&str>, input: Option<&str>) -> Result<Engine> {
    let engine = Engine::new();
    for (direction, list, overridden) in [
        (Direction::Playback, &config.output, output),
        (Direction::Capture, &config.input, input),
    ] {
        for endpoint in list {
            let name = endpoint.name.get_ref();
            if replaced_by_command_line(config, name, direction, overridden) {
                continue;
            }
            endpoints::open_with_fallback(
                &engine,
                name,
                endpoint.spec.get_ref(),
                endpoint.fallback.as_ref().map(|f| f.get_ref().as_str()),
                direction,
            )?;
        }
    }
    for (direction, default, overridden, cli_name) in [
        (
            Direction::Playback,
            &config.defaults.output,
            output,
            "output",
        ),
        (Direction::Capture, &config.defaults.input, input, "input"),
    ] {
        let name = match overridden {
            // A configured endpoint's name, or a spec opened as a new endpoint.
            Some(value) if engine.endpoint(value).is_some() => value.to_owned(),
            Some(spec) => {
                let name = format!("cli-{cli_name}");
                endpoints::open(&engine, &name, spec, direction)
                    .with_context(|| format!("--{cli_name} {spec}"))?;
                name
            }
            None => match default {
                Some(name) => name.get_ref().clone(),
                None => continue,
            },
        };
        engine
            .set_default_endpoint(direction, &name)
            .map_err(|error| usage(format!("--{cli_name}: {error}")))?;
        info!(%direction, endpoint = name, "default endpoint");
    }
    Ok(engine)
}

/// Whether `name` only served as the default of `direction` and the command line
/// replaced it with another endpoint: such an endpoint is not opened, as it would hold a
/// device and a thread for nothing.
pub fn replaced_by_command_line(
    config: &Config,
    name: &str,
    direction: Direction,
    overridden: Option<&str>,
) -> bool {
    overridden.is_some_and(|value| value != name)
        && config.defaults_name(direction).map(String::as_str) == Some(name)
        && !config.is_routed_explicitly(name)
}

pub fn run(args: ServeArgs) -> Result<()> {
    let state_dir = state_dir(args.state_dir);
    let (config, config_text) = match &args.config {
        Some(path) => (Config::load(path, &state_dir)?, path.display().to_string()),
        None => (
            Config::default_for(&state_dir)?,
            "embedded default config".to_owned(),
        ),
    };
    let mut virtio = config.virtio_cards(&crate::config::Source {
        name: config_text,
        text: "",
    })?;
    for (index, socket) in args.virtio_socket.iter().enumerate() {
        let name = socket.file_stem().map_or_else(
            || format!("virtio{index}"),
            |stem| stem.to_string_lossy().into_owned(),
        );
        virtio.push((
            name,
            socket.display().to_string(),
            paravox_virtio_snd::CardTopology {
                controls: args.virtio_controls,
                ..paravox_virtio_snd::CardTopology::quick_start()
            },
        ));
    }
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let shutdown = signals::block_and_watch();
    let engine = Arc::new(build_engine(
        &config,
        args.output.as_deref(),
        args.input.as_deref(),
    )?);
    let mut plugins = crate::dsp::apply(&engine, &config.dsp, &state_dir)?;
    crate::plugin::watch(engine.clone(), state_dir.clone())?;
    let mut cards = Vec::new();
    for (name, socket, topology) in virtio {
        let socket = PathBuf::from(socket);
        if let Some(parent) = socket.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        cards.push(
            VirtioCard::spawn(engine.clone(), &name, &socket, topology)
                .with_context(|| format!("virtio-snd card '{name}' on {}", socket.display()))?,
        );
        crate::dsp::apply_card(&engine, &mut plugins, &name)?;
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        state_dir = %state_dir.display(),
        config = %args.config.as_ref().map_or("embedded default".into(), |p| p.display().to_string()),
        "paravox ready"
    );
    let options = paravox_sndif::BackendOptions {
        domid: args.xen_domid,
    };
    let mut shm_host = None;
    let xen = if args.xen {
        Some(
            paravox_sndif::Backend::start_xen(engine.clone(), options)
                .context("starting the Xen sndif backend (is this dom0 with xenstored running and /dev/xen/* present?)")?,
        )
    } else if let Some(dir) = &args.sndif_shm {
        let host = paravox_sndif::SharedMemoryHost::bind(dir).with_context(|| {
            format!(
                "binding the sndif shared-memory transport in {}",
                dir.display()
            )
        })?;
        let backend = host.start_backend(engine.clone(), options)?;
        info!(dir = %dir.display(), "sndif shared-memory transport listening");
        shm_host = Some(host);
        Some(backend)
    } else {
        None
    };
    let restored =
        paravox_api::restore(&engine, &state_dir).context("restoring the saved state")?;
    let mut api_config = paravox_api::ApiConfig::new(&state_dir);
    api_config.listen = args.listen;
    let api = paravox_api::ApiServer::start(api_config, engine.clone(), restored)
        .with_context(|| format!("starting the API on {}", args.listen))?;
    info!(url = %format!("http://{}/", api.local_addr()), token = %paravox_api::token::path(&state_dir).display(), "API listening");
    // Ready means what systemd's `After=` promises: the API answers and every card serves.
    let notifier = sd_notify::Notifier::from_env();
    if let Some(notifier) = &notifier {
        notifier.send(&format!(
            "READY=1\nSTATUS=serving {} virtio card(s), API on {}",
            cards.len(),
            api.local_addr()
        ));
        let watched = Arc::downgrade(&engine);
        // Each ping reads the engine's registry: if its lock ever hangs, so do the pings,
        // and systemd restarts the daemon.
        notifier
            .start_watchdog(move || watched.upgrade().map(|engine| engine.cards()).is_some())
            .context("starting the systemd watchdog thread")?;
    }
    let mut running = reload::Running {
        config_path: args.config,
        state_dir: state_dir.clone(),
        config,
        output_override: args.output,
        input_override: args.input,
    };
    let signal = loop {
        let signal = shutdown.recv().unwrap_or(libc::SIGTERM);
        if signal != signals::RELOAD {
            break signal;
        }
        info!(
            signal = signals::name(signal),
            "reloading the configuration"
        );
        if let Some(notifier) = &notifier {
            notifier.reloading();
        }
        let status = match running.reload(&engine) {
            Ok(summary) if summary.pending.is_empty() => {
                "serving; configuration reloaded".to_owned()
            }
            Ok(summary) => format!(
                "serving; configuration reloaded, {} change(s) wait for a restart (see the log)",
                summary.pending.len()
            ),
            Err(error) => {
                tracing::error!("reload failed, the running configuration stays: {error:#}");
                "serving; the last reload failed (see the log)".to_owned()
            }
        };
        if let Some(notifier) = &notifier {
            notifier.send(&format!("READY=1\nSTATUS={status}"));
        }
    };
    info!(signal = signals::name(signal), "shutting down");
    if let Some(notifier) = &notifier {
        notifier.send("STOPPING=1\nSTATUS=stopping");
    }
    drop(api);
    // Frontends see Closed before the engine stops.
    drop(xen);
    drop(shm_host);
    drop(cards);
    engine.shutdown();
    info!("stopped");
    Ok(())
}
