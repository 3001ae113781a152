//! `cargo xtask bench`: the project's performance figures in one run, ending with one
//! Markdown table to paste into an issue. The steps: the soak (`paravox-soak`) at each
//! `--streams` count (the daemon's CPU per stream-second, threads, xruns), the shipped
//! Wasm stages against their native twins (criterion's means from `cargo bench`), an idle
//! daemon's CPU, the dom0 figures `cargo xtask e2e xen` prints, and the `latency:` lines
//! of every package's test called `latency`. A step or soak count that fails leaves its
//! failure in its row; the other steps still run.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::cmd;
use crate::e2e::target_directory;

/// Time a soak may take beyond its length (starting and stopping hundreds of guests)
/// before it is killed and its row says so.
const SOAK_MARGIN: Duration = Duration::from_secs(300);
/// How long the idle daemon runs before, then while, its CPU time is measured.
const IDLE_SETTLE: Duration = Duration::from_secs(5);
const IDLE_MEASURE: Duration = Duration::from_secs(20);
/// The plugin benchmark's stages in the table: (label, criterion group). Each group has
/// a `native` and a `plugin` (Wasm) function; one call is a 480-frame stereo period.
const PLUGIN_STAGES: [(&str, &str); 3] = [
    ("convert s16 decode", "convert_s16le_decode"),
    ("convert f32→s16 encode", "convert_s16le_encode"),
    ("mix 16 streams", "mix_16_streams"),
];

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Guest stream counts to soak, one run each (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "COUNTS",
        default_value = "16,64,256,512"
    )]
    pub streams: Vec<usize>,
    /// How long each soak runs, in seconds (its first third is the warm-up).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub soak_seconds: u64,
    /// Leave a step out (repeatable).
    #[arg(long, value_enum, value_name = "STEP")]
    pub skip: Vec<Step>,
    /// Also save the table and the raw figures to this file, as JSON.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// A step of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Step {
    /// The soak at each `--streams` count.
    Soak,
    /// Wasm plugins against the native stages.
    Plugins,
    /// An idle daemon's CPU.
    Idle,
    /// The dom0 figures of `cargo xtask e2e xen` (about ten minutes).
    Xen,
    /// The latency tests' figures.
    Latency,
}

/// Runs every step not skipped, then prints the table (and saves it with `--json`).
pub fn run(args: &BenchArgs) -> Result<()> {
    ensure!(
        args.streams.iter().all(|&streams| streams > 0),
        "--streams: every count must be at least 1"
    );
    ensure!(args.soak_seconds > 0, "--soak-seconds must be positive");
    let started = Instant::now();
    let wanted = |step: Step| !args.skip.contains(&step);
    let target = target_directory()?;
    let scratch = Scratch::create()?;
    let mut table = Table::default();
    table.machine();

    let release = target.join("release");
    if wanted(Step::Soak) || wanted(Step::Idle) {
        crate::soak::build_release()?;
    }
    if wanted(Step::Soak) {
        soak(&release, &scratch.path, args, &mut table);
    }
    if wanted(Step::Plugins) {
        plugins(&target, &mut table);
    }
    if wanted(Step::Idle) {
        idle(&release, &scratch.path, &mut table);
    }
    if wanted(Step::Xen) {
        xen(&mut table);
    }
    if wanted(Step::Latency) {
        latency(&mut table);
    }

    println!(
        "\n==> bench: done in {:.1} min\n",
        started.elapsed().as_secs_f64() / 60.0
    );
    print!("{}", table.markdown());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&table.json())?;
        fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nsaved to {}", path.display());
    }
    Ok(())
}

/// The figures so far: the rows of the Markdown table, and the raw figures by step.
#[derive(Debug, Default)]
struct Table {
    rows: Vec<Row>,
    data: serde_json::Map<String, Value>,
}

/// One line of the table.
#[derive(Debug)]
struct Row {
    figure: String,
    value: String,
    detail: String,
}

impl Table {
    /// Adds a row, and prints it at once: the whole run takes a while.
    fn row(
        &mut self,
        figure: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) {
        let row = Row {
            figure: figure.into(),
            value: value.into(),
            detail: detail.into(),
        };
        if row.detail.is_empty() {
            println!("bench: {}: {}", row.figure, row.value);
        } else {
            println!("bench: {}: {} ({})", row.figure, row.value, row.detail);
        }
        self.rows.push(row);
    }

