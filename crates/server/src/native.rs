//! The native `/v1` API for groups.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use wagroups_core::{
    ops::{GroupPatch, WriteOptions, Written},
    service::CreateGroupRequest,
};

use crate::{
    AppState, Routes,
    error::{ApiError, DialectError, Native},
    extract::{Auth, Fields, JsonObject, Path, Prefer, Query},
    render,
};

type Result<T> = std::result::Result<T, DialectError<Native>>;

/// How long a create with participants waits for WhatsApp's answer about them.
const CREATE_RESULTS_WAIT: Duration = Duration::from_secs(10);

pub fn routes() -> Routes {
    vec![
        ("/v1/groups", get(list_groups).post(create_group)),
        (
            "/v1/groups/{groupId}",
            get(get_group).patch(update_group).delete(delete_group),
        ),
        ("/v1/groups/{groupId}/events", get(group_events)),
        (
            "/v1/groups/{groupId}/participants",
            get(list_participants)
                .post(add_participants)
                .delete(remove_participants),
        ),
        ("/v1/groups/{groupId}/admins", post(promote).delete(demote)),
        ("/v1/groups/{groupId}/invite-link", get(invite_link)),
        ("/v1/groups/{groupId}/invite-link/reset", post(reset_invite_link)),
        ("/v1/groups/{groupId}/join-requests", get(join_requests)),
        ("/v1/groups/{groupId}/join-requests/approve", post(approve)),
        ("/v1/groups/{groupId}/join-requests/reject", post(reject)),
        ("/v1/operations/{operationId}", get(operation)),
    ]
}

/// The create-group fields shared by the native API and DoubleTick (both camelCase).
pub fn create_request(f: &Fields) -> std::result::Result<CreateGroupRequest, ApiError> {
    Ok(CreateGroupRequest {
        waba_number: f.digits("wabaNumber")?,
        subject: f.string("subject")?,
        description: f.string("description")?,
        join_approval_mode: f.string("joinApprovalMode")?,
        group_id: f.string("groupId")?,
        participants: f.items("participants")?,
        invite_fallback: f.boolean("inviteFallback")?,
    })
}

