//! The native `/v1` API for groups.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
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

/// The native group API's operations.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_group,
    list_groups,
    get_group,
    update_group,
    delete_group,
    group_events,
    list_participants,
    add_participants,
    remove_participants,
    promote,
    demote,
    invite_link,
    reset_invite_link,
    join_requests,
    approve,
    reject,
    operation,
    list_numbers
))]
pub struct Doc;

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
        ("/v1/numbers", get(list_numbers)),
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
        ..CreateGroupRequest::default()
    })
}

#[utoipa::path(post, path = "/v1/groups", tag = "groups", operation_id = "v1.groups.create",
    summary = "Create a group (asynchronous; GROUP_CREATED follows)",
    request_body = crate::apidoc::requests::CreateGroup,
    responses(
        (status = 202, description = "Accepted, pending", body = crate::render::CreatedGroup, links(
                ("GetGroup" = (operation_id = "v1.groups.get", parameters(("groupId" = "$response.body#/groupId")))),
                ("UpdateGroup" = (operation_id = "v1.groups.update", parameters(("groupId" = "$response.body#/groupId")))),
                ("GroupEvents" = (operation_id = "v1.groups.events", parameters(("groupId" = "$response.body#/groupId")))),
                ("Participants" = (operation_id = "v1.groups.participants.list", parameters(("groupId" = "$response.body#/groupId")))),
                ("AddParticipants" = (operation_id = "v1.groups.participants.add", parameters(("groupId" = "$response.body#/groupId")))),
                ("InviteLink" = (operation_id = "v1.groups.inviteLink.get", parameters(("groupId" = "$response.body#/groupId")))),
                ("ResetInviteLink" = (operation_id = "v1.groups.inviteLink.reset", parameters(("groupId" = "$response.body#/groupId")))),
                ("JoinRequests" = (operation_id = "v1.groups.joinRequests.list", parameters(("groupId" = "$response.body#/groupId")))),
                ("DeleteGroup" = (operation_id = "v1.groups.delete", parameters(("groupId" = "$response.body#/groupId"))))
        )),
        crate::apidoc::CreateGroupErrors,
    ))]
async fn create_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(fields, ..): JsonObject<Native>,
) -> Result<Response> {
    let req = create_request(&fields)?;
    let created = state.service.create_group(&key, req).await?;
    if created.participants.is_empty() {
        let body = render::created_group(render::group(&created.group, Some(&[])), None);
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    // Participants: wait (bounded) for WhatsApp's answer about each, then report it.
    let results = state
        .service
        .creation_results_within(&created, wagroups_core::service::CREATION_WAIT)
        .await?;
    let (group, participants) = state.service.get_group(&key, &created.group.group_id).await?;
    let body = render::created_group(render::group(&group, Some(&participants)), Some(results.as_deref()));
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/v1/groups/{groupId}", tag = "groups", operation_id = "v1.groups.get",
    params(crate::apidoc::params::GroupPath),
    responses((status = 200, description = "The group with its participants", body = crate::render::Group), crate::apidoc::ReadErrors))]
async fn get_group(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Response> {
    let (group, participants) = state.service.get_group(&key, &group_id).await?;
    Ok(Json(render::group(&group, Some(&participants))).into_response())
}

#[utoipa::path(patch, path = "/v1/groups/{groupId}", tag = "groups", operation_id = "v1.groups.update",
    summary = "Change subject, description, settings or join approval mode (GROUP_UPDATED)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    request_body = crate::apidoc::requests::UpdateGroup,
    responses(
        (status = 200, description = "The updated group", body = crate::render::Group),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupWriteErrors,
    ))]
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

#[utoipa::path(delete, path = "/v1/groups/{groupId}", tag = "groups", operation_id = "v1.groups.delete",
    summary = "Delete the group; every member is removed (GROUP_DELETED); later writes are 409",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    responses(
        (status = 200, description = "The deleted group", body = crate::render::Group),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupActionErrors,
    ))]
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

