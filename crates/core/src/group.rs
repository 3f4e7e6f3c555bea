//! Group rules: given a group's current state and something that happened (a provider
//! report or an API request), decide the new state and the events it produces. Pure: the
//! store loads the state and persists the decision in one transaction.

use crate::ids::{EventId, OperationId};
use std::collections::BTreeSet;

use crate::{
    DomainError,
    event::{Event, EventBody},
    model::{
        Group, GroupStatus, JoinReason, JoinRequest, JoinRequestState, Participant, ParticipantRole, ParticipantState,
    },
    phone::Phone,
    time::Timestamp,
};

/// A group with everything the rules may need, as loaded inside the transaction.
#[derive(Debug, Clone)]
pub struct GroupState {
    pub group: Group,
    pub participants: Vec<Participant>,
    pub join_requests: Vec<JoinRequest>,
    /// The command this change answers, if any (provider confirmations).
    pub command_id: Option<i64>,
    /// The participants that command asked for at creation (digits; empty when none, or no
    /// command).
    pub command_participants: Vec<String>,
    /// The pending operation this change answers, if any (a confirmation of a write).
    pub operation: Option<PendingOperation>,
}

/// A write WhatsApp accepted and has not confirmed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOperation {
    pub id: OperationId,
    pub kind: crate::model::OperationKind,
}

/// How a confirmation closes its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationClose {
    pub id: OperationId,
    pub succeeded: bool,
    /// The per-item outcome (JSON array of `ItemResult`).
    pub results: String,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// What to persist: the new state of the group, the participants and join requests that
/// changed, the events to append, and the command to close.
#[derive(Debug, Clone)]
pub struct Decision {
    pub group: Group,
    pub participants: Vec<Participant>,
    pub changed_participants: BTreeSet<Phone>,
    pub join_requests: Vec<JoinRequest>,
    pub changed_join_requests: BTreeSet<String>,
    pub events: Vec<Event>,
    pub close_command: Option<CommandClose>,
    pub close_operation: Option<OperationClose>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandClose {
    /// Carried out; `result` is what the provider answered (JSON), if anything.
    Done {
        id: i64,
        result: Option<String>,
    },
    Failed {
        id: i64,
        error: String,
    },
    /// Due again, its request ID kept: a creation confirmed without the participants it asked
    /// for, who are now to be invited.
    Reopen {
        id: i64,
    },
}

impl Decision {
    pub fn from_state(state: &GroupState) -> Decision {
        Decision {
            group: state.group.clone(),
            participants: state.participants.clone(),
            changed_participants: BTreeSet::new(),
            join_requests: state.join_requests.clone(),
            changed_join_requests: BTreeSet::new(),
            events: Vec::new(),
            close_command: None,
            close_operation: None,
        }
    }

    /// Appends an event with the next sequence number of the group.
    pub fn emit(&mut self, body: EventBody, at: Timestamp) {
        self.group.last_sequence += 1;
        self.events.push(Event {
            event_id: EventId::new(),
            sequence: self.group.last_sequence,
            occurred_at: at,
            body,
            reconciled: false,
        });
    }

    pub fn participant(&self, phone: &Phone) -> Option<&Participant> {
        self.participants.iter().find(|p| &p.phone == phone)
    }

    /// Inserts or replaces a participant and marks it for persisting.
    pub fn put_participant(&mut self, p: Participant) {
        self.changed_participants.insert(p.phone.clone());
        match self.participants.iter_mut().find(|x| x.phone == p.phone) {
            Some(slot) => *slot = p,
            None => self.participants.push(p),
        }
    }

    pub fn put_join_request(&mut self, r: JoinRequest) {
        self.changed_join_requests.insert(r.join_request_id.clone());
        match self
            .join_requests
            .iter_mut()
            .find(|x| x.join_request_id == r.join_request_id)
        {
            Some(slot) => *slot = r,
            None => self.join_requests.push(r),
        }
    }