async fn create_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(fields, ..): JsonObject<Native>,
) -> Result<Response> {
    let req = create_request(&fields)?;
    let created = state.service.create_group(&key, req).await?;
    if created.participants.is_empty() {
        return Ok((StatusCode::ACCEPTED, Json(render::group(&created.group, Some(&[])))).into_response());
    }
    // Participants: wait (bounded) for WhatsApp's answer about each, then report it.
    let deadline = tokio::time::Instant::now() + CREATE_RESULTS_WAIT;
    let results = loop {
        if let Some(r) = state.service.creation_results(&created).await? {
            break Some(r);
        }
        if tokio::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    if results.is_some() {
        state.service.settle(created.group.number_id).await?;
    }
    let (group, participants) = state.service.get_group(&key, &created.group.group_id).await?;
    let mut body = render::group(&group, Some(&participants));
    body["results"] = match &results {
        Some(r) => Value::Array(r.iter().map(render::participant_result).collect()),
        None => Value::Null,
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn get_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Response> {
    let (group, participants) = state.service.get_group(&key, &group_id).await?;
    Ok(Json(render::group(&group, Some(&participants))).into_response())
}

async fn update_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    let settings = f.object("settings")?;
    let patch = GroupPatch {
        subject: f.string("subject")?,
        description: f.string("description")?,
        join_approval_mode: f.string("joinApprovalMode")?,
        announcement_only: settings
            .as_ref()
            .map(|s| s.boolean("announcementOnly"))
            .transpose()
            .map_err(|e| ApiError::invalid("settings.announcementOnly", e.message))?
            .flatten(),
        locked: settings
            .as_ref()
            .map(|s| s.boolean("locked"))
            .transpose()
            .map_err(|e| ApiError::invalid("settings.locked", e.message))?
            .flatten(),
    };
    let group = match state.service.update_group(&key, &group_id, patch, opts).await? {
        Written::Done(g) => g,
        Written::Pending(op) => return Ok(render::pending(&op)),
    };
    let (_, participants) = state.service.get_group(&key, &group.group_id).await?;
    Ok(Json(render::group(&group, Some(&participants))).into_response())
}

async fn delete_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
) -> Result<Response> {
    match state.service.delete_group(&key, &group_id, opts).await? {
        Written::Done(group) => Ok(Json(render::group(&group, None)).into_response()),
        Written::Pending(op) => Ok(render::pending(&op)),
    }
}

async fn list_groups(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Query(q, ..): Query<Native>,
) -> Result<Response> {
    let page = state
        .service
        .list_groups(
            &key,
            q.get("wabaNumber"),
            q.get("status"),
            q.get("limit"),
            q.get("cursor"),
        )
        .await?;
    let data: Vec<_> = page.groups.iter().map(|g| render::group(g, None)).collect();
    Ok(Json(json!({ "data": data, "nextCursor": page.next_cursor })).into_response())
}

async fn group_events(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Query(q, ..): Query<Native>,
) -> Result<Response> {
    let events = state
        .service
        .group_events(&key, &group_id, q.get("after"), q.get("limit"))
        .await?;
    Ok(Json(json!({ "data": crate::webhooks::raw_events(events)? })).into_response())
}

async fn list_participants(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<Value>> {
    let (_, participants) = state.service.get_group(&key, &group_id).await?;
    Ok(Json(
        json!({ "data": participants.iter().map(render::participant).collect::<Vec<_>>() }),
    ))
}

fn participants_field(f: &Fields) -> std::result::Result<Vec<String>, ApiError> {
    let list = f
        .items("participants")?
        .ok_or_else(|| ApiError::invalid("participants", "is required (an array of phones or JIDs)"))?;
    if list.is_empty() {
        return Err(ApiError::invalid("participants", "must list at least one participant"));
    }
    Ok(list)
}

async fn add_participants(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    let list = participants_field(&f)?;
    let fallback = f.boolean("inviteFallback")?.unwrap_or(true);
    let written = state
        .service
        .add_participants(&key, &group_id, &list, fallback, opts)
        .await?;
    Ok(participant_answer(written))
}

/// Per-participant results, or the pending operation.
fn participant_answer(written: Written<Vec<wagroups_core::ops::ParticipantResult>>) -> Response {
    match written {
        Written::Done(results) => render::participant_results(&results).into_response(),
        Written::Pending(op) => render::pending(&op),
    }
}

async fn remove_participants(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    let list = participants_field(&f)?;
    let written = state.service.remove_participants(&key, &group_id, &list, opts).await?;
    Ok(participant_answer(written))
}

async fn set_admins(
    state: AppState,
    key: wagroups_core::model::ApiKey,
    group_id: String,
    f: Fields,
    promote: bool,
    opts: WriteOptions,
) -> Result<Response> {
    let list = participants_field(&f)?;
    let written = state.service.set_admins(&key, &group_id, &list, promote, opts).await?;
    Ok(participant_answer(written))
}

async fn promote(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    set_admins(state, key, group_id, f, true, opts).await
}

async fn demote(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    set_admins(state, key, group_id, f, false, opts).await
}

async fn invite_link(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<Value>> {
    let (group, _) = state.service.get_group(&key, &group_id).await?;
    Ok(Json(
        json!({ "groupId": group.group_id, "inviteLink": group.invite_link }),
    ))
}

async fn reset_invite_link(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
) -> Result<Response> {
    match state.service.reset_invite_link(&key, &group_id, opts).await? {
        Written::Done(group) => {
            Ok(Json(json!({ "groupId": group.group_id, "inviteLink": group.invite_link })).into_response())
        }
        Written::Pending(op) => Ok(render::pending(&op)),
    }
}

async fn join_requests(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<Value>> {
    let requests = state.service.join_requests(&key, &group_id).await?;
    Ok(Json(
        json!({ "data": requests.iter().map(render::join_request).collect::<Vec<_>>() }),
    ))
}

async fn resolve(
    state: AppState,
    key: wagroups_core::model::ApiKey,
    group_id: String,
    f: Fields,
    approve: bool,
    opts: WriteOptions,
) -> Result<Response> {
    let ids = f
        .items("joinRequestIds")?
        .ok_or_else(|| ApiError::invalid("joinRequestIds", "is required (an array of join request IDs)"))?;
    match state
        .service
        .resolve_join_requests(&key, &group_id, &ids, approve, opts)
        .await?
    {
        Written::Done(results) => Ok(render::join_request_results(&results).into_response()),
        Written::Pending(op) => Ok(render::pending(&op)),
    }
}

async fn approve(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    resolve(state, key, group_id, f, true, opts).await
}

async fn reject(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    resolve(state, key, group_id, f, false, opts).await
}

/// A write WhatsApp accepted and confirms later: pending, succeeded (with its outcome per
/// item) or failed (with WhatsApp's reason).
async fn operation(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(operation_id, ..): Path<Native>,
) -> Result<Json<Value>> {
    let op = state.service.operation(&key, &operation_id).await?;
    Ok(Json(render::operation(&op)))
}
