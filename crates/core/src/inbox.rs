//! The inbox applier: every provider report goes through here. A report is applied at once
//! when its group can take it (recorded as applied in the change's own transaction), held
//! durably when it cannot yet (its group or request unknown, or an earlier report of its group
//! held), and a held report is tried again, in order per group, until it applies or is given
//! up as dead.

use futures_util::StreamExt as _;

use crate::{
    DomainError, ValidationError,
    group::{self, GroupInput},
    model::{JoinReason, JoinRequestState},
    phone::Phone,
    provider::{ProviderEnvelope, ProviderEvent, ProviderEventSink},
    service::{GroupService, ServiceError},
    store::{GroupTarget, HeldReport, Mutation, ReportRef},
    time::Timestamp,
};

/// Groups whose first held report a round reads.
pub const HELD_BATCH: i64 = 512;
/// Groups tried early when the applier is woken (the most recently held).
pub const WOKEN_TRIES: i64 = 64;
/// Groups' first reports applied at once (each a transaction: side by side they share the
/// writer's commits). Measured (wagroups-bench, this machine): 1 makes Meta's path queue
/// (create -> webhook p50 17.9 ms at 500/s); 32 crowds the writer while the API is busy
/// (create at 1000/s p99 11.4 ms against 5.5); 8 keeps both (2.7 ms; 6.1 ms).
const APPLY_PARALLEL: usize = 8;
/// Rounds one call makes while reports keep applying (each round reads the new first ones).
const ROUNDS_MAX: usize = 16;
/// How long a report may wait to be correlatable before it is given up (dead).
pub const HOLD_MAX_MS: i64 = 24 * 3600 * 1000;

/// The pause before held attempt `attempts + 1`: 50 ms, doubling, at most 5 minutes.
pub fn hold_backoff_ms(attempts: i64) -> i64 {
    let shift = attempts.clamp(0, 20) as u32;
    (50i64 << shift).min(5 * 60 * 1000)
}

pub use crate::provider::Received;

/// How an attempt to apply a report ended.
enum Attempt {
    Done(Received),
    /// Not correlatable now, because of this.
    NotYet(String),
    /// Never applicable, because of this.
    Never(String),
}

impl GroupService {
    /// Takes a report from a provider: applies it, or holds it durably. Only a storage failure
    /// is an error (then nothing was recorded, and the provider must deliver it again).
    pub async fn receive_report(&self, env: ProviderEnvelope) -> Result<Received, ServiceError> {
        let now = Timestamp::now();
        let Some(number) = self.store().find_number(&env.waba_number).await? else {
            tracing::error!(number = %env.waba_number, key = %env.dedup_key, "a provider report for a number that is not registered: kept as dead");
            // Kept under no number: the key names the number it came for.
            let r = ReportRef {
                number_id: 0,
                dedup_key: format!("{}:{}", env.waba_number, env.dedup_key),
                correlation: env.event.correlation().to_string(),
                held_seq: None,
            };
            self.store()
                .give_up_report(
                    &r,
                    &env.event,
                    &format!("number {} is not registered", env.waba_number),
                    now,
                )
                .await?;
            return Ok(Received::Dead);
        };
        let report = ReportRef {
            number_id: number.id,
            dedup_key: env.dedup_key,
            correlation: env.event.correlation().to_string(),
            held_seq: None,
        };
        match self.try_apply(number.id, &report, &env.event, now).await? {
            Attempt::Done(r) => Ok(r),
            Attempt::NotYet(why) => {
                let held = self
                    .store()
                    .hold_report(&report, &env.event, &why, now, now.plus_millis(hold_backoff_ms(0)))
                    .await?;
                self.inbox_changed();
                Ok(if held { Received::Held } else { Received::Duplicate })
            }
            Attempt::Never(why) => {
                self.store().give_up_report(&report, &env.event, &why, now).await?;
                Ok(Received::Dead)
            }
        }
    }

