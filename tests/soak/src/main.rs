//! `paravox-soak`: hours of guest audio through a real `paravox serve`, watched for leaks.
//!
//! `cargo xtask soak --minutes M --streams N` builds the daemon and this program and runs
//! it. It starts the daemon (the binary given by `--daemon`) with a paced null output,
//! one virtio-snd socket per virtio stream and the sndif shared-memory transport, then
//! drives, all at once:
//!
//! - half the streams (rounded up) as virtio-snd guests: the VMM/driver of
//!   `crates/virtio-snd/tests/support` plays a tone, stops, releases and starts over;
//! - the other half as Xen guests: the `xen-snd-front`-like frontend of
//!   `crates/sndif/tests/support`, one device each, plays the same way (OPEN … CLOSE);
//! - a plugin in the chain of every stream (the shipped `gain`, through the API);
//! - two API clients polling `/api/streams` and `/metrics`, and a WebSocket subscriber
//!   on `/api/events`.
//!
//! Every `--sample-seconds` it prints the daemon's resident memory, open descriptors,
//! threads and the streams' xruns. With `--check` it fails unless, after the warm-up (the
//! first third of the run), memory grew by less than 4 MiB and descriptors and threads
//! did not grow at all, and no xrun was counted after the warm-up either (a playback's
//! natural end is none; see `paravox_engine::endpoint::XRUN_GRACE`). With `--json PATH` it
//! also writes the final summary there as JSON, for `cargo xtask bench`.

#[path = "../../../crates/virtio-snd/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations)]
mod support;
#[path = "../../../crates/sndif/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations)]
mod xen;

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use paravox_engine::Direction;

/// Seconds of tone each guest plays before it stops and starts again.
const CYCLE_SECONDS: f64 = 4.0;
/// Resident memory growth allowed after the warm-up.
const RSS_GROWTH_LIMIT_KIB: i64 = 4 * 1024;

#[derive(Debug, Parser)]
#[command(about = "Runs guest streams through a real paravox daemon and samples its resources")]
struct Args {
    /// The `paravox` binary to start.
    #[arg(long)]
    daemon: PathBuf,
    /// How long to run.
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// Guest streams in all (virtio-snd and sndif, half each).
    #[arg(long, default_value_t = 8)]
    streams: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    sample_seconds: u64,
    /// Fail on growth or unexpected xruns.
    #[arg(long)]
    check: bool,
    /// Which guests to run.
    #[arg(long, value_enum, default_value_t = Protocols::Both)]
    protocols: Protocols,
    /// Where the daemon converts and mixes ("wasm" or "native"; default: its default).
    #[arg(long, value_parser = ["wasm", "native"])]
    dsp: Option<String>,
    /// Also write the final summary to this file, as JSON.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// Which protocols the guests speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Protocols {
    /// Half virtio-snd, half sndif.
    Both,
    /// virtio-snd only.
    Virtio,
    /// sndif only.
    Sndif,
}

/// The daemon's resources at one moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_kib: i64,
    fds: usize,
    threads: usize,
    xruns: u64,
    plays: u64,
    /// The daemon's user + system CPU time so far.
    cpu: Duration,
}

/// What the load threads count.
#[derive(Debug, Default)]
struct Counters {
    virtio_plays: AtomicU64,
    sndif_plays: AtomicU64,
    api_requests: AtomicU64,
    api_errors: AtomicU64,
    ws_messages: AtomicU64,
    xruns: AtomicU64,
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("soak: {error:#}");
            std::process::exit(2);
        }
    }
}

