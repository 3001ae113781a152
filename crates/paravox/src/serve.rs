//! `paravox serve`: the daemon.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use paravox_control::{Control, Options};
use paravox_engine::{Engine, Transport};
use tracing::info;

use crate::cli::ServeArgs;
use crate::config::{Config, Overrides, Source};
use crate::{reload, sd_notify, signals};

/// The state directory: `--state-dir`, else `/var/lib/paravox` for root, else
/// `$XDG_STATE_HOME/paravox` (or `~/.local/state/paravox`).
pub fn state_dir(explicit: Option<PathBuf>) -> PathBuf {
    // SAFETY: geteuid has no preconditions.
    if explicit.is_none() && unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/paravox");
    }
    user_state_dir(explicit)
}

/// Desktop mode's state directory: `--state-dir`, else `$XDG_STATE_HOME/paravox` (or
/// `~/.local/state/paravox`), whoever runs it.
fn user_state_dir(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state"))
            })
            .unwrap_or_else(|| PathBuf::from("."))
            .join("paravox")
    })
}

/// Desktop mode's configuration file when `--config` names none:
/// `$XDG_CONFIG_HOME/paravox/paravox.toml` (or `~/.config/…`) if it exists.
fn user_config_file() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .map(|dir| dir.join("paravox/paravox.toml"))
        .filter(|file| file.is_file())
}

/// Whether the desktop's PipeWire runs: its socket (`$PIPEWIRE_REMOTE`, else
/// `$XDG_RUNTIME_DIR/pipewire-0`) exists.
fn pipewire_socket_exists() -> bool {
    use std::os::unix::fs::FileTypeExt;
    let socket = match std::env::var_os("PIPEWIRE_REMOTE") {
        Some(remote) if PathBuf::from(&remote).is_absolute() => PathBuf::from(remote),
        Some(remote) => std::env::var_os("XDG_RUNTIME_DIR").map_or_else(
            || PathBuf::from(&remote),
            |dir| PathBuf::from(dir).join(&remote),
        ),
        None => match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(dir) => PathBuf::from(dir).join("pipewire-0"),
            None => return false,
        },
    };
    std::fs::metadata(socket).is_ok_and(|metadata| metadata.file_type().is_socket())
}

/// The runtime directory (API-made sockets by default): systemd's `$RUNTIME_DIRECTORY`
/// (the unit's `RuntimeDirectory=`), else `/run/paravox` for root, else
/// `$XDG_RUNTIME_DIR/paravox`, else `run/` in the state directory.
pub fn runtime_dir(state_dir: &std::path::Path, user: bool) -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNTIME_DIRECTORY")
        .and_then(|dirs| std::env::split_paths(&dirs).next())
        .filter(|dir| dir.is_absolute())
    {
        return dir;
    }
    // SAFETY: geteuid has no preconditions.
    if !user && unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/run/paravox");
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(|dir| PathBuf::from(dir).join("paravox"))
        .unwrap_or_else(|| state_dir.join("run"))
}

/// Creates `dir` (and its parents) if missing, for the daemon alone unless the umask
/// says otherwise.
fn ensure_dir(dir: &std::path::Path, what: &str) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o770)
        .create(dir)
        .with_context(|| format!("creating the {what} {}", dir.display()))
}