    /// Takes reports a provider delivered over HTTP (Meta's webhooks) without applying them:
    /// each is recorded durably — held, due at once — before this returns, and the applier
    /// applies them in order per group, so the provider's request is answered without waiting
    /// for the application. A report the inbox already has is left as it is (Meta delivers
    /// again for days). One for a number that is not registered, or that is not understood,
    /// is kept as dead. Returns how many were new. A storage failure is an error: nothing
    /// after the failing report was recorded, and the provider must deliver them again.
    pub async fn accept_reports(&self, envelopes: Vec<ProviderEnvelope>) -> Result<usize, ServiceError> {
        let now = Timestamp::now();
        let mut new = 0;
        let mut numbers: std::collections::HashMap<String, Option<i64>> = std::collections::HashMap::new();
        for env in envelopes {
            let number_id = match numbers.get(&env.waba_number) {
                Some(id) => *id,
                None => {
                    let id = self.store().find_number(&env.waba_number).await?.map(|n| n.id);
                    numbers.insert(env.waba_number.clone(), id);
                    id
                }
            };
            let Some(number_id) = number_id else {
                if self.receive_report(env).await? != Received::Duplicate {
                    new += 1;
                }
                continue;
            };
            let report = ReportRef {
                number_id,
                dedup_key: env.dedup_key,
                correlation: env.event.correlation().to_string(),
                held_seq: None,
            };
            if let ProviderEvent::Unrecognised { what, .. } = &env.event {
                self.store()
                    .give_up_report(&report, &env.event, &format!("not understood: {what}"), now)
                    .await?;
                continue;
            }
            if self
                .store()
                .hold_report(&report, &env.event, "received", now, now)
                .await?
            {
                new += 1;
            }
        }
        if new > 0 {
            self.inbox_changed();
        }
        Ok(new)
    }

