//! What an operator installs from `deploy/`: every example checked the way it is used
//! (config files through `paravox check-config`, the libvirt domain and the `xl` card read
//! as libvirt and the sndif backend read them), the systemd unit through
//! `systemd-analyze verify`, and the daemon's side of the unit: sd_notify and SIGHUP.

use std::collections::BTreeMap;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn paravox() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_paravox"));
    command
        .env("RUST_LOG", "warn")
        .env_remove("PARAVOX_STATE_DIR")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("paravox runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(deploy().join("examples").join(name)).expect("example exists")
}

fn example_configs() -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(deploy().join("examples"))
        .expect("deploy/examples")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    configs.sort();
    configs
}

#[test]
fn every_example_config_passes_check_config() {
    let configs = example_configs();
    assert!(configs.len() >= 2, "examples: {configs:?}");
    let state = tempfile::tempdir().unwrap();
    for config in &configs {
        let output = run(paravox()
            .arg("check-config")
            .arg(config)
            .arg("--state-dir")
            .arg(state.path()));
        assert!(
            output.status.success(),
            "{}: {}",
            config.display(),
            text(&output.stderr)
        );
        assert!(text(&output.stdout).contains("valid"));
    }
    // check-config starts nothing: no state directory appears.
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn check_config_exits_2_naming_the_line_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[output]]\nname = \"a\"\nspec = \"null\"\n\n[[virtio]]\nname = \"vm\"\nsocket = \"/s\"\n\
         [[virtio.stream]]\ndirection = \"sideways\"\n",
    )
    .unwrap();
    let output = run(paravox().arg("check-config").arg(&config));
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    assert!(
        message.contains("line 9") && message.contains("\"playback\" or \"capture\""),
        "{message}"
    );
    let output = run(paravox()
        .arg("check-config")
        .arg(dir.path().join("missing.toml")));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("missing.toml"));
}

#[test]
fn the_full_example_sets_every_config_key() {
    let config: toml::Table = example("paravox.toml").parse().expect("TOML");
    let first = |key: &str| -> toml::Table {
        config[key].as_array().expect("array")[0]
            .as_table()
            .expect("table")
            .clone()
    };
    let has_all = |table: &toml::Table, keys: &[&str]| {
        for key in keys {
            assert!(table.contains_key(*key), "paravox.toml lacks {key}");
        }
    };
    has_all(
        &first("output"),
        &["name", "spec", "fallback", "dsp", "mixer"],
    );
    has_all(&first("input"), &["name", "spec", "fallback"]);
    has_all(
        config["defaults"].as_table().expect("[defaults]"),
        &["output", "input", "dsp", "chain"],
    );
    let virtio = first("virtio");
    has_all(&virtio, &["name", "socket", "controls", "dsp", "stream"]);
    let stream = virtio["stream"].as_array().expect("streams")[0]
        .as_table()
        .expect("stream")
        .clone();
    has_all(
        &stream,
        &[
            "name",
            "direction",
            "route",
            "formats",
            "rates",
            "channels",
            "xrun_events",
            "dsp",
            "chain",
        ],
    );
}