#[utoipa::path(get, path = "/v1/groups", tag = "groups", operation_id = "v1.groups.list",
    summary = "List groups, newest first (keyset pagination)",
    params(crate::apidoc::params::ListGroupsQuery),
    responses((status = 200, description = "A page", body = crate::render::GroupPage), crate::apidoc::ListErrors))]
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
    Ok(Json(render::GroupPage {
        data: page.groups.iter().map(|g| render::group(g, None)).collect(),
        next_cursor: page.next_cursor,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/groups/{groupId}/events", tag = "events", operation_id = "v1.groups.events",
    summary = "The group's event log in sequence order",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::GroupEventsQuery),
    responses((status = 200, description = "Events", body = crate::render::EventList), crate::apidoc::ReadErrors))]
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
    Ok(Json(render::EventList {
        data: crate::webhooks::raw_events(events)?,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/groups/{groupId}/participants", tag = "groups",
    operation_id = "v1.groups.participants.list",
    params(crate::apidoc::params::GroupPath),
    responses((status = 200, description = "Participants with state and role", body = crate::render::ParticipantList),
        crate::apidoc::ReadErrors))]
async fn list_participants(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<render::ParticipantList>> {
    let (_, participants) = state.service.get_group(&key, &group_id).await?;
    Ok(Json(render::ParticipantList {
        data: participants.iter().map(render::participant).collect(),
    }))
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

#[utoipa::path(post, path = "/v1/groups/{groupId}/participants", tag = "groups", operation_id = "v1.groups.participants.add",
    summary = "Add participants (invited on invite-only providers)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    request_body = crate::apidoc::requests::AddParticipants,
    responses(
        (status = 200, description = "Every item succeeded", body = crate::render::ParticipantResults),
        (status = 207, description = "Some items did not succeed: see each result", body = crate::render::ParticipantResults),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupWriteErrors,
    ))]
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
        Written::Done(results) => render::participant_results(&results),
        Written::Pending(op) => render::pending(&op),
    }
}

#[utoipa::path(delete, path = "/v1/groups/{groupId}/participants", tag = "groups", operation_id = "v1.groups.participants.remove",
    summary = "Remove participants (GROUP_PARTICIPANT_REMOVED)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    request_body = crate::apidoc::requests::Participants,
    responses(
        (status = 200, description = "Every item succeeded", body = crate::render::ParticipantResults),
        (status = 207, description = "Some items did not succeed: see each result", body = crate::render::ParticipantResults),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupWriteErrors,
    ))]
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

#[utoipa::path(post, path = "/v1/groups/{groupId}/admins", tag = "groups", operation_id = "v1.groups.admins.promote",
    summary = "Make participants admins (GROUP_PARTICIPANT_PROMOTED)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    request_body = crate::apidoc::requests::Participants,
    responses(
        (status = 200, description = "Every item succeeded", body = crate::render::ParticipantResults),
        (status = 207, description = "Some items did not succeed: see each result", body = crate::render::ParticipantResults),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupWriteErrors,
    ))]
async fn promote(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    set_admins(state, key, group_id, f, true, opts).await
}

#[utoipa::path(delete, path = "/v1/groups/{groupId}/admins", tag = "groups", operation_id = "v1.groups.admins.demote",
    summary = "Make admins participants again (GROUP_PARTICIPANT_DEMOTED)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    request_body = crate::apidoc::requests::Participants,
    responses(
        (status = 200, description = "Every item succeeded", body = crate::render::ParticipantResults),
        (status = 207, description = "Some items did not succeed: see each result", body = crate::render::ParticipantResults),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupWriteErrors,
    ))]
async fn demote(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    set_admins(state, key, group_id, f, false, opts).await
}

#[utoipa::path(get, path = "/v1/groups/{groupId}/invite-link", tag = "groups", operation_id = "v1.groups.inviteLink.get",
    params(crate::apidoc::params::GroupPath),
    responses((status = 200, description = "The group's invite link", body = crate::render::InviteLink), crate::apidoc::ReadErrors))]
