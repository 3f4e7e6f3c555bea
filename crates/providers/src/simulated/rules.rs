//! What the simulated WhatsApp does when a user acts: pure functions from the group's
//! state to the change and the reports it sends to the business.

use wagroups_core::{
    ids,
    model::{
        AddPrivacy, JoinApprovalMode, JoinRequestState as Jr, ParticipantRole as Role, ParticipantState as State,
        Profile,
    },
    provider::{Capabilities, ItemResult, ItemStatus, ProviderEvent, ProviderOp},
    store::sim::{SimChange, SimGroup, SimGroupState, SimJoinRequest, SimMember, SimRefusal, SimUser},
    time::Timestamp,
};

fn refuse(code: &str, message: String) -> SimRefusal {
    SimRefusal {
        code: code.to_string(),
        message,
    }
}

fn profile(state: &SimGroupState) -> Profile {
    state.group.profile
}

fn cap(state: &SimGroupState) -> usize {
    Capabilities::for_profile(profile(state)).max_participants
}

fn count(state: &SimGroupState, states: &[State]) -> usize {
    state
        .members
        .iter()
        .filter(|m| states.contains(&m.state) && m.phone != state.group.waba_number)
        .count()
}

/// Members (besides the business) in the state after `change`.
fn member_state<'a>(state: &'a SimGroupState, change: &'a SimChange, phone: &str) -> Option<&'a SimMember> {
    change
        .members
        .iter()
        .rev()
        .find(|m| m.phone == phone)
        .or_else(|| state.members.iter().find(|m| m.phone == phone))
}

fn seats(state: &SimGroupState, change: &SimChange, states: &[State]) -> usize {
    let mut phones: Vec<&str> = state
        .members
        .iter()
        .chain(change.members.iter())
        .map(|m| m.phone.as_str())
        .filter(|p| *p != state.group.waba_number)
        .collect();
    phones.sort_unstable();
    phones.dedup();
    phones
        .into_iter()
        .filter(|p| member_state(state, change, p).is_some_and(|m| states.contains(&m.state)))
        .count()
}

fn put(change: &mut SimChange, phone: &str, role: Role, state: State) {
    change.members.push(SimMember {
        phone: phone.to_string(),
        role,
        state,
    });
}

pub fn invite_link_of(state: &SimGroupState) -> String {
    super::invite_link(&state.group.invite_code)
}

fn writable(state: &SimGroupState) -> Result<(), SimRefusal> {
    if state.group.deleted {
        return Err(refuse("group_deleted", "the group was deleted".into()));
    }
    if state.group.suspended {
        return Err(refuse("group_suspended", "the group is suspended".into()));
    }
    Ok(())
}

/// A user taps the group's invite link: joins, or files a join request when the group
/// requires approval.
pub fn join_via_link(state: &SimGroupState, phone: &str, now: Timestamp) -> Result<SimChange, SimRefusal> {
    let g = &state.group;
    if g.deleted {
        return Err(refuse("not_found", "the invite link is no longer valid".into()));
    }
    if g.suspended {
        return Err(refuse("group_suspended", "the group is suspended".into()));
    }
    let existing = state.members.iter().find(|m| m.phone == phone);
    if existing.is_some_and(|m| m.state == State::Member) || phone == g.waba_number {
        return Err(refuse(
            "already_member",
            format!("{phone} is already a member of the group"),
        ));
    }
    if profile(state) == Profile::Cloud && existing.is_some_and(|m| m.state == State::Removed) {
        return Err(refuse(
            "removed_cannot_rejoin",
            format!("{phone} was removed from the group and cannot rejoin through the invite link"),
        ));
    }
    let cap = cap(state);
    if count(state, &[State::Member]) >= cap {
        return Err(refuse("group_full", format!("the group is full ({cap} participants)")));
    }
    if g.approval_required {
        if state
            .join_requests
            .iter()
            .any(|r| r.phone == phone && r.state == Jr::Pending)
        {
            return Err(refuse(
                "join_request_pending",
                format!("{phone} already has a pending join request for this group"),
            ));
        }
        let id = ids::new_id("jr");
        return Ok(SimChange {
            join_requests: vec![SimJoinRequest {
                id: id.clone(),
                phone: phone.to_string(),
                state: Jr::Pending,
                created_at: now,
            }],
            reports: vec![ProviderEvent::JoinRequestCreated {
                wa_group_id: g.jid.clone(),
                join_request_id: id,
                phone: phone.to_string(),
                at: now,
            }],
            ..SimChange::default()
        });
    }
    let mut change = SimChange::default();
    put(&mut change, phone, Role::Member, State::Member);
    change.reports.push(ProviderEvent::ParticipantJoined {
        wa_group_id: g.jid.clone(),
        phone: phone.to_string(),
        at: now,
        reason: Some("invite_link".into()),
    });
    Ok(change)
}

