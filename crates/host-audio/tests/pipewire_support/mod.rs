//! A real, headless PipeWire daemon for tests: no session manager, a null sink as the
//! graph's driver, ports given and linked with `pw-cli`/`pw-link` the way a session
//! manager would. Shared by the PipeWire device tests and the daemon's own.
//!
//! libpipewire finds its daemon through `PIPEWIRE_RUNTIME_DIR` / `XDG_RUNTIME_DIR`, read
//! from the process environment: `setup` points both at one temporary directory before
//! any test touches PipeWire, and tests take turns (one daemon at a time on that socket).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const INSTALL: &str = "apt-get install -y -t bookworm-backports pipewire-bin libspa-0.2-modules \
                       (PipeWire 1.4; the daemon, pw-link, pw-cli and pw-dump)";
pub const SINK: &str = "paravox-test-sink";
pub const RATE: u32 = 48_000;
/// The daemon's configuration: the native protocol, client nodes with their converters,
/// and a stereo F32 null sink at 48 kHz with monitor ports, which drives the graph.
pub const CONFIG: &str = r#"
context.properties = {
    core.daemon = true
    core.name = pipewire-0
    link.max-buffers = 16
    default.clock.rate = 48000
    default.clock.allowed-rates = [ 48000 ]
    # A quantum above the endpoint period (480): the ring must hold a whole quantum, and
    # the 21 ms cycle leaves slack on a loaded machine.
    default.clock.quantum = 1024
    default.clock.min-quantum = 1024
    settings.check-quantum = true
    settings.check-rate = true
}
context.spa-libs = {
    audio.convert.* = audioconvert/libspa-audioconvert
    audio.adapt     = audioconvert/libspa-audioconvert
    support.*       = support/libspa-support
}
context.modules = [
    { name = libpipewire-module-rt flags = [ ifexists nofail ] }
    { name = libpipewire-module-protocol-native }
    { name = libpipewire-module-metadata }
    { name = libpipewire-module-spa-node-factory }
    { name = libpipewire-module-client-node }
    { name = libpipewire-module-access }
    { name = libpipewire-module-adapter }
    { name = libpipewire-module-link-factory }
]
context.objects = [
    { factory = spa-node-factory
        args = {
            factory.name    = support.node.driver
            node.name       = Dummy-Driver
            node.group      = pipewire.dummy
            priority.driver = 20000
        }
    }
    { factory = adapter
        args = {
            factory.name     = support.null-audio-sink
            node.name        = paravox-test-sink
            node.description = "paravox test sink"
            media.class      = Audio/Sink
            audio.rate       = 48000
            audio.channels   = 2
            audio.position   = [ FL FR ]
            monitor.channel-volumes = false
            node.suspend-on-idle = true
            object.linger    = true
        }
    }
]
"#;

pub struct Setup {
    _dir: tempfile::TempDir,
    pub runtime_dir: PathBuf,
    pub config: PathBuf,
}