/// `systemd-analyze verify` on the unit, with `/usr/bin/paravox` pointed at the binary
/// under test (verify insists the program exists) and `MANPATH` at the generated pages
/// (it checks the `Documentation=` man pages too).
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(deploy().join("systemd/paravox.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ExecStart=/usr/bin/paravox serve --config /etc/paravox/paravox.toml",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "User=paravox",
        "SupplementaryGroups=audio",
        "StateDirectory=paravox",
        "RuntimeDirectory=paravox",
        "DeviceAllow=char-alsa rw",
        "DeviceAllow=/dev/xen/gntdev rw",
        "DeviceAllow=/dev/xen/evtchn rw",
        "DeviceAllow=/dev/xen/xenbus rw",
    ] {
        assert!(
            unit.lines().any(|l| l == line),
            "paravox.service lacks {line}"
        );
    }
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    if analyze.is_err() {
        assert!(
            std::env::var_os("PARAVOX_REQUIRE_SYSTEMD").is_none(),
            "PARAVOX_REQUIRE_SYSTEMD is set but systemd-analyze is missing"
        );
        eprintln!(
            "systemd-analyze not installed (apt-get install systemd): unit not verified; \
             `cargo xtask test` installs it"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let docs = run(paravox().arg("generate-docs").arg(dir.path()));
    assert!(docs.status.success(), "{}", text(&docs.stderr));
    let binary = env!("CARGO_BIN_EXE_paravox");
    let testable = dir.path().join("paravox.service");
    std::fs::write(&testable, unit.replace("/usr/bin/paravox", binary)).unwrap();
    // The socket template, as the instance a user enables (its Service= is the unit
    // above, found beside it).
    let socket = std::fs::read_to_string(deploy().join("systemd/paravox-vm@.socket")).unwrap();
    for line in [
        "ListenStream=/run/paravox-vm/%i.sock",
        "FileDescriptorName=%i",
        "Service=paravox.service",
    ] {
        assert!(
            socket.lines().any(|l| l == line),
            "paravox-vm@.socket lacks {line}"
        );
    }
    let instance = dir.path().join("paravox-vm@desk.socket");
    std::fs::write(&instance, &socket).unwrap();
    let output = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(&testable)
        .arg(&instance)
        .env("MANPATH", dir.path().join("man"))
        .env("SYSTEMD_LOG_LEVEL", "notice"));
    let complaints = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
}

/// The desktop mode's user units, as a user manager would load them.
#[test]
fn the_user_units_pass_systemd_analyze_verify() {
    let service = std::fs::read_to_string(deploy().join("systemd/user/paravox.service")).unwrap();
    let socket = std::fs::read_to_string(deploy().join("systemd/user/paravox-vm@.socket")).unwrap();
    for (unit, text, line) in [
        (
            "paravox.service",
            &service,
            "ExecStart=/usr/bin/paravox serve --user",
        ),
        ("paravox.service", &service, "Type=notify"),
        ("paravox.service", &service, "WantedBy=default.target"),
        (
            "paravox-vm@.socket",
            &socket,
            "ListenStream=%t/paravox-vm/%i.sock",
        ),
        ("paravox-vm@.socket", &socket, "Service=paravox.service"),
    ] {
        assert!(text.lines().any(|l| l == line), "user {unit} lacks {line}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("PARAVOX_REQUIRE_SYSTEMD").is_none(),
            "PARAVOX_REQUIRE_SYSTEMD is set but systemd-analyze is missing"
        );
        eprintln!("systemd-analyze not installed: user units not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = dir.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let testable = dir.path().join("paravox.service");
    std::fs::write(
        &testable,
        service.replace("/usr/bin/paravox", env!("CARGO_BIN_EXE_paravox")),
    )
    .unwrap();
    let instance = dir.path().join("paravox-vm@desk.socket");
    std::fs::write(&instance, &socket).unwrap();
    let output = run(Command::new("systemd-analyze")
        .args(["--user", "--man=no", "verify"])
        .arg(&testable)
        .arg(&instance)
        .env("XDG_RUNTIME_DIR", &runtime)
        .env("SYSTEMD_LOG_LEVEL", "notice"));
    let complaints = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "systemd-analyze --user verify: {complaints}"
    );
}

#[test]
fn generated_docs_cover_every_subcommand_and_shell() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(paravox().arg("generate-docs").arg(dir.path()));
    assert!(output.status.success(), "{}", text(&output.stderr));
    for page in [
        "paravox.1",
        "paravox-serve.1",
        "paravox-check-config.1",
        "paravox-ctl-route.1",
    ] {
        let roff = std::fs::read_to_string(dir.path().join("man/man1").join(page)).unwrap();
        assert!(roff.starts_with(".ie") || roff.contains(".TH"), "{page}");
    }
    let serve = std::fs::read_to_string(dir.path().join("man/man1/paravox-serve.1")).unwrap();
    assert!(
        serve.contains("virtio\\-socket"),
        "serve page lacks its options"
    );
    assert!(!dir.path().join("man/man1/paravox-generate-docs.1").exists());
    for (file, needle) in [
        ("paravox.bash", "check-config"),
        ("_paravox", "check-config"),
        ("paravox.fish", "check-config"),
    ] {
        let script = std::fs::read_to_string(dir.path().join("completions").join(file)).unwrap();
        assert!(script.contains(needle), "{file} lacks {needle}");
    }
}

#[test]
fn the_libvirt_example_shares_memory_and_adds_the_vhost_user_device() {
    let xml = example("libvirt-domain.xml");
    let document = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let domain = document.root_element();
    assert_eq!(domain.tag_name().name(), "domain");
    let backing = child(domain, "memoryBacking");
    assert_eq!(child(backing, "source").attribute("type"), Some("memfd"));
    assert_eq!(child(backing, "access").attribute("mode"), Some("shared"));
    let qemu_ns = "http://libvirt.org/schemas/domain/qemu/1.0";
    let commandline = domain
        .children()
        .find(|c| c.tag_name().name() == "commandline" && c.tag_name().namespace() == Some(qemu_ns))
        .expect("<qemu:commandline>");
    let args: Vec<&str> = commandline
        .children()
        .filter(|c| c.tag_name().name() == "arg")
        .filter_map(|c| c.attribute("value"))
        .collect();
    let chardev = option_after(&args, "-chardev");
    let device = option_after(&args, "-device");
    assert_eq!(chardev.get("socket"), Some(&""));
    assert_eq!(device.get("vhost-user-snd-pci"), Some(&""));
    assert_eq!(device.get("chardev"), chardev.get("id"));
    assert_eq!(device.get("controls"), Some(&"on"));
    // The socket is the one the example configuration serves.
    let config: toml::Table = example("paravox.toml").parse().unwrap();
    let sockets: Vec<&str> = config["virtio"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|card| card["socket"].as_str())
        .collect();
    assert!(sockets.contains(&chardev["path"]), "{sockets:?}");
}

fn child<'a, 'input>(node: roxmltree::Node<'a, 'input>, name: &str) -> roxmltree::Node<'a, 'input> {
    node.children()
        .find(|c| c.tag_name().name() == name)
        .unwrap_or_else(|| panic!("<{name}> missing"))
}

/// The `key=value` options of the argument after `flag` (a bare word maps to "").
fn option_after<'a>(args: &[&'a str], flag: &str) -> BTreeMap<&'a str, &'a str> {
    let at = args.iter().position(|a| *a == flag).expect("flag present");
    args[at + 1]
        .split(',')
        .map(|part| part.split_once('=').unwrap_or((part, "")))
        .collect()
}

