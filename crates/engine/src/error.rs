//! The engine's error type: what a transport turns into its protocol's error reply.

use crate::state::{Operation, StreamState};

/// Everything an engine call can refuse.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The operation is not allowed in the stream's current state.
    #[error("{operation} is not allowed while the stream is {state}")]
    IllegalTransition {
        /// The stream's state when the operation arrived.
        state: StreamState,
        /// The refused operation.
        operation: Operation,
    },
    /// The requested parameters do not fit the stream's constraints.
    #[error("parameters rejected: {0}")]
    Params(#[from] paravox_pcm::PcmError),
    /// No card with this id.
    #[error("no card {0}")]
    NoSuchCard(u32),
    /// No stream with this id.
    #[error("no stream {0}")]
    NoSuchStream(u32),
    /// No endpoint with this name.
    #[error("no endpoint named '{0}'")]
    NoSuchEndpoint(String),
    /// An endpoint with this name exists already.
    #[error("an endpoint named '{0}' exists already")]
    EndpointExists(String),
    /// A stream was routed to an endpoint of the other direction.
    #[error("endpoint '{endpoint}' is a {actual} endpoint; this stream needs a {wanted} endpoint")]
    WrongDirection {
        /// The endpoint's name.
        endpoint: String,
        /// What the stream needs.
        wanted: crate::Direction,
        /// What the endpoint is.
        actual: crate::Direction,
    },
    /// The stream has no route and there is no default endpoint for its direction.
    #[error("stream has no route and no default {0} endpoint is configured")]
    NoRoute(crate::Direction),
    /// A limit was reached.
    #[error("limit reached: {0}")]
    Limit(String),

    /// A shared resource is all in use now (every monitor ring listens); try later.
    #[error("busy: {0}")]
    Busy(String),

    /// A guest asked for more than its card's budget allows.
    #[error("card {card}: {exceeded}")]
    Budget {
        /// The card.
        card: u32,
        /// Which limit, what was asked and what is allowed.
        exceeded: crate::budget::Exceeded,
    },
    /// The stream's rate cannot be converted to the endpoint's.
    #[error("cannot resample {from} Hz to {to} Hz: {why}")]
    Resample {
        /// Stream rate.
        from: u32,
        /// Endpoint rate.
        to: u32,
        /// Why not.
        why: &'static str,
    },
    /// The host device could not be opened or failed.
    #[error("device error: {0}")]
    Device(#[from] crate::device::DeviceError),
    /// The operating system refused a resource (thread, eventfd).
    #[error("system error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand for engine results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
