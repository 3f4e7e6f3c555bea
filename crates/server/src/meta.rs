//! Meta's webhooks in: `/providers/meta/webhook`, the callback URL a user pastes into Meta's
//! App Dashboard. `GET` is Meta's verification handshake; `POST` carries group changes, signed
//! with the app secret. A verified payload's reports are recorded in the provider inbox before
//! the `200`, and applied after it.

use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use subtle::ConstantTimeEq as _;
use wagroups_core::{
    model::{Number, ProviderKind},
    provider::ProviderEnvelope,
    time::Timestamp,
};
use wagroups_providers::cloud::{CloudConfig, Credential, webhook};

use crate::{
    AppState, Routes,
    error::{ApiError, DialectError, Native},
};

type Result<T> = std::result::Result<T, DialectError<Native>>;

/// The largest webhook accepted (Meta batches up to 1000 updates in one).
pub const WEBHOOK_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// The longest challenge echoed back.
const CHALLENGE_MAX: usize = 256;

/// Meta's webhook calls.
#[derive(utoipa::OpenApi)]
#[openapi(paths(verify, receive))]
pub struct Doc;

pub fn routes() -> Routes {
    vec![("/providers/meta/webhook", get(verify).post(receive))]
}

/// The handshake's query.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct Handshake {
    /// `subscribe`
    #[param(rename = "hub.mode")]
    mode: String,
    /// The verify token typed into the App Dashboard (one of a cloud-api number's).
    #[param(rename = "hub.verify_token")]
    verify_token: String,
    /// Echoed back when the token is right.
    #[param(rename = "hub.challenge")]
    challenge: String,
}

/// Meta's signature of a webhook.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct Signature {
    /// `sha256=<hex>`: HMAC-SHA256 of the raw body with the Meta app's secret.
    #[param(rename = "X-Hub-Signature-256")]
    signature: String,
}

fn forbidden(message: &str) -> DialectError<Native> {
    DialectError::new(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message))
}

/// The cloud-api numbers and their configurations.
async fn cloud_numbers(state: &AppState) -> Result<Vec<(Number, CloudConfig)>> {
    let numbers = state
        .service
        .store()
        .list_numbers(None)
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    Ok(numbers
        .into_iter()
        .filter(|n| n.provider == ProviderKind::CloudApi)
        .filter_map(|n| match CloudConfig::of(&n) {
            Ok(c) => Some((n, c)),
            Err(e) => {
                tracing::error!(error = %e, "a cloud-api number's configuration does not read");
                None
            }
        })
        .collect())
}

/// Meta's verification of the callback URL: `200` with `hub.challenge` as the body when
/// `hub.verify_token` is the verify token of a cloud-api number, `403` otherwise.
#[utoipa::path(get, path = "/providers/meta/webhook", tag = "providers", operation_id = "providers.meta.verify",
    summary = "Meta's callback verification (App Dashboard > WhatsApp > Configuration)",
    security(),
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", content_type = "text/plain", body = String),
        (status = 403, response = crate::apidoc::ErrorResponse),
    ))]
async fn verify(State(state): State<AppState>, req: Request) -> Result<Response> {
    let mut mode = None;
    let mut token = None;
    let mut challenge = None;
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "hub.mode" => mode = Some(v.into_owned()),
            "hub.verify_token" => token = Some(v.into_owned()),
            "hub.challenge" => challenge = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some("subscribe"), Some(token), Some(challenge)) = (mode.as_deref(), token, challenge) else {
        return Err(forbidden(
            "expected hub.mode=subscribe, hub.verify_token and hub.challenge",
        ));
    };
    if challenge.is_empty() || challenge.len() > CHALLENGE_MAX || challenge.chars().any(char::is_control) {
        return Err(forbidden("hub.challenge is not a challenge"));
    }
    let Some(key) = state.secret_key.get() else {
        return Err(forbidden("no cloud-api number is configured"));
    };
    let key = &key;
    let mut matched = false;
    for (n, config) in cloud_numbers(&state).await? {
        match config.open(&n.waba_number, Credential::VerifyToken, key) {
            // Every number is compared, in constant time, whatever matched before.
            Ok(t) => matched |= bool::from(t.expose().as_bytes().ct_eq(token.as_bytes())),
            Err(e) => tracing::error!(error = %e, "a verify token does not open"),
        }
    }
    if !matched {
        tracing::warn!("Meta webhook verification with an unknown verify token");
        return Err(forbidden("the verify token is not one of this gateway's"));
    }
    tracing::info!("Meta webhook verification accepted");
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], challenge).into_response())
}

