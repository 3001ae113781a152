//! The crate's one error type.
//!
//! Guest mistakes inside a request are not errors of this kind: they become a negative
//! errno in the response ([`crate::wire::Errno`]). These errors are what stops a device
//! from connecting (bad XenStore configuration, a grant that cannot be mapped) or makes
//! the backend cut a device off (a corrupted ring index).

use std::io;

/// Everything that can go wrong in the sndif backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A XenStore node holds a value the backend cannot use.
    #[error("XenStore node {node}: {problem}")]
    Config {
        /// The full path of the node.
        node: String,
        /// What is wrong, quoting the value.
        problem: String,
    },
    /// xenstored answered a request with an error code (`ENOENT`, `EAGAIN`, …).
    #[error("XenStore {operation} {path}: {code}")]
    XenStore {
        /// The request (`read`, `write`, …).
        operation: &'static str,
        /// The path it named.
        path: String,
        /// The daemon's error string.
        code: String,
    },
    /// The XenStore connection broke or spoke nonsense.
    #[error("XenStore connection: {0}")]
    XenStoreConnection(String),
    /// A grant could not be mapped.
    #[error("grant mapping for domain {domid}: {problem}")]
    Grant {
        /// The granting domain.
        domid: u32,
        /// What went wrong.
        problem: String,
    },
    /// An event channel could not be bound or used.
    #[error("event channel: {0}")]
    EventChannel(String),
    /// The frontend corrupted a shared ring.
    #[error("shared ring corrupted: {0}")]
    Ring(#[from] crate::ring::RingError),
    /// The frontend corrupted its event page.
    #[error("event page corrupted: {0}")]
    EventPage(#[from] crate::event::EventPageError),
    /// An access outside a shared mapping was refused.
    #[error("access of {len} bytes at offset {offset} outside a {size}-byte shared mapping")]
    OutOfBounds {
        /// Requested start.
        offset: u64,
        /// Requested length.
        len: u64,
        /// Size of the mapping.
        size: u64,
    },
    /// The engine refused an operation.
    #[error(transparent)]
    Engine(#[from] paravox_engine::EngineError),
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's reason.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] with the last OS error.
    pub(crate) fn last_os(what: impl Into<String>) -> Error {
        Error::Io {
            what: what.into(),
            source: io::Error::last_os_error(),
        }
    }

    /// An [`Error::Io`] from `source`.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// An [`Error::Config`].
    pub(crate) fn config(node: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Config {
            node: node.into(),
            problem: problem.into(),
        }
    }

    /// Whether this is xenstored's "no such node".
    pub fn is_enoent(&self) -> bool {
        matches!(self, Error::XenStore { code, .. } if code == "ENOENT")
    }

    /// Whether this is xenstored's "transaction conflict, retry".
    pub fn is_eagain(&self) -> bool {
        matches!(self, Error::XenStore { code, .. } if code == "EAGAIN")
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