fn run(args: &Args) -> Result<bool> {
    if args.streams == 0 {
        bail!("--streams must be at least 1");
    }
    let dir = tempfile::tempdir().context("creating a scratch directory")?;
    let virtio_streams = match args.protocols {
        Protocols::Both => args.streams.div_ceil(2),
        Protocols::Virtio => args.streams,
        Protocols::Sndif => 0,
    };
    let sndif_streams = args.streams - virtio_streams;
    let mut daemon = Daemon::start(
        &args.daemon,
        dir.path(),
        virtio_streams,
        args.dsp.as_deref(),
    )?;
    println!(
        "soak: daemon pid {} on {}; {virtio_streams} virtio-snd + {sndif_streams} sndif streams for {} min",
        daemon.pid(),
        daemon.base_url,
        args.minutes
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads: Vec<(String, JoinHandle<()>)> = Vec::new();
    for index in 0..virtio_streams {
        let socket = daemon.virtio_socket(index);
        let (stop, counters) = (stop.clone(), counters.clone());
        threads.push(spawn(format!("virtio{index}"), move || {
            virtio_guest(&socket, index, &stop, &counters);
        })?);
    }
    for index in 0..sndif_streams {
        let shm = daemon.shm_dir.clone();
        let (stop, counters) = (stop.clone(), counters.clone());
        threads.push(spawn(format!("sndif{index}"), move || {
            sndif_guest(&shm, index, &stop, &counters);
        })?);
    }
    let api = Api::new(&daemon.base_url, &daemon.token);
    for path in ["/api/streams", "/metrics"] {
        let (api, stop, counters) = (api.clone(), stop.clone(), counters.clone());
        threads.push(spawn(format!("poll {path}"), move || {
            poll(&api, path, &stop, &counters);
        })?);
    }
    {
        let (api, stop, counters) = (api.clone(), stop.clone(), counters.clone());
        threads.push(spawn("websocket".into(), move || {
            subscribe(&api, &stop, &counters);
        })?);
    }
    {
        let (api, stop) = (api.clone(), stop.clone());
        let failures = failures.clone();
        threads.push(spawn("plugins".into(), move || {
            if let Err(error) = keep_plugins_in_chains(&api, &stop) {
                failures
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("plugin chains: {error:#}"));
            }
        })?);
    }

    let started = Instant::now();
    let length = Duration::from_secs_f64(args.minutes * 60.0);
    let mut samples = Vec::new();
    println!(
        "{:>7}  {:>9}  {:>4}  {:>7}  {:>6}  {:>6}  {:>9}",
        "time s", "RSS KiB", "fds", "threads", "xruns", "plays", "API reqs"
    );
    loop {
        let elapsed = started.elapsed();
        if let Some(status) = daemon.exited()? {
            bail!("the daemon exited ({status}) during the soak");
        }
        match sample(&daemon, &api, &counters, elapsed) {
            Ok(sample) => {
                println!(
                    "{:>7.0}  {:>9}  {:>4}  {:>7}  {:>6}  {:>6}  {:>9}",
                    sample.at.as_secs_f64(),
                    sample.rss_kib,
                    sample.fds,
                    sample.threads,
                    sample.xruns,
                    sample.plays,
                    counters.api_requests.load(Ordering::Relaxed)
                );
                samples.push(sample);
            }
            Err(error) => println!("sample failed: {error:#}"),
        }
        if elapsed >= length {
            break;
        }
        std::thread::sleep(Duration::from_secs(args.sample_seconds).min(length - elapsed));
    }
    stop.store(true, Ordering::Relaxed);
    for (name, thread) in threads {
        if thread.join().is_err() {
            failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!(
                    "{name}: the load thread panicked (its message is above)"
                ));
        }
    }
    let final_sample = sample(&daemon, &api, &counters, started.elapsed())?;
    daemon.stop()?;

    let report = Report {
        samples: &samples,
        final_sample,
        counters: &counters,
        streams: args.streams,
    };
    println!("{}", report.summary());
    let mut problems = failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if args.check {
        problems.extend(report.problems());
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json(&problems))?;
        fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    for problem in &problems {
        println!("FAIL: {problem}");
    }
    Ok(problems.is_empty())
}