async fn invite_link(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<render::InviteLink>> {
    let (group, _) = state.service.get_group(&key, &group_id).await?;
    Ok(Json(render::invite_link(&group)))
}

#[utoipa::path(post, path = "/v1/groups/{groupId}/invite-link/reset", tag = "groups",
    operation_id = "v1.groups.inviteLink.reset",
    summary = "A new link; the old one stops working at once (GROUP_INVITE_LINK_RESET)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    responses(
        (status = 200, description = "The new link", body = crate::render::InviteLink),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupActionErrors,
    ))]
async fn reset_invite_link(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
) -> Result<Response> {
    match state.service.reset_invite_link(&key, &group_id, opts).await? {
        Written::Done(group) => Ok(Json(render::invite_link(&group)).into_response()),
        Written::Pending(op) => Ok(render::pending(&op)),
    }
}

#[utoipa::path(get, path = "/v1/groups/{groupId}/join-requests", tag = "groups",
    operation_id = "v1.groups.joinRequests.list",
    params(crate::apidoc::params::GroupPath),
    responses((status = 200, description = "Pending join requests", body = crate::render::JoinRequestList), crate::apidoc::ReadErrors))]
async fn join_requests(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<render::JoinRequestList>> {
    let requests = state.service.join_requests(&key, &group_id).await?;
    Ok(Json(render::join_requests(&requests)))
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
        Written::Done(results) => Ok(render::join_request_results(&results)),
        Written::Pending(op) => Ok(render::pending(&op)),
    }
}

#[utoipa::path(post, path = "/v1/groups/{groupId}/join-requests/approve", tag = "groups", operation_id = "v1.groups.joinRequests.approve",
    summary = "Approve join requests (GROUP_PARTICIPANT_JOINED)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    request_body = crate::apidoc::requests::JoinRequestIds,
    responses(
        (status = 200, description = "Every item succeeded", body = crate::render::JoinRequestResults),
        (status = 207, description = "Some items did not succeed: see each result", body = crate::render::JoinRequestResults),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupWriteErrors,
    ))]
async fn approve(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    Prefer(opts): Prefer,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Response> {
    resolve(state, key, group_id, f, true, opts).await
}

#[utoipa::path(post, path = "/v1/groups/{groupId}/join-requests/reject", tag = "groups", operation_id = "v1.groups.joinRequests.reject",
    summary = "Reject join requests (GROUP_JOIN_REQUEST_REJECTED)",
    params(crate::apidoc::params::GroupPath, crate::apidoc::params::PreferHeader),
    request_body = crate::apidoc::requests::JoinRequestIds,
    responses(
        (status = 200, description = "Every item succeeded", body = crate::render::JoinRequestResults),
        (status = 207, description = "Some items did not succeed: see each result", body = crate::render::JoinRequestResults),
        (status = 202, response = crate::apidoc::Pending),
        crate::apidoc::GroupWriteErrors,
    ))]
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
#[utoipa::path(get, path = "/v1/operations/{operationId}", tag = "groups", operation_id = "v1.operations.get",
    summary = "A write WhatsApp confirms later: pending, succeeded (with its outcome per item) or failed (with the reason)",
    params(crate::apidoc::params::OperationPath),
    responses((status = 200, description = "The operation", body = crate::render::Operation), crate::apidoc::ReadErrors))]
async fn operation(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(operation_id, ..): Path<Native>,
) -> Result<Json<render::Operation>> {
    let op = state.service.operation(&key, &operation_id).await?;
    Ok(Json(render::operation(&op)))
}

#[utoipa::path(get, path = "/v1/numbers", tag = "numbers", operation_id = "v1.numbers.list",
    summary = "The organisation's business numbers the key may use, with their phone number IDs and health",
    responses((status = 200, description = "The numbers", body = crate::render::NumberList), crate::apidoc::ListErrors))]
async fn list_numbers(State(state): State<AppState>, Auth(key, ..): Auth<Native>) -> Result<Json<render::NumberList>> {
    let numbers = state.service.numbers(&key).await?;
    Ok(Json(render::NumberList {
        data: numbers.iter().map(render::number).collect(),
    }))
}