    /// The applier's work: each group's first held report is tried if its time has come, and
    /// the next ones of its group as the ones before them apply. `woken` (something held
    /// reports wait for may have come: a request ID recorded, an operation recorded, a report
    /// held) also tries, at once and without counting it as an attempt, the [`WOKEN_TRIES`]
    /// groups held most recently. Returns when the next held report is due (`None`: none
    /// held).
    pub async fn apply_held_reports(&self, woken: bool) -> Result<Option<Timestamp>, ServiceError> {
        self.expire_operations().await?;
        let mut next_due: Option<Timestamp> = None;
        let mut early = woken;
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > ROUNDS_MAX {
                break;
            }
            let now = Timestamp::now();
            let (limit, newest_first) = if early {
                (WOKEN_TRIES, true)
            } else {
                (HELD_BATCH, false)
            };
            let heads = self.store().held_heads(limit, newest_first).await?;
            let full = heads.len() as i64 == limit;
            let mut progress = false;
            next_due = None;
            // Heads correlate by a request's ID (a creation's or a write's confirmation) or by
            // the group's WhatsApp ID, one head per correlation. One group can have a head of
            // each kind: the requests' go first, then the groups'; within each kind they are
            // applied side by side (a creation's confirmation is for a group of its own; two
            // confirmations of one group's writes, which WhatsApp sends in no set order, may
            // apply in either). A group's reports of one correlation stay in order, each
            // waiting for the one before it.
            let (requests, groups): (Vec<HeldReport>, Vec<HeldReport>) = heads
                .into_iter()
                // A report that names no WhatsApp group names its request.
                .partition(|h| h.event.as_ref().is_some_and(|e| e.wa_group_id().is_none()));
            let mut outcomes = Vec::with_capacity(requests.len() + groups.len());
            for kind in [requests, groups] {
                outcomes.extend(
                    futures_util::stream::iter(kind.into_iter().map(|h| self.attempt_head(h, now, early)))
                        .buffer_unordered(APPLY_PARALLEL)
                        .collect::<Vec<_>>()
                        .await,
                );
            }
            for o in outcomes {
                let (applied, due) = o?;
                progress |= applied;
                if let Some(at) = due {
                    next_due = Some(next_due.map_or(at, |t: Timestamp| t.min(at)));
                }
            }
            if early {
                // Early rounds go on while reports apply (the next of their group may now),
                // then the due ones are taken in their order.
                if !progress {
                    early = false;
                }
                continue;
            }
            if full {
                // More held than one read takes: go on at once.
                next_due = Some(now);
            }
            if !progress {
                break;
            }
        }
        Ok(next_due)
    }

    /// One group's first held report, tried: whether it was settled (applied or given up), and
    /// when it is due next if not.
    async fn attempt_head(
        &self,
        h: HeldReport,
        now: Timestamp,
        early: bool,
    ) -> Result<(bool, Option<Timestamp>), ServiceError> {
        let due = h.next_attempt_at <= now;
        if !due && !early {
            return Ok((false, Some(h.next_attempt_at)));
        }
        let Some(event) = &h.event else {
            self.give_up(&h, "its stored payload does not read as a report").await?;
            return Ok((true, None));
        };
        match self.try_apply(h.report.number_id, &h.report, event, now).await? {
            Attempt::Done(_) => Ok((true, None)),
            // Tried early: its own schedule stands.
            Attempt::NotYet(_) if !due => Ok((false, Some(h.next_attempt_at))),
            Attempt::NotYet(why) if now.millis() - h.received_at.millis() < HOLD_MAX_MS => {
                let at = now.plus_millis(hold_backoff_ms(h.attempts + 1));
                self.store().retry_report(&h.report, &why, at).await?;
                Ok((false, Some(at)))
            }
            Attempt::NotYet(why) | Attempt::Never(why) => {
                // Its group's later reports go on without it.
                self.give_up(&h, &why).await?;
                Ok((true, None))
            }
        }
    }

    /// Operations WhatsApp never confirmed within [`HOLD_MAX_MS`] end as failed
    /// (`no_confirmation`, a `GROUP_OPERATION_FAILED` event).
    async fn expire_operations(&self) -> Result<(), ServiceError> {
        let now = Timestamp::now();
        let stale = self
            .store()
            .stale_operations(now.plus_millis(-HOLD_MAX_MS), HELD_BATCH)
            .await?;
        for (number_id, request_id) in stale {
            let input = GroupInput::OperationFailed {
                code: "no_confirmation".into(),
                message: format!(
                    "WhatsApp did not confirm the write within {} hours",
                    HOLD_MAX_MS / 3_600_000
                ),
                at: now,
            };
            let m = self
                .store()
                .mutate_group(
                    GroupTarget::Operation {
                        number_id,
                        request_id,
                        fallback: None,
                    },
                    None,
                    now,
                    Box::new(move |state| group::apply(state, &input, now)),
                )
                .await;
            match m {
                Ok(Mutation::Applied(d)) if !d.events.is_empty() => self.deliveries_queued(),
                Ok(_) => {}
                Err(crate::store::MutateError::Store(e)) => return Err(e.into()),
                Err(crate::store::MutateError::Domain(e)) => {
                    tracing::warn!(error = %e, "expiring an unconfirmed operation failed");
                }
            }
        }
        Ok(())
    }

    async fn give_up(&self, h: &HeldReport, why: &str) -> Result<(), ServiceError> {
        tracing::error!(
            number = %h.waba_number, key = %h.report.dedup_key, attempts = h.attempts, reason = %why,
            "giving up a provider report that never became applicable: kept as dead"
        );
        Ok(self.store().mark_dead(&h.report, why).await?)
    }

    async fn try_apply(
        &self,
        number_id: i64,
        report: &ReportRef,
        event: &ProviderEvent,
        now: Timestamp,
    ) -> Result<Attempt, ServiceError> {
        let (target, input) = match translate(number_id, event.clone()) {
            Ok(t) => t,
            Err(e) => return Ok(Attempt::Never(format!("{}: {}", e.field, e.message))),
        };
        let fallback = input.clone();
        let mut m = self
            .store()
            .mutate_group(
                target,
                Some(report.clone()),
                now,
                Box::new(move |state| group::apply(state, &input, now)),
            )
            .await;
        // A creation's confirmation whose request the gateway never learned, for a group it
        // already has: reconciliation took the group over from the provider's listing (the
        // provider's answer was lost). Applied to that group it changes nothing, and the
        // report is settled.
        if let (
            Err(crate::store::MutateError::Domain(DomainError::NotFound { .. })),
            ProviderEvent::GroupCreated { wa_group_id, .. },
        ) = (&m, event)
        {
            m = self
                .store()
                .mutate_group(
                    GroupTarget::WaGroupId {
                        number_id,
                        wa_group_id: wa_group_id.clone(),
                    },
                    Some(report.clone()),
                    now,
                    Box::new(move |state| group::apply(state, &fallback, now)),
                )
                .await;
        }
        match m {
            Ok(Mutation::Applied(d)) => {
                if !d.events.is_empty() {
                    self.deliveries_queued();
                }
                if matches!(d.close_command, Some(group::CommandClose::Reopen { .. })) {
                    // Its participants are to be invited: the command runner takes it up.
                    self.commands_queued();
                }
                Ok(Attempt::Done(Received::Applied))
            }
            Ok(Mutation::Duplicate) => Ok(Attempt::Done(Received::Duplicate)),
            Ok(Mutation::Blocked) => Ok(Attempt::NotYet("an earlier report of its group is held".into())),
            Err(crate::store::MutateError::Domain(DomainError::NotFound { what })) => {
                Ok(Attempt::NotYet(format!("{what} is not known (yet)")))
            }
            Err(crate::store::MutateError::Domain(e)) => Ok(Attempt::Never(e.to_string())),
            Err(crate::store::MutateError::Store(e)) => Err(e.into()),
        }
    }
}