    fn failed(&mut self, figure: impl Into<String>, error: &str) {
        self.row(figure, "failed", error);
    }

    /// The machine, the date and the commit, as the first rows.
    fn machine(&mut self) {
        let cpus = thread::available_parallelism().map_or(0, usize::from);
        let model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| line.strip_prefix("model name"))
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let quiet = |command: &mut Command| {
            cmd::output(command)
                .map(|text| text.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into())
        };
        let date = quiet(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
        let commit = quiet(
            Command::new("git")
                .args(["rev-parse", "--short", "HEAD"])
                .current_dir(cmd::workspace_root()),
        );
        self.data.insert(
            "machine".into(),
            json!({"cpus": cpus, "model": model, "date": date, "commit": commit}),
        );
        self.row("machine", format!("{cpus} CPUs, {model}"), "");
        self.row("date", date, "");
        self.row("commit", commit, "");
    }

    fn markdown(&self) -> String {
        let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
        let mut text = String::from("| figure | value | detail |\n|---|---|---|\n");
        for row in &self.rows {
            let _ = writeln!(
                text,
                "| {} | {} | {} |",
                cell(&row.figure),
                cell(&row.value),
                cell(&row.detail)
            );
        }
        text
    }

    fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| json!({"figure": row.figure, "value": row.value, "detail": row.detail}))
            .collect();
        let mut all = self.data.clone();
        all.insert("rows".into(), Value::Array(rows));
        Value::Object(all)
    }
}

/// The soak at each count, one row each.
fn soak(release: &Path, scratch: &Path, args: &BenchArgs, table: &mut Table) {
    let mut runs = Vec::new();
    for &streams in &args.streams {
        println!(
            "\n==> bench: soak with {streams} streams for {} s",
            args.soak_seconds
        );
        let figure = format!("soak, {streams} streams");
        match soak_once(release, scratch, streams, args.soak_seconds) {
            Ok((figures, failure)) => {
                let (value, mut detail) = soak_row(&figures);
                if let Some(failure) = &failure {
                    detail.push(format!("the soak failed: {failure}"));
                }
                table.row(figure, value, detail.join("; "));
                runs.push(json!({"streams": streams, "figures": figures, "error": failure}));
            }
            Err(error) => {
                let error = format!("{error:#}");
                table.failed(figure, &error);
                runs.push(json!({"streams": streams, "error": error}));
            }
        }
    }
    table.data.insert("soak".into(), Value::Array(runs));
}

/// One soak: its `--json` figures, and its failure if it failed after writing them.
fn soak_once(
    release: &Path,
    scratch: &Path,
    streams: usize,
    seconds: u64,
) -> Result<(Value, Option<String>)> {
    let figures = scratch.join(format!("soak-{streams}.json"));
    let _ = fs::remove_file(&figures);
    let daemon = release.join("paravox");
    let limit = Duration::from_secs(seconds) + SOAK_MARGIN;
    let run = run_teed(
        Command::new(release.join("paravox-soak"))
            .arg("--daemon")
            .arg(&daemon)
            .args(["--minutes", &(seconds as f64 / 60.0).to_string()])
            .args(["--streams", &streams.to_string()])
            // At least one sample after the warm-up (the first third) for the CPU figures.
            .args(["--sample-seconds", &(seconds / 6).clamp(1, 5).to_string()])
            .arg("--json")
            .arg(&figures),
        Some(limit),
    )?;
    if run.status.is_none() {
        stop_abandoned_daemon(&run.stdout, &daemon);
    }
    let failure = run.failure(limit);
    match fs::read_to_string(&figures) {
        Ok(text) => {
            let value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", figures.display()))?;
            Ok((value, failure))
        }
        Err(_) => bail!(
            "{}",
            failure.unwrap_or_else(|| "the soak wrote no figures".into())
        ),
    }
}