    /// True when nothing needs to be written.
    pub fn is_noop(&self) -> bool {
        self.events.is_empty()
            && self.changed_participants.is_empty()
            && self.changed_join_requests.is_empty()
            && self.close_command.is_none()
            && self.close_operation.is_none()
    }

    /// Recomputes derived fields and stamps the update time; call once, before persisting.
    pub fn finish(mut self, now: Timestamp) -> Decision {
        self.group.participant_count = self
            .participants
            .iter()
            .filter(|p| p.state == ParticipantState::Member && !p.is_business)
            .count() as i64;
        if !self.is_noop() {
            self.group.updated_at = now;
        }
        self
    }
}

/// Something that happened to a group, as reported by its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupInput {
    Created {
        wa_group_id: String,
        invite_link: String,
        at: Timestamp,
        /// The provider's answer for each participant asked for at creation.
        participants: Vec<crate::provider::ItemResult>,
    },
    CreateFailed {
        code: String,
        message: String,
        at: Timestamp,
    },
    /// WhatsApp confirmed a write it had accepted, with its outcome per item.
    OperationSucceeded {
        results: Vec<crate::provider::ItemResult>,
        at: Timestamp,
    },
    /// WhatsApp refused a write it had accepted.
    OperationFailed {
        code: String,
        message: String,
        at: Timestamp,
    },
    Joined {
        phone: Phone,
        reason: JoinReason,
        at: Timestamp,
    },
    Left {
        phone: Phone,
        at: Timestamp,
    },
    JoinRequested {
        phone: Phone,
        join_request_id: String,
        at: Timestamp,
    },
    JoinRequestClosed {
        phone: Phone,
        join_request_id: String,
        /// `Revoked` by the user or `Rejected` by an admin.
        state: JoinRequestState,
        at: Timestamp,
    },
    Removed {
        phone: Phone,
        at: Timestamp,
    },
    Invited {
        phone: Phone,
        /// `None`: the group's current link.
        invite_link: Option<String>,
        at: Timestamp,
    },
    RoleChanged {
        phone: Phone,
        promoted: bool,
        at: Timestamp,
    },
    SettingsUpdated {
        change: crate::provider::SettingsChange,
        at: Timestamp,
    },
    InviteLinkReset {
        invite_link: String,
        at: Timestamp,
    },
    Deleted {
        at: Timestamp,
    },
    Suspension {
        suspended: bool,
        at: Timestamp,
    },
}

