//! What the simulated WhatsApp does when a user acts: pure functions from the group's
//! state to the change and the reports it sends to the business.

use wagroups_core::{
    ids,
    model::Profile,
    provider::{Capabilities, ProviderEvent},
    store::sim::{SimChange, SimGroupState, SimJoinRequest, SimMember, SimRefusal},
    time::Timestamp,
};

fn refuse(code: &str, message: String) -> SimRefusal {
    SimRefusal {
        code: code.to_string(),
        message,
    }
}

fn members(state: &SimGroupState) -> usize {
    state
        .members
        .iter()
        .filter(|m| m.state == "member" && m.phone != state.group.waba_number)
        .count()
}

/// A user taps the group's invite link: joins, or files a join request when the group
/// requires approval.
pub fn join_via_link(state: &SimGroupState, phone: &str, now: Timestamp) -> Result<SimChange, SimRefusal> {
    let g = &state.group;
    let existing = state.members.iter().find(|m| m.phone == phone);
    if existing.is_some_and(|m| m.state == "member") {
        return Err(refuse(
            "already_member",
            format!("{phone} is already a member of the group"),
        ));
    }
    let profile = Profile::parse(&g.profile).unwrap_or(Profile::Cloud);
    if profile == Profile::Cloud && existing.is_some_and(|m| m.state == "removed") {
        return Err(refuse(
            "removed_cannot_rejoin",
            format!("{phone} was removed from the group and cannot rejoin through the invite link"),
        ));
    }
    let cap = Capabilities::for_profile(profile).max_participants;
    if members(state) >= cap {
        return Err(refuse("group_full", format!("the group is full ({cap} participants)")));
    }
    if g.approval_required {
        if state
            .join_requests
            .iter()
            .any(|r| r.phone == phone && r.state == "pending")
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
                state: "pending".into(),
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
    Ok(SimChange {
        members: vec![SimMember {
            phone: phone.to_string(),
            role: "member".into(),
            state: "member".into(),
        }],
        reports: vec![ProviderEvent::ParticipantJoined {
            wa_group_id: g.jid.clone(),
            phone: phone.to_string(),
            at: now,
        }],
        ..SimChange::default()
    })
}

/// A user leaves the group.
pub fn leave(state: &SimGroupState, phone: &str, now: Timestamp) -> Result<SimChange, SimRefusal> {
    if phone == state.group.waba_number {
        return Err(refuse(
            "business_cannot_leave",
            "the business number created the group and cannot leave it through the sandbox".into(),
        ));
    }
    match state.members.iter().find(|m| m.phone == phone && m.state == "member") {
        None => Err(refuse("not_a_member", format!("{phone} is not a member of the group"))),
        Some(m) => Ok(SimChange {
            members: vec![SimMember {
                state: "left".into(),
                role: "member".into(),
                ..m.clone()
            }],
            reports: vec![ProviderEvent::ParticipantLeft {
                wa_group_id: state.group.jid.clone(),
                phone: phone.to_string(),
                at: now,
            }],
            ..SimChange::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wagroups_core::store::sim::SimGroup;

    fn group(approval: bool, profile: &str) -> SimGroupState {
        SimGroupState {
            group: SimGroup {
                jid: "120363000000000001@g.us".into(),
                waba_number: "15550100001".into(),
                profile: profile.into(),
                create_key: "cmd_1".into(),
                subject: "S".into(),
                description: String::new(),
                approval_required: approval,
                invite_code: "c".repeat(22),
                created_at: Timestamp(0),
            },
            members: vec![SimMember {
                phone: "15550100001".into(),
                role: "superadmin".into(),
                state: "member".into(),
            }],
            join_requests: vec![],
        }
    }

    #[test]
    fn join_leave_and_requests() -> Result<(), SimRefusal> {
        let mut s = group(false, "cloud");
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

        let mut s = group(true, "cloud");
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
        let mut s = group(false, "cloud");
        for i in 0..8 {
            s.members.push(SimMember {
                phone: format!("9199999999{i:02}"),
                role: "member".into(),
                state: "member".into(),
            });
        }
        assert_eq!(
            join_via_link(&s, "918888888888", Timestamp(1)).map_err(|r| r.code),
            Err("group_full".into())
        );
        let mut s = group(false, "cloud");
        s.members.push(SimMember {
            phone: "918888888888".into(),
            role: "member".into(),
            state: "removed".into(),
        });
        assert_eq!(
            join_via_link(&s, "918888888888", Timestamp(1)).map_err(|r| r.code),
            Err("removed_cannot_rejoin".into())
        );
    }
}