pub fn run(args: ServeArgs) -> Result<()> {
    // First, while the process has one thread: the variables are removed.
    let activated = crate::activation::take();
    let state_dir = if args.user {
        user_state_dir(args.state_dir)
    } else {
        state_dir(args.state_dir)
    };
    let config_file = args
        .config
        .clone()
        .or_else(|| args.user.then(user_config_file).flatten());
    let overrides = Overrides {
        output: args.output,
        input: args.input,
        virtio_sockets: args.virtio_socket,
        virtio_controls: args.virtio_controls,
        activated_sockets: activated
            .iter()
            .map(|socket| (socket.name.clone(), socket.path.clone()))
            .collect(),
    };
    let (config, config_name) = match &config_file {
        Some(path) => (Config::load(path, &state_dir)?, path.display().to_string()),
        None if args.user => {
            // PipeWire when it runs and this build can speak to it.
            let pipewire = pipewire_socket_exists()
                && "pipewire"
                    .parse::<paravox_host_audio::EndpointSpec>()
                    .is_ok();
            info!(pipewire, "desktop mode: the desktop's sound is the default");
            (
                Config::desktop_for(&state_dir, pipewire)?,
                "embedded desktop config".to_owned(),
            )
        }
        None => (
            Config::default_for(&state_dir)?,
            "embedded default config".to_owned(),
        ),
    };
    let declaration = config.declaration(
        &Source {
            name: config_name.clone(),
            text: "",
        },
        &overrides,
    )?;
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let api_files = args
        .api_files
        .clone()
        .unwrap_or_else(|| state_dir.join(paravox_control::endpoint::OUTPUTS_DIR));
    let api_sockets = args
        .api_sockets
        .clone()
        .unwrap_or_else(|| runtime_dir(&state_dir, args.user));
    ensure_dir(&api_files, "directory for API files")?;
    ensure_dir(&api_sockets, "directory for API sockets")?;
    if let Some(dir) = &args.sndif_shm {
        // Here, before Landlock: the rules let the daemon write inside the directory but
        // not create it in a parent they do not cover.
        ensure_dir(dir, "sndif shared-memory directory")?;
    }
    raise_descriptor_limit();
    if !args.no_sandbox {
        // Before any thread starts: Landlock reaches only this thread and its children.
        let mut writable = vec![api_files.clone(), api_sockets.clone()];
        writable.extend(args.sndif_shm.clone());
        writable.extend(args.sandbox_allow.iter().cloned());
        let paths = crate::sandbox::Paths::for_daemon(
            &state_dir,
            config_file.as_deref(),
            &declaration,
            &writable,
        );
        crate::sandbox::restrict_files(&paths)?;
    } else {
        tracing::warn!("--no-sandbox: running without Landlock rules or a seccomp filter");
    }
    let shutdown = signals::block_and_watch();
    let engine = Arc::new(Engine::new());
    let options = Options {
        path_root: Some(api_files),
        socket_root: Some(api_sockets),
        inherited_sockets: Arc::new(crate::activation::by_path(&activated)),
        ..Options::new(&state_dir)
    };
    let control = Arc::new(
        Control::start(engine.clone(), options, declaration).map_err(crate::control_error)?,
    );
    crate::plugin::watch(engine.clone(), state_dir.clone())?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        state_dir = %state_dir.display(),
        config = %config_name,
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
    let mut api_config = paravox_api::ApiConfig::new(&state_dir);
    api_config.listen = args.listen;
    api_config.allowed_hosts = args.allow_host;
    let api = paravox_api::ApiServer::start(api_config, control.clone())
        .with_context(|| format!("starting the API on {}", args.listen))?;
    info!(url = %format!("http://{}/", api.local_addr()), token = %paravox_api::token::path(&state_dir).display(), "API listening");
    // Ready means what systemd's `After=` promises: the API answers and every card serves.
    let notifier = sd_notify::Notifier::from_env();
    if let Some(notifier) = &notifier {
        notifier.send(&format!(
            "READY=1\nSTATUS=serving {} virtio card(s), API on {}",
            virtio_cards(&engine),
            api.local_addr()
        ));
        let watched = Arc::downgrade(&engine);
        // Each ping reads the engine's registry: if its lock ever hangs, so do the pings,
        // and systemd restarts the daemon.
        notifier
            .start_watchdog(move || watched.upgrade().map(|engine| engine.cards()).is_some())
            .context("starting the systemd watchdog thread")?;
    }
    if !args.no_sandbox {
        // Everything is open and listening: from here on the daemon only serves.
        crate::sandbox::restrict_calls()?;
    }
    let running = reload::Running {
        config_path: config_file,
        state_dir: state_dir.clone(),
        overrides,
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
        let status = match running.reload(&control) {
            Ok(summary) if summary.pending.is_empty() => {
                "serving; configuration reloaded".to_owned()
            }
            Ok(summary) => format!(
                "serving; configuration reloaded, {} change(s) not applied (see the log)",
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
    control.close_cards();
    engine.shutdown();
    info!("stopped");
    Ok(())
}

/// How many virtio-snd cards the engine serves.
fn virtio_cards(engine: &Engine) -> usize {
    engine
        .cards()
        .iter()
        .filter(|card| matches!(card.transport(), Transport::Virtio { .. }))
        .count()
}

/// Raises the soft limit of open descriptors to the hard one. Every VM's socket, eventfds
/// and event channels are descriptors, and the usual soft limit (1,024) runs out long
/// before the hard one; running out would break every guest at once, not just the one
/// that asked for more.
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the descriptor limit");
        return;
    }
    if limit.rlim_cur >= limit.rlim_max {
        return;
    }
    let from = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit; raising the soft limit up to the hard one needs
    // no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        info!(
            from,
            to = limit.rlim_cur,
            "raised the open-descriptor limit"
        );
    } else {
        tracing::warn!(error = %std::io::Error::last_os_error(), from, "cannot raise the open-descriptor limit");
    }
}
