//! Extractors: the caller's API key and the JSON body, each failing in the dialect's shape.

use std::marker::PhantomData;

use axum::{
    body::Bytes,
    extract::{FromRef, FromRequest, FromRequestParts, Request},
    http::{StatusCode, header, request::Parts},
};
use serde_json::{Map, Value};
use wagroups_core::model::ApiKey;

use crate::{
    AppState,
    error::{ApiError, Dialect, DialectError},
};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The authenticated API key. `Authorization: Bearer <key>`, or the bare key as DoubleTick
/// clients send it.
pub struct Auth<D: Dialect>(pub ApiKey, pub PhantomData<D>);

impl<D: Dialect, S: Send + Sync> FromRequestParts<S> for Auth<D>
where
    AppState: FromRef<S>,
{
    type Rejection = DialectError<D>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let app = AppState::from_ref(state);
        let raw = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        let secret = match raw.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => raw,
        };
        let key = app.service.authenticate(secret).await.map_err(DialectError::from)?;
        Ok(Auth(key, PhantomData))
    }
}

/// A JSON object body: `Content-Type: application/json`, at most [`BODY_LIMIT`] bytes.
pub struct JsonObject<D: Dialect>(pub Fields, pub PhantomData<D>);

impl<D: Dialect, S: Send + Sync> FromRequest<S> for JsonObject<D> {
    type Rejection = DialectError<D>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !(mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))) {
            return Err(DialectError::new(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_content_type",
                format!(
                    "Content-Type must be application/json, got {:?}",
                    if mime.is_empty() { "none" } else { mime }
                ),
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                DialectError::new(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request body must be at most {BODY_LIMIT} bytes"),
                ))
            } else {
                DialectError::new(ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", rej.body_text()))
            }
        })?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(Fields(map), PhantomData)),
            Ok(_) => Err(DialectError::new(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "request body must be a JSON object",
            ))),
            Err(e) => Err(DialectError::new(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("request body is not valid JSON: {e}"),
            ))),
        }
    }
}

/// The fields of a JSON object, read with type errors that name the field.
pub struct Fields(pub Map<String, Value>);

impl Fields {
    /// A string field; absent and `null` are `None`.
    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("must be a string, got {}", type_name(other)),
            )),
        }
    }

    /// A phone-like field: a string, or digits sent as a JSON integer.
    pub fn digits(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
            _ => self.string(name),
        }
    }

    /// An optional boolean field.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("must be a boolean, got {}", type_name(other)),
            )),
        }
    }

    /// A list of items read as strings (numbers as their digits; anything else as its JSON
    /// text, which then fails to read as a phone).
    pub fn items(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        other => other.to_string(),
                    })
                    .collect(),
            )),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("must be an array, got {}", type_name(other)),
            )),
        }
    }

    /// A nested object's fields.
    pub fn object(&self, name: &str) -> Result<Option<Fields>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Fields(m.clone()))),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("must be an object, got {}", type_name(other)),
            )),
        }
    }

    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.string(name)?.ok_or_else(|| ApiError::invalid(name, "is required"))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
