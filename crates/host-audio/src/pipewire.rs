//! Native PipeWire playback and capture: each device is a stream node in the host's
//! PipeWire graph.
//!
//! **Loaded at run time.** libpipewire-0.3 is opened with `dlopen` on first use (a minimal
//! hand-written binding in `ffi`), so paravox builds and runs on hosts without PipeWire
//! (an embedded Xen dom0) and its package does not depend on it. Without the library,
//! opening a device fails with a message that names the package; [`pipewire_available`]
//! tells beforehand, without connecting.
//!
//! **The clock.** A device offers interleaved `F32_LE` at the endpoint's rate and channel
//! count (positions in the engine's standard order) and asks for a quantum of one period
//! (`node.latency`); PipeWire converts to whatever the graph runs. Between the endpoint
//! thread and PipeWire's data thread sits a small lock-free ring: playback `write` returns
//! once the ring is back under its quota (three periods, or a quantum plus two periods),
//! capture `read` once a period has arrived. `process` runs on the data thread
//! (`PW_STREAM_FLAG_RT_PROCESS`) and only copies, counts xruns and wakes the endpoint
//! through a futex. If the graph runs no cycle for the stream (not linked, no driver), the
//! device keeps time itself with a [`Pacer`](paravox_engine::clock::Pacer) until it does.
//!
//! **Idle.** While the endpoint has no running stream the node is made inactive
//! (`pw_stream_set_active`), so it leaves the graph's schedule and its driver may suspend;
//! `resume` empties the ring and activates it again.
//!
//! **Loss.** When the daemon goes away, the stream drops to `UNCONNECTED` and the next
//! `write`/`read` returns [`DeviceError::Lost`]; every wait is bounded, so this happens
//! within a period or so. Each opener call builds everything anew (thread loop, context,
//! core, stream), so the endpoint's retries find a restarted daemon.

mod capture;
mod ffi;
mod playback;
mod pod;
mod ring;
mod stream;

use std::path::PathBuf;

use paravox_engine::device::DeviceError;

pub use capture::{PipewireCapture, PipewireCaptureOpener};
pub use playback::{PipewirePlayback, PipewirePlaybackOpener};

/// How a paravox node presents itself in the PipeWire graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNames {
    /// `node.name`: the unique name tools and `target.object` use.
    pub node_name: String,
    /// `node.description`: the name mixers show.
    pub description: String,
    /// `media.name`: what is playing (or recording).
    pub media_name: String,
    /// `application.name`: who plays; mixers group and label streams by it (a node per
    /// guest stream names its VM here).
    pub application_name: String,
}

/// Everything that can go wrong opening a PipeWire device.
#[derive(Debug, thiserror::Error)]
pub enum PipewireError {
    /// libpipewire cannot be loaded (or lacks a symbol paravox uses).
    #[error("{0}")]
    Unavailable(String),

    /// No PipeWire daemon answered.
    #[error("cannot connect to the PipeWire daemon (is it running for this user?): {source}")]
    Connect {
        #[source]
        source: std::io::Error,
    },

    /// A libpipewire call failed.
    #[error("PipeWire: {what} failed: {source}")]
    Call {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The daemon refused the stream, or it did not come up in time.
    #[error("PipeWire node '{node}': {reason}")]
    Stream { node: String, reason: String },

    /// A name or format PipeWire cannot carry.
    #[error("invalid PipeWire {what}: '{value}'")]
    InvalidSetting { what: &'static str, value: String },
}

impl From<PipewireError> for DeviceError {
    fn from(error: PipewireError) -> DeviceError {
        DeviceError::Lost(error.to_string())
    }
}

/// Whether libpipewire-0.3 loads and a daemon socket exists (`$PIPEWIRE_REMOTE`, else
/// `pipewire-0`, in `$PIPEWIRE_RUNTIME_DIR`, `$XDG_RUNTIME_DIR` or `/run/pipewire`), as
/// libpipewire itself looks for it. Does not connect.
pub fn pipewire_available() -> bool {
    ffi::library_loads() && daemon_socket().is_some()
}

/// The daemon socket a client would connect to, if one exists.
fn daemon_socket() -> Option<PathBuf> {
    let remote = std::env::var("PIPEWIRE_REMOTE")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "pipewire-0".to_string());
    if remote.starts_with('@') {
        // An abstract socket has no path to look at; assume it is there.
        return Some(PathBuf::from(remote));
    }
    if remote.starts_with('/') {
        let path = PathBuf::from(remote);
        return path.exists().then_some(path);
    }
    // libpipewire looks in the first of these that is set, then in the system directory.
    let runtime_dir = ["PIPEWIRE_RUNTIME_DIR", "XDG_RUNTIME_DIR", "USERPROFILE"]
        .iter()
        .find_map(std::env::var_os)
        .map(PathBuf::from);
    runtime_dir
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/run/pipewire")))
        .map(|dir| dir.join(&remote))
        .find(|path| path.exists())
}
