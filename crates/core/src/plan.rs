//! Write plans: what a store writes for a decision, decided here so that every backend only
//! writes rows and reads them back. A plan carries the rows whole: their IDs, the event
//! payloads as clients receive them, and the deliveries each event queues.

use crate::ids::{EndpointId, EventId};
use crate::{
    group::{CommandClose, Decision, OperationClose},
    model::{Group, JoinRequest, Participant},
    time::Timestamp,
    webhook,
};

/// An enabled endpoint's filters, as the store reads them inside the transaction that
/// writes the events (so an endpoint added or disabled concurrently is either wholly in or
/// wholly out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub endpoint_id: EndpointId,
    pub event_types: Option<Vec<String>>,
    pub waba_numbers: Option<Vec<String>>,
    pub format: webhook::WebhookFormat,
}

impl Subscription {
    /// Whether the endpoint receives the event: its filters match, and its format has a shape
    /// for it.
    pub fn wants(&self, event_type: &str, waba_number: &str, payload: &serde_json::Value) -> bool {
        webhook::matches(
            self.event_types.as_deref(),
            self.waba_numbers.as_deref(),
            event_type,
            waba_number,
        ) && self.format.carries(event_type, payload)
    }
}

/// An event row to append, with the endpoints a delivery is queued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventWrite<'a> {
    pub event_id: EventId,
    pub sequence: i64,
    pub event_type: &'static str,
    pub occurred_at: Timestamp,
    /// The event in the domain's own shape (the JSON object of the event log).
    pub payload: String,
    /// One delivery each, queued at the group's `updated_at`.
    pub deliver_to: Vec<&'a str>,
}

/// Everything a decision on a group writes (borrowed from the decision: a plan is written at
/// once, inside the transaction that made it).
#[derive(Debug, Clone)]
pub struct GroupWrite<'a> {
    /// The group's new row.
    pub group: &'a Group,
    /// The status or the WhatsApp ID changed (indexed columns: a backend may leave their
    /// indexes alone otherwise).
    pub indexed_changed: bool,
    /// Participants to insert or update.
    pub participants: Vec<&'a Participant>,
    /// Join requests to insert or update.
    pub join_requests: Vec<&'a JoinRequest>,
    /// Events to append, in sequence order.
    pub events: Vec<EventWrite<'a>>,
    /// The command the decision closes.
    pub close_command: Option<&'a CommandClose>,
    /// The operation the decision closes.
    pub close_operation: Option<&'a OperationClose>,
}

/// The plan of a decision taken on `before`; `subscriptions` are the organisation's enabled
/// endpoints (needed only when the decision appends events). `None` when nothing changes.
pub fn group_write<'a>(before: &Group, d: &'a Decision, subscriptions: &'a [Subscription]) -> Option<GroupWrite<'a>> {
    if d.is_noop() {
        return None;
    }
    let g = &d.group;
    let events = d
        .events
        .iter()
        .map(|e| {
            let event_type = e.event_type().as_str();
            let payload = e.payload(g);
            EventWrite {
                event_id: e.event_id.clone(),
                sequence: e.sequence,
                event_type,
                occurred_at: e.occurred_at,
                deliver_to: subscriptions
                    .iter()
                    .filter(|s| s.wants(event_type, &g.waba_number, &payload))
                    .map(|s| s.endpoint_id.as_str())
                    .collect(),
                payload: payload.to_string(),
            }
        })
        .collect();
    Some(GroupWrite {
        group: g,
        indexed_changed: g.status != before.status || g.wa_group_id != before.wa_group_id,
        participants: d
            .participants
            .iter()
            .filter(|p| d.changed_participants.contains(&p.phone))
            .collect(),
        join_requests: d
            .join_requests
            .iter()
            .filter(|r| d.changed_join_requests.contains(&r.join_request_id))
            .collect(),
        events,
        close_command: d.close_command.as_ref(),
        close_operation: d.close_operation.as_ref(),
    })
}

