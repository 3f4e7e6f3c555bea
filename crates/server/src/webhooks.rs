//! Webhook endpoints, deliveries, recovery, and the organisation's event log (native API).

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, value::RawValue};
use wagroups_core::{event::StoredEvent, webhook_service::EndpointInput};

use crate::{
    AppState, Routes,
    error::{ApiError, DialectError, Native},
    extract::{Auth, Fields, JsonObject, Path, Query},
    render,
};

type Result<T> = std::result::Result<T, DialectError<Native>>;

/// Webhook endpoints' and the event log's operations.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create, list, read, update, remove, rotate, deliveries, recover, redeliver, events))]
pub struct Doc;

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
        verify_token: f.string("verifyToken")?.map(wagroups_core::secret::Secret::new),
        app_secret: f.string("appSecret")?.map(wagroups_core::secret::Secret::new),
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

#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks", operation_id = "v1.endpoints.create",
    summary = "Subscribe a URL to events; the signing secret is in this answer only",
    request_body = crate::apidoc::requests::EndpointIn,
    responses(
        (status = 201, description = "Created, with its secret", body = crate::render::CreatedEndpoint, links(
                ("GetEndpoint" = (operation_id = "v1.endpoints.get", parameters(("id" = "$response.body#/id")))),
                ("UpdateEndpoint" = (operation_id = "v1.endpoints.update", parameters(("id" = "$response.body#/id")))),
                ("RotateSecret" = (operation_id = "v1.endpoints.rotate", parameters(("id" = "$response.body#/id")))),
                ("Deliveries" = (operation_id = "v1.endpoints.deliveries", parameters(("id" = "$response.body#/id")))),
                ("DeleteEndpoint" = (operation_id = "v1.endpoints.delete", parameters(("id" = "$response.body#/id"))))
        )),
        crate::apidoc::EndpointCreateErrors,
    ))]
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
    Ok((StatusCode::CREATED, Json(render::created_endpoint(&ep))).into_response())
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks", operation_id = "v1.endpoints.list",
    responses((status = 200, description = "Endpoints", body = crate::render::EndpointList), crate::apidoc::KeyErrors))]
async fn list(State(state): State<AppState>, Auth(key, ..): Auth<Native>) -> Result<Json<render::EndpointList>> {
    let eps = state.webhooks.list_endpoints(&key).await?;
    Ok(Json(render::EndpointList {
        data: eps.iter().map(render::endpoint).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "v1.endpoints.get",
    params(crate::apidoc::params::EndpointPath),
    responses((status = 200, description = "The endpoint", body = crate::render::Endpoint), crate::apidoc::LookupErrors))]
async fn read(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
) -> Result<Json<render::Endpoint>> {
    Ok(Json(render::endpoint(&state.webhooks.endpoint(&key, &id).await?)))
}

#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "v1.endpoints.update",
    params(crate::apidoc::params::EndpointPath),
    request_body = crate::apidoc::requests::EndpointPatch,
    responses((status = 200, description = "The endpoint", body = crate::render::Endpoint), crate::apidoc::EndpointPatchErrors))]
async fn update(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<render::Endpoint>> {
    let input = endpoint_input(&f)?;
    check_target(&state, &input).await?;
    let ep = state
        .webhooks
        .update_endpoint(&key, &id, input, state.allow_private_webhook_targets)
        .await?;
    Ok(Json(render::endpoint(&ep)))
}

#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", operation_id = "v1.endpoints.delete",
    params(crate::apidoc::params::EndpointPath),
    responses((status = 204, description = "Deleted; what it had not received is dropped"), crate::apidoc::LookupErrors))]
async fn remove(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
) -> Result<StatusCode> {
    state.webhooks.delete_endpoint(&key, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret, shown in this answer only; the previous one keeps signing for 24 hours.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "webhooks",
    operation_id = "v1.endpoints.rotate",
    summary = "New secret; the previous one keeps signing for 24 hours",
    params(crate::apidoc::params::EndpointPath),
    responses((status = 200, description = "The new secret", body = crate::render::RotatedSecret), crate::apidoc::LookupErrors))]
async fn rotate(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
) -> Result<Json<render::RotatedSecret>> {
    let ep = state.webhooks.rotate_endpoint_secret(&key, &id).await?;
    Ok(Json(render::rotated_secret(&ep)))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    operation_id = "v1.endpoints.deliveries",
    params(crate::apidoc::params::EndpointPath, crate::apidoc::params::DeliveriesQuery),
    responses((status = 200, description = "Deliveries, newest first, with their attempts", body = crate::render::DeliveryPage),
        crate::apidoc::LookupErrors))]
async fn deliveries(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
    Query(q, ..): Query<Native>,
) -> Result<Json<render::DeliveryPage>> {
    let (rows, next) = state
        .webhooks
        .deliveries(&key, &id, q.get("status"), q.get("limit"), q.get("cursor"))
        .await?;
    Ok(Json(render::DeliveryPage {
        data: rows.iter().map(render::delivery).collect(),
        next_cursor: next,
    }))
}

#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/recover", tag = "webhooks", operation_id = "v1.endpoints.recover",
    summary = "Queue again the endpoint's failed and dead deliveries created since a time",
    params(crate::apidoc::params::EndpointPath),
    request_body = crate::apidoc::requests::Recover,
    responses((status = 202, description = "Re-queued", body = crate::render::Requeued), crate::apidoc::LookupBodyErrors))]
async fn recover(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(id, ..): Path<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    let since = f.string("since")?;
    let n = state.webhooks.recover(&key, &id, since.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(render::Requeued { requeued: n })).into_response())
}

#[utoipa::path(post, path = "/v1/events/{eventId}/redeliver", tag = "events", operation_id = "v1.events.redeliver",
    summary = "Queue the event again for its endpoints and those that match it now",
    params(crate::apidoc::params::EventPath),
    responses((status = 202, description = "Re-queued", body = crate::render::Requeued), crate::apidoc::LookupErrors))]
async fn redeliver(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(event_id, ..): Path<Native>,
) -> Result<Response> {
    let n = state.webhooks.redeliver(&key, &event_id).await?;
    Ok((StatusCode::ACCEPTED, Json(render::Requeued { requeued: n })).into_response())
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

#[utoipa::path(get, path = "/v1/events", tag = "events", operation_id = "v1.events.list",
    summary = "The organisation's event log, for reconciliation",
    params(crate::apidoc::params::EventsQuery),
    responses((status = 200, description = "Events in log order", body = crate::render::EventPage), crate::apidoc::ReadErrors))]
async fn events(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Query(q, ..): Query<Native>,
) -> Result<Json<render::EventPage>> {
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
    let last_event_id = events.last().map(|e| e.event_id.clone());
    Ok(Json(render::EventPage {
        data: raw_events(events)?,
        last_event_id,
    }))
}