/// A webhook from Meta: verified against the app secret of every number it names, its
/// reports recorded in the provider inbox, then `200`. Nothing is recorded when the
/// signature does not match (`401` without one, `403` with a wrong one).
#[utoipa::path(post, path = "/providers/meta/webhook", tag = "providers", operation_id = "providers.meta.receive",
    summary = "Meta's webhooks (fields group_lifecycle_update, group_participants_update, group_settings_update, group_status_update)",
    security(),
    params(Signature),
    request_body(content = Object, description = "Meta's webhook envelope (`object`, `entry[].changes[]`)"),
    responses(
        (status = 200, description = "Recorded; applied after this answer"),
        (status = 400, response = crate::apidoc::ErrorResponse),
        (status = 401, response = crate::apidoc::ErrorResponse),
        (status = 403, response = crate::apidoc::ErrorResponse),
        (status = 408, response = crate::apidoc::ErrorResponse),
        (status = 413, response = crate::apidoc::ErrorResponse),
        (status = 503, response = crate::apidoc::ErrorResponse),
    ))]
async fn receive(State(state): State<AppState>, headers: HeaderMap, req: Request) -> Result<Response> {
    let raw: Bytes = crate::extract::read_body_limited(req, WEBHOOK_BODY_LIMIT)
        .await
        .map_err(DialectError::new)?;
    let Some(signature) = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()) else {
        metrics::counter!("wagroups_meta_webhooks_total", "outcome" => "unsigned").increment(1);
        return Err(DialectError::new(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signature_missing",
            "X-Hub-Signature-256 is required",
        )));
    };
    let payload = webhook::parse_body(&raw).map_err(|e| {
        DialectError::new(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        ))
    })?;
    let ids = webhook::phone_number_ids(&payload);
    let Some(key) = state.secret_key.get() else {
        return Err(forbidden("no cloud-api number is configured"));
    };
    let key = &key;
    if ids.is_empty() {
        return Err(forbidden(
            "the payload names no phone number (metadata.phone_number_id)",
        ));
    }
    // The body must be signed with the app secret of every number it names.
    let mut numbers = std::collections::HashMap::new();
    for id in &ids {
        let number = state
            .service
            .store()
            .find_number_by_ref(ProviderKind::CloudApi, id)
            .await
            .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
        let Some(number) = number else {
            metrics::counter!("wagroups_meta_webhooks_total", "outcome" => "unknown_number").increment(1);
            tracing::warn!(phone_number_id = %id, "a Meta webhook for a phone number ID no number has");
            return Err(forbidden(
                "the payload names a phone number ID this gateway does not serve",
            ));
        };
        let secret = CloudConfig::of(&number)
            .and_then(|c| c.open(&number.waba_number, Credential::AppSecret, key))
            .map_err(|e| {
                tracing::error!(error = %e, "an app secret does not open");
                ApiError::internal()
            })?;
        if !webhook::signature_matches(secret.expose(), &raw, signature) {
            metrics::counter!("wagroups_meta_webhooks_total", "outcome" => "bad_signature").increment(1);
            tracing::warn!(phone_number_id = %id, "a Meta webhook whose signature does not match");
            return Err(forbidden("X-Hub-Signature-256 does not match the body"));
        }
        numbers.insert(id.clone(), number.waba_number);
    }
    let batch = webhook::translate(&payload, Timestamp::now());
    if batch.messages > 0 {
        metrics::counter!("wagroups_meta_webhook_changes_total", "kind" => "messages").increment(batch.messages as u64);
    }
    if batch.unrecognised > 0 {
        metrics::counter!("wagroups_meta_webhook_changes_total", "kind" => "unrecognised")
            .increment(batch.unrecognised as u64);
        tracing::warn!(
            count = batch.unrecognised,
            "a Meta webhook carried changes this gateway does not know (kept)"
        );
    }
    let envelopes: Vec<ProviderEnvelope> = batch
        .reports
        .into_iter()
        .filter_map(|r| {
            Some(ProviderEnvelope {
                waba_number: numbers.get(&r.phone_number_id)?.clone(),
                dedup_key: r.dedup_key,
                event: r.event,
            })
        })
        .collect();
    let reports = envelopes.len();
    state.service.accept_reports(envelopes).await.map_err(|e| {
        tracing::error!(error = %e, "a Meta webhook could not be recorded (Meta will deliver it again)");
        DialectError::new(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "not recorded; deliver again",
        ))
    })?;
    metrics::counter!("wagroups_meta_webhooks_total", "outcome" => "accepted").increment(1);
    metrics::counter!("wagroups_meta_webhook_reports_total").increment(reports as u64);
    Ok(StatusCode::OK.into_response())
}
