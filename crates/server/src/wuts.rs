//! The WUTS gateway's group calls (seed `004`): `POST /wuts/groups` creates a group with its
//! participants and answers once WhatsApp confirmed it, in WUTS's shapes; groups are then
//! addressed by their `@g.us` JID. A thin adapter over the group service.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use wagroups_core::{
    model::{ApiKey, Group, Participant, ParticipantRole, ParticipantState},
    service::CreateGroupRequest,
};

use crate::{
    AppState, Routes,
    error::{ApiError, Dialect, DialectError},
    extract::{Auth, JsonObject, Path, Query},
};

type Result<T> = std::result::Result<T, DialectError<Wuts>>;

/// WUTS's errors: `{"success": false, "error", "error_code", "timestamp"}`, with a stable
/// `error_code` per cause and its status.
pub struct Wuts;

impl Dialect for Wuts {
    fn field_name(core: &str) -> Option<&'static str> {
        match core {
            "subject" => Some("name"),
            "joinApprovalMode" => Some("options.join_approval"),
            "community" => Some("options.community"),
            _ => None,
        }
    }

    fn body(e: &ApiError) -> Value {
        json!({
            "success": false,
            "error": e.message,
            "error_code": error_code(e),
            "timestamp": wagroups_core::time::Timestamp::now().to_rfc3339_seconds(),
        })
    }
}

/// The stable code of an error's cause.
pub fn error_code(e: &ApiError) -> &'static str {
    match (e.status.as_u16(), e.code.as_str()) {
        (_, "capability_missing") => "CAPABILITY_MISSING",
        (_, "group_create_failed") => "GROUP_CREATE_FAILED",
        (_, "group_suspended") => "GROUP_SUSPENDED",
        (_, "group_deleted" | "group_not_active") => "GROUP_NOT_ACTIVE",
        (400, _) => "VALIDATION_ERROR",
        (401, _) => "UNAUTHORIZED",
        (403, _) => "FORBIDDEN",
        (404, _) => "NOT_FOUND",
        (405, _) => "METHOD_NOT_ALLOWED",
        (408, _) => "REQUEST_TIMEOUT",
        (409, _) => "CONFLICT",
        (413, _) => "PAYLOAD_TOO_LARGE",
        (422, _) => "UNPROCESSABLE",
        (429, _) => "RATE_LIMITED",
        (503, _) => "UNAVAILABLE",
        _ => "INTERNAL_ERROR",
    }
}

/// WUTS's operations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, invite, reset_invite),
    components(schemas(
        crate::apidoc::wuts::CreateGroup,
        crate::apidoc::wuts::Options,
        crate::apidoc::wuts::Created,
        crate::apidoc::wuts::GroupOut,
        crate::apidoc::wuts::Member,
        crate::apidoc::wuts::NotAdded,
        crate::apidoc::wuts::Invite,
        crate::apidoc::wuts::WutsError
    ))
)]
pub struct Doc;

pub fn routes() -> Routes {
    vec![
        ("/wuts/groups", post(create)),
        ("/wuts/groups/{jid}/invite", get(invite)),
        ("/wuts/groups/{jid}/invite/reset", post(reset_invite)),
    ]
}

fn jid(digits: &str) -> String {
    format!("{digits}@s.whatsapp.net")
}

/// A group as WUTS answers it: its members, the business number as owner and super admin.
fn group_out(g: &Group, participants: &[Participant]) -> Value {
    let members: Vec<&Participant> = participants
        .iter()
        .filter(|p| p.state == ParticipantState::Member)
        .collect();
    json!({
        "jid": g.wa_group_id,
        "name": g.subject,
        "owner": jid(&g.waba_number),
        "created_at": g.created_at.to_rfc3339_seconds(),
        "is_announce": g.announcement_only,
        "is_locked": g.locked,
        "join_approval": g.join_approval_mode == wagroups_core::model::JoinApprovalMode::ApprovalRequired,
        "members_count": members.len(),
        "participants": members.iter().map(|p| json!({
            "jid": jid(p.phone.as_str()),
            "phone_number": jid(p.phone.as_str()),
            "is_admin": p.role != ParticipantRole::Member,
            "is_super_admin": p.role == ParticipantRole::Superadmin,
        })).collect::<Vec<_>>(),
    })
}

#[utoipa::path(post, path = "/wuts/groups", tag = "wuts", operation_id = "wuts.groups.create",
    summary = "WUTS's create: the group with its participants, once WhatsApp confirmed it",
    params(("wabaNumber" = Option<String>, Query, description = "The number, for a key allowed on several")),
    request_body = crate::apidoc::wuts::CreateGroup,
    responses((status = 201, description = "Created", body = crate::apidoc::wuts::Created), crate::apidoc::wuts::WutsErrors))]
