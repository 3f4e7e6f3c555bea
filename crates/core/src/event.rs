//! The event vocabulary: what happened to a group, as appended to its log and delivered
//! to webhooks. The JSON payload built here is the object clients receive.

use crate::ids::EventId;
use serde_json::{Map, Value, json};

use crate::{
    model::{Group, JoinReason},
    phone::Phone,
    time::Timestamp,
};

use crate::enums::string_enum;

string_enum!(
    /// What happened to a group: the `eventType` of every event.
    EventType {
        GroupCreated = "GROUP_CREATED",
        GroupCreateFailed = "GROUP_CREATE_FAILED",
        GroupUpdated = "GROUP_UPDATED",
        GroupDeleted = "GROUP_DELETED",
        GroupSuspended = "GROUP_SUSPENDED",
        GroupSuspensionCleared = "GROUP_SUSPENSION_CLEARED",
        GroupInviteLinkReset = "GROUP_INVITE_LINK_RESET",
        ParticipantJoined = "GROUP_PARTICIPANT_JOINED",
        ParticipantLeft = "GROUP_PARTICIPANT_LEFT",
        ParticipantRemoved = "GROUP_PARTICIPANT_REMOVED",
        ParticipantInvited = "GROUP_PARTICIPANT_INVITED",
        ParticipantPromoted = "GROUP_PARTICIPANT_PROMOTED",
        ParticipantDemoted = "GROUP_PARTICIPANT_DEMOTED",
        JoinRequestCreated = "GROUP_JOIN_REQUEST_CREATED",
        JoinRequestRevoked = "GROUP_JOIN_REQUEST_REVOKED",
        JoinRequestRejected = "GROUP_JOIN_REQUEST_REJECTED",
        OperationFailed = "GROUP_OPERATION_FAILED",
    }
);

/// What happened, with the fields particular to each event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    GroupCreated {
        wa_group_id: String,
        invite_link: String,
        created_at: Timestamp,
    },
    GroupCreateFailed {
        code: String,
        message: String,
    },
    ParticipantJoined {
        phone: Phone,
        reason: JoinReason,
        at: Timestamp,
    },
    ParticipantLeft {
        phone: Phone,
        at: Timestamp,
    },
    JoinRequestCreated {
        phone: Phone,
        join_request_id: String,
        at: Timestamp,
    },
    GroupUpdated {
        /// Field name → new value, for every field that changed.
        changes: Map<String, Value>,
        /// Field name → value before the change.
        previous: Map<String, Value>,
    },
    GroupDeleted {
        at: Timestamp,
    },
    GroupSuspended {
        at: Timestamp,
    },
    GroupSuspensionCleared {
        at: Timestamp,
    },
    InviteLinkReset {
        invite_link: String,
        at: Timestamp,
    },
    ParticipantRemoved {
        phone: Phone,
        at: Timestamp,
    },
    ParticipantInvited {
        phone: Phone,
        invite_link: Option<String>,
        at: Timestamp,
    },
    ParticipantPromoted {
        phone: Phone,
        at: Timestamp,
    },
    ParticipantDemoted {
        phone: Phone,
        at: Timestamp,
    },
    JoinRequestRevoked {
        phone: Phone,
        join_request_id: String,
        at: Timestamp,
    },
    JoinRequestRejected {
        phone: Phone,
        join_request_id: String,
        at: Timestamp,
    },
    /// WhatsApp refused a write it had accepted (its confirmation came back a failure).
    OperationFailed {
        operation_id: crate::ids::OperationId,
        /// The write.
        operation: crate::model::OperationKind,
        code: String,
        message: String,
        at: Timestamp,
    },
}