/// A soak killed at its deadline leaves its daemon running: stops the pid it announced
/// ("soak: daemon pid N on …"), if that is still this build's `paravox serve`.
fn stop_abandoned_daemon(soak_output: &str, binary: &Path) {
    let pid = soak_output.lines().find_map(|line| {
        line.strip_prefix("soak: daemon pid ")?
            .split_whitespace()
            .next()?
            .parse::<libc::pid_t>()
            .ok()
    });
    let Some(pid) = pid else { return };
    let command_line = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut words = command_line.split(|&byte| byte == 0);
    let ours = words.next() == Some(binary.as_os_str().as_encoded_bytes())
        && words.next() == Some(b"serve".as_slice());
    if ours {
        println!("bench: stopping the soak's daemon (pid {pid})");
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// (value, details) of a soak's row from its `--json` figures.
fn soak_row(figures: &Value) -> (String, Vec<String>) {
    let number = |key: &str| figures.get(key).and_then(Value::as_f64);
    let text = |key: &str| match figures.get(key) {
        Some(Value::Number(number)) => number.to_string(),
        _ => "?".into(),
    };
    let value = match number("ms_per_stream_second") {
        Some(ms) => format!("{ms:.2} ms CPU per stream-second"),
        None => "no CPU figure (no sample after the warm-up: run longer)".into(),
    };
    let mut detail = Vec::new();
    if let (Some(percent), Some(seconds)) =
        (number("cpu_percent_of_core"), number("measured_seconds"))
    {
        detail.push(format!(
            "{percent:.1} % of a core over {seconds:.0} s after the warm-up"
        ));
    }
    detail.push(format!(
        "threads {} → {}",
        text("threads_warm"),
        text("threads_last")
    ));
    detail.push(format!(
        "xruns {} after the warm-up, {} in all",
        text("xruns_after_warm_up"),
        text("xruns_total")
    ));
    detail.push(format!("{} playbacks", text("plays")));
    detail.push(format!("fds {} → {}", text("fds_warm"), text("fds_last")));
    if let Some(growth) = number("rss_growth_kib") {
        detail.push(format!("RSS {growth:+} KiB"));
    }
    let problems: Vec<&str> = figures
        .get("problems")
        .and_then(Value::as_array)
        .map(|problems| problems.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // The first few, and how many: a count the driver cannot drive fails every guest.
    match problems.as_slice() {
        [] => {}
        [one] => detail.push(format!("problem: {one}")),
        [first, second, ..] => detail.push(format!(
            "{} problems, the first: {first}; {second}",
            problems.len()
        )),
    }
    (value, detail)
}

/// The plugin benchmark's Wasm and native means for each stage of [`PLUGIN_STAGES`].
fn plugins(target: &Path, table: &mut Table) {
    println!("\n==> bench: the Wasm stages against the native ones (cargo bench)");
    let started = SystemTime::now();
    let groups: Vec<&str> = PLUGIN_STAGES.iter().map(|(_, group)| *group).collect();
    let run = run_teed(
        cmd::cargo([
            "bench",
            "--package",
            "paravox-plugin-host",
            "--bench",
            "plugins",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "3",
            "--noplot",
        ])
        .arg(format!("^({})/", groups.join("|"))),
        None,
    );
    let run = match run {
        Ok(run) => run,
        Err(error) => {
            table.failed("plugin benchmark", &format!("{error:#}"));
            return;
        }
    };
    if let Some(failure) = run.failure(Duration::ZERO) {
        table.failed("plugin benchmark", &failure);
    }
    let home = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("criterion"));
    let mut stages = Vec::new();
    for (label, group) in PLUGIN_STAGES {
        let figure = format!("Wasm vs native, {label}");
        let means = estimate(&home, group, "native", started)
            .and_then(|native| Ok((native, estimate(&home, group, "plugin", started)?)));
        let (native, wasm) = match means {
            Ok(means) => means,
            Err(error) => {
                table.failed(figure, &format!("{error:#}"));
                continue;
            }
        };
        let mut detail = format!(
            "native/Wasm; criterion means per 480-frame stereo call: native {native:.0} ns, Wasm {wasm:.0} ns"
        );
        if let Some(best) = best_batch(&run.stderr, group) {
            let _ = write!(detail, "; best batch {best}");
        }
        table.row(figure, format!("{:.2}", native / wasm), detail);
        stages.push(json!({
            "stage": label,
            "group": group,
            "native_ns": native,
            "wasm_ns": wasm,
            "ratio": native / wasm,
        }));
    }
    table.data.insert("plugins".into(), Value::Array(stages));
}

/// Criterion's mean (ns) for `group/function`, if this run wrote it.
fn estimate(home: &Path, group: &str, function: &str, since: SystemTime) -> Result<f64> {
    let path = home.join(group).join(function).join("new/estimates.json");
    let fresh = fs::metadata(&path)
        .and_then(|metadata| metadata.modified())
        .is_ok_and(|modified| modified >= since);
    if !fresh {
        bail!("no fresh {}", path.display());
    }
    let estimates: Value = serde_json::from_str(
        &fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", path.display()))?;
    estimates["mean"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no mean.point_estimate in {}", path.display()))
}

/// The benchmark's own best-batch line for `group` ("NAME  123ns  456ns  0.27x", printed
/// before criterion's runs), as "native 123 ns, Wasm 456 ns, 0.27".
fn best_batch(output: &str, group: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, native, wasm, ratio] = words.as_slice() else {
            return None;
        };
        if *name != group {
            return None;
        }
        let native: f64 = native.strip_suffix("ns")?.parse().ok()?;
        let wasm: f64 = wasm.strip_suffix("ns")?.parse().ok()?;
        let ratio: f64 = ratio.strip_suffix('x')?.parse().ok()?;
        Some(format!(
            "native {native:.0} ns, Wasm {wasm:.0} ns, {ratio:.2}"
        ))
    })
}

/// An idle daemon's CPU: no guests, nothing playing.
fn idle(release: &Path, scratch: &Path, table: &mut Table) {
    println!(
        "\n==> bench: an idle daemon's CPU over {} s",
        IDLE_MEASURE.as_secs()
    );
    match measure_idle(&release.join("paravox"), &scratch.join("idle")) {
        Ok((cpu, seconds)) => {
            // /proc counts CPU time in clock ticks: none counted is less than one.
            let value = if cpu > 0.0 {
                format!("{:.4} s/s", cpu / seconds)
            } else {
                format!("< {:.4} s/s", clock_tick() / seconds)
            };
            table.row(
                "idle daemon CPU",
                value,
                format!(
                    "{cpu:.2} s over {seconds:.1} s, release build, no guests; null output, \
                     tone input, sndif shared-memory transport listening"
                ),
            );
            table.data.insert(
                "idle".into(),
                json!({"cpu_seconds": cpu, "seconds": seconds, "cpu_per_second": cpu / seconds}),
            );
        }
        Err(error) => table.failed("idle daemon CPU", &format!("{error:#}")),
    }
}

/// (CPU seconds, wall seconds) of `paravox serve` with nothing to do, started as the soak
/// starts it (a private state directory, an API port of its own, unprivileged).
fn measure_idle(binary: &Path, dir: &Path) -> Result<(f64, f64)> {
    // The sandboxed daemon may write in its --sndif-shm directory but not next to it:
    // it cannot create the directory itself.
    let shm_dir = dir.join("sndif");
    fs::create_dir_all(&shm_dir).with_context(|| format!("creating {}", shm_dir.display()))?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("finding a free port")?
        .port();
    let log_path = dir.join("daemon.log");
    let log = fs::File::create(&log_path).context("creating the daemon log")?;
    let state = dir.join("state");
    let child = Command::new(binary)
        .arg("serve")
        .arg("--state-dir")
        .arg(&state)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--sndif-shm")
        .arg(&shm_dir)
        .arg("--api-sockets")
        .arg(dir.join("sockets"))
        .args(["--output", "null", "--input", "tone:440"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut daemon = Daemon {
        child,
        log: log_path,
    };
    daemon.wait_until_ready(&state.join("token"), port)?;
    thread::sleep(IDLE_SETTLE);
    daemon.ensure_running()?;
    let before = daemon.cpu_seconds()?;
    let measuring = Instant::now();
    thread::sleep(IDLE_MEASURE);
    daemon.ensure_running()?;
    let cpu = daemon.cpu_seconds()? - before;
    let seconds = measuring.elapsed().as_secs_f64();
    daemon.stop()?;
    Ok((cpu, seconds))
}

/// Seconds per clock tick, the unit of a process's CPU time in `/proc`.
fn clock_tick() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1.0 / hz.max(1) as f64
}

/// The idle step's daemon; killed if dropped while running.
#[derive(Debug)]
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Until its API token exists and its port accepts connections.
    fn wait_until_ready(&mut self, token: &Path, port: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(token.is_file() && TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            self.ensure_running()?;
            if Instant::now() > deadline {
                bail!("the daemon was not ready within 30 s: {}", self.log_tail());
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn ensure_running(&mut self) -> Result<()> {
        match self.child.try_wait().context("checking on the daemon")? {
            None => Ok(()),
            Some(status) => bail!("the daemon exited ({status}): {}", self.log_tail()),
        }
    }

    /// User + system CPU time from `/proc/PID/stat`.
    fn cpu_seconds(&self) -> Result<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .context("reading the daemon's /proc stat")?;
        // utime and stime: fields 14 and 15, the 12th and 13th after the command name,
        // which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |index: usize| -> Result<f64> {
            fields
                .get(index)
                .and_then(|value| value.parse::<u64>().ok())
                .map(|ticks| ticks as f64)
                .context("malformed /proc stat")
        };
        Ok((ticks(11)? + ticks(12)?) * clock_tick())
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("the daemon's pid")?;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("checking on the daemon")? {
                ensure!(
                    status.success(),
                    "the daemon exited with {status}: {}",
                    self.log_tail()
                );
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!("the daemon did not stop within 15 s of SIGTERM")
    }

    /// The daemon log's last lines, printed, and its last line (the daemon's error, when
    /// it failed) for the table.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        eprintln!(
            "the idle daemon's log ends:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
        lines
            .last()
            .map_or_else(|| "(its log is empty)".into(), |line| (*line).to_owned())
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

/// `cargo xtask e2e xen`, its output passed through; the dom0 lines of its report become
/// rows ("paravox CPU in dom0, idle: …", "… during aplay: …", "dom0 busy during …: …").
fn xen(table: &mut Table) {
    println!("\n==> bench: the dom0 figures (cargo xtask e2e xen, about ten minutes)");
    let run = match run_teed(&mut cmd::cargo(["xtask", "e2e", "xen"]), None) {
        Ok(run) => run,
        Err(error) => {
            table.failed("dom0 figures", &format!("{error:#}"));
            return;
        }
    };
    let mut lines: Vec<String> = Vec::new();
    for line in run.stdout.lines().map(str::trim) {
        if !(line.starts_with("paravox CPU in dom0") || line.starts_with("dom0 busy during")) {
            continue;
        }
        // The run prints each figure twice: as it is taken and in its summary.
        if lines.iter().any(|seen| seen == line) {
            continue;
        }
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        // "0.0123 s per second of audio (… over … s …)": the figure, then how it was taken.
        let (value, detail) = value
            .split_once(" (")
            .map_or((value, ""), |(value, detail)| {
                (value, detail.strip_suffix(')').unwrap_or(detail))
            });
        table.row(name, value, detail);
        lines.push(line.to_owned());
    }
    if let Some(failure) = run.failure(Duration::ZERO) {
        table.failed("cargo xtask e2e xen", &failure);
    } else if lines.is_empty() {
        table.failed("dom0 figures", "the run printed none");
    }
    table.data.insert("xen".into(), json!({"lines": lines}));
}

/// Every workspace package's test called `latency`, its `latency:` lines as rows
/// ("latency: CASE: FIGURES" gives the row "latency, CASE").
fn latency(table: &mut Table) {
    println!("\n==> bench: latency tests");
    let packages = match latency_tests() {
        Ok(packages) => packages,
        Err(error) => {
            table.failed("latency", &format!("{error:#}"));
            return;
        }
    };
    if packages.is_empty() {
        table.row("latency", "not available (no latency test)", "");
        return;
    }
    let mut lines = Vec::new();
    for package in packages {
        let test = format!("latency test of {package}");
        let run = run_teed(
            &mut cmd::cargo([
                "test",
                "--package",
                &package,
                "--test",
                "latency",
                "--",
                "--nocapture",
            ]),
            None,
        );
        let run = match run {
            Ok(run) => run,
            Err(error) => {
                table.failed(test, &format!("{error:#}"));
                continue;
            }
        };
        let mut printed = 0;
        for text in run.stdout.lines().chain(run.stderr.lines()) {
            let Some(figures) = latency_line(text) else {
                continue;
            };
            match figures.split_once(": ") {
                Some((case, rest)) => table.row(format!("latency, {case}"), rest, ""),
                None => table.row("latency", figures, ""),
            }
            lines.push(json!({"package": package, "line": figures}));
            printed += 1;
        }
        if let Some(failure) = run.failure(Duration::ZERO) {
            table.failed(test, &failure);
        } else if printed == 0 {
            table.row(test, "printed no `latency:` line", "");
        }
    }
    table.data.insert("latency".into(), Value::Array(lines));
}

/// The workspace packages with a test target called `latency`.
fn latency_tests() -> Result<Vec<String>> {
    let metadata: Value = serde_json::from_str(&cmd::output(&mut cmd::cargo([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
    ]))?)
    .context("`cargo metadata` printed invalid JSON")?;
    let has_latency_test = |package: &Value| {
        package["targets"].as_array().is_some_and(|targets| {
            targets.iter().any(|target| {
                target["name"] == "latency"
                    && target["kind"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|kind| kind == "test"))
            })
        })
    };
    Ok(metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| has_latency_test(package))
        .filter_map(|package| package["name"].as_str().map(str::to_owned))
        .collect())
}

/// The figures of a `latency: …` line; libtest may have put "test NAME ... " before it.
fn latency_line(line: &str) -> Option<&str> {
    let line = line.trim();
    let line = match line.split_once(" ... ") {
        Some((test, rest)) if test.starts_with("test ") => rest,
        _ => line,
    };
    line.strip_prefix("latency:").map(str::trim)
}

/// What a child printed, and how it ended (`None`: killed at its deadline).
#[derive(Debug)]
struct Captured {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Captured {
    /// Why the run failed, in a line: its last line on stderr, else its status.
    fn failure(&self, limit: Duration) -> Option<String> {
        let Some(status) = self.status else {
            return Some(format!(
                "did not finish within {} s and was killed",
                limit.as_secs()
            ));
        };
        if status.success() {
            return None;
        }
        let last = self
            .stderr
            .lines()
            .map(str::trim)
            .rfind(|line| !line.is_empty());
        Some(match last {
            Some(line) => format!("{line} ({status})"),
            None => format!("exited with {status}"),
        })
    }
}

/// Echoes and runs `command`, passing its output through while keeping a copy; with a
/// `limit`, kills it (SIGKILL) when it runs longer.
fn run_teed(command: &mut Command, limit: Option<Duration>) -> Result<Captured> {
    let shown = cmd::display(command);
    println!("$ {shown}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{shown}`"))?;
    let stdout = tee(child.stdout.take(), std::io::stdout)?;
    let stderr = tee(child.stderr.take(), std::io::stderr)?;
    let pid = libc::pid_t::try_from(child.id()).context("the child's pid")?;
    let (sender, ended) = mpsc::channel();
    thread::Builder::new()
        .name("bench-wait".into())
        .spawn(move || {
            let _ = sender.send(child.wait());
        })
        .context("starting a waiter thread")?;
    let status = match limit.map(|limit| ended.recv_timeout(limit)) {
        None => Some(ended.recv().context("the waiter thread vanished")?),
        Some(Ok(status)) => Some(status),
        Some(Err(mpsc::RecvTimeoutError::Timeout)) => {
            // SAFETY: kill has no memory-safety preconditions; the child is not reaped
            // until the waiter's wait returns, so the pid is still its.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            ended.recv().context("the waiter thread vanished")??;
            None
        }
        Some(Err(mpsc::RecvTimeoutError::Disconnected)) => bail!("the waiter thread vanished"),
    };
    let status = status
        .transpose()
        .with_context(|| format!("waiting for `{shown}`"))?;
    let join = |reader: thread::JoinHandle<String>| reader.join().unwrap_or_default();
    Ok(Captured {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

/// Copies `pipe` line by line to `sink` (our stdout or stderr) and returns what it read.
fn tee<W: Write + 'static>(
    pipe: Option<impl Read + Send + 'static>,
    sink: fn() -> W,
) -> Result<thread::JoinHandle<String>> {
    let pipe = pipe.context("the child's output was not piped")?;
    thread::Builder::new()
        .name("bench-tee".into())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let (mut line, mut copy) = (Vec::new(), String::new());
            while reader
                .read_until(b'\n', &mut line)
                .is_ok_and(|read| read > 0)
            {
                let mut sink = sink();
                let _ = sink.write_all(&line);
                let _ = sink.flush();
                copy.push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
            copy
        })
        .context("starting an output thread")
}

/// A scratch directory in the system's temporary directory (short paths: the daemons'
/// Unix sockets live in it), removed when dropped.
#[derive(Debug)]
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create() -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("paravox-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lines_are_found_with_or_without_libtest_prefix() {
        assert_eq!(
            latency_line("latency: period 480, p50 11.2 ms"),
            Some("period 480, p50 11.2 ms")
        );
        assert_eq!(
            latency_line("test round_trip ... latency: p99 20 ms"),
            Some("p99 20 ms")
        );
        assert_eq!(latency_line("test round_trip ... ok"), None);
        assert_eq!(latency_line("no latency: here"), None);
    }

    #[test]
    fn best_batch_reads_the_benchmarks_own_table() {
        let output = "stage   native   plugin   ratio\n\
                      convert_s16le_decode                  310ns      402ns    0.77x\n\
                      mix_16_streams_soft_clip_on          900ns     1500ns    0.60x\n";
        assert_eq!(
            best_batch(output, "convert_s16le_decode").as_deref(),
            Some("native 310 ns, Wasm 402 ns, 0.77")
        );
        assert_eq!(best_batch(output, "mix_16_streams"), None);
    }

    #[test]
    fn a_soak_row_shows_cpu_threads_and_xruns() {
        let figures = json!({
            "streams": 16, "measured_seconds": 40.0, "cpu_percent_of_core": 12.5,
            "ms_per_stream_second": 0.078, "threads_warm": 30, "threads_last": 30,
            "fds_warm": 50, "fds_last": 50, "rss_growth_kib": 12,
            "xruns_after_warm_up": 0, "xruns_total": 2, "plays": 160, "problems": [],
        });
        let (value, detail) = soak_row(&figures);
        assert_eq!(value, "0.08 ms CPU per stream-second");
        assert_eq!(
            detail.join("; "),
            "12.5 % of a core over 40 s after the warm-up; threads 30 → 30; \
             xruns 0 after the warm-up, 2 in all; 160 playbacks; fds 50 → 50; RSS +12 KiB"
        );
    }

    #[test]
    fn a_short_soak_says_it_has_no_cpu_figure() {
        let (value, detail) = soak_row(&json!({"threads_last": 9, "xruns_total": 0}));
        assert!(value.starts_with("no CPU figure"), "{value}");
        assert!(detail.contains(&"threads ? → 9".to_owned()), "{detail:?}");
    }

    #[test]
    fn cells_with_pipes_stay_in_their_column() {
        let mut table = Table::default();
        table.row("a|b", "1", "x\ny");
        assert!(table.markdown().ends_with("| a\\|b | 1 | x y |\n"));
    }

    #[test]
    fn a_killed_run_says_so_and_a_failed_one_gives_its_last_error() {
        let killed = Captured {
            status: None,
            stdout: String::new(),
            stderr: String::new(),
        };
        assert_eq!(
            killed.failure(Duration::from_secs(360)).as_deref(),
            Some("did not finish within 360 s and was killed")
        );
        let status = Command::new("false").status().unwrap();
        let failed = Captured {
            status: Some(status),
            stdout: String::new(),
            stderr: "soak: the daemon exited (signal 9) during the soak\n\n".into(),
        };
        assert!(
            failed
                .failure(Duration::ZERO)
                .unwrap()
                .starts_with("soak: the daemon exited (signal 9) during the soak ("),
        );
    }
}
