//! The crate's one error: what was wrong with a change, in words that do not depend on
//! who asked for it, and what kind of wrong it was, so each front door can answer in its
//! own terms (the API as an HTTP status, the configuration file with its line).

use paravox_engine::EngineError;

/// What kind of refusal a [`ControlError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A value that cannot be accepted (HTTP 422, a configuration error).
    Invalid,
    /// The change conflicts with what exists (a name taken, an object in use; HTTP 409).
    Conflict,
    /// It names something that does not exist (HTTP 404).
    NotFound,
    /// Something the host cannot do now (ALSA cannot list its PCMs; HTTP 503).
    Unavailable,
    /// paravox itself failed (a file it cannot write; HTTP 500).
    Internal,
}

/// A refused or failed change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    kind: ErrorKind,
    message: String,
    /// The request field the message is about, when one is (`formats`, `route`…): the
    /// configuration file points at that field's line.
    field: Option<&'static str>,
}

impl ControlError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ControlError {
        ControlError {
            kind,
            message: message.into(),
            field: None,
        }
    }

    /// A value that cannot be accepted.
    pub fn invalid(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Invalid, message)
    }

    /// A conflict with what exists.
    pub fn conflict(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Conflict, message)
    }

    /// Nothing of that name or id.
    pub fn not_found(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::NotFound, message)
    }

    /// The host cannot do it now.
    pub fn unavailable(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Unavailable, message)
    }

    /// paravox failed.
    pub fn internal(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorKind::Internal, message)
    }

    /// The same error, about the request field `field`.
    pub fn at(mut self, field: &'static str) -> ControlError {
        self.field = Some(field);
        self
    }

    /// The same error with `context` before its message ("streams[1]: …").
    pub fn context(mut self, context: impl std::fmt::Display) -> ControlError {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What was wrong, in words.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The request field it is about, if one.
    pub fn field(&self) -> Option<&'static str> {
        self.field
    }
}

impl From<EngineError> for ControlError {
    fn from(error: EngineError) -> ControlError {
        let message = error.to_string();
        let kind = match error {
            EngineError::NoSuchCard(_)
            | EngineError::NoSuchStream(_)
            | EngineError::NoSuchEndpoint(_) => ErrorKind::NotFound,
            EngineError::EndpointExists(_)
            | EngineError::IllegalTransition { .. }
            | EngineError::NoRoute(_)
            | EngineError::Limit(_)
            | EngineError::Budget { .. } => ErrorKind::Conflict,
            EngineError::Busy(_) => ErrorKind::Unavailable,
            EngineError::WrongDirection { .. }
            | EngineError::Params(_)
            | EngineError::Resample { .. }
            | EngineError::Device(_) => ErrorKind::Invalid,
            EngineError::Io(_) => ErrorKind::Internal,
        };
        ControlError::new(kind, message)
    }
}

/// The crate's result.
pub type Result<T, E = ControlError> = std::result::Result<T, E>;