/// A user leaves the group.
pub fn leave(state: &SimGroupState, phone: &str, now: Timestamp) -> Result<SimChange, SimRefusal> {
    if phone == state.group.waba_number {
        return Err(refuse(
            "business_cannot_leave",
            "the business number created the group and cannot leave it through the sandbox".into(),
        ));
    }
    match state
        .members
        .iter()
        .find(|m| m.phone == phone && m.state == State::Member)
    {
        None => Err(refuse("not_a_member", format!("{phone} is not a member of the group"))),
        Some(_) => {
            let mut change = SimChange::default();
            put(&mut change, phone, Role::Member, State::Left);
            change.reports.push(ProviderEvent::ParticipantLeft {
                wa_group_id: state.group.jid.clone(),
                phone: phone.to_string(),
                at: now,
            });
            Ok(change)
        }
    }
}

/// A user withdraws their pending join request.
pub fn cancel_request(state: &SimGroupState, phone: &str, now: Timestamp) -> Result<SimChange, SimRefusal> {
    let Some(r) = state
        .join_requests
        .iter()
        .find(|r| r.phone == phone && r.state == Jr::Pending)
    else {
        return Err(refuse(
            "no_pending_request",
            format!("{phone} has no pending join request for this group"),
        ));
    };
    Ok(SimChange {
        join_requests: vec![SimJoinRequest {
            state: Jr::Revoked,
            ..r.clone()
        }],
        reports: vec![ProviderEvent::JoinRequestRevoked {
            wa_group_id: state.group.jid.clone(),
            join_request_id: r.id.clone(),
            phone: phone.to_string(),
            at: now,
        }],
        ..SimChange::default()
    })
}

/// WhatsApp suspends the group, or lifts the suspension.
pub fn suspend(state: &SimGroupState, suspended: bool, now: Timestamp) -> Result<SimChange, SimRefusal> {
    if state.group.deleted {
        return Err(refuse("group_deleted", "the group was deleted".into()));
    }
    if state.group.suspended == suspended {
        let what = if suspended {
            "already suspended"
        } else {
            "not suspended"
        };
        return Err(refuse(
            if suspended {
                "already_suspended"
            } else {
                "not_suspended"
            },
            format!("the group is {what}"),
        ));
    }
    let wa_group_id = state.group.jid.clone();
    Ok(SimChange {
        group: Some(SimGroup {
            suspended,
            ..state.group.clone()
        }),
        reports: vec![if suspended {
            ProviderEvent::GroupSuspended { wa_group_id, at: now }
        } else {
            ProviderEvent::GroupSuspensionCleared { wa_group_id, at: now }
        }],
        ..SimChange::default()
    })
}

/// Why a user cannot be added directly, if they cannot.
fn add_blocker(state: &SimGroupState, user: &SimUser) -> Option<ItemStatus> {
    if !user.on_whatsapp {
        return Some(ItemStatus::NotOnWhatsapp);
    }
    match user.add_privacy {
        AddPrivacy::Nobody => Some(ItemStatus::InviteRequired),
        AddPrivacy::Contacts if !user.contact_of.iter().any(|c| c == &state.group.waba_number) => {
            Some(ItemStatus::InviteRequired)
        }
        _ => None,
    }
}

