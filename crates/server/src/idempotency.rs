//! `Idempotency-Key` on every POST, for every dialect: the same key with the same request
//! within 24 hours replays the first answer (`Idempotent-Replayed: true`) and does nothing
//! again; with another request, `422`; while the first is still being answered, `409`. The
//! rules are the core's (`wagroups_core::idempotency`), the keys the store's; this layer
//! reads and keeps the HTTP answers.

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use wagroups_core::{
    idempotency::{self, Begin, IDEMPOTENCY_TTL_MS, Replay},
    time::Timestamp,
};

use crate::{
    AppState,
    error::{ApiError, DialectKind},
    extract::{Params, read_body},
};

/// The largest answer kept for a key.
const ANSWER_MAX: usize = 4 * 1024 * 1024;

/// The caller's key as sent, from wherever a dialect's clients send it (`Authorization`,
/// DoubleTick's `x-public-api-key`, Graph's and Wawp's `access_token`).
fn token(headers: &axum::http::HeaderMap, query: Option<&str>, body: &[u8]) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .or_else(|| headers.get("x-public-api-key"))
        .and_then(|v| v.to_str().ok())
        .map(|v| match v.trim().split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth") => {
                rest.trim().to_string()
            }
            _ => v.trim().to_string(),
        })
        .filter(|t| !t.is_empty());
    if from_header.is_some() {
        return from_header;
    }
    let query = Params::parse(query.unwrap_or("")).ok()?;
    match query.get("access_token") {
        Some(t) => Some(t.to_string()),
        None => serde_json::from_slice::<serde_json::Value>(body)
            .ok()?
            .get("access_token")?
            .as_str()
            .map(str::to_string),
    }
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST || req.uri().path().starts_with("/providers/") {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let dialect = DialectKind::for_path(req.uri().path());
    let key = match raw_key.to_str().map(idempotency::validate_key) {
        Ok(Ok(k)) => k.to_string(),
        Ok(Err(v)) => return dialect.render(ApiError::from(v)),
        Err(_) => {
            return dialect.render(ApiError::invalid("Idempotency-Key", "must be visible ASCII characters"));
        }
    };
    let (parts, body) = req.into_parts();
    // Read as handlers read it: 413 over the limit, 408 when it does not arrive in time.
    let bytes = match read_body(Request::new(body)).await {
        Ok(b) => b,
        Err(e) => return dialect.render(e),
    };
    let (method, path, query) = (
        parts.method.to_string(),
        parts.uri.path().to_string(),
        parts.uri.query().unwrap_or("").to_string(),
    );
    let token = token(&parts.headers, parts.uri.query(), &bytes);
    let req = Request::from_parts(parts, Body::from(bytes.clone()));
    let api_key = match token {
        Some(t) => state.service.authenticate(&t).await.ok(),
        None => None,
    };
    let Some(api_key) = api_key else {
        // Not a live key: the handler refuses it; nothing is kept.
        return next.run(req).await;
    };
    // The same request is the same call by the same key (another key, perhaps limited to
    // other numbers, never gets this one's answer).
    let fingerprint = idempotency::fingerprint(&method, &format!("{path} {}", api_key.id), &query, &bytes);
    let Some(seal_key) = state.secret_key.get() else {
        // Answers are kept sealed: without the deployment's key, none is kept.
        return next.run(req).await;
    };
    let purpose = format!("idempotent answer {} {key}", api_key.org_id);
    let now = Timestamp::now();
    let store = state.service.store();
    let begun = store
        .begin_idempotent(
            &api_key.org_id,
            &key,
            &fingerprint,
            now,
            now.plus_millis(IDEMPOTENCY_TTL_MS),
        )
        .await;
    match begun {
        Err(e) => {
            tracing::error!(error = %e, "idempotency keys are not available");
            dialect.render(ApiError::internal())
        }
        Ok(Begin::InFlight) => dialect.render(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_key_in_use",
            "Idempotency-Key: a request with this key is still being answered; send it again shortly",
        )),
        Ok(Begin::Mismatch) => {
            let mut e = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency-Key: this key was used with another request (method, path, query or body); use a new key",
            );
            e.field = Some("Idempotency-Key".into());
            dialect.render(e)
        }
        Ok(Begin::Replay(r)) => match open(&seal_key, &purpose, r) {
            Some(r) => replay(r),
            None => {
                tracing::error!("a kept answer does not open with this deployment's key");
                dialect.render(ApiError::internal())
            }
        },
        Ok(Begin::Proceed) => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let kept = match axum::body::to_bytes(body, ANSWER_MAX).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "an answer could not be kept for its idempotency key");
                    let _ = store.abandon_idempotent(&api_key.org_id, &key).await;
                    return dialect.render(ApiError::internal());
                }
            };
            let status = parts.status;
            // A refusal (4xx: bad input, a key or limit, a conflict) did nothing: the key is
            // freed, and the request may be sent again, corrected. An answer that may have
            // done something (2xx; 5xx, such as a creation WhatsApp has not confirmed yet) is
            // kept, sealed (answers may show a secret once).
            let outcome = if status.is_client_error() {
                store.abandon_idempotent(&api_key.org_id, &key).await
            } else {
                let content_type = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/json")
                    .to_string();
                store
                    .finish_idempotent(
                        &api_key.org_id,
                        &key,
                        &Replay {
                            status: status.as_u16(),
                            content_type,
                            body: seal_key
                                .seal(&purpose, &B64.encode(&kept))
                                .as_stored()
                                .as_bytes()
                                .to_vec(),
                        },
                    )
                    .await
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "the answer of an idempotency key could not be kept");
            }
            Response::from_parts(parts, Body::from(kept))
        }
    }
}

/// A kept answer, opened.
fn open(key: &wagroups_core::secret::SecretKey, purpose: &str, mut r: Replay) -> Option<Replay> {
    let sealed = wagroups_core::secret::Sealed::from_stored(String::from_utf8(r.body).ok()?);
    let text = key.open(purpose, &sealed).ok()?;
    r.body = B64.decode(text.expose()).ok()?;
    Some(r)
}

fn replay(r: Replay) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, r.body).into_response();
    if let Ok(ct) = HeaderValue::from_str(&r.content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}