async fn create(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Wuts>,
    Query(q, ..): Query<Wuts>,
    JsonObject(f, ..): JsonObject<Wuts>,
) -> Result<Response> {
    let waba = state
        .service
        .sole_number(&key, "wabaNumber", q.get("wabaNumber"))
        .await?
        .waba_number;
    let name = f
        .string("name")?
        .ok_or_else(|| ApiError::invalid("name", "is required (1 to 128 characters)"))?;
    let participants = f.items("participants")?.unwrap_or_default();
    let options = f.object("options")?;
    let option = |k: &str| -> std::result::Result<Option<bool>, ApiError> {
        match &options {
            Some(o) => o
                .boolean(k)
                .map_err(|e| ApiError::invalid(&format!("options.{k}"), e.message.replacen(&format!("{k}: "), "", 1))),
            None => Ok(None),
        }
    };
    let req = CreateGroupRequest {
        waba_number: Some(waba),
        subject: Some(name),
        participants: Some(participants),
        invite_fallback: Some(true),
        join_approval_mode: option("join_approval")?
            .map(|j| if j { "approval_required" } else { "auto_approve" }.to_string()),
        announcement_only: option("announcement")?,
        locked: option("locked")?,
        community: option("community")?,
        ..CreateGroupRequest::default()
    };
    let confirmed = state
        .service
        .create_confirmed(&key, req, wagroups_core::service::CREATION_WAIT)
        .await?;
    let mut body = json!({ "success": true, "group": group_out(&confirmed.group, &confirmed.participants) });
    // Who was not added, and why (invited through the link instead, not on WhatsApp…): only
    // when someone was not, so that the answer is WUTS's own when all were.
    let not_added: Vec<Value> = confirmed
        .results
        .iter()
        .filter(|r| r.status != wagroups_core::model::ItemStatus::Added)
        .map(|r| {
            let mut v = json!({
                "jid": r.phone.as_deref().map(jid).unwrap_or_else(|| r.participant.clone()),
                "status": r.status.as_str(),
            });
            if let Some(link) = &r.invite_link {
                v["invite_link"] = json!(link);
            }
            v
        })
        .collect();
    if !not_added.is_empty() {
        body["participants_not_added"] = json!(not_added);
    }
    if let Some(e) = confirmed.settings_error {
        // The group exists: it is answered, with why its settings are not as asked.
        body["settings_error"] = json!(e);
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The key's group with this JID.
async fn group(state: &AppState, key: &ApiKey, jid: &str) -> Result<Group> {
    let (g, _) = state.service.group_by_wa_id(key, jid, None).await?;
    Ok(g)
}

fn invite_answer(g: &Group) -> Result<Response> {
    let (Some(link), Some(code)) = (&g.invite_link, g.invite_code()) else {
        return Err(DialectError::new(ApiError::new(
            StatusCode::CONFLICT,
            "group_not_active",
            "the group has no invite link (it is not active)",
        )));
    };
    Ok(
        Json(json!({ "success": true, "jid": g.wa_group_id, "invite_link": link, "invite_code": code }))
            .into_response(),
    )
}

#[utoipa::path(get, path = "/wuts/groups/{jid}/invite", tag = "wuts", operation_id = "wuts.groups.invite",
    params(("jid" = String, Path, description = "The group's `@g.us` JID")),
    responses((status = 200, description = "The invite link", body = crate::apidoc::wuts::Invite), crate::apidoc::wuts::WutsErrors))]
async fn invite(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Wuts>,
    Path(jid, ..): Path<Wuts>,
) -> Result<Response> {
    invite_answer(&group(&state, &key, &jid).await?)
}

#[utoipa::path(post, path = "/wuts/groups/{jid}/invite/reset", tag = "wuts", operation_id = "wuts.groups.invite.reset",
    summary = "A new invite link; the old one stops working",
    params(("jid" = String, Path, description = "The group's `@g.us` JID")),
    responses((status = 200, description = "The new link", body = crate::apidoc::wuts::Invite), crate::apidoc::wuts::WutsErrors))]
async fn reset_invite(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Wuts>,
    Path(jid, ..): Path<Wuts>,
) -> Result<Response> {
    let g = group(&state, &key, &jid).await?;
    invite_answer(&state.service.reset_invite_link_confirmed(&key, &g.group_id).await?)
}
