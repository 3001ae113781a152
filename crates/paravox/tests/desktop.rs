//! Desktop mode (`serve --user`), as the user unit starts it: the XDG directories, the
//! user's own configuration file when there is one, and the desktop's sound otherwise.

mod common;

use std::path::Path;

use common::Daemon;

/// A home with XDG directories of its own and no sound server.
fn home(dir: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
    let runtime = dir.join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    vec![
        ("HOME", dir.join("home")),
        ("XDG_STATE_HOME", dir.join("state")),
        ("XDG_CONFIG_HOME", dir.join("config")),
        ("XDG_RUNTIME_DIR", runtime),
    ]
}

fn start(dir: &Path, env: &[(&'static str, std::path::PathBuf)]) -> Daemon {
    let env: Vec<(&str, &Path)> = env.iter().map(|(k, v)| (*k, v.as_path())).collect();
    let daemon = Daemon::spawn_as_is(dir, &env, &dir.join("state/paravox"), &["--user"]);
    daemon.wait_ready();
    daemon
}

#[test]
fn desktop_mode_keeps_to_the_xdg_directories_and_the_desktops_sound() {
    let dir = tempfile::tempdir().unwrap();
    let env = home(dir.path());
    let daemon = start(dir.path(), &env);
    // State where XDG says, the token with it; the runtime directory for sockets.
    assert!(dir.path().join("state/paravox/token").exists());
    assert!(dir.path().join("run/paravox").is_dir());
    // No PipeWire socket: ALSA's default, which this machine lacks, so the WAV fallback
    // in the state directory.
    let endpoints = daemon.get_json("/api/endpoints");
    let desktop = endpoints
        .as_array()
        .and_then(|list| list.iter().find(|e| e["name"] == "desktop"))
        .unwrap_or_else(|| panic!("no desktop endpoint: {endpoints}"));
    let spec = desktop["spec"].as_str().unwrap_or_default();
    assert!(
        spec == "alsa:default"
            || spec
                == format!(
                    "wav:{}",
                    dir.path().join("state/paravox/output.wav").display()
                ),
        "{desktop}"
    );
    assert_eq!(desktop["default"], true, "{desktop}");
    let log = daemon.stop();
    assert!(log.contains("pipewire=false"), "{log}");
    assert!(log.contains("embedded desktop config"), "{log}");
}

#[test]
fn desktop_mode_reads_the_users_own_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let env = home(dir.path());
    let config = dir.path().join("config/paravox");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("paravox.toml"),
        "[[output]]\nname = \"mine\"\nspec = \"null\"\n[defaults]\noutput = \"mine\"\n",
    )
    .unwrap();
    let daemon = start(dir.path(), &env);
    let endpoints = daemon.get_json("/api/endpoints");
    assert!(
        endpoints.as_array().is_some_and(|list| list
            .iter()
            .any(|e| e["name"] == "mine" && e["default"] == true)),
        "{endpoints}"
    );
    let log = daemon.stop();
    assert!(log.contains("paravox.toml"), "{log}");
}