/// The business adds users directly (linked-device semantics).
fn add(state: &SimGroupState, change: &mut SimChange, phones: &[String], now: Timestamp) {
    let cap = cap(state);
    for phone in phones {
        let current = member_state(state, change, phone).map(|m| m.state);
        let status = if phone == &state.group.waba_number || current == Some(State::Member) {
            ItemStatus::AlreadyMember
        } else if let Some(blocker) = add_blocker(state, &state.user(phone)) {
            blocker
        } else if seats(state, change, &[State::Member]) >= cap {
            ItemStatus::GroupFull
        } else {
            put(change, phone, Role::Member, State::Member);
            change.reports.push(ProviderEvent::ParticipantJoined {
                wa_group_id: state.group.jid.clone(),
                phone: phone.clone(),
                at: now,
                reason: Some("added".into()),
            });
            ItemStatus::Added
        };
        change.results.push(ItemResult::new(phone.clone(), status));
    }
}

/// The business sends users the invite link 1:1.
fn invite(state: &SimGroupState, change: &mut SimChange, phones: &[String], now: Timestamp) {
    let cap = cap(state);
    let link = invite_link_of(state);
    for phone in phones {
        let current = member_state(state, change, phone).map(|m| m.state);
        let mut result = ItemResult::new(phone.clone(), ItemStatus::Invited);
        if phone == &state.group.waba_number || current == Some(State::Member) {
            result.status = ItemStatus::AlreadyMember;
        } else if !state.user(phone).on_whatsapp {
            result.status = ItemStatus::NotOnWhatsapp;
        } else if profile(state) == Profile::Cloud && current == Some(State::Removed) {
            result.status = ItemStatus::RemovedCannotRejoin;
            result.message = Some("a user removed from the group cannot rejoin through the invite link".into());
        } else if current != Some(State::Invited) && seats(state, change, &[State::Member, State::Invited]) >= cap {
            result.status = ItemStatus::GroupFull;
        } else {
            put(change, phone, Role::Member, State::Invited);
            change.reports.push(ProviderEvent::ParticipantInvited {
                wa_group_id: state.group.jid.clone(),
                phone: phone.clone(),
                invite_link: Some(link.clone()),
                at: now,
            });
            result.invite_link = Some(link.clone());
        }
        change.results.push(result);
    }
}

