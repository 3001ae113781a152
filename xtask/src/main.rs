//! paravox's developer entry points, run as `cargo xtask <command>` (the alias lives in
//! `.cargo/config.toml`). Everything a developer or CI needs goes through here, so a fresh
//! machine with only Rust installed needs two commands: `cargo xtask run` and
//! `cargo xtask test`.

mod bench;
mod dist;
mod fuzz;
mod install_test;
mod licenses;
mod run;
mod soak;
mod test;

// The suites live in tests/ (workspace members); xtask only runs them.
use paravox_e2e as e2e;
use paravox_e2e::{cmd, prereqs};

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Developer entry points for the paravox workspace.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything CI runs: prerequisites, fmt, clippy, licence check, tests.
    Test,
    /// Build paravox in release mode and start `paravox serve`.
    Run {
        /// Arguments passed to `paravox serve` (write them after `--`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Check that every crate in the dependency tree is usable under Apache-2.0 OR MIT.
    Licenses,
    /// End-to-end tests in a real guest: `cargo xtask e2e virtio [--device builtin] [--keep]`,
    /// `cargo xtask e2e xen [--keep]`.
    E2e {
        #[command(subcommand)]
        suite: e2e::Suite,
    },
    /// Run guest streams of both protocols, plugins and API clients through a release
    /// daemon for a while, sampling its memory, descriptors, threads and xruns.
    Soak(soak::SoakArgs),
    /// Print the performance table in one run, as Markdown: the soak at each stream count
    /// (CPU per stream-second, threads, xruns), the Wasm plugins against the native
    /// stages, idle CPU, the dom0 figures of `e2e xen` and the latency tests' figures.
    Bench(bench::BenchArgs),
    /// Play position-stamped audio from sndif and virtio-snd guests through daemons with
    /// Wasm and native conversion, every CPU loaded, and check every sink byte for byte
    /// (the long form of the test `cargo xtask test` runs for 10 s).
    Stress {
        /// Minutes of audio each guest plays.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
    },
    /// Run the engine's and the sndif back end's tests (the ring, the grant mappings, the
    /// shared-memory transport with a real frontend) under AddressSanitizer, built into
    /// TARGET/asan.
    Asan,
    /// Build the release binary, its man pages and shell completions, and the Debian
    /// package, into TARGET/dist/.
    Dist,
    /// Install the Debian package into a fresh Debian 12 root (debootstrap, cached) and
    /// run paravox there (root only; the last step of `cargo xtask test`).
    InstallTest,
    /// Run a `cargo fuzz` target (or every one with `--all`) for a while, from its seeds in
    /// fuzz/corpus/NAME: `cargo xtask fuzz virtio_queue --seconds 300`.
    Fuzz {
        /// The target (see fuzz/Cargo.toml).
        name: Option<String>,
        /// Every target, one after the other.
        #[arg(long)]
        all: bool,
        /// How long each target runs (at most, with --runs).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Stop each target after this many executions (`--runs 10000000`), if that
        /// comes before --seconds.
        #[arg(long)]
        runs: Option<u64>,
        /// Replay every committed seed and crash input through a plain build of every
        /// target, then mutate blindly for --seconds each (what `cargo xtask test` does,
        /// with 5 s).
        #[arg(long, conflicts_with_all = ["name", "all"])]
        replay: bool,
    },
}

fn main() -> ExitCode {
    match dispatch(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The chain of causes without a backtrace: these are user-facing failures.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Test => test::run_all(),
        Command::Run { args } => run::run(&args),
        Command::Licenses => licenses::check(),
        Command::E2e { suite } => e2e::run(&suite),
        Command::Soak(args) => soak::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Stress { minutes } => stress(minutes),
        Command::Asan => asan(),
        Command::Dist => dist::run(),
        Command::InstallTest => install_test::run(),
        Command::Fuzz {
            replay: true,
            seconds,
            ..
        } => fuzz::replay(seconds),
        Command::Fuzz {
            name,
            all,
            seconds,
            runs,
            ..
        } => fuzz::run(&fuzz::select(name.as_deref(), all)?, seconds, runs),
    }
}