/// One-time process setup; every test calls it first and holds the guard throughout.
pub fn setup() -> (&'static Setup, MutexGuard<'static, ()>) {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let setup = SETUP.get_or_init(|| {
        assert!(
            tool_exists("pipewire") && tool_exists("pw-link") && tool_exists("pw-dump"),
            "the PipeWire daemon and its tools are not installed: {INSTALL}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime_dir = dir.path().join("run");
        std::fs::create_dir(&runtime_dir).expect("runtime dir");
        let config = dir.path().join("test.conf");
        std::fs::write(&config, CONFIG).expect("writes the config");
        // SAFETY: OnceLock runs this exactly once, before any test in this process calls
        // into libpipewire (every test calls `setup` first).
        unsafe {
            std::env::set_var("XDG_RUNTIME_DIR", &runtime_dir);
            std::env::set_var("PIPEWIRE_RUNTIME_DIR", &runtime_dir);
            std::env::remove_var("PIPEWIRE_REMOTE");
        }
        Setup {
            _dir: dir,
            runtime_dir,
            config,
        }
    });
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    (setup, turn)
}

pub fn tool_exists(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A running daemon, killed on drop.
pub struct Daemon {
    child: Child,
    pub runtime_dir: PathBuf,
}

impl Daemon {
    pub fn start(setup: &Setup) -> Daemon {
        // A killed daemon leaves its socket and lock behind; a new one takes them over.
        let child = Command::new("pipewire")
            .arg("-c")
            .arg(&setup.config)
            .env("XDG_RUNTIME_DIR", &setup.runtime_dir)
            .env("PIPEWIRE_RUNTIME_DIR", &setup.runtime_dir)
            .env_remove("PIPEWIRE_REMOTE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start pipewire ({error}): {INSTALL}"));
        let daemon = Daemon {
            child,
            runtime_dir: setup.runtime_dir.clone(),
        };
        // Ready once the sink is listed; then give it DSP ports with monitors.
        daemon.wait_for(Duration::from_secs(10), "the null sink", |daemon| {
            daemon.pw_dump().contains(SINK)
        });
        daemon.configure_ports(SINK, "Input", true);
        daemon.wait_for(
            Duration::from_secs(5),
            "the sink's monitor ports",
            |daemon| daemon.ports("-o").contains(&format!("{SINK}:monitor_FR")),
        );
        daemon
    }

    /// Gives `node` one port per channel (DSP mode), as a session manager does for every
    /// stream and device; `monitor` adds a sink's monitor ports.
    pub fn configure_ports(&self, node: &str, direction: &str, monitor: bool) {
        let config = format!(
            r#"{{ "direction": "{direction}", "mode": "dsp", "monitor": {monitor}, "format": {{ "mediaType": "audio", "mediaSubtype": "raw", "format": "F32P", "rate": {RATE}, "channels": 2, "position": [ "FL", "FR" ] }} }}"#
        );
        let status = self
            .tool("pw-cli")
            .args(["set-param", node, "PortConfig", &config])
            .stdout(Stdio::null())
            .status()
            .expect("runs pw-cli");
        assert!(
            status.success(),
            "pw-cli set-param {node} PortConfig failed"
        );
    }

    pub fn tool(&self, name: &str) -> Command {
        let mut command = Command::new(name);
        command
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("PIPEWIRE_RUNTIME_DIR", &self.runtime_dir)
            .stdin(Stdio::null());
        command
    }

    pub fn output(&self, mut command: Command) -> String {
        let output = command.output().expect("runs a PipeWire tool");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn pw_dump(&self) -> String {
        self.output(self.tool("pw-dump"))
    }

    /// Port names, `-o` for outputs, `-i` for inputs.
    pub fn ports(&self, which: &str) -> String {
        let mut command = self.tool("pw-link");
        command.arg(which);
        self.output(command)
    }

    /// Polls `ready` every 50 ms (the daemon announces nothing we could wait on).
    pub fn wait_for(&self, limit: Duration, what: &str, ready: impl Fn(&Daemon) -> bool) {
        let start = Instant::now();
        while !ready(self) {
            assert!(
                start.elapsed() < limit,
                "{what} did not appear within {limit:?}; ports:\n{}{}",
                self.ports("-o"),
                self.ports("-i")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn link(&self, output: &str, input: &str) {
        let status = self
            .tool("pw-link")
            .args([output, input])
            .status()
            .expect("runs pw-link");
        assert!(status.success(), "pw-link {output} {input} failed");
    }

    /// Links `node`'s two output ports to the sink (waiting for the ports to appear).
    pub fn link_to_sink(&self, node: &str) {
        self.configure_ports(node, "Output", false);
        self.wait_for(Duration::from_secs(5), "the playback ports", |daemon| {
            daemon.ports("-o").contains(&format!("{node}:output_FR"))
        });
        self.link(&format!("{node}:output_FL"), &format!("{SINK}:playback_FL"));
        self.link(&format!("{node}:output_FR"), &format!("{SINK}:playback_FR"));
    }

    /// Links the sink's monitor ports to `node`'s two input ports.
    pub fn link_from_monitor(&self, node: &str) {
        self.configure_ports(node, "Input", false);
        self.wait_for(Duration::from_secs(5), "the capture ports", |daemon| {
            daemon.ports("-i").contains(&format!("{node}:input_FR"))
        });
        self.link(&format!("{SINK}:monitor_FL"), &format!("{node}:input_FL"));
        self.link(&format!("{SINK}:monitor_FR"), &format!("{node}:input_FR"));
    }

    /// The `info` of the node named `name` in `pw-dump`.
    pub fn node_info(&self, name: &str) -> Option<serde_json::Value> {
        let dump: serde_json::Value = serde_json::from_str(&self.pw_dump()).ok()?;
        dump.as_array()?
            .iter()
            .filter(|object| object["type"] == "PipeWire:Interface:Node")
            .map(|object| object["info"].clone())
            .find(|info| info["props"]["node.name"] == name)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
