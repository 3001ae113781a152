//! The daemon's configuration file and endpoint setup, as a library so the fuzz targets
//! in `fuzz/` run the same parser and checks as `paravox serve`.

pub mod config;
pub mod plugins;

/// A mistake in the command line or configuration: reported without a backtrace, exit 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Builds a [`UsageError`] as an `anyhow::Error`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// A control-layer refusal as the binary reports it: a bad value is a usage error (exit
/// 2), anything else (a device that cannot open, a file paravox cannot write) a failure.
pub fn control_error(error: paravox_control::ControlError) -> anyhow::Error {
    if error.kind() == paravox_control::ErrorKind::Invalid && error.field().is_some() {
        usage(error.to_string())
    } else {
        anyhow::Error::new(error)
    }
}
