//! Reconciliation: when a provider's reports can be lost (Meta offers no way to fetch past
//! webhooks), its own listing of a number's groups is the truth, and the record is brought in
//! line with it by the events that would have been reported: a member who joined or left, a
//! changed subject or description, a suspension, a group that is gone. Joins found this way
//! say `reason: "reconciled"`.

use std::collections::BTreeSet;

use crate::{
    group::{self, GroupInput},
    model::{GroupStatus, JoinReason, Number},
    phone::Phone,
    provider::{ProviderError, RemoteGroup, SettingsChange},
    service::{GroupService, ServiceError},
    store::{GroupFilter, GroupTarget, Mutation},
    time::Timestamp,
};

/// What one reconciliation of a number did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// The number's active groups compared with the provider's listing.
    pub groups: usize,
    /// Changes applied to bring the record in line.
    pub changes: usize,
    /// Groups the provider lists that wagroups did not create (made elsewhere, or before the
    /// number was added): their held reports are kept as dead at once, not retried for a day.
    pub foreign: usize,
}

/// Groups read per page of the record.
const PAGE: i64 = 200;

impl GroupService {
    /// Reconciles every enabled number whose provider keeps a listing (or only `only`), one
    /// after the other; a paused number waits for its pause to end. Each number's outcome.
    pub async fn reconcile_numbers(
        &self,
        only: Option<&str>,
    ) -> Result<Vec<(String, Result<Option<Reconciled>, ServiceError>)>, ServiceError> {
        let now = Timestamp::now();
        let mut out = Vec::new();
        for n in self.store().list_numbers(None).await? {
            if n.disabled || only.is_some_and(|o| o != n.waba_number) {
                continue;
            }
            // A number whose provider this process does not run is not for it (the CLI runs
            // only the providers that keep listings), unless it was asked for by name.
            if only.is_none() && self.provider_for(&n).is_err() {
                continue;
            }
            if let Some((_, why)) = crate::service::paused(&n, now) {
                out.push((
                    n.waba_number.clone(),
                    Err(crate::DomainError::Unavailable { message: why }.into()),
                ));
                continue;
            }
            let r = self.reconcile_number(&n).await;
            if !matches!(r, Ok(None)) {
                out.push((n.waba_number.clone(), r));
            }
        }
        Ok(out)
    }

