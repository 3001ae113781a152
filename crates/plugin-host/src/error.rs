//! The plugin host's errors.

use std::path::PathBuf;

/// What can go wrong loading, checking or setting up a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The module is not valid WebAssembly or does not compile.
    #[error("the module does not compile: {0}")]
    Compile(String),
    /// The module breaks the plugin ABI.
    #[error("the module breaks the paravox plugin ABI: {0}")]
    Rejected(String),
    /// The manifest is missing, malformed or out of bounds.
    #[error("bad manifest: {0}")]
    Manifest(String),
    /// The plugin cannot serve the requested stage or format.
    #[error("{0}")]
    Unsupported(String),
    /// Instantiating or initializing the plugin failed.
    #[error("setting the plugin up failed: {0}")]
    Setup(String),
    /// The runtime could not be created.
    #[error("the WebAssembly runtime could not start: {0}")]
    Runtime(String),
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, PluginError>;
