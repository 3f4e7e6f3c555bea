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

/// What a use case fails with: the caller's key, a domain rule, or storage.
#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("missing, unknown or revoked API key")]
    Unauthorized,
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ValidationError> for ServiceError {
    fn from(e: ValidationError) -> Self {
        ServiceError::Domain(DomainError::Invalid(e))
    }
}

impl From<MutateError> for ServiceError {
    fn from(e: MutateError) -> Self {
        match e {
            MutateError::Domain(d) => ServiceError::Domain(d),
            MutateError::Store(s) => ServiceError::Store(s),
        }
    }
}

/// Storage failed (not the client's fault).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// A change refused by the rules, or a storage failure.
#[derive(Debug, Error)]
pub enum MutateError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Stable error codes that more than one place gives (clients match on them).
pub mod code {
    /// The group is pending or failed: not on WhatsApp.
    pub const GROUP_NOT_ACTIVE: &str = "group_not_active";
    pub const GROUP_DELETED: &str = "group_deleted";
    pub const GROUP_SUSPENDED: &str = "group_suspended";
    /// The number's provider cannot do what was asked.
    pub const CAPABILITY_MISSING: &str = "capability_missing";
}