impl EventBody {
    pub fn event_type(&self) -> EventType {
        match self {
            EventBody::GroupCreated { .. } => EventType::GroupCreated,
            EventBody::GroupCreateFailed { .. } => EventType::GroupCreateFailed,
            EventBody::ParticipantJoined { .. } => EventType::ParticipantJoined,
            EventBody::ParticipantLeft { .. } => EventType::ParticipantLeft,
            EventBody::JoinRequestCreated { .. } => EventType::JoinRequestCreated,
            EventBody::GroupUpdated { .. } => EventType::GroupUpdated,
            EventBody::GroupDeleted { .. } => EventType::GroupDeleted,
            EventBody::GroupSuspended { .. } => EventType::GroupSuspended,
            EventBody::GroupSuspensionCleared { .. } => EventType::GroupSuspensionCleared,
            EventBody::InviteLinkReset { .. } => EventType::GroupInviteLinkReset,
            EventBody::ParticipantRemoved { .. } => EventType::ParticipantRemoved,
            EventBody::ParticipantInvited { .. } => EventType::ParticipantInvited,
            EventBody::ParticipantPromoted { .. } => EventType::ParticipantPromoted,
            EventBody::ParticipantDemoted { .. } => EventType::ParticipantDemoted,
            EventBody::JoinRequestRevoked { .. } => EventType::JoinRequestRevoked,
            EventBody::JoinRequestRejected { .. } => EventType::JoinRequestRejected,
            EventBody::OperationFailed { .. } => EventType::OperationFailed,
        }
    }

    fn fields(&self, out: &mut Map<String, Value>) {
        let mut put = |k: &str, v: Value| {
            out.insert(k.to_string(), v);
        };
        match self {
            EventBody::GroupCreated {
                wa_group_id,
                invite_link,
                created_at,
            } => {
                put("inviteLink", json!(invite_link));
                put("groupCreatedAt", json!(created_at));
                put("waGroupId", json!(wa_group_id));
            }
            EventBody::GroupCreateFailed { code, message } => {
                put("error", json!({ "code": code, "message": message }));
            }
            EventBody::ParticipantJoined { phone, reason, at } => {
                put("customerPhone", json!(phone));
                put("participantJoinedAt", json!(at));
                put("reason", json!(reason));
            }
            EventBody::ParticipantLeft { phone, at } => {
                put("customerPhone", json!(phone));
                put("participantLeftAt", json!(at));
            }
            EventBody::JoinRequestCreated {
                phone,
                join_request_id,
                at,
            } => {
                put("customerPhone", json!(phone));
                put("joinRequestId", json!(join_request_id));
                put("requestedAt", json!(at));
            }
            EventBody::GroupUpdated { changes, previous } => {
                put("changedFields", json!(changes.keys().collect::<Vec<_>>()));
                put("changes", Value::Object(changes.clone()));
                put("previous", Value::Object(previous.clone()));
            }
            EventBody::GroupDeleted { at } => put("groupDeletedAt", json!(at)),
            EventBody::GroupSuspended { at } => put("groupSuspendedAt", json!(at)),
            EventBody::GroupSuspensionCleared { at } => put("suspensionClearedAt", json!(at)),
            EventBody::InviteLinkReset { invite_link, at } => {
                put("inviteLink", json!(invite_link));
                put("inviteLinkResetAt", json!(at));
            }
            EventBody::ParticipantRemoved { phone, at } => {
                put("customerPhone", json!(phone));
                put("participantRemovedAt", json!(at));
            }
            EventBody::ParticipantInvited { phone, invite_link, at } => {
                put("customerPhone", json!(phone));
                put("inviteLink", json!(invite_link));
                put("participantInvitedAt", json!(at));
            }
            EventBody::ParticipantPromoted { phone, at } => {
                put("customerPhone", json!(phone));
                put("participantPromotedAt", json!(at));
            }
            EventBody::ParticipantDemoted { phone, at } => {
                put("customerPhone", json!(phone));
                put("participantDemotedAt", json!(at));
            }
            EventBody::JoinRequestRevoked {
                phone,
                join_request_id,
                at,
            } => {
                put("customerPhone", json!(phone));
                put("joinRequestId", json!(join_request_id));
                put("revokedAt", json!(at));
            }
            EventBody::JoinRequestRejected {
                phone,
                join_request_id,
                at,
            } => {
                put("customerPhone", json!(phone));
                put("joinRequestId", json!(join_request_id));
                put("rejectedAt", json!(at));
            }
            EventBody::OperationFailed {
                operation_id,
                operation,
                code,
                message,
                at,
            } => {
                put("operationId", json!(operation_id));
                put("operation", json!(operation));
                put("error", json!({ "code": code, "message": message }));
                put("operationFailedAt", json!(at));
            }
        }
    }
}