/// `cargo xtask stress`: the stress test of `crates/paravox/tests/stress.rs`, long.
fn stress(minutes: f64) -> Result<()> {
    anyhow::ensure!(minutes > 0.0, "--minutes must be positive");
    cmd::run(
        cmd::cargo([
            "test",
            "--workspace",
            "--test",
            "stress",
            "--",
            "--nocapture",
            "every_sink_and_recording",
        ])
        .env("PARAVOX_STRESS_SECONDS", format!("{}", minutes * 60.0)),
    )
}

/// `cargo xtask asan`: the memory-handling crates' tests with AddressSanitizer, on the
/// stable toolchain (`RUSTC_BOOTSTRAP=1` unlocks the flag, as for the fuzz targets).
/// `--target` keeps build scripts and proc macros uninstrumented.
fn asan() -> Result<()> {
    let target = e2e::target_directory()?.join("asan");
    cmd::run(
        cmd::cargo([
            "test",
            "--package",
            "paravox-engine",
            "--package",
            "paravox-sndif",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTFLAGS", "-Zsanitizer=address")
        .env("CARGO_TARGET_DIR", target),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_passes_everything_after_the_separator_to_the_daemon() {
        let cli = Cli::try_parse_from(["xtask", "run", "--", "--config", "a.toml", "-v"]).unwrap();
        let Command::Run { args } = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args, ["--config", "a.toml", "-v"]);
    }

    #[test]
    fn e2e_virtio_defaults_to_paravox_and_takes_builtin() {
        let cli = Cli::try_parse_from(["xtask", "e2e", "virtio"]).unwrap();
        let Command::E2e {
            suite: e2e::Suite::Virtio(args),
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.device, e2e::DeviceChoice::Paravox);
        assert!(!args.keep);
        let cli = Cli::try_parse_from(["xtask", "e2e", "virtio", "--device", "builtin", "--keep"])
            .unwrap();
        let Command::E2e {
            suite: e2e::Suite::Virtio(args),
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.device, e2e::DeviceChoice::Builtin);
        assert!(args.keep);
    }

    #[test]
    fn e2e_xen_parses_its_options() {
        let cli = Cli::try_parse_from(["xtask", "e2e", "xen"]).unwrap();
        let Command::E2e {
            suite: e2e::Suite::Xen(args),
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert!(!args.keep);
        assert_eq!(args.timeout, 420);
        let cli = Cli::try_parse_from([
            "xtask",
            "e2e",
            "xen",
            "--keep",
            "--timeout",
            "400",
            "--paravox-binary",
            "/x/paravox",
        ])
        .unwrap();
        let Command::E2e {
            suite: e2e::Suite::Xen(args),
        } = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert!(args.keep);
        assert_eq!(args.timeout, 400);
        assert_eq!(
            args.paravox_binary.as_deref(),
            Some(std::path::Path::new("/x/paravox"))
        );
    }

    #[test]
    fn bench_takes_a_list_of_counts_and_steps_to_skip() {
        let cli = Cli::try_parse_from(["xtask", "bench"]).unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.streams, [16, 64, 256, 512]);
        assert_eq!(args.soak_seconds, 60);
        assert!(args.skip.is_empty());
        let cli = Cli::try_parse_from([
            "xtask",
            "bench",
            "--streams",
            "4,8",
            "--soak-seconds",
            "20",
            "--skip",
            "xen",
            "--skip",
            "latency",
        ])
        .unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(args.streams, [4, 8]);
        assert_eq!(args.soak_seconds, 20);
        assert_eq!(args.skip, [bench::Step::Xen, bench::Step::Latency]);
    }

    #[test]
    fn run_without_arguments_passes_none() {
        let cli = Cli::try_parse_from(["xtask", "run"]).unwrap();
        assert!(matches!(cli.command, Command::Run { args } if args.is_empty()));
    }
}