/// Carries out a business's write to an existing group.
pub fn operate(state: &SimGroupState, op: &ProviderOp, now: Timestamp) -> Result<SimChange, SimRefusal> {
    writable(state)?;
    let g = &state.group;
    let mut change = SimChange::default();
    match op {
        ProviderOp::UpdateSettings(c) => {
            let mut ng = g.clone();
            if let Some(v) = &c.subject {
                ng.subject = v.clone();
            }
            if let Some(v) = &c.description {
                ng.description = v.clone();
            }
            if let Some(v) = c.announcement_only {
                ng.announcement_only = v;
            }
            if let Some(v) = c.locked {
                ng.locked = v;
            }
            if let Some(v) = c.join_approval_mode {
                ng.approval_required = v == JoinApprovalMode::ApprovalRequired;
            }
            change.group = Some(ng);
            change.reports.push(ProviderEvent::SettingsUpdated {
                wa_group_id: g.jid.clone(),
                change: c.clone(),
                at: now,
            });
        }
        ProviderOp::AddParticipants { phones } => add(state, &mut change, phones, now),
        ProviderOp::Invite { phones } => invite(state, &mut change, phones, now),
        ProviderOp::RemoveParticipants { phones } => {
            for phone in phones {
                let current = member_state(state, &change, phone).map(|m| m.state);
                let status = if phone == &g.waba_number {
                    ItemStatus::CannotRemoveCreator
                } else if matches!(current, Some(State::Member | State::Invited)) {
                    put(&mut change, phone, Role::Member, State::Removed);
                    change.reports.push(ProviderEvent::ParticipantRemoved {
                        wa_group_id: g.jid.clone(),
                        phone: phone.clone(),
                        at: now,
                    });
                    ItemStatus::Removed
                } else {
                    ItemStatus::NotAMember
                };
                change.results.push(ItemResult::new(phone.clone(), status));
            }
        }
        ProviderOp::SetAdmins { phones, promote } => {
            for phone in phones {
                let current = member_state(state, &change, phone).cloned();
                let status = match current {
                    _ if phone == &g.waba_number => {
                        if *promote {
                            ItemStatus::AlreadyAdmin
                        } else {
                            ItemStatus::CannotDemoteCreator
                        }
                    }
                    Some(m) if m.state == State::Member => match (promote, m.role) {
                        (true, Role::Admin) => ItemStatus::AlreadyAdmin,
                        (false, Role::Member) => ItemStatus::NotAnAdmin,
                        (true, _) => {
                            put(&mut change, phone, Role::Admin, State::Member);
                            change.reports.push(ProviderEvent::ParticipantPromoted {
                                wa_group_id: g.jid.clone(),
                                phone: phone.clone(),
                                at: now,
                            });
                            ItemStatus::Promoted
                        }
                        (false, _) => {
                            put(&mut change, phone, Role::Member, State::Member);
                            change.reports.push(ProviderEvent::ParticipantDemoted {
                                wa_group_id: g.jid.clone(),
                                phone: phone.clone(),
                                at: now,
                            });
                            ItemStatus::Demoted
                        }
                    },
                    _ => ItemStatus::NotAMember,
                };
                change.results.push(ItemResult::new(phone.clone(), status));
            }
        }
        ProviderOp::ResetInviteLink => {
            let code = ids::random_alnum(22);
            let link = super::invite_link(&code);
            change.group = Some(SimGroup {
                invite_code: code,
                ..g.clone()
            });
            change.reports.push(ProviderEvent::InviteLinkReset {
                wa_group_id: g.jid.clone(),
                invite_link: link.clone(),
                at: now,
            });
            let mut r = ItemResult::new("inviteLink", ItemStatus::Reset);
            r.invite_link = Some(link);
            change.results.push(r);
        }
        ProviderOp::ResolveJoinRequests { ids, approve } => {
            let cap = cap(state);
            for id in ids {
                let Some(req) = state
                    .join_requests
                    .iter()
                    .find(|r| &r.id == id && r.state == Jr::Pending)
                else {
                    change.results.push(ItemResult::new(id.clone(), ItemStatus::NotFound));
                    continue;
                };
                let status = if !*approve {
                    change.join_requests.push(SimJoinRequest {
                        state: Jr::Rejected,
                        ..req.clone()
                    });
                    change.reports.push(ProviderEvent::JoinRequestRejected {
                        wa_group_id: g.jid.clone(),
                        join_request_id: id.clone(),
                        phone: req.phone.clone(),
                        at: now,
                    });
                    ItemStatus::Rejected
                } else if seats(state, &change, &[State::Member]) >= cap {
                    ItemStatus::GroupFull
                } else {
                    change.join_requests.push(SimJoinRequest {
                        state: Jr::Approved,
                        ..req.clone()
                    });
                    put(&mut change, &req.phone, Role::Member, State::Member);
                    change.reports.push(ProviderEvent::ParticipantJoined {
                        wa_group_id: g.jid.clone(),
                        phone: req.phone.clone(),
                        at: now,
                        reason: Some("join_request_approved".into()),
                    });
                    ItemStatus::Approved
                };
                change.results.push(ItemResult::new(id.clone(), status));
            }
        }
        ProviderOp::Delete => {
            change.group = Some(SimGroup {
                deleted: true,
                ..g.clone()
            });
            for m in state
                .members
                .iter()
                .filter(|m| m.state == State::Member || m.state == State::Invited)
            {
                put(&mut change, &m.phone, m.role, State::Removed);
            }
            change.reports.push(ProviderEvent::GroupDeleted {
                wa_group_id: g.jid.clone(),
                at: now,
            });
        }
    }
    Ok(change)
}

