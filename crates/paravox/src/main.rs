//! `paravox`: the daemon and its command-line tools.

mod activation;
mod check;
mod cli;
mod ctl;
mod docs;
mod logging;
mod play;
mod plugin;
mod record;
mod reload;
mod sandbox;
mod sd_notify;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::Parser;
use paravox::{UsageError, config, control_error, usage};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format, cli.verbose);
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args),
        cli::Command::Play(args) => play::run(args),
        cli::Command::Record(args) => record::run(args),
        cli::Command::Token(args) => ctl::token(args),
        cli::Command::Ctl(args) => ctl::run(args),
        cli::Command::Plugin(args) => plugin::run(args),
        cli::Command::CheckConfig(args) => check::run(args),
        cli::Command::GenerateDocs { dir } => docs::generate(&dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("paravox: {error:#}");
            if error.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