/// Applies a provider report to a group. Reports that are already reflected in the state
/// (a redelivered confirmation, a join of a member) change nothing.
pub fn apply(state: &GroupState, input: &GroupInput, now: Timestamp) -> Result<Decision, DomainError> {
    let mut d = Decision::from_state(state);
    match input {
        GroupInput::Created {
            wa_group_id,
            invite_link,
            at,
            participants,
        } => {
            if d.group.status == GroupStatus::Pending {
                d.group.status = GroupStatus::Active;
                d.group.wa_group_id = Some(wa_group_id.clone());
                d.group.invite_link = Some(invite_link.clone());
                let business = Phone::from_digits(d.group.waba_number.clone());
                d.put_participant(Participant {
                    phone: business,
                    role: ParticipantRole::Superadmin,
                    state: ParticipantState::Member,
                    is_business: true,
                    joined_at: Some(*at),
                    updated_at: now,
                    changed_at: None,
                    exit_unannounced: false,
                });
                d.emit(
                    EventBody::GroupCreated {
                        wa_group_id: wa_group_id.clone(),
                        invite_link: invite_link.clone(),
                        created_at: *at,
                    },
                    *at,
                );
            }
            if let Some(id) = state.command_id {
                d.close_command = Some(if participants.is_empty() && !state.command_participants.is_empty() {
                    // The provider added none of those asked for (Meta's create takes no
                    // participants): they are invited now that the group is active.
                    CommandClose::Reopen { id }
                } else {
                    CommandClose::Done {
                        id,
                        result: serde_json::to_string(participants).ok(),
                    }
                });
            }
        }
        GroupInput::CreateFailed { code, message, at } => {
            if d.group.status == GroupStatus::Pending {
                d.group.status = GroupStatus::Failed;
                d.group.failure_reason = Some(format!("{code}: {message}"));
                d.emit(
                    EventBody::GroupCreateFailed {
                        code: code.clone(),
                        message: message.clone(),
                    },
                    *at,
                );
            }
            if let Some(id) = state.command_id {
                d.close_command = Some(CommandClose::Failed {
                    id,
                    error: format!("{code}: {message}"),
                });
            }
        }
        GroupInput::OperationSucceeded { results, at: _ } => {
            // Its effects come as reports of their own; this closes the operation.
            if let Some(op) = &state.operation {
                d.close_operation = Some(OperationClose {
                    id: op.id.clone(),
                    succeeded: true,
                    results: serde_json::to_string(results).unwrap_or_else(|_| "[]".into()),
                    error_code: None,
                    error_message: None,
                });
            }
        }
        GroupInput::OperationFailed { code, message, at } => {
            if let Some(op) = &state.operation {
                d.close_operation = Some(OperationClose {
                    id: op.id.clone(),
                    succeeded: false,
                    results: "[]".into(),
                    error_code: Some(code.clone()),
                    error_message: Some(message.clone()),
                });
                d.emit(
                    EventBody::OperationFailed {
                        operation_id: op.id.clone(),
                        operation: op.kind,
                        code: code.clone(),
                        message: message.clone(),
                        at: *at,
                    },
                    *at,
                );
            }
        }
        GroupInput::Joined { phone, reason, at } => {
            require_active(&d.group)?;
            joined(&mut d, phone, *reason, *at, now);
        }
        GroupInput::Left { phone, at } => {
            require_active(&d.group)?;
            exited(&mut d, phone, ParticipantState::Left, *at, now);
        }
        GroupInput::JoinRequested {
            phone,
            join_request_id,
            at,
        } => {
            require_active(&d.group)?;
            let known = d.join_requests.iter().any(|r| &r.join_request_id == join_request_id);
            if !known {
                d.put_join_request(JoinRequest {
                    join_request_id: join_request_id.clone(),
                    phone: phone.clone(),
                    state: JoinRequestState::Pending,
                    created_at: *at,
                    updated_at: now,
                });
                d.emit(
                    EventBody::JoinRequestCreated {
                        phone: phone.clone(),
                        join_request_id: join_request_id.clone(),
                        at: *at,
                    },
                    *at,
                );
            }
        }
        GroupInput::JoinRequestClosed {
            phone,
            join_request_id,
            state: closed,
            at,
        } => {
            require_active(&d.group)?;
            let pending = d
                .join_requests
                .iter()
                .find(|r| &r.join_request_id == join_request_id && r.state == JoinRequestState::Pending)
                .cloned();
            if let Some(mut r) = pending {
                r.state = *closed;
                r.updated_at = now;
                d.put_join_request(r);
                let body = if *closed == JoinRequestState::Revoked {
                    EventBody::JoinRequestRevoked {
                        phone: phone.clone(),
                        join_request_id: join_request_id.clone(),
                        at: *at,
                    }
                } else {
                    EventBody::JoinRequestRejected {
                        phone: phone.clone(),
                        join_request_id: join_request_id.clone(),
                        at: *at,
                    }
                };
                d.emit(body, *at);
            }
        }
        GroupInput::Removed { phone, at } => {
            require_active(&d.group)?;
            exited(&mut d, phone, ParticipantState::Removed, *at, now);
        }
        GroupInput::Invited { phone, invite_link, at } => {
            require_active(&d.group)?;
            let current = d.participant(phone).cloned();
            if current.as_ref().is_none_or(|p| p.state != ParticipantState::Member) {
                d.put_participant(Participant {
                    phone: phone.clone(),
                    role: ParticipantRole::Member,
                    state: ParticipantState::Invited,
                    is_business: false,
                    joined_at: None,
                    updated_at: now,
                    // An exit not announced yet is overtaken: the invitation is what is told.
                    changed_at: current.and_then(|p| p.changed_at),
                    exit_unannounced: false,
                });
                d.emit(
                    EventBody::ParticipantInvited {
                        phone: phone.clone(),
                        invite_link: invite_link.clone().or_else(|| d.group.invite_link.clone()),
                        at: *at,
                    },
                    *at,
                );
            }
        }
        GroupInput::RoleChanged { phone, promoted, at } => {
            require_active(&d.group)?;
            let target = if *promoted {
                ParticipantRole::Admin
            } else {
                ParticipantRole::Member
            };
            if let Some(p) = d
                .participant(phone)
                .filter(|p| {
                    p.state == ParticipantState::Member && p.role != ParticipantRole::Superadmin && p.role != target
                })
                .cloned()
            {
                d.put_participant(Participant {
                    role: target,
                    updated_at: now,
                    ..p
                });
                let body = if *promoted {
                    EventBody::ParticipantPromoted {
                        phone: phone.clone(),
                        at: *at,
                    }
                } else {
                    EventBody::ParticipantDemoted {
                        phone: phone.clone(),
                        at: *at,
                    }
                };
                d.emit(body, *at);
            }
        }
        GroupInput::SettingsUpdated { change, at } => {
            require_active(&d.group)?;
            let mut changes = serde_json::Map::new();
            let mut previous = serde_json::Map::new();
            let mut note = |k: &str, old: serde_json::Value, new: serde_json::Value| {
                if old != new {
                    previous.insert(k.to_string(), old);
                    changes.insert(k.to_string(), new);
                }
            };
            let g = &mut d.group;
            if let Some(v) = &change.subject {
                note("subject", g.subject.clone().into(), v.clone().into());
                g.subject = v.clone();
            }
            if let Some(v) = &change.description {
                note("description", g.description.clone().into(), v.clone().into());
                g.description = v.clone();
            }
            if let Some(v) = change.announcement_only {
                note("announcementOnly", g.announcement_only.into(), v.into());
                g.announcement_only = v;
            }
            if let Some(v) = change.locked {
                note("locked", g.locked.into(), v.into());
                g.locked = v;
            }
            if let Some(m) = change.join_approval_mode {
                note(
                    "joinApprovalMode",
                    g.join_approval_mode.as_str().into(),
                    m.as_str().into(),
                );
                g.join_approval_mode = m;
            }
            if !changes.is_empty() {
                d.emit(EventBody::GroupUpdated { changes, previous }, *at);
            }
        }
        GroupInput::InviteLinkReset { invite_link, at } => {
            require_active(&d.group)?;
            if d.group.invite_link.as_deref() != Some(invite_link.as_str()) {
                d.group.invite_link = Some(invite_link.clone());
                d.emit(
                    EventBody::InviteLinkReset {
                        invite_link: invite_link.clone(),
                        at: *at,
                    },
                    *at,
                );
            }
        }
        GroupInput::Deleted { at } => {
            if d.group.status == GroupStatus::Active {
                d.group.status = GroupStatus::Deleted;
                d.group.invite_link = None;
                let present: Vec<Participant> = d
                    .participants
                    .iter()
                    .filter(|p| matches!(p.state, ParticipantState::Member | ParticipantState::Invited))
                    .cloned()
                    .collect();
                for p in present {
                    d.put_participant(Participant {
                        state: ParticipantState::Removed,
                        updated_at: now,
                        ..p
                    });
                }
                d.emit(EventBody::GroupDeleted { at: *at }, *at);
            }
        }
        GroupInput::Suspension { suspended, at } => {
            require_active(&d.group)?;
            if d.group.suspended != *suspended {
                d.group.suspended = *suspended;
                let body = if *suspended {
                    EventBody::GroupSuspended { at: *at }
                } else {
                    EventBody::GroupSuspensionCleared { at: *at }
                };
                d.emit(body, *at);
            }
        }
    }
    Ok(d.finish(now))
}

