//! The crate's error type.

/// What can go wrong setting up or serving a virtio-snd card.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The card's topology cannot be offered.
    #[error("virtio-snd topology: {0}")]
    Topology(String),
    /// The engine refused something.
    #[error(transparent)]
    Engine(#[from] paravox_engine::EngineError),
    /// The vhost-user socket or daemon failed.
    #[error("vhost-user: {0}")]
    VhostUser(String),
    /// The operating system refused a resource.
    #[error("system error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
