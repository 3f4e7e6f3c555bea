//! Domain errors. Every variant names what a client did wrong, never how storage failed.

use thiserror::Error;

/// Bad input: names the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A request that is well formed but cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("{what} not found")]
    NotFound { what: String },
    /// The target's state forbids the change (for example a deleted group).
    #[error("{message}")]
    Conflict { code: String, message: String },
    /// A business rule refuses the change (disabled number, missing capability…).
    #[error("{message}")]
    Unprocessable {
        code: String,
        message: String,
        field: Option<String>,
    },
    #[error("{message}")]
    Forbidden { message: String },
    /// A dependency (WhatsApp) is unavailable for now; worth retrying.
    #[error("{message}")]
    Unavailable { message: String },
}

impl DomainError {
    pub fn not_found(what: impl Into<String>) -> Self {
        DomainError::NotFound { what: what.into() }
    }
    pub fn conflict(code: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Conflict {
            code: code.into(),
            message: message.into(),
        }
    }
    pub fn unprocessable(code: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::Unprocessable {
            code: code.into(),
            message: message.into(),
            field: None,
        }
    }
}
