//! JSON shapes of the native API.

use serde_json::{Value, json};
use wagroups_core::model::{Group, Participant};

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