/// How much older than a participant's last applied join or exit a report must be to be
/// recognised as stale: Meta's timestamps are whole seconds (and clocks differ a little), so
/// reports closer together than this are taken in the order they arrive.
pub const STALE_REPORT_MS: i64 = 1000;

/// True when a report of `at` about `p` is older than the last join or exit applied to it.
fn stale(p: &Participant, at: Timestamp) -> bool {
    p.changed_at
        .is_some_and(|c| at.millis().saturating_add(STALE_REPORT_MS) <= c.millis())
}

/// The later of a participant's report clock and `at`.
fn later(p: &Participant, at: Timestamp) -> Option<Timestamp> {
    Some(
        p.changed_at
            .map_or(at, |c| if c.millis() >= at.millis() { c } else { at }),
    )
}

/// A user joined at `at` (WhatsApp's clock). A join older than the participant's last exit
/// changes nothing, unless that exit was reported before it and not announced yet: then the
/// join and the exit are announced now, in their order, and the participant stays out.
fn joined(d: &mut Decision, phone: &Phone, reason: JoinReason, at: Timestamp, now: Timestamp) {
    let current = d.participant(phone).cloned();
    match current {
        Some(p) if p.state == ParticipantState::Member => {
            // A member already; a join newer than the one applied dates the membership, so
            // that an exit between the two, arriving late, is recognised as older.
            // (A member from before report times were kept has none: this dates it.)
            if p.changed_at
                .is_none_or(|c| c.millis().saturating_add(STALE_REPORT_MS) <= at.millis())
            {
                d.put_participant(Participant {
                    changed_at: Some(at),
                    ..p
                });
            }
            return;
        }
        // An exit not announced yet ends a join not seen yet: a join up to it (or in the same
        // second, which Meta's clock cannot order) is that join.
        Some(p)
            if p.exit_unannounced
                && p.changed_at
                    .is_some_and(|c| at.millis() < c.millis().saturating_add(STALE_REPORT_MS)) =>
        {
            let exit_at = p.changed_at.unwrap_or(at);
            let exit = p.state;
            d.put_participant(Participant {
                joined_at: Some(at),
                updated_at: now,
                exit_unannounced: false,
                ..p
            });
            approve_join_requests(d, phone, now);
            d.emit(
                EventBody::ParticipantJoined {
                    phone: phone.clone(),
                    reason,
                    at,
                },
                at,
            );
            d.emit(exit_event(exit, phone, exit_at), exit_at);
            return;
        }
        Some(p) if stale(&p, at) => return,
        _ => {}
    }
    let role = current
        .as_ref()
        .map(|p| p.role)
        .filter(|r| *r != ParticipantRole::Superadmin)
        .unwrap_or(ParticipantRole::Member);
    d.put_participant(Participant {
        phone: phone.clone(),
        role,
        state: ParticipantState::Member,
        is_business: false,
        joined_at: Some(at),
        updated_at: now,
        changed_at: current.as_ref().map_or(Some(at), |p| later(p, at)),
        exit_unannounced: false,
    });
    approve_join_requests(d, phone, now);
    d.emit(
        EventBody::ParticipantJoined {
            phone: phone.clone(),
            reason,
            at,
        },
        at,
    );
}

