//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Sound cards for virtual machines.
#[derive(Debug, Parser)]
#[command(name = "paravox", version, about, long_about = None)]
pub struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// More log detail (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Play a WAV file through an endpoint, like aplay.
    Play(PlayArgs),
    /// Record from an endpoint into a WAV file, like arecord.
    Record(RecordArgs),
    /// Print the API token (created on first use) for scripts and the dashboard.
    Token(TokenArgs),
    /// Talk to a running daemon over its API.
    Ctl(CtlArgs),
    /// Manage the WebAssembly plugins in the state directory (the daemon picks up changes).
    Plugin(PluginArgs),
    /// Check a configuration file without starting anything: exit 0 when `serve --config`
    /// would accept it, else exit 2 naming the line and what is allowed.
    CheckConfig(CheckConfigArgs),
    /// Write the man pages and shell completions into DIR (for packagers).
    #[command(hide = true)]
    GenerateDocs {
        /// Gets `man/` (section 1 pages) and `completions/` (bash, zsh, fish).
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The configuration file (TOML).
    pub file: PathBuf,
    /// The state directory `${state_dir}` stands for, as `serve` would use it.
    #[arg(long, env = "PARAVOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PluginArgs {
    /// The state directory whose `plugins/` is managed.
    #[arg(long, env = "PARAVOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a plugin module and install it as `plugins/NAME.wasm` (replacing an older
    /// version; a running daemon swaps it in on every stream that uses it).
    Add {
        /// The module.
        file: PathBuf,
    },
    /// List the installed and the shipped plugins.
    List,
    /// Remove an installed plugin.
    Remove {
        /// The plugin's name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The daemon's state directory.
    #[arg(long, env = "PARAVOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The daemon's API.
    #[arg(long, default_value = "http://127.0.0.1:7860", env = "PARAVOX_URL")]
    pub url: String,
    /// The daemon's state directory (for its token).
    #[arg(long, env = "PARAVOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// List the cards.
    Cards,
    /// List the streams with state, format, position, xruns, volume and level.
    Streams,
    /// List the endpoints.
    Endpoints,
    /// Set a stream's volume in dB.
    SetVolume {
        /// Stream id.
        stream: u32,
        /// Volume in dB (0 = unchanged, -120 = silence).
        #[arg(allow_negative_numbers = true)]
        db: f32,
    },
    /// Mute or unmute a stream.
    Mute {
        /// Stream id.
        stream: u32,
        /// on or off.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Route a stream to an endpoint ("default" for its direction's default).
    Route {
        /// Stream id.
        stream: u32,
        /// Endpoint name.
        endpoint: String,
    },
    /// Record what a stream (after its chain) or an endpoint plays into a WAV file, live
    /// over the API: the dashboard's Listen, for scripts and CI. Audio the connection
    /// could not keep up with is written as silence, so the file keeps real time.
    Listen {
        /// The stream to listen to.
        #[arg(
            long,
            required_unless_present = "endpoint",
            conflicts_with = "endpoint"
        )]
        stream: Option<u32>,
        /// The endpoint to listen to (its mix, or what it captures).
        #[arg(long)]
        endpoint: Option<String>,
        /// The WAV file to write (s16 at the stream's rate and channels).
        #[arg(long)]
        to: PathBuf,
        /// Stop after this many seconds of audio; without it, when the stream or endpoint
        /// goes away (Ctrl-C leaves a complete file too).
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// List the monitors listening now (dashboard tabs, `ctl listen`).
    Monitors,
}

const ENDPOINT_HELP: &str = "ENDPOINT: wav:PATH, null, alsa:PCM, pipewire[:TARGET], tone:FREQ, wavsrc:PATH or browser, \
each with optional ,rate=R,channels=C,format=F,period=FRAMES";

#[derive(Debug, Args)]
#[command(after_help = ENDPOINT_HELP)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without it, the embedded default configuration is used
    /// (with --user: `$XDG_CONFIG_HOME/paravox/paravox.toml` when it exists, else the
    /// desktop defaults).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Desktop mode, as the logged-in user's service (`systemctl --user start paravox`):
    /// state in `$XDG_STATE_HOME/paravox`, sockets in `$XDG_RUNTIME_DIR/paravox`, and
    /// without a configuration file the desktop's sound: PipeWire when it runs, else
    /// ALSA's `default`, else a WAV file in the state directory.
    #[arg(long)]
    pub user: bool,
    /// Directory for state and default output files.
    #[arg(long, env = "PARAVOX_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Default playback endpoint: a configured endpoint's name or an ENDPOINT spec.
    #[arg(long)]
    pub output: Option<String>,
    /// Default capture endpoint: a configured endpoint's name or an ENDPOINT spec.
    #[arg(long)]
    pub input: Option<String>,
    /// Address of the REST + WebSocket API and dashboard (loopback unless you mean it).
    #[arg(long, default_value = "127.0.0.1:7860")]
    pub listen: std::net::SocketAddr,
    /// A host name requests to the API may use besides its address (repeatable): the API
    /// refuses other `Host` headers, against DNS rebinding.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Serve a virtio-snd card (one playback and one capture stream) on this vhost-user
    /// socket; repeat for more cards.
    #[arg(long, value_name = "PATH")]
    pub virtio_socket: Vec<PathBuf>,
    /// Give the --virtio-socket cards (and those on sockets systemd hands over) volume and
    /// mute controls. Only for a VMM that carries them (QEMU: `-device
    /// vhost-user-snd-pci,...,controls=on`); offered to QEMU's plain line they make the
    /// guest's driver fail to probe.
    #[arg(long)]
    pub virtio_controls: bool,
    /// Serve Xen para-virtual sound cards (sndif) to the frontends `xl` configures with
    /// `vsnd = [...]` (run in dom0 or a driver domain: needs xenstored and /dev/xen/*).
    #[arg(long)]
    pub xen: bool,
    /// This domain's id, under whose XenStore backend directory the devices appear.
    #[arg(long, default_value_t = 0, requires = "xen")]
    pub xen_domid: u32,
    /// Serve sndif without a hypervisor over the documented shared-memory transport:
    /// a XenStore server and an event/grant hub listen in DIR (see the paravox-sndif docs).
    #[arg(long, value_name = "DIR", conflicts_with = "xen")]
    pub sndif_shm: Option<PathBuf>,
    /// Where WAV files named over the API may be (a relative path is taken inside it);
    /// default: `outputs/` in the state directory.
    #[arg(long, value_name = "DIR")]
    pub api_files: Option<PathBuf>,
    /// Where vhost-user sockets of cards made over the API may be (a relative path is
    /// taken inside it); default: the runtime directory (`/run/paravox` for root, else
    /// `$XDG_RUNTIME_DIR/paravox`).
    #[arg(long, value_name = "DIR")]
    pub api_sockets: Option<PathBuf>,
    /// A directory the sandboxed daemon may also write in (repeatable), e.g. where an
    /// asoundrc's `file` PCM writes; what the configuration names is allowed already.
    #[arg(long, value_name = "DIR")]
    pub sandbox_allow: Vec<PathBuf>,
    /// Run unconfined (for debugging): no Landlock file-system rules, no seccomp filter.
    #[arg(long)]
    pub no_sandbox: bool,
}

#[derive(Debug, Args)]
#[command(after_help = ENDPOINT_HELP)]
pub struct PlayArgs {
    /// The WAV file to play.
    pub file: PathBuf,
    /// Where to play it (ENDPOINT spec).
    #[arg(long)]
    pub to: String,
    /// Volume in dB (0 = unchanged).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub volume: f32,
    /// An effect plugin after the chain: a .wasm file or a shipped plugin's name, with
    /// parameters, e.g. `gain:volume=0.5`. Repeat for more.
    #[arg(long, value_name = "PATH[:param=value,...]")]
    pub plugin: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = ENDPOINT_HELP)]
pub struct RecordArgs {
    /// The WAV file to write.
    pub file: PathBuf,
    /// Where to record from (ENDPOINT spec).
    #[arg(long)]
    pub from: String,
    /// How long to record.
    #[arg(long)]
    pub seconds: f64,
    /// Sample rate of the recording.
    #[arg(long, default_value_t = 48_000)]
    pub rate: u32,
    /// Channels of the recording.
    #[arg(long, default_value_t = 2)]
    pub channels: u32,
    /// Sample format of the recording (s16_le, s24_3le, s32_le, float_le, ...).
    #[arg(long, default_value = "s16_le")]
    pub format: String,
}