/// The participants asked for at creation: invited on invite-only profiles; otherwise added,
/// and (with `invite_fallback`) invited when their privacy forbids it.
pub fn populate(state: &SimGroupState, phones: &[String], invite_fallback: bool, now: Timestamp) -> SimChange {
    let mut change = SimChange::default();
    if !Capabilities::for_profile(profile(state)).direct_add {
        invite(state, &mut change, phones, now);
        return change;
    }
    add(state, &mut change, phones, now);
    if invite_fallback {
        let blocked: Vec<String> = change
            .results
            .iter()
            .filter(|r| r.status == ItemStatus::InviteRequired)
            .map(|r| r.key.clone())
            .collect();
        if !blocked.is_empty() {
            let mut extra = SimChange::default();
            let partial = SimGroupState {
                members: state.members.iter().chain(change.members.iter()).cloned().collect(),
                ..state.clone()
            };
            invite(&partial, &mut extra, &blocked, now);
            change.members.extend(extra.members);
            change.reports.extend(extra.reports);
            for r in extra.results {
                if let Some(slot) = change.results.iter_mut().find(|x| x.key == r.key) {
                    *slot = r;
                }
            }
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagroups_core::store::sim::SimGroup;

    fn group(approval: bool, profile: Profile) -> SimGroupState {
        SimGroupState {
            group: SimGroup {
                jid: "120363000000000001@g.us".into(),
                waba_number: "15550100001".into(),
                profile,
                create_key: "cmd_1".into(),
                subject: "S".into(),
                description: String::new(),
                approval_required: approval,
                invite_code: "c".repeat(22),
                created_at: Timestamp(0),
                announcement_only: false,
                locked: false,
                deleted: false,
                suspended: false,
            },
            members: vec![SimMember {
                phone: "15550100001".into(),
                role: Role::Superadmin,
                state: State::Member,
            }],
            join_requests: vec![],
            users: vec![],
            next_write_refusal: None,
        }
    }

    #[test]
    fn join_leave_and_requests() -> Result<(), SimRefusal> {
        let mut s = group(false, Profile::Cloud);
        let c = join_via_link(&s, "919999999999", Timestamp(1))?;
        assert!(matches!(c.reports[0], ProviderEvent::ParticipantJoined { .. }));
        s.members.extend(c.members);
        assert_eq!(
            join_via_link(&s, "919999999999", Timestamp(2)).map_err(|r| r.code),
            Err("already_member".into())
        );
        let c = leave(&s, "919999999999", Timestamp(3))?;
        assert!(matches!(c.reports[0], ProviderEvent::ParticipantLeft { .. }));
        assert_eq!(
            leave(&s, "911111111111", Timestamp(3)).map_err(|r| r.code),
            Err("not_a_member".into())
        );
        assert!(leave(&s, "15550100001", Timestamp(3)).is_err());

        let mut s = group(true, Profile::Cloud);
        let c = join_via_link(&s, "919999999999", Timestamp(1))?;
        assert!(matches!(c.reports[0], ProviderEvent::JoinRequestCreated { .. }));
        s.join_requests.extend(c.join_requests);
        assert_eq!(
            join_via_link(&s, "919999999999", Timestamp(2)).map_err(|r| r.code),
            Err("join_request_pending".into())
        );
        Ok(())
    }

    #[test]
    fn cloud_groups_hold_eight_participants_and_refuse_removed_users() {
        let mut s = group(false, Profile::Cloud);
        for i in 0..8 {
            s.members.push(SimMember {
                phone: format!("9199999999{i:02}"),
                role: Role::Member,
                state: State::Member,
            });
        }
        assert_eq!(
            join_via_link(&s, "918888888888", Timestamp(1)).map_err(|r| r.code),
            Err("group_full".into())
        );
        let mut s = group(false, Profile::Cloud);
        s.members.push(SimMember {
            phone: "918888888888".into(),
            role: Role::Member,
            state: State::Removed,
        });
        assert_eq!(
            join_via_link(&s, "918888888888", Timestamp(1)).map_err(|r| r.code),
            Err("removed_cannot_rejoin".into())
        );
    }
}