/// The XenStore nodes `xl` writes for the first card of a `vsnd = [[...]]` line:
/// card-level keys in the frontend directory, each PCM in `N/`, each stream in `N/M/`,
/// `;`-separated lists as `,`-separated values. The rings a frontend would publish are
/// filled in, as the backend reads them too.
fn xenstore_of_vsnd(xl_cfg: &str, frontend: &str) -> BTreeMap<String, String> {
    let line = xl_cfg
        .lines()
        .find(|line| line.trim_start().starts_with("vsnd"))
        .expect("a vsnd line");
    let items: Vec<&str> = line.split('\'').skip(1).step_by(2).collect();
    let mut nodes = BTreeMap::new();
    let (mut pcm, mut stream) = (-1i32, -1i32);
    for item in items {
        let mut parts = item.split(',').map(str::trim);
        let directory = match parts.next() {
            Some("CARD") => frontend.to_owned(),
            Some("PCM") => {
                pcm += 1;
                stream = -1;
                format!("{frontend}/{pcm}")
            }
            Some("STREAM") => {
                stream += 1;
                let directory = format!("{frontend}/{pcm}/{stream}");
                for (ring, value) in [
                    ("ring-ref", "8"),
                    ("event-channel", "9"),
                    ("evt-ring-ref", "10"),
                    ("evt-event-channel", "11"),
                ] {
                    nodes.insert(format!("{directory}/{ring}"), value.to_owned());
                }
                directory
            }
            other => panic!("unknown vsnd item {other:?}"),
        };
        nodes.insert(directory.clone(), String::new());
        for part in parts {
            let (key, value) = part.split_once('=').expect("key=value");
            let value = match key {
                "type" => value.to_lowercase(),
                _ => value.replace(';', ","),
            };
            nodes.insert(format!("{directory}/{key}"), value);
        }
    }
    nodes
}

#[test]
fn the_xl_vsnd_example_is_a_card_the_backend_accepts_and_routes() {
    let frontend = "/local/domain/1/device/vsnd/0";
    let nodes = xenstore_of_vsnd(&example("xl.cfg"), frontend);
    let card = paravox_sndif::config::parse_card(&nodes, frontend).expect("sndif accepts it");
    assert_eq!(card.short_name.as_deref(), Some("paravox"));
    let streams: Vec<_> = card.streams().collect();
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].direction, paravox_engine::Direction::Playback);
    assert_eq!(streams[1].direction, paravox_engine::Direction::Capture);
    let rates: Vec<u32> = streams[0].hw.rates.iter().collect();
    assert_eq!(rates, [44100, 48000]);
    // Each unique-id routes to an endpoint of the example configuration.
    let config: toml::Table = example("paravox.toml").parse().unwrap();
    for (stream, key) in streams.iter().zip(["output", "input"]) {
        let hint =
            paravox_sndif::route::RouteHint::parse(stream.unique_id.as_deref().expect("unique-id"))
                .expect("a routing hint");
        let names: Vec<&str> = config[key]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(names.contains(&hint.device()), "{hint:?} not in {names:?}");
    }
}