fn spawn(name: String, work: impl FnOnce() + Send + 'static) -> Result<(String, JoinHandle<()>)> {
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(work)
        .with_context(|| format!("starting {name}"))?;
    Ok((name, thread))
}

/// The daemon under test.
struct Daemon {
    child: Child,
    dir: PathBuf,
    shm_dir: PathBuf,
    base_url: String,
    token: String,
}

impl Daemon {
    fn start(
        binary: &Path,
        dir: &Path,
        virtio_sockets: usize,
        dsp: Option<&str>,
    ) -> Result<Daemon> {
        let state = dir.join("state");
        let shm_dir = dir.join("sndif");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("finding a free port")?
            .port();
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--state-dir")
            .arg(&state)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--sndif-shm")
            .arg(&shm_dir);
        match dsp {
            None => {
                command.args(["--output", "null", "--input", "tone:440"]);
            }
            Some(dsp) => {
                let config = dir.join("paravox.toml");
                fs::write(
                    &config,
                    format!(
                        "[[output]]\nname = \"out\"\nspec = \"null\"\n\
                         [[input]]\nname = \"in\"\nspec = \"tone:440\"\n\
                         [defaults]\noutput = \"out\"\ninput = \"in\"\ndsp = \"{dsp}\"\n"
                    ),
                )
                .context("writing the daemon's configuration")?;
                command.arg("--config").arg(config);
            }
        }
        for index in 0..virtio_sockets {
            command
                .arg("--virtio-socket")
                .arg(dir.join(format!("vm{index}.sock")));
        }
        let log = fs::File::create(dir.join("daemon.log")).context("creating the daemon log")?;
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut daemon = Daemon {
            child,
            dir: dir.to_owned(),
            shm_dir,
            base_url: format!("http://127.0.0.1:{port}"),
            token: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = fs::read_to_string(state.join("token")).ok().filter(|_| {
                ureq::get(&format!("{}/readyz", daemon.base_url))
                    .call()
                    .is_ok()
            });
            if let Some(token) = ready {
                daemon.token = token.trim().to_owned();
                break;
            }
            if let Some(status) = daemon.exited()? {
                bail!(
                    "the daemon exited at start ({status}):\n{}",
                    daemon.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon was not ready within 30 s:\n{}",
                    daemon.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for index in 0..virtio_sockets {
            let socket = daemon.virtio_socket(index);
            while !socket.exists() {
                if Instant::now() > deadline {
                    bail!("{} never appeared", socket.display());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(daemon)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn virtio_socket(&self, index: usize) -> PathBuf {
        self.dir.join(format!("vm{index}.sock"))
    }

    fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        self.child.try_wait().context("checking on the daemon")
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.pid()).context("the daemon's pid")?;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.exited()? {
                if !status.success() {
                    bail!("the daemon exited with {status}:\n{}", self.log_tail());
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        bail!("the daemon did not stop within 15 s of SIGTERM")
    }

    /// (`VmRSS` in KiB, threads) from `/proc/PID/status`.
    fn memory_and_threads(&self) -> Result<(i64, usize)> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading the daemon's /proc status")?;
        let field = |name: &str| -> Result<i64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse().ok())
                .with_context(|| format!("no {name} in /proc/PID/status"))
        };
        Ok((field("VmRSS:")?, usize::try_from(field("Threads:")?)?))
    }

    /// User + system CPU time from `/proc/PID/stat`.
    fn cpu_time(&self) -> Result<Duration> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .context("reading the daemon's /proc stat")?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("malformed /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |index: usize| -> Result<u64> {
            fields
                .get(index)
                .and_then(|value| value.parse().ok())
                .context("malformed /proc stat")
        };
        // utime and stime are fields 14 and 15 of the whole line, 11 and 12 after ')'.
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let total = ticks(11)? + ticks(12)?;
        Ok(Duration::from_millis(total * 1000 / hz))
    }

    fn descriptors(&self) -> Result<usize> {
        Ok(fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .context("listing the daemon's descriptors")?
            .count())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A virtio-snd guest: plays `CYCLE_SECONDS` of tone, stops, releases, and again.
fn virtio_guest(socket: &Path, index: usize, stop: &AtomicBool, counters: &Counters) {
    use support::signal::tone_s16_stereo;
    use support::{Driver, SetParams, play_through};

    let mut driver = Driver::connect(socket);
    driver.post_event_buffers(4);
    let params = SetParams::s16_stereo_48k(0, 8);
    let tone = tone_s16_stereo(300.0 + 20.0 * index as f64, 0.3, CYCLE_SECONDS);
    while !stop.load(Ordering::Relaxed) {
        play_through(&mut driver, &params, &tone);
        counters.virtio_plays.fetch_add(1, Ordering::Relaxed);
    }
    driver.disconnect();
}

/// A Xen guest with one playback stream: plays like aplay over xen-snd-front, and again.
fn sndif_guest(shm: &Path, index: usize, stop: &AtomicBool, counters: &Counters) {
    use paravox_sndif::SharedMemoryHost;

    // One domain per guest: each OPEN takes fresh pages from the domain's grant table.
    let domid = 1 + index as u32;
    let domain = xen::FrontDomain::connect(&shm.join(SharedMemoryHost::HUB_SOCKET), domid);
    let mut device = xen::FrontDevice::create_at(
        &shm.join(SharedMemoryHost::XENSTORE_SOCKET),
        &domain,
        0,
        &[("sample-formats", "s16_le"), ("short-name", "soak")],
        &[(0, 0, Direction::Playback)],
    );
    device.connect();
    let params = xen::Params::s16_stereo(10);
    let frames = (48_000.0 * CYCLE_SECONDS) as usize;
    let tone = xen::sine_s16(500.0 + 20.0 * index as f64, 0.3, frames);
    while !stop.load(Ordering::Relaxed) {
        xen::play(device.stream(0, 0), &params, &tone, |_| {});
        counters.sndif_plays.fetch_add(1, Ordering::Relaxed);
    }
    device.set_state(paravox_sndif::xenstore::XenbusState::Closing);
}

/// The API with the daemon's token.
#[derive(Clone)]
struct Api {
    base_url: String,
    token: String,
}

impl Api {
    fn new(base_url: &str, token: &str) -> Api {
        Api {
            base_url: base_url.to_owned(),
            token: token.to_owned(),
        }
    }

    fn get(&self, path: &str) -> Result<String> {
        Ok(ureq::get(&format!("{}{path}", self.base_url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("GET {path}"))?
            .body_mut()
            .read_to_string()?)
    }

    fn patch(&self, path: &str, body: &serde_json::Value) -> Result<()> {
        ureq::patch(&format!("{}{path}", self.base_url))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(body)
            .with_context(|| format!("PATCH {path}"))?;
        Ok(())
    }

    fn streams(&self) -> Result<Vec<serde_json::Value>> {
        let value: serde_json::Value = serde_json::from_str(&self.get("/api/streams")?)?;
        Ok(value
            .get("streams")
            .or(Some(&value))
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default())
    }
}

fn poll(api: &Api, path: &str, stop: &AtomicBool, counters: &Counters) {
    while !stop.load(Ordering::Relaxed) {
        counters.api_requests.fetch_add(1, Ordering::Relaxed);
        if api.get(path).is_err() {
            counters.api_errors.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn subscribe(api: &Api, stop: &AtomicBool, counters: &Counters) {
    let url = format!(
        "{}/api/events?token={}",
        api.base_url.replacen("http://", "ws://", 1),
        api.token
    );
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut socket, _)) = tungstenite::connect(url.as_str()) else {
            counters.api_errors.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        if let tungstenite::stream::MaybeTlsStream::Plain(tcp) = socket.get_ref() {
            let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
        }
        while !stop.load(Ordering::Relaxed) {
            match socket.read() {
                Ok(_) => {
                    counters.ws_messages.fetch_add(1, Ordering::Relaxed);
                }
                Err(tungstenite::Error::Io(error))
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = socket.close(None);
    }
}

/// Keeps the shipped `gain` plugin in the chain of every playback stream (streams come and
/// go as guests stop and start).
fn keep_plugins_in_chains(api: &Api, stop: &AtomicBool) -> Result<()> {
    let mut done = std::collections::BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        for stream in api.streams()? {
            let Some(id) = stream.get("id").and_then(serde_json::Value::as_u64) else {
                continue;
            };
            if stream.get("direction").and_then(serde_json::Value::as_str) != Some("playback")
                || done.contains(&id)
            {
                continue;
            }
            api.patch(
                &format!("/api/streams/{id}"),
                &serde_json::json!({"chain": [{"plugin": "gain", "params": {"volume": 0.8}}]}),
            )?;
            done.insert(id);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

fn sample(daemon: &Daemon, api: &Api, counters: &Counters, at: Duration) -> Result<Sample> {
    let (rss_kib, threads) = daemon.memory_and_threads()?;
    let fds = daemon.descriptors()?;
    let cpu = daemon.cpu_time()?;
    let xruns: u64 = api
        .streams()?
        .iter()
        .filter_map(|stream| stream.get("xruns").and_then(serde_json::Value::as_u64))
        .sum();
    counters.xruns.store(xruns, Ordering::Relaxed);
    let virtio_plays = counters.virtio_plays.load(Ordering::Relaxed);
    Ok(Sample {
        at,
        rss_kib,
        fds,
        threads,
        xruns,
        plays: virtio_plays + counters.sndif_plays.load(Ordering::Relaxed),
        cpu,
    })
}

/// The daemon's CPU use over the measured part of the run.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    /// Wall seconds from the warm-up sample to the last.
    seconds: f64,
    percent_of_core: f64,
    ms_per_stream_second: f64,
}

struct Report<'a> {
    samples: &'a [Sample],
    final_sample: Sample,
    counters: &'a Counters,
    streams: usize,
}

impl Report<'_> {
    /// The first sample after the warm-up (the first third of the run).
    fn warm(&self) -> Option<&Sample> {
        let end = self.samples.last()?.at;
        self.samples.iter().find(|s| s.at >= end / 3)
    }

    fn summary(&self) -> String {
        let mut text = String::new();
        let last = self.samples.last().copied().unwrap_or(self.final_sample);
        let _ = writeln!(
            text,
            "soak summary: {} virtio-snd and {} sndif playbacks; API {} requests ({} failed), {} WebSocket messages",
            self.counters.virtio_plays.load(Ordering::Relaxed),
            self.counters.sndif_plays.load(Ordering::Relaxed),
            self.counters.api_requests.load(Ordering::Relaxed),
            self.counters.api_errors.load(Ordering::Relaxed),
            self.counters.ws_messages.load(Ordering::Relaxed),
        );
        if let Some(warm) = self.warm() {
            let _ = write!(
                text,
                "after warm-up ({:.0} s → {:.0} s): RSS {} → {} KiB ({:+} KiB), fds {} → {}, threads {} → {}, xruns {} → {}",
                warm.at.as_secs_f64(),
                last.at.as_secs_f64(),
                warm.rss_kib,
                last.rss_kib,
                last.rss_kib - warm.rss_kib,
                warm.fds,
                last.fds,
                warm.threads,
                last.threads,
                warm.xruns,
                last.xruns
            );
            if let Some(cpu) = self.cpu() {
                let _ = write!(
                    text,
                    "\ndaemon CPU: {:.1} % of a core for {} streams, {:.2} ms per stream-second",
                    cpu.percent_of_core, self.streams, cpu.ms_per_stream_second
                );
            }
        }
        text
    }

    /// The daemon's CPU use between the warm-up sample and the last one.
    fn cpu(&self) -> Option<CpuUse> {
        let (warm, last) = (self.warm()?, self.samples.last()?);
        let seconds = (last.at - warm.at).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let cpu = (last.cpu.saturating_sub(warm.cpu)).as_secs_f64();
        Some(CpuUse {
            seconds,
            percent_of_core: 100.0 * cpu / seconds,
            ms_per_stream_second: 1000.0 * cpu / (seconds * self.streams as f64),
        })
    }

    /// The summary's figures for `--json`; those measured after the warm-up are null when
    /// the run was too short to have one.
    fn json(&self, problems: &[String]) -> serde_json::Value {
        let last = self.samples.last().copied().unwrap_or(self.final_sample);
        let warm = self.warm();
        let cpu = self.cpu();
        let counter = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        serde_json::json!({
            "streams": self.streams,
            "warm_up_seconds": warm.map(|warm| warm.at.as_secs_f64()),
            "last_sample_seconds": last.at.as_secs_f64(),
            "measured_seconds": cpu.map(|cpu| cpu.seconds),
            "cpu_percent_of_core": cpu.map(|cpu| cpu.percent_of_core),
            "ms_per_stream_second": cpu.map(|cpu| cpu.ms_per_stream_second),
            "threads_warm": warm.map(|warm| warm.threads),
            "threads_last": last.threads,
            "fds_warm": warm.map(|warm| warm.fds),
            "fds_last": last.fds,
            "rss_warm_kib": warm.map(|warm| warm.rss_kib),
            "rss_last_kib": last.rss_kib,
            "rss_growth_kib": warm.map(|warm| last.rss_kib - warm.rss_kib),
            "xruns_after_warm_up": warm.map(|warm| last.xruns.saturating_sub(warm.xruns)),
            "xruns_total": last.xruns,
            "plays": counter(&self.counters.virtio_plays) + counter(&self.counters.sndif_plays),
            "virtio_plays": counter(&self.counters.virtio_plays),
            "sndif_plays": counter(&self.counters.sndif_plays),
            "api_requests": counter(&self.counters.api_requests),
            "api_errors": counter(&self.counters.api_errors),
            "websocket_messages": counter(&self.counters.ws_messages),
            "problems": problems,
        })
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let (Some(warm), Some(last)) = (self.warm(), self.samples.last()) else {
            return vec!["too few samples to judge (run longer)".into()];
        };
        if last.rss_kib - warm.rss_kib > RSS_GROWTH_LIMIT_KIB {
            problems.push(format!(
                "resident memory grew by {} KiB after the warm-up (limit {RSS_GROWTH_LIMIT_KIB} KiB)",
                last.rss_kib - warm.rss_kib
            ));
        }
        if last.fds > warm.fds {
            problems.push(format!(
                "open descriptors grew from {} to {}",
                warm.fds, last.fds
            ));
        }
        if last.threads > warm.threads {
            problems.push(format!(
                "threads grew from {} to {}",
                warm.threads, last.threads
            ));
        }
        // A natural end (the guest lets its stream run out, then stops it) is no xrun:
        // every xrun is audio that did not arrive in time. Judged after the warm-up, like
        // the growth above: the start (first plugin compiles, every guest connecting at
        // once) is not the steady state; the table shows every xrun either way.
        let xruns = last.xruns.saturating_sub(warm.xruns);
        if xruns > 0 {
            problems.push(format!(
                "{xruns} xruns between {:.0} s and {:.0} s ({} in all over {} finished playbacks)",
                warm.at.as_secs_f64(),
                last.at.as_secs_f64(),
                last.xruns,
                last.plays
            ));
        }
        if self.counters.api_errors.load(Ordering::Relaxed) > 0 {
            problems.push(format!(
                "{} API requests failed",
                self.counters.api_errors.load(Ordering::Relaxed)
            ));
        }
        problems
    }
}
