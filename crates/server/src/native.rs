//! The native `/v1` API.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;
use wagroups_core::service::CreateGroupRequest;

use crate::{
    AppState,
    error::{ApiError, DialectError, Native},
    extract::{Auth, Fields, JsonObject},
    render,
};

type Result<T> = std::result::Result<T, DialectError<Native>>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/groups", get(list_groups).post(create_group))
        .route("/v1/groups/{group_id}", get(get_group))
        .route("/v1/groups/{group_id}/events", get(group_events))
}

/// The create-group fields shared by the native API and DoubleTick (both camelCase).
pub fn create_request(f: &Fields) -> std::result::Result<CreateGroupRequest, ApiError> {
    Ok(CreateGroupRequest {
        waba_number: f.digits("wabaNumber")?,
        subject: f.string("subject")?,
        description: f.string("description")?,
        join_approval_mode: f.string("joinApprovalMode")?,
        group_id: f.string("groupId")?,
    })
}

async fn create_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(fields, ..): JsonObject<Native>,
) -> Result<Response> {
    let req = create_request(&fields)?;
    let group = state.service.create_group(&key, req).await?;
    Ok((StatusCode::ACCEPTED, Json(render::group(&group, Some(&[])))).into_response())
}

async fn get_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id): Path<String>,
) -> Result<Response> {
    let (group, participants) = state.service.get_group(&key, &group_id).await?;
    Ok(Json(render::group(&group, Some(&participants))).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "wabaNumber")]
    waba_number: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list_groups(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let page = state
        .service
        .list_groups(
            &key,
            q.waba_number.as_deref(),
            q.status.as_deref(),
            q.limit.as_deref(),
            q.cursor.as_deref(),
        )
        .await?;
    let data: Vec<_> = page.groups.iter().map(|g| render::group(g, None)).collect();
    Ok(Json(json!({ "data": data, "nextCursor": page.next_cursor })).into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

async fn group_events(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Response> {
    let events = state
        .service
        .group_events(&key, &group_id, q.after.as_deref(), q.limit.as_deref())
        .await?;
    Ok(Json(json!({ "data": crate::webhooks::raw_events(events)? })).into_response())
}