#[async_trait::async_trait]
impl ProviderEventSink for GroupService {
    async fn deliver(&self, envelope: ProviderEnvelope) -> Result<Received, ServiceError> {
        self.receive_report(envelope).await
    }
}

/// The group a provider report concerns and what it means for the group.
fn translate(number_id: i64, event: ProviderEvent) -> Result<(GroupTarget, GroupInput), ValidationError> {
    let by_request = |request_id: String| GroupTarget::Request { number_id, request_id };
    let by_wa = |wa_group_id: String| GroupTarget::WaGroupId { number_id, wa_group_id };
    let phone = |p: &str| Phone::parse("phone", p);
    Ok(match event {
        ProviderEvent::GroupCreated {
            request_id,
            wa_group_id,
            invite_link,
            at,
            participants,
        } => (
            by_request(request_id),
            GroupInput::Created {
                wa_group_id,
                invite_link,
                at,
                participants,
            },
        ),
        ProviderEvent::GroupCreateFailed {
            request_id,
            code,
            message,
            at,
        } => (by_request(request_id), GroupInput::CreateFailed { code, message, at }),
        ProviderEvent::ParticipantJoined {
            wa_group_id,
            phone: p,
            at,
            reason,
        } => (
            by_wa(wa_group_id),
            GroupInput::Joined {
                phone: phone(&p)?,
                reason: reason
                    .as_deref()
                    .and_then(JoinReason::parse)
                    .unwrap_or(JoinReason::InviteLink),
                at,
            },
        ),
        ProviderEvent::ParticipantLeft {
            wa_group_id,
            phone: p,
            at,
        } => (by_wa(wa_group_id), GroupInput::Left { phone: phone(&p)?, at }),
        ProviderEvent::ParticipantRemoved {
            wa_group_id,
            phone: p,
            at,
        } => (by_wa(wa_group_id), GroupInput::Removed { phone: phone(&p)?, at }),
        ProviderEvent::ParticipantInvited {
            wa_group_id,
            phone: p,
            invite_link,
            at,
        } => (
            by_wa(wa_group_id),
            GroupInput::Invited {
                phone: phone(&p)?,
                invite_link,
                at,
            },
        ),
        ProviderEvent::ParticipantPromoted {
            wa_group_id,
            phone: p,
            at,
        } => (
            by_wa(wa_group_id),
            GroupInput::RoleChanged {
                phone: phone(&p)?,
                promoted: true,
                at,
            },
        ),
        ProviderEvent::ParticipantDemoted {
            wa_group_id,
            phone: p,
            at,
        } => (
            by_wa(wa_group_id),
            GroupInput::RoleChanged {
                phone: phone(&p)?,
                promoted: false,
                at,
            },
        ),
        ProviderEvent::JoinRequestCreated {
            wa_group_id,
            join_request_id,
            phone: p,
            at,
        } => (
            by_wa(wa_group_id),
            GroupInput::JoinRequested {
                phone: phone(&p)?,
                join_request_id,
                at,
            },
        ),
        ProviderEvent::JoinRequestRevoked {
            wa_group_id,
            join_request_id,
            phone: p,
            at,
        } => (
            by_wa(wa_group_id),
            GroupInput::JoinRequestClosed {
                phone: phone(&p)?,
                join_request_id,
                state: JoinRequestState::Revoked,
                at,
            },
        ),
        ProviderEvent::JoinRequestRejected {
            wa_group_id,
            join_request_id,
            phone: p,
            at,
        } => (
            by_wa(wa_group_id),
            GroupInput::JoinRequestClosed {
                phone: phone(&p)?,
                join_request_id,
                state: JoinRequestState::Rejected,
                at,
            },
        ),
        ProviderEvent::SettingsUpdated {
            wa_group_id,
            change,
            at,
        } => (by_wa(wa_group_id), GroupInput::SettingsUpdated { change, at }),
        ProviderEvent::InviteLinkReset {
            wa_group_id,
            invite_link,
            at,
        } => (by_wa(wa_group_id), GroupInput::InviteLinkReset { invite_link, at }),
        ProviderEvent::GroupDeleted { wa_group_id, at } => (by_wa(wa_group_id), GroupInput::Deleted { at }),
        ProviderEvent::OperationSucceeded {
            request_id,
            results,
            at,
            fallback,
        } => (
            GroupTarget::Operation {
                number_id,
                request_id,
                fallback,
            },
            GroupInput::OperationSucceeded { results, at },
        ),
        ProviderEvent::OperationFailed {
            request_id,
            code,
            message,
            at,
            fallback,
        } => (
            GroupTarget::Operation {
                number_id,
                request_id,
                fallback,
            },
            GroupInput::OperationFailed { code, message, at },
        ),
        ProviderEvent::GroupSuspended { wa_group_id, at } => {
            (by_wa(wa_group_id), GroupInput::Suspension { suspended: true, at })
        }
        ProviderEvent::GroupSuspensionCleared { wa_group_id, at } => {
            (by_wa(wa_group_id), GroupInput::Suspension { suspended: false, at })
        }
        ProviderEvent::Unrecognised { what, .. } => {
            return Err(ValidationError::new("report", format!("not understood: {what}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_reports_back_off_from_50_ms_to_5_minutes() {
        assert_eq!(hold_backoff_ms(0), 50);
        assert_eq!(hold_backoff_ms(1), 100);
        assert_eq!(hold_backoff_ms(10), 51_200);
        assert_eq!(hold_backoff_ms(13), 300_000);
        assert_eq!(hold_backoff_ms(1000), 300_000);
        assert_eq!(hold_backoff_ms(-3), 50);
    }

    #[test]
    fn reports_name_what_they_queue_behind() {
        let at = Timestamp(1);
        let created = ProviderEvent::GroupCreated {
            request_id: "req-1".into(),
            wa_group_id: "1@g.us".into(),
            invite_link: "l".into(),
            at,
            participants: vec![],
        };
        let joined = ProviderEvent::ParticipantJoined {
            wa_group_id: "1@g.us".into(),
            phone: "919000000001".into(),
            at,
            reason: None,
        };
        let failed = ProviderEvent::OperationFailed {
            request_id: "op-9".into(),
            code: "x".into(),
            message: "y".into(),
            at,
            fallback: None,
        };
        assert_ne!(
            created.correlation(),
            joined.correlation(),
            "a creation's confirmation does not queue behind the group's reports (they may come first)"
        );
        assert_eq!(created.correlation(), "req-1");
        assert_eq!(joined.correlation(), "1@g.us");
        assert_eq!(failed.correlation(), "op-9");
    }

    #[test]
    fn reports_translate_to_their_group_and_rule() {
        let (target, input) = translate(
            7,
            ProviderEvent::ParticipantJoined {
                wa_group_id: "1@g.us".into(),
                phone: "+91 90000 00001".into(),
                at: Timestamp(1),
                reason: Some("join_request_approved".into()),
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(target, GroupTarget::WaGroupId { number_id: 7, .. }));
        assert!(matches!(
            input,
            GroupInput::Joined {
                reason: JoinReason::JoinRequestApproved,
                ..
            }
        ));
        let bad = translate(
            7,
            ProviderEvent::ParticipantLeft {
                wa_group_id: "1@g.us".into(),
                phone: "not a phone".into(),
                at: Timestamp(1),
            },
        );
        assert!(bad.is_err(), "a report naming no phone cannot be applied");
    }
}
