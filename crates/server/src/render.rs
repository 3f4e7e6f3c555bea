//! JSON shapes of the native API.

use axum::{Json, http::StatusCode};
use serde_json::{Value, json};
use wagroups_core::{
    model::{Group, JoinRequest, Operation, Participant},
    ops::{JoinRequestResult, ParticipantResult},
    provider::ItemStatus,
};

/// A group as the native API shows it; `participants` only when given.
pub fn group(g: &Group, participants: Option<&[Participant]>) -> Value {
    let mut v = json!({
        "groupId": g.group_id,
        "wabaNumber": g.waba_number,
        "status": g.status,
        "subject": g.subject,
        "description": g.description,
        "joinApprovalMode": g.join_approval_mode,
        "waGroupId": g.wa_group_id,
        "inviteLink": g.invite_link,
        "participantCount": g.participant_count,
        "settings": { "announcementOnly": g.announcement_only, "locked": g.locked },
        "suspended": g.suspended,
        "createdAt": g.created_at,
        "updatedAt": g.updated_at,
    });
    if let Some(reason) = &g.failure_reason {
        v["failureReason"] = json!(reason);
    }
    if let Some(ps) = participants {
        v["participants"] = Value::Array(ps.iter().map(participant).collect());
    }
    v
}

pub fn participant(p: &Participant) -> Value {
    json!({
        "phone": p.phone,
        "jid": p.phone.jid(),
        "role": p.role,
        "state": p.state,
        "isBusiness": p.is_business,
        "joinedAt": p.joined_at,
    })
}

pub fn participant_result(r: &ParticipantResult) -> Value {
    let mut v = json!({ "participant": r.participant, "phone": r.phone, "status": r.status });
    if let Some(link) = &r.invite_link {
        v["inviteLink"] = json!(link);
    }
    if let Some(m) = &r.message {
        v["message"] = json!(m);
    }
    v
}

/// Per-item results: 200 when every item succeeded, 207 when some did not.
fn per_item(statuses: impl IntoIterator<Item = ItemStatus>, items: Vec<Value>) -> (StatusCode, Json<Value>) {
    let status = if statuses.into_iter().all(ItemStatus::is_success) {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(json!({ "results": items })))
}

pub fn participant_results(results: &[ParticipantResult]) -> (StatusCode, Json<Value>) {
    per_item(
        results.iter().map(|r| r.status),
        results.iter().map(participant_result).collect(),
    )
}

pub fn join_request_results(results: &[JoinRequestResult]) -> (StatusCode, Json<Value>) {
    let items = results
        .iter()
        .map(|r| {
            let mut v = json!({ "joinRequestId": r.join_request_id, "phone": r.phone, "status": r.status });
            if let Some(m) = &r.message {
                v["message"] = json!(m);
            }
            v
        })
        .collect();
    per_item(results.iter().map(|r| r.status), items)
}

pub fn join_request(r: &JoinRequest) -> Value {
    json!({ "joinRequestId": r.join_request_id, "phone": r.phone, "createdAt": r.created_at })
}

/// A write WhatsApp has yet to confirm, or how it ended.
pub fn operation(op: &Operation) -> Value {
    let mut v = json!({
        "operationId": op.id,
        "groupId": op.group_id,
        "wabaNumber": op.waba_number,
        "operation": op.kind,
        "status": op.status,
        "results": op.results.iter().map(|r| {
            let mut item = json!({ "key": r.key, "status": r.status });
            if let Some(link) = &r.invite_link {
                item["inviteLink"] = json!(link);
            }
            if let Some(m) = &r.message {
                item["message"] = json!(m);
            }
            item
        }).collect::<Vec<_>>(),
        "createdAt": op.created_at,
        "updatedAt": op.updated_at,
    });
    if let Some(code) = &op.error_code {
        v["error"] = json!({ "code": code, "message": op.error_message });
    }
    v
}

/// `202` with the pending operation: WhatsApp accepted the write and has not confirmed it.
pub fn pending(op: &Operation) -> axum::response::Response {
    use axum::response::IntoResponse;
    (StatusCode::ACCEPTED, Json(operation(op))).into_response()
}