/// The endpoints an event of `event_type` on `waba_number` is delivered to again (besides
/// those that had it): every subscription that wants it now.
pub fn redelivery(
    event_type: &str,
    waba_number: &str,
    payload: &serde_json::Value,
    subscriptions: &[Subscription],
) -> Vec<EndpointId> {
    subscriptions
        .iter()
        .filter(|s| s.wants(event_type, waba_number, payload))
        .map(|s| s.endpoint_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{
        event::EventBody,
        group::GroupState,
        model::{GroupStatus, JoinApprovalMode},
        phone::Phone,
    };

    fn group() -> Group {
        Group {
            id: 7,
            org_id: "org_a".into(),
            number_id: 1,
            waba_number: "15550000001".into(),
            phone_number_id: Some("900000000000001".into()),
            waba_id: None,
            group_id: "g".into(),
            status: GroupStatus::Active,
            subject: "S".into(),
            description: String::new(),
            join_approval_mode: JoinApprovalMode::AutoApprove,
            wa_group_id: Some("1@g.us".into()),
            invite_link: None,
            participant_count: 0,
            announcement_only: false,
            locked: false,
            suspended: false,
            last_sequence: 4,
            failure_reason: None,
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
        }
    }

    #[test]
    fn events_are_rendered_and_routed_to_the_endpoints_that_want_them() {
        let before = group();
        let state = GroupState {
            group: before.clone(),
            participants: vec![],
            join_requests: vec![],
            command_id: None,
            command_participants: Vec::new(),
            operation: None,
        };
        let mut d = Decision::from_state(&state);
        d.emit(
            EventBody::ParticipantLeft {
                phone: Phone::from_digits("919999999999"),
                at: Timestamp(2),
            },
            Timestamp(2),
        );
        let subs = [
            Subscription {
                endpoint_id: "ep_all".into(),
                event_types: None,
                waba_numbers: None,
                format: webhook::WebhookFormat::Standard,
            },
            Subscription {
                endpoint_id: "ep_meta".into(),
                event_types: None,
                waba_numbers: None,
                format: webhook::WebhookFormat::Meta,
            },
            Subscription {
                endpoint_id: "ep_joins".into(),
                event_types: Some(vec!["GROUP_PARTICIPANT_JOINED".into()]),
                waba_numbers: None,
                format: webhook::WebhookFormat::Standard,
            },
            Subscription {
                endpoint_id: "ep_other_number".into(),
                event_types: None,
                waba_numbers: Some(vec!["15550000002".into()]),
                format: webhook::WebhookFormat::Standard,
            },
        ];
        let w = group_write(&before, &d, &subs).unwrap();
        assert!(!w.indexed_changed);
        assert_eq!(w.events.len(), 1);
        assert_eq!(w.events[0].sequence, 5);
        assert_eq!(w.events[0].deliver_to, ["ep_all", "ep_meta"]);
        let payload: serde_json::Value = serde_json::from_str(&w.events[0].payload).unwrap();
        assert_eq!(payload["phoneNumberId"], "900000000000001");
        assert!(payload["graphGroupId"].is_string());
        // Meta sends no webhook for a reset link: a meta endpoint does not get one.
        let mut reset = Decision::from_state(&state);
        reset.emit(
            EventBody::InviteLinkReset {
                invite_link: "https://chat.whatsapp.com/new".into(),
                at: Timestamp(3),
            },
            Timestamp(3),
        );
        let w2 = group_write(&before, &reset, &subs).unwrap();
        assert_eq!(w2.events[0].deliver_to, ["ep_all"]);
        assert_eq!(payload["eventType"], "GROUP_PARTICIPANT_LEFT");
        assert_eq!(payload["sequence"], 5);
        assert_eq!(payload["customerPhone"], "919999999999");
        // Nothing decided, nothing written.
        assert!(group_write(&before, &Decision::from_state(&state), &subs).is_none());
    }
}