/// A user's pending join requests are approved by their joining.
fn approve_join_requests(d: &mut Decision, phone: &Phone, now: Timestamp) {
    let pending: Vec<JoinRequest> = d
        .join_requests
        .iter()
        .filter(|r| &r.phone == phone && r.state == JoinRequestState::Pending)
        .cloned()
        .collect();
    for mut r in pending {
        r.state = JoinRequestState::Approved;
        r.updated_at = now;
        d.put_join_request(r);
    }
}

fn exit_event(exit: ParticipantState, phone: &Phone, at: Timestamp) -> EventBody {
    if exit == ParticipantState::Removed {
        EventBody::ParticipantRemoved {
            phone: phone.clone(),
            at,
        }
    } else {
        EventBody::ParticipantLeft {
            phone: phone.clone(),
            at,
        }
    }
}

/// A user left or was removed (`exit`) at `at`. A member's exit is announced unless the member
/// joined again after it; an invited user's removal is announced (the invitation is over). An
/// exit of someone the record does not have in the group is the exit of a join not reported
/// yet: it is recorded, so that the join is recognised as older when it comes, and announced
/// with it.
fn exited(d: &mut Decision, phone: &Phone, exit: ParticipantState, at: Timestamp, now: Timestamp) {
    let current = d.participant(phone).cloned();
    if current.as_ref().is_some_and(|p| p.is_business || stale(p, at)) {
        return;
    }
    let announced = current.as_ref().is_some_and(|p| {
        p.state == ParticipantState::Member
            || (exit == ParticipantState::Removed && p.state == ParticipantState::Invited)
    });
    if announced {
        if let Some(p) = current {
            d.put_participant(Participant {
                state: exit,
                role: ParticipantRole::Member,
                updated_at: now,
                changed_at: later(&p, at),
                exit_unannounced: false,
                ..p
            });
            d.emit(exit_event(exit, phone, at), at);
        }
        return;
    }
    let existed = current.is_some();
    let base = current.unwrap_or_else(|| Participant {
        phone: phone.clone(),
        role: ParticipantRole::Member,
        state: exit,
        is_business: false,
        joined_at: None,
        updated_at: now,
        changed_at: None,
        exit_unannounced: false,
    });
    if base.changed_at.is_some_and(|c| c.millis() >= at.millis()) && base.state == exit {
        // Already recorded (a redelivery, or the same exit again).
        return;
    }
    // (Also one recorded before report times were kept, which has none.)
    let was_announced_exit =
        existed && matches!(base.state, ParticipantState::Left | ParticipantState::Removed) && !base.exit_unannounced;
    if was_announced_exit {
        // Out already, and told: a later exit only dates it (a join before it is then older).
        d.put_participant(Participant {
            updated_at: now,
            changed_at: later(&base, at),
            ..base
        });
        return;
    }
    d.put_participant(Participant {
        state: exit,
        role: ParticipantRole::Member,
        updated_at: now,
        changed_at: later(&base, at),
        exit_unannounced: true,
        ..base
    });
}

