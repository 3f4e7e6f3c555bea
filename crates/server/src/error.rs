//! One error type for every handler, rendered in the shape of the dialect that answers.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use wagroups_core::{DomainError, ValidationError, service::ServiceError};

/// A client-facing error: status, a stable code, a message naming the field and the rule.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_string(),
            message: message.into(),
            field: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request".into(),
            message: format!("{field}: {}", message.into()),
            field: Some(field.to_string()),
        }
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing, unknown or revoked API key (send Authorization: Bearer <key>)",
        )
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// The error with the core's field names (the native API's) given a dialect's names:
    /// the field and the message that names it.
    pub fn renamed(mut self, name: impl Fn(&str) -> Option<&'static str>) -> Self {
        if let Some(f) = &self.field
            && let Some(theirs) = name(f)
        {
            self.message = self.message.replacen(f.as_str(), theirs, 1);
            self.field = Some(theirs.to_string());
        }
        self
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthorized => ApiError::unauthorized(),
            ServiceError::Domain(d) => d.into(),
            ServiceError::Store(s) => {
                tracing::error!(error = %s, "store failure");
                ApiError::internal()
            }
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(v: ValidationError) -> Self {
        ApiError::invalid(&v.field, v.message)
    }
}

impl From<DomainError> for ApiError {
    fn from(d: DomainError) -> Self {
        match d {
            DomainError::Invalid(v) => v.into(),
            DomainError::NotFound { what } => ApiError::not_found(&what),
            DomainError::Conflict { code, message } => ApiError::new(StatusCode::CONFLICT, &code, message),
            DomainError::Unprocessable { code, message, field } => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code,
                message,
                field,
            },
            DomainError::Forbidden { message } => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            DomainError::Unavailable { message } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
        }
    }
}

/// How a dialect renders errors.
pub trait Dialect: Send + Sync + 'static {
    /// The JSON body of an error.
    fn body(e: &ApiError) -> Value;

    /// A header the dialect's clients send the key in, besides `Authorization`.
    fn key_header() -> Option<&'static str> {
        None
    }

    /// The dialect's name of a field the core names the native API's way, where it differs.
    fn field_name(_core: &str) -> Option<&'static str> {
        None
    }

    fn render(e: ApiError) -> Response {
        let e = e.renamed(Self::field_name);
        let body = Self::body(&e);
        (e.status, Json(body)).into_response()
    }
}

/// The native `/v1` API: `{"error": {"code", "message", "field"}}`.
pub struct Native;

impl Dialect for Native {
    fn body(e: &ApiError) -> Value {
        let mut body = json!({ "code": e.code, "message": e.message });
        if let Some(f) = &e.field {
            body["field"] = json!(f);
        }
        json!({ "error": body })
    }
}

/// DoubleTick's public API: `{"success": false, "message"}`.
pub struct DoubleTick;

impl Dialect for DoubleTick {
    fn body(e: &ApiError) -> Value {
        json!({ "success": false, "message": e.message })
    }

    /// DoubleTick's reference sends the key bare in `Authorization`; its public API also names
    /// an `x-public-api-key` header.
    fn key_header() -> Option<&'static str> {
        Some("x-public-api-key")
    }
}

/// The dialect that answers for a path, for the errors raised before a handler runs (no
/// route, wrong method, a panic, a malformed request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialectKind {
    Native,
    DoubleTick,
    Graph,
    Wuts,
    Wawp,
}

impl DialectKind {
    pub fn for_path(path: &str) -> DialectKind {
        if path.starts_with("/whatsapp/") {
            DialectKind::DoubleTick
        } else if path.starts_with("/graph/") {
            DialectKind::Graph
        } else if path.starts_with("/wuts/") {
            DialectKind::Wuts
        } else if path.starts_with("/wawp/") {
            DialectKind::Wawp
        } else {
            DialectKind::Native
        }
    }

    pub fn body(self, e: &ApiError) -> Value {
        match self {
            DialectKind::Native => Native::body(e),
            DialectKind::DoubleTick => DoubleTick::body(e),
            DialectKind::Graph => crate::graph::Graph::body(e),
            DialectKind::Wuts => crate::wuts::Wuts::body(e),
            DialectKind::Wawp => crate::wawp::Wawp::body(e),
        }
    }

    pub fn render(self, e: ApiError) -> Response {
        match self {
            DialectKind::Native => Native::render(e),
            DialectKind::DoubleTick => DoubleTick::render(e),
            DialectKind::Graph => crate::graph::Graph::render(e),
            DialectKind::Wuts => crate::wuts::Wuts::render(e),
            DialectKind::Wawp => crate::wawp::Wawp::render(e),
        }
    }
}

/// An error on its way out in dialect `D`'s shape.
pub struct DialectError<D: Dialect>(pub ApiError, std::marker::PhantomData<D>);

impl<D: Dialect> DialectError<D> {
    pub fn new(e: ApiError) -> Self {
        DialectError(e, std::marker::PhantomData)
    }
}

impl<D: Dialect, E: Into<ApiError>> From<E> for DialectError<D> {
    fn from(e: E) -> Self {
        DialectError::new(e.into())
    }
}

impl<D: Dialect> IntoResponse for DialectError<D> {
    fn into_response(self) -> Response {
        D::render(self.0)
    }
}