/// An event appended to a group's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: EventId,
    pub sequence: i64,
    pub occurred_at: Timestamp,
    pub body: EventBody,
    /// Reconciliation with the provider's listing found the change (its report never came):
    /// the payload says `reason: "reconciled"`.
    pub reconciled: bool,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.body.event_type()
    }

    /// The event as clients see it (event log and webhooks). `group` is the group's state
    /// after the change that produced the event.
    pub fn payload(&self, group: &Group) -> Value {
        let mut m = Map::new();
        m.insert("eventId".into(), json!(self.event_id));
        m.insert("eventType".into(), json!(self.event_type().as_str()));
        m.insert("occurredAt".into(), json!(self.occurred_at));
        m.insert("orgId".into(), json!(group.org_id));
        m.insert("wabaNumber".into(), json!(group.waba_number));
        m.insert("groupId".into(), json!(group.group_id));
        m.insert("sequence".into(), json!(self.sequence));
        m.insert("groupName".into(), json!(group.subject));
        if let Some(wa) = &group.wa_group_id {
            m.insert(
                "graphGroupId".into(),
                json!(crate::ids::graph_group_id(&group.waba_number, wa)),
            );
        }
        if let Some(p) = &group.phone_number_id {
            m.insert("phoneNumberId".into(), json!(p));
        }
        if let Some(w) = &group.waba_id {
            m.insert("wabaId".into(), json!(w));
        }
        if let EventBody::GroupCreated { .. } = self.body {
            m.insert("description".into(), json!(group.description));
            m.insert("joinApprovalMode".into(), json!(group.join_approval_mode));
        }
        self.body.fields(&mut m);
        if self.reconciled {
            m.entry("reason").or_insert_with(|| json!("reconciled"));
        }
        Value::Object(m)
    }
}

/// An event as read back from the log: its rendered payload plus the columns used to
/// filter and order it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event_id: EventId,
    pub event_type: String,
    pub sequence: i64,
    pub occurred_at: Timestamp,
    /// The JSON object produced by [`Event::payload`].
    pub payload: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{GroupStatus, JoinApprovalMode};

    #[test]
    fn payload_carries_common_and_typed_fields() {
        let group = Group {
            id: 1,
            org_id: "org_1".into(),
            number_id: 1,
            waba_number: "15550100001".into(),
            phone_number_id: None,
            waba_id: None,
            group_id: "vip".into(),
            status: GroupStatus::Active,
            subject: "VIP".into(),
            description: String::new(),
            join_approval_mode: JoinApprovalMode::AutoApprove,
            wa_group_id: Some("1203@g.us".into()),
            invite_link: None,
            participant_count: 1,
            announcement_only: false,
            locked: false,
            suspended: false,
            last_sequence: 2,
            failure_reason: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let e = Event {
            event_id: "evt_1".into(),
            sequence: 2,
            occurred_at: Timestamp(1000),
            body: EventBody::ParticipantJoined {
                phone: Phone::from_digits("919999999999"),
                reason: JoinReason::InviteLink,
                at: Timestamp(1000),
            },
            reconciled: false,
        };
        let p = e.payload(&group);
        assert_eq!(p["eventType"], "GROUP_PARTICIPANT_JOINED");
        assert_eq!(p["groupId"], "vip");
        assert_eq!(p["groupName"], "VIP");
        assert_eq!(p["sequence"], 2);
        assert_eq!(p["customerPhone"], "919999999999");
        assert_eq!(p["reason"], "invite_link");
        assert_eq!(p["participantJoinedAt"], "1970-01-01T00:00:01.000Z");
        assert_eq!(EventType::parse("GROUP_CREATED"), Some(EventType::GroupCreated));
    }
}