/// Receives the next notification, waiting up to `limit`.
fn notification(socket: &UnixDatagram, limit: Duration) -> String {
    socket.set_read_timeout(Some(limit)).unwrap();
    let mut buffer = [0u8; 1024];
    let length = socket.recv(&mut buffer).expect("a notification in time");
    text(&buffer[..length])
}

/// Receives notifications until one contains `wanted`, skipping watchdog pings.
fn wait_for(socket: &UnixDatagram, wanted: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {wanted} notification");
        let message = notification(socket, left);
        if message.contains(wanted) {
            return message;
        }
    }
}

#[test]
fn serve_notifies_systemd_pings_the_watchdog_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let config = dir.path().join("paravox.toml");
    std::fs::write(
        &config,
        "[[output]]\nname = \"a\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n",
    )
    .unwrap();
    let mut child = paravox()
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ready = wait_for(&notify, "READY=1");
    assert!(ready.contains("STATUS=serving"), "{ready}");
    wait_for(&notify, "WATCHDOG=1");
    wait_for(&notify, "WATCHDOG=1");

    std::fs::write(
        &config,
        "[[output]]\nname = \"a\"\nspec = \"null\"\n[[output]]\nname = \"b\"\nspec = \"null\"\n\
         [defaults]\noutput = \"b\"\n[[virtio]]\nname = \"vm\"\nsocket = \"${state_dir}/vm.sock\"\n",
    )
    .unwrap();
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let reloading = wait_for(&notify, "RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let reloaded = wait_for(&notify, "READY=1");
    assert!(
        reloaded.contains("STATUS=serving; configuration reloaded\n")
            || reloaded.ends_with("STATUS=serving; configuration reloaded"),
        "{reloaded}"
    );
    // The card the reload added listens at once.
    assert!(
        std::os::unix::net::UnixStream::connect(dir.path().join("vm.sock")).is_ok(),
        "the card added by the reload does not listen"
    );

    // A changed card waits for a restart: its guest must probe it again.
    std::fs::write(
        &config,
        "[[output]]\nname = \"a\"\nspec = \"null\"\n[[output]]\nname = \"b\"\nspec = \"null\"\n\
         [defaults]\noutput = \"b\"\n[[virtio]]\nname = \"vm\"\nsocket = \"${state_dir}/vm.sock\"\n\
         [[virtio.stream]]\ndirection = \"playback\"\n",
    )
    .unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for(&notify, "RELOADING=1");
    let pending = wait_for(&notify, "READY=1");
    assert!(pending.contains("1 change(s) not applied"), "{pending}");

    // A broken file is refused and the daemon keeps serving.
    std::fs::write(&config, "[[output]]\nname = \"a\"\nspec = \"bogus:1\"\n").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for(&notify, "RELOADING=1");
    let refused = wait_for(&notify, "READY=1");
    assert!(refused.contains("reload failed"), "{refused}");
    assert!(child.try_wait().unwrap().is_none(), "serve exited");

    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_for(&notify, "STOPPING=1");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let log = text(&output.stderr);
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("not applied") && log.contains("card 'vm' changed"),
        "{log}"
    );
    assert!(
        log.contains("reload failed") && log.contains("line 3"),
        "{log}"
    );
}

/// The soft limit of open descriptors is raised to the hard one at start: a daemon
/// started with 512 of 2,048 serves with 2,048.
#[test]
fn serve_raises_its_descriptor_limit_to_the_hard_one() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let config = dir.path().join("paravox.toml");
    std::fs::write(
        &config,
        "[[output]]\nname = \"a\"\nspec = \"null\"\n[defaults]\noutput = \"a\"\n",
    )
    .unwrap();
    let mut command = paravox();
    command
        .env("NOTIFY_SOCKET", &notify_path)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 512,
                rlim_max: 2048,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = command.spawn().unwrap();
    wait_for(&notify, "READY=1");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let values: Vec<&str> = open_files.split_whitespace().collect();
    // "Max open files <soft> <hard> files"
    assert_eq!(&values[3..5], ["2048", "2048"], "{open_files}");
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