    /// Compares the number's active groups with what its provider lists and applies the
    /// differences. `None` when the provider keeps no listing to compare with (the simulated
    /// network reports everything).
    pub async fn reconcile_number(&self, number: &Number) -> Result<Option<Reconciled>, ServiceError> {
        let provider = self.provider_for(number)?;
        // What the listing shows was so at this time, or later: the time its changes are
        // dated, so that a report of something that happened after it is not taken for older.
        let observed = Timestamp::now();
        let remote = match provider.groups(number).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(ProviderError::Paused { health, message }) => {
                self.store().set_number_health(number.id, &health).await?;
                return Err(crate::DomainError::Unavailable { message }.into());
            }
            Err(e) => {
                return Err(crate::DomainError::Unavailable {
                    message: format!("the provider's listing could not be read: {e}"),
                }
                .into());
            }
        };
        let mut done = Reconciled::default();
        done.changes += self.settle_in_doubt(number, &remote, provider.as_ref()).await?;
        // A group whose creation wagroups has not seen confirmed yet is listed too: one with
        // the subject of a pending creation may be it, and is not called foreign.
        let pending: BTreeSet<String> = self
            .store()
            .list_groups(
                &number.org_id,
                &GroupFilter {
                    number_id: Some(number.id),
                    number_ids: None,
                    status: Some(GroupStatus::Pending),
                    newer_than: None,
                },
                None,
                PAGE,
            )
            .await?
            .into_iter()
            .map(|g| g.subject)
            .collect();
        for r in remote.iter().filter(|r| !pending.contains(&r.subject)) {
            if self
                .store()
                .find_group_by_wa_id(number.id, &r.wa_group_id)
                .await?
                .is_none()
            {
                done.foreign += 1;
                let dead = self
                    .store()
                    .mark_dead_held(
                        number.id,
                        &r.wa_group_id,
                        "foreign: a group wagroups did not create (the provider lists it, the record has no such group)",
                    )
                    .await?;
                tracing::warn!(number = %number.waba_number, group = %r.wa_group_id, subject = %r.subject, reports = dead, "a group wagroups did not create: its reports are not applied");
            }
        }
        let filter = GroupFilter {
            number_id: Some(number.id),
            number_ids: None,
            status: Some(GroupStatus::Active),
            newer_than: None,
        };
        let mut before = None;
        loop {
            let page = self.store().list_groups(&number.org_id, &filter, before, PAGE).await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for g in &page {
                let Some(wa) = g.wa_group_id.clone() else { continue };
                done.groups += 1;
                let inputs = match remote.iter().find(|r| r.wa_group_id == wa) {
                    None => vec![GroupInput::Deleted { at: Timestamp::now() }],
                    Some(r) => {
                        let (_, participants) = self
                            .store()
                            .get_group(&number.org_id, &g.group_id)
                            .await?
                            .unwrap_or_else(|| (g.clone(), Vec::new()));
                        differences(g, &participants, r, observed)
                    }
                };
                for input in inputs {
                    let now = Timestamp::now();
                    let m = self
                        .store()
                        .mutate_group(
                            GroupTarget::WaGroupId {
                                number_id: number.id,
                                wa_group_id: wa.clone(),
                            },
                            None,
                            now,
                            Box::new(move |state| group::apply(state, &input, now).map(reconciled)),
                        )
                        .await;
                    match m {
                        Ok(Mutation::Applied(d)) if !d.events.is_empty() => {
                            done.changes += 1;
                            self.deliveries_queued();
                        }
                        Ok(_) => {}
                        Err(crate::store::MutateError::Store(e)) => return Err(e.into()),
                        Err(crate::store::MutateError::Domain(e)) => {
                            tracing::warn!(group = %g.group_id, error = %e, "a reconciled change was refused");
                        }
                    }
                }
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        if done.changes > 0 {
            tracing::info!(number = %number.waba_number, groups = done.groups, changes = done.changes, "reconciled with the provider's listing");
        }
        Ok(Some(done))
    }
}

/// How long a command in doubt waits to show in the provider's listing before it is sent
/// again (a creation the provider never received).
pub const IN_DOUBT_RESEND_MS: i64 = 120_000;

impl GroupService {
    /// Creations whose answer was lost (a crash or a timeout after sending): a listed group no
    /// record has, with the subject asked for, is that creation's (oldest command first); one
    /// not listed after [`IN_DOUBT_RESEND_MS`] never reached WhatsApp and is sent again.
    async fn settle_in_doubt(
        &self,
        number: &Number,
        remote: &[RemoteGroup],
        provider: &dyn crate::provider::Provider,
    ) -> Result<usize, ServiceError> {
        let now = Timestamp::now();
        let mut settled = 0;
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for cmd in self.store().in_doubt_commands(number.id, now.plus_millis(1)).await? {
            let crate::command::CommandPayload::CreateGroup { subject, .. } = &cmd.payload;
            let mut found = None;
            for r in remote {
                if r.subject == *subject
                    && !taken.contains(&r.wa_group_id)
                    && self
                        .store()
                        .find_group_by_wa_id(number.id, &r.wa_group_id)
                        .await?
                        .is_none()
                {
                    found = Some(r);
                    break;
                }
            }
            let Some(r) = found else { continue };
            taken.insert(r.wa_group_id.clone());
            let link = match provider.invite_link(number, &r.wa_group_id).await {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(command = %cmd.command_id, error = %e, "the invite link of a group in doubt could not be read; next time");
                    continue;
                }
            };
            let input = GroupInput::Created {
                wa_group_id: r.wa_group_id.clone(),
                invite_link: link,
                at: now,
                participants: Vec::new(),
            };
            let m = self
                .store()
                .mutate_group(
                    GroupTarget::Request {
                        number_id: number.id,
                        request_id: cmd.command_id.to_string(),
                    },
                    None,
                    now,
                    Box::new(move |state| group::apply(state, &input, now)),
                )
                .await;
            match m {
                Ok(Mutation::Applied(d)) => {
                    settled += 1;
                    if !d.events.is_empty() {
                        self.deliveries_queued();
                    }
                    tracing::info!(command = %cmd.command_id, group = %r.wa_group_id, "a creation in doubt was found in the provider's listing");
                }
                Ok(_) => {}
                Err(crate::store::MutateError::Store(e)) => return Err(e.into()),
                Err(crate::store::MutateError::Domain(e)) => {
                    tracing::warn!(command = %cmd.command_id, error = %e, "a creation in doubt could not be taken over");
                }
            }
        }
        for cmd in self
            .store()
            .in_doubt_commands(number.id, now.plus_millis(-IN_DOUBT_RESEND_MS))
            .await?
        {
            tracing::warn!(command = %cmd.command_id, "a creation in doubt is not in the provider's listing: sending it again");
            self.store().command_resend(cmd.id, now).await?;
            self.commands_ready();
        }
        Ok(settled)
    }
}

/// The changes that bring a group's record in line with what the provider lists.
fn differences(
    g: &crate::model::Group,
    participants: &[crate::model::Participant],
    r: &RemoteGroup,
    at: Timestamp,
) -> Vec<GroupInput> {
    let mut out = Vec::new();
    let mut change = SettingsChange::default();
    if r.subject != g.subject && !r.subject.is_empty() {
        change.subject = Some(r.subject.clone());
    }
    if r.description != g.description {
        change.description = Some(r.description.clone());
    }
    if !change.is_empty() {
        out.push(GroupInput::SettingsUpdated { change, at });
    }
    if r.suspended != g.suspended {
        out.push(GroupInput::Suspension {
            suspended: r.suspended,
            at,
        });
    }
    let local: BTreeSet<&str> = participants
        .iter()
        .filter(|p| p.state == crate::model::ParticipantState::Member && !p.is_business)
        .map(|p| p.phone.as_str())
        .collect();
    let remote: BTreeSet<String> = r
        .members
        .iter()
        .filter_map(|m| Phone::parse("wa_id", m).ok())
        .map(|p| p.as_str().to_string())
        .filter(|p| *p != g.waba_number)
        .collect();
    for joined in remote.iter().filter(|p| !local.contains(p.as_str())) {
        out.push(GroupInput::Joined {
            phone: Phone::from_digits(joined),
            reason: JoinReason::Reconciled,
            at,
        });
    }
    for left in local.iter().filter(|p| !remote.contains(**p)) {
        out.push(GroupInput::Left {
            phone: Phone::from_digits(*left),
            at,
        });
    }
    out
}

/// A decision reconciliation made: its events say so.
fn reconciled(mut d: group::Decision) -> group::Decision {
    for e in &mut d.events {
        e.reconciled = true;
    }
    d
}