fn require_active(group: &Group) -> Result<(), DomainError> {
    if group.status == GroupStatus::Active {
        Ok(())
    } else {
        Err(DomainError::conflict(
            crate::error::code::GROUP_NOT_ACTIVE,
            format!("group {} is {}, not active", group.group_id, group.status),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{event::EventType, model::JoinApprovalMode};

    fn pending() -> GroupState {
        let new = crate::store::NewGroup {
            org_id: "org_1".into(),
            number_id: 1,
            group_id: "g".into(),
            subject: "S".into(),
            description: String::new(),
            join_approval_mode: JoinApprovalMode::AutoApprove,
            command_id: "cmd_7".into(),
            command: crate::command::CommandPayload::CreateGroup {
                subject: "S".into(),
                description: String::new(),
                join_approval_mode: JoinApprovalMode::AutoApprove,
                participants: vec![],
                invite_fallback: true,
            },
            now: Timestamp(1),
        };
        GroupState {
            group: new.pending(1, "15550100001".into()),
            participants: vec![],
            join_requests: vec![],
            command_id: Some(7),
            command_participants: Vec::new(),
            operation: None,
        }
    }

    fn with(_prev: &GroupState, d: &Decision) -> GroupState {
        GroupState {
            group: d.group.clone(),
            participants: d.participants.clone(),
            join_requests: d.join_requests.clone(),
            command_id: None,
            command_participants: Vec::new(),
            operation: None,
        }
    }

    #[test]
    fn creation_then_join_then_leave_produce_a_gap_free_log() -> Result<(), DomainError> {
        let s0 = pending();
        let created = GroupInput::Created {
            wa_group_id: "120363000000000001@g.us".into(),
            invite_link: "https://chat.whatsapp.com/abc".into(),
            at: Timestamp(10),
            participants: vec![],
        };
        let d1 = apply(&s0, &created, Timestamp(10))?;
        assert_eq!(d1.group.status, GroupStatus::Active);
        assert_eq!(d1.events.len(), 1);
        assert_eq!(d1.events[0].sequence, 1);
        assert_eq!(d1.events[0].event_type(), EventType::GroupCreated);
        assert!(matches!(d1.close_command, Some(CommandClose::Done { id: 7, .. })));
        assert_eq!(d1.group.participant_count, 0, "the business is not counted");

        let s1 = with(&s0, &d1);
        // A redelivered confirmation changes nothing.
        assert!(apply(&s1, &created, Timestamp(11))?.is_noop());

        let phone = Phone::from_digits("919999999999");
        let join = GroupInput::Joined {
            phone: phone.clone(),
            reason: JoinReason::InviteLink,
            at: Timestamp(20),
        };
        let d2 = apply(&s1, &join, Timestamp(20))?;
        assert_eq!(d2.events[0].sequence, 2);
        assert_eq!(d2.group.participant_count, 1);
        let s2 = with(&s1, &d2);
        assert!(apply(&s2, &join, Timestamp(21))?.is_noop(), "already a member");

        let d3 = apply(
            &s2,
            &GroupInput::Left {
                phone: phone.clone(),
                at: Timestamp(30),
            },
            Timestamp(30),
        )?;
        assert_eq!(d3.events[0].sequence, 3);
        assert_eq!(d3.events[0].event_type(), EventType::ParticipantLeft);
        assert_eq!(d3.group.participant_count, 0);
        Ok(())
    }

    #[test]
    fn failure_and_inactive_groups() -> Result<(), DomainError> {
        let s0 = pending();
        let d = apply(
            &s0,
            &GroupInput::CreateFailed {
                code: "131211".into(),
                message: "limit".into(),
                at: Timestamp(5),
            },
            Timestamp(5),
        )?;
        assert_eq!(d.group.status, GroupStatus::Failed);
        assert_eq!(d.events[0].event_type(), EventType::GroupCreateFailed);
        let join = GroupInput::Joined {
            phone: Phone::from_digits("919999999999"),
            reason: JoinReason::InviteLink,
            at: Timestamp(6),
        };
        assert!(matches!(
            apply(&s0, &join, Timestamp(6)),
            Err(DomainError::Conflict { .. })
        ));
        Ok(())
    }

    fn active() -> Result<GroupState, DomainError> {
        let s0 = pending();
        let created = GroupInput::Created {
            wa_group_id: "120363000000000001@g.us".into(),
            invite_link: "https://chat.whatsapp.com/abc".into(),
            at: Timestamp(1_000),
            participants: vec![],
        };
        Ok(with(&s0, &apply(&s0, &created, Timestamp(1_000))?))
    }

    fn join(phone: &Phone, secs: i64) -> GroupInput {
        GroupInput::Joined {
            phone: phone.clone(),
            reason: JoinReason::InviteLink,
            at: Timestamp(secs * 1000),
        }
    }

    fn leave(phone: &Phone, secs: i64) -> GroupInput {
        GroupInput::Left {
            phone: phone.clone(),
            at: Timestamp(secs * 1000),
        }
    }

    fn types(d: &Decision) -> Vec<EventType> {
        d.events.iter().map(|e| e.event_type()).collect()
    }

    #[test]
    fn a_leave_reported_before_its_join_is_announced_with_it_in_order() -> Result<(), DomainError> {
        let phone = Phone::from_digits("919999999999");
        let s1 = active()?;
        let d = apply(&s1, &leave(&phone, 30), Timestamp(40_000))?;
        assert!(d.events.is_empty(), "nobody to announce leaving yet");
        assert_eq!(d.participant(&phone).map(|p| p.state), Some(ParticipantState::Left));
        let s2 = with(&s1, &d);
        // The same leave again changes nothing.
        assert!(apply(&s2, &leave(&phone, 30), Timestamp(41_000))?.is_noop());
        let d = apply(&s2, &join(&phone, 20), Timestamp(42_000))?;
        assert_eq!(types(&d), [EventType::ParticipantJoined, EventType::ParticipantLeft]);
        assert_eq!(d.events[0].occurred_at, Timestamp(20_000));
        assert_eq!(d.events[1].occurred_at, Timestamp(30_000));
        assert_eq!(d.participant(&phone).map(|p| p.state), Some(ParticipantState::Left));
        assert_eq!(d.group.participant_count, 0, "out, as WhatsApp last said");
        let s3 = with(&s2, &d);
        assert!(
            apply(&s3, &join(&phone, 20), Timestamp(43_000))?.is_noop(),
            "announced once"
        );
        // A later join is a new membership.
        let d = apply(&s3, &join(&phone, 50), Timestamp(50_000))?;
        assert_eq!(types(&d), [EventType::ParticipantJoined]);
        assert_eq!(d.group.participant_count, 1);
        Ok(())
    }

    #[test]
    fn a_leave_and_its_join_in_the_same_second_arriving_reversed_leave_the_user_out() -> Result<(), DomainError> {
        let phone = Phone::from_digits("919999999999");
        let s1 = active()?;
        let s2 = with(&s1, &apply(&s1, &leave(&phone, 30), Timestamp(31_000))?);
        let d = apply(&s2, &join(&phone, 30), Timestamp(32_000))?;
        assert_eq!(types(&d), [EventType::ParticipantJoined, EventType::ParticipantLeft]);
        assert_eq!(d.group.participant_count, 0);
        Ok(())
    }

    #[test]
    fn an_exit_after_an_announced_one_only_dates_it() -> Result<(), DomainError> {
        let phone = Phone::from_digits("919999999999");
        let s1 = active()?;
        let s2 = with(&s1, &apply(&s1, &join(&phone, 10), Timestamp(10_000))?);
        let s3 = with(&s2, &apply(&s2, &leave(&phone, 20), Timestamp(20_000))?);
        let d = apply(&s3, &leave(&phone, 25), Timestamp(25_000))?;
        assert!(d.events.is_empty());
        let Some(p) = d.participant(&phone) else {
            panic!("the participant is kept")
        };
        assert!(!p.exit_unannounced, "told already");
        let s4 = with(&s3, &d);
        assert!(
            apply(&s4, &join(&phone, 15), Timestamp(26_000))?.events.is_empty(),
            "not told twice"
        );
        Ok(())
    }

    #[test]
    fn an_exit_older_than_a_rejoin_is_stale() -> Result<(), DomainError> {
        let phone = Phone::from_digits("919999999999");
        let s1 = active()?;
        let s2 = with(&s1, &apply(&s1, &join(&phone, 10), Timestamp(10_000))?);
        // Joined again at 30 (the leave at 20 in between not arrived yet): still a member,
        // dated 30.
        let d = apply(&s2, &join(&phone, 30), Timestamp(31_000))?;
        assert!(d.events.is_empty());
        let s3 = with(&s2, &d);
        for exit in [
            leave(&phone, 20),
            GroupInput::Removed {
                phone: phone.clone(),
                at: Timestamp(20_000),
            },
        ] {
            assert!(apply(&s3, &exit, Timestamp(32_000))?.is_noop(), "{exit:?} is older");
        }
        // Reports less than a second apart go in arrival order (Meta's clock has seconds).
        let d = apply(
            &s3,
            &GroupInput::Left {
                phone: phone.clone(),
                at: Timestamp(29_500),
            },
            Timestamp(33_000),
        )?;
        assert_eq!(types(&d), [EventType::ParticipantLeft]);
        Ok(())
    }

    #[test]
    fn a_removal_reported_before_the_join_is_announced_as_a_removal() -> Result<(), DomainError> {
        let phone = Phone::from_digits("919999999999");
        let s1 = active()?;
        let removed = GroupInput::Removed {
            phone: phone.clone(),
            at: Timestamp(30_000),
        };
        let s2 = with(&s1, &apply(&s1, &removed, Timestamp(30_000))?);
        assert_eq!(
            s2.participants.iter().find(|p| p.phone == phone).map(|p| p.state),
            Some(ParticipantState::Removed)
        );
        let d = apply(&s2, &join(&phone, 25), Timestamp(31_000))?;
        assert_eq!(types(&d), [EventType::ParticipantJoined, EventType::ParticipantRemoved]);
        Ok(())
    }
}
