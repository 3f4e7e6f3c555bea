//! Webhook endpoints, deliveries, recovery, and the organisation's event log (native API).

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json, value::RawValue};
use wagroups_core::{
    event::StoredEvent,
    webhook::{AttemptView, DeliveryView, Endpoint},
    webhook_service::EndpointInput,
};

use crate::{
    AppState, Routes,
    error::{ApiError, DialectError, Native},
    extract::{Auth, Fields, JsonObject, Path, Query},
};

type Result<T> = std::result::Result<T, DialectError<Native>>;

pub fn routes() -> Routes {
    vec![
        ("/v1/webhook-endpoints", get(list).post(create)),
        ("/v1/webhook-endpoints/{id}", get(read).patch(update).delete(remove)),
        ("/v1/webhook-endpoints/{id}/rotate-secret", post(rotate)),
        ("/v1/webhook-endpoints/{id}/deliveries", get(deliveries)),
        ("/v1/webhook-endpoints/{id}/recover", post(recover)),
        ("/v1/events", get(events)),
        ("/v1/events/{eventId}/redeliver", post(redeliver)),
    ]
}

fn render(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "eventTypes": e.event_types,
        "wabaNumbers": e.waba_numbers,
        "format": e.format.as_str(),
        "disabled": e.disabled,
        "disabledReason": e.disabled_reason,
        "createdAt": e.created_at,
        "updatedAt": e.updated_at,
    })
}

/// A string list field; `null` means "all" (`Some(None)`).
fn list_field(f: &Fields, name: &str) -> std::result::Result<Option<Option<Vec<String>>>, ApiError> {
    match f.0.get(name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) if n.is_u64() => Ok(n.to_string()),
                _ => Err(ApiError::invalid(&format!("{name}[{i}]"), "must be a string")),
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(|v| Some(Some(v))),
        Some(_) => Err(ApiError::invalid(name, "must be an array of strings")),
    }
}

fn endpoint_input(f: &Fields) -> std::result::Result<EndpointInput, ApiError> {
    let description = match f.0.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => Some(f.string("description")?),
    };
    let disabled = match f.0.get("disabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::invalid("disabled", "must be a boolean")),
    };
    Ok(EndpointInput {
        url: f.string("url")?,
        event_types: list_field(f, "eventTypes")?,
        waba_numbers: list_field(f, "wabaNumbers")?,
        description,
        format: f.string("format")?,
        disabled,
    })
}

/// Refuses a host name that resolves to a forbidden address now (it is checked again at
/// every delivery). URLs that are not valid are left to the service's validation.
async fn check_target(state: &AppState, input: &EndpointInput) -> std::result::Result<(), ApiError> {
    let Some(url) = &input.url else { return Ok(()) };
    if wagroups_core::webhook::validate_url("url", url, state.allow_private_webhook_targets).is_err() {
        return Ok(());
    }
    let parsed = reqwest_url(url)?;
    wagroups_delivery::guard::check_target(&parsed, state.allow_private_webhook_targets)
        .await
        .map_err(|reason| ApiError::invalid("url", reason))
}

fn reqwest_url(url: &str) -> std::result::Result<url::Url, ApiError> {
    url::Url::parse(url.trim()).map_err(|e| ApiError::invalid("url", format!("is not a URL: {e}")))
}

async fn create(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    let input = endpoint_input(&f)?;
    check_target(&state, &input).await?;
    let ep = state
        .webhooks
        .create_endpoint(&key, input, state.allow_private_webhook_targets)
        .await?;
    let mut body = render(&ep);
    body["secret"] = json!(ep.secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn list(State(state): State<AppState>, Auth(key, ..): Auth<Native>) -> Result<Json<Value>> {
    let eps = state.webhooks.list_endpoints(&key).await?;
    Ok(Json(json!({ "data": eps.iter().map(render).collect::<Vec<_>>() })))
}

async fn read(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
) -> Result<Json<Value>> {
    Ok(Json(render(&state.webhooks.endpoint(&key, &id).await?)))
}

async fn update(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<Value>> {
    let input = endpoint_input(&f)?;
    check_target(&state, &input).await?;
    let ep = state
        .webhooks
        .update_endpoint(&key, &id, input, state.allow_private_webhook_targets)
        .await?;
    Ok(Json(render(&ep)))
}

async fn remove(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
) -> Result<StatusCode> {
    state.webhooks.delete_endpoint(&key, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret, shown in this answer only; the previous one keeps signing for 24 hours.
async fn rotate(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
) -> Result<Json<Value>> {
    let ep = state.webhooks.rotate_endpoint_secret(&key, &id).await?;
    Ok(Json(
        json!({ "secret": ep.secret, "previousSecretExpiresAt": ep.previous_secret_until }),
    ))
}

fn render_attempt(a: &AttemptView) -> Value {
    json!({
        "attemptedAt": a.attempted_at,
        "statusCode": a.status_code,
        "latencyMs": a.latency_ms,
        "error": a.error,
        "nextAttemptAt": a.next_attempt_at,
    })
}

fn render_delivery(d: &DeliveryView) -> Value {
    json!({
        "id": format!("dlv_{}", d.id),
        "eventId": d.event_id,
        "eventType": d.event_type,
        "groupId": d.group_id,
        "sequence": d.sequence,
        "status": d.status.as_str(),
        "nextAttemptAt": d.next_attempt_at,
        "createdAt": d.created_at,
        "updatedAt": d.updated_at,
        "attempts": d.attempts.iter().map(render_attempt).collect::<Vec<_>>(),
    })
}

async fn deliveries(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
    Query(q, ..): Query<Native>,
) -> Result<Json<Value>> {
    let (rows, next) = state
        .webhooks
        .deliveries(&key, &id, q.get("status"), q.get("limit"), q.get("cursor"))
        .await?;
    Ok(Json(
        json!({ "data": rows.iter().map(render_delivery).collect::<Vec<_>>(), "nextCursor": next }),
    ))
}

async fn recover(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    let since = f.string("since")?;
    let n = state.webhooks.recover(&key, &id, since.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "requeued": n }))).into_response())
}

async fn redeliver(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(event_id, ..): Path<Native>,
) -> Result<Response> {
    let n = state.webhooks.redeliver(&key, &event_id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "requeued": n }))).into_response())
}

/// Stored payloads as JSON values, without re-serialising them.
pub fn raw_events(events: Vec<StoredEvent>) -> std::result::Result<Vec<Box<RawValue>>, ApiError> {
    events
        .into_iter()
        .map(|e| RawValue::from_string(e.payload))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            tracing::error!(error = %e, "stored event payload is not JSON");
            ApiError::internal()
        })
}

async fn events(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Query(q, ..): Query<Native>,
) -> Result<Json<Value>> {
    let events = state
        .webhooks
        .org_events(
            &key,
            q.get("groupId"),
            q.get("eventType"),
            q.get("after"),
            q.get("limit"),
        )
        .await?;
    let last = events.last().map(|e| e.event_id.clone());
    Ok(Json(json!({ "data": raw_events(events)?, "lastEventId": last })))
}
