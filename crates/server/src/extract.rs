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
    json,
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
            .or_else(|| D::key_header().and_then(|h| parts.headers.get(h)))
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

/// A JSON object body: `Content-Type: application/json`, at most [`BODY_LIMIT`] bytes, read
/// within the connection's body timeout, and no key given twice in any object.
pub struct JsonObject<D: Dialect>(pub Fields, pub PhantomData<D>);

impl<D: Dialect, S: Send + Sync> FromRequest<S> for JsonObject<D> {
    type Rejection = DialectError<D>;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
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
        let bytes = read_body(req).await.map_err(DialectError::new)?;
        match json::parse_strict(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(Fields(map), PhantomData)),
            Ok(_) => Err(DialectError::new(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "request body must be a JSON object",
            ))),
            Err(json::StrictError::Duplicate(path)) => Err(DialectError::new(ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_json".into(),
                message: format!("{path}: the key appears more than once (each key may be given once)"),
                field: Some(path),
            })),
            Err(json::StrictError::Syntax(e)) => Err(DialectError::new(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("request body is not valid JSON: {e}"),
            ))),
        }
    }
}

/// The whole body, at most [`BODY_LIMIT`] bytes: `413` over it, `408` when the client did
/// not send it within the body timeout.
pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    read_body_limited(req, BODY_LIMIT).await
}

/// [`read_body`] with another limit.
pub async fn read_body_limited(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let cause = |pred: &dyn Fn(&(dyn std::error::Error + 'static)) -> bool| {
                let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(err) = next {
                    if pred(err) {
                        return true;
                    }
                    next = err.source();
                }
                false
            };
            if cause(&|err| err.is::<http_body_util::LengthLimitError>()) {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request body must be at most {limit} bytes"),
                ))
            } else if cause(&|err| err.is::<crate::conn::BodyTimeout>()) {
                Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive within the body timeout",
                ))
            } else {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("the request body could not be read: {e}"),
                ))
            }
        }
    }
}

/// The query string's parameters. A parameter given twice, or one that is not valid UTF-8
/// once percent-decoded, is refused (`400` naming it): ambiguous input is never guessed at.
pub struct Query<D: Dialect>(pub Params, pub PhantomData<D>);

/// Query parameters, each name once.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Each name and its value, in the order given.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }

    pub fn parse(query: &str) -> Result<Params, ApiError> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = form_decode(raw_name)
                .map_err(|_| ApiError::invalid("query", "a parameter name is not valid UTF-8 once percent-decoded"))?;
            let value = form_decode(raw_value)
                .map_err(|_| ApiError::invalid(&name, "is not valid UTF-8 once percent-decoded"))?;
            if out.iter().any(|(k, _)| *k == name) {
                return Err(ApiError::invalid(&name, "is given more than once in the query string"));
            }
            out.push((name, value));
        }
        Ok(Params(out))
    }
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space), refusing invalid UTF-8.
fn form_decode(raw: &str) -> Result<String, std::str::Utf8Error> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
}

impl<D: Dialect, S: Send + Sync> FromRequestParts<S> for Query<D> {
    type Rejection = DialectError<D>;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let params = Params::parse(parts.uri.query().unwrap_or("")).map_err(DialectError::new)?;
        Ok(Query(params, PhantomData))
    }
}

/// The route's one path parameter, refused in the dialect's shape (naming it) when it is
/// not valid UTF-8.
pub struct Path<D: Dialect>(pub String, pub PhantomData<D>);

impl<D: Dialect, S: Send + Sync> FromRequestParts<S> for Path<D> {
    type Rejection = DialectError<D>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::{path::ErrorKind, rejection::PathRejection};
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v, PhantomData)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => match e.kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => Err(DialectError::new(ApiError::invalid(
                    key,
                    "is not valid UTF-8 once percent-decoded",
                ))),
                other => {
                    tracing::error!(error = %other, "a route's path parameters do not match its handler");
                    Err(DialectError::new(ApiError::internal()))
                }
            },
            Err(other) => {
                tracing::error!(error = %other, "a route's path parameters do not match its handler");
                Err(DialectError::new(ApiError::internal()))
            }
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

/// `Prefer: respond-async` (RFC 7240): answer a write WhatsApp confirms later at once, with
/// its pending operation, rather than wait for the confirmation.
pub struct Prefer(pub wagroups_core::ops::WriteOptions);

impl<S: Send + Sync> FromRequestParts<S> for Prefer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let respond_async = parts
            .headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| {
                p.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("respond-async"))
            });
        Ok(Prefer(wagroups_core::ops::WriteOptions { respond_async }))
    }
}
