//! The simulated WhatsApp network. It keeps its own state (groups, members, join requests)
//! in the database, answers commands the way the number's profile does (Meta's Cloud API:
//! accepted now, confirmed later by a report), and lets a sandbox act as WhatsApp users.
//! Reports to the gateway go through a durable outbox, so none is lost in a crash.

pub mod rules;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::{Mutex, Notify, watch};
use tokio_util::sync::CancellationToken;
use wagroups_core::{
    command::{Command, CommandPayload},
    ids::{self, OrgId},
    model::{JoinApprovalMode, Number, ParticipantRole, ParticipantState, Profile},
    provider::{
        Operated, Provider, ProviderEnvelope, ProviderError, ProviderEvent, ProviderEventSink, ProviderOp, Submitted,
    },
    service::ServiceError,
    store::{
        StoreError,
        sim::{
            OutboxItem, SimChange, SimGroup, SimGroupState, SimMember, SimRefusal, SimStore, SimTarget, SimUser,
            SimUsers,
        },
    },
    time::Timestamp,
};

pub const INVITE_PREFIX: &str = "https://chat.whatsapp.com/";

/// The invite link of an invite code.
pub fn invite_link(code: &str) -> String {
    format!("{INVITE_PREFIX}{code}")
}

/// The code of an invite link given as `https://chat.whatsapp.com/CODE` or as the bare code.
pub fn invite_code(link: &str) -> Option<&str> {
    let link = link.trim();
    let code = link
        .strip_prefix(INVITE_PREFIX)
        .or_else(|| link.strip_prefix("http://chat.whatsapp.com/"))
        .or_else(|| link.strip_prefix("chat.whatsapp.com/"))
        .unwrap_or(link);
    let ok = !code.is_empty() && code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric());
    ok.then_some(code)
}

/// Outcome of a sandbox action.
#[derive(Debug)]
pub enum SandboxError {
    NotFound(String),
    Refused(SimRefusal),
    Store(StoreError),
}

impl From<StoreError> for SandboxError {
    fn from(e: StoreError) -> Self {
        SandboxError::Store(e)
    }
}

pub struct SimNetwork {
    store: Arc<dyn SimStore>,
    outbox_ready: Notify,
    /// Rounds of the report pump, one at a time.
    pump: Mutex<Pump>,
    /// Progress of the rounds, for callers waiting until their reports are applied.
    rounds: watch::Sender<Rounds>,
    /// Whether [`SimNetwork::run_pump`] runs (otherwise callers run rounds themselves).
    pumping: AtomicBool,
}

/// Reports read from the outbox per round.
const ROUND_BATCH: i64 = 512;
/// How long a caller waits for its reports to be applied before answering anyway.
const FLUSH_MAX: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, Default)]
struct Rounds {
    started: u64,
    finished: u64,
}

/// The report pump's memory between rounds.
#[derive(Default)]
struct Pump {
    /// The newest report handed to the gateway: later rounds read after it.
    cursor: i64,
    /// Handed-over reports whose outbox rows are still to be removed.
    applied: Vec<i64>,
}

/// What a round left to do.
struct RoundEnd {
    /// The outbox had more reports than a round reads.
    more: bool,
}

impl SimNetwork {
    pub fn new(store: Arc<dyn SimStore>) -> Self {
        SimNetwork {
            store,
            outbox_ready: Notify::new(),
            pump: Mutex::new(Pump::default()),
            rounds: watch::Sender::new(Rounds::default()),
            pumping: AtomicBool::new(false),
        }
    }

    /// The group behind an invite link, if the link is current.
    pub async fn group_by_invite(&self, code: &str) -> Result<Option<SimGroup>, StoreError> {
        self.store.sim_find_group(SimTarget::InviteCode(code.to_string())).await
    }

    async fn act(
        &self,
        target: SimTarget,
        what: &str,
        rule: impl Fn(&SimGroupState) -> Result<SimChange, SimRefusal> + Send + 'static,
    ) -> Result<SimChange, SandboxError> {
        let change = match self
            .store
            .sim_mutate(target, SimUsers::default(), Box::new(rule))
            .await?
        {
            None => return Err(SandboxError::NotFound(what.to_string())),
            Some(Err(refusal)) => return Err(SandboxError::Refused(refusal)),
            Some(Ok(change)) => change,
        };
        self.outbox_ready.notify_one();
        Ok(change)
    }

    /// A user taps an invite link.
    pub async fn join_via_link(&self, phone: &str, code: &str) -> Result<SimChange, SandboxError> {
        let phone = phone.to_string();
        self.act(SimTarget::InviteCode(code.to_string()), "invite link", move |s| {
            rules::join_via_link(s, &phone, Timestamp::now())
        })
        .await
    }

    /// A user leaves a group.
    pub async fn leave(&self, phone: &str, jid: &str) -> Result<SimChange, SandboxError> {
        let phone = phone.to_string();
        self.act(SimTarget::Jid(jid.to_string()), "group", move |s| {
            rules::leave(s, &phone, Timestamp::now())
        })
        .await
    }

    /// A user withdraws their pending join request.
    pub async fn cancel_request(&self, phone: &str, jid: &str) -> Result<SimChange, SandboxError> {
        let phone = phone.to_string();
        self.act(SimTarget::Jid(jid.to_string()), "group", move |s| {
            rules::cancel_request(s, &phone, Timestamp::now())
        })
        .await
    }

    /// WhatsApp suspends a group (or lifts the suspension).
    pub async fn suspend(&self, jid: &str, suspended: bool) -> Result<SimChange, SandboxError> {
        self.act(SimTarget::Jid(jid.to_string()), "group", move |s| {
            rules::suspend(s, suspended, Timestamp::now())
        })
        .await
    }

    /// WhatsApp refuses the group's next write (on the cloud profile: after accepting it).
    pub async fn refuse_next_write(&self, jid: &str, code: &str, message: &str) -> Result<(), StoreError> {
        self.store
            .sim_refuse_next_write(
                jid,
                Some(SimRefusal {
                    code: code.to_string(),
                    message: message.to_string(),
                }),
            )
            .await
    }

    /// Configures a simulated user, as organisation `org_id` sees it.
    pub async fn put_user(&self, org_id: &OrgId, user: SimUser) -> Result<(), StoreError> {
        self.store.sim_put_user(org_id, user).await
    }

    /// A simulated user as organisation `org_id` configured it.
    pub async fn user(&self, org_id: &OrgId, phone: &str) -> Result<SimUser, StoreError> {
        self.store.sim_user(org_id, phone).await
    }

    /// One round of the report pump: reads the reports queued since the last round and hands
    /// them to the gateway's inbox (`sink`), the reports of one group in order, different
    /// groups concurrently (so their transactions share commits). The gateway applies each
    /// or holds it durably; the pump keeps nothing back.
    async fn round(&self, pump: &mut Pump, sink: &dyn ProviderEventSink) -> Result<RoundEnd, StoreError> {
        self.rounds.send_modify(|r| r.started += 1);
        let result = self.apply_round(pump, sink).await;
        // Only a round that read the outbox to its end lets waiters go: their reports were in
        // it (a round starts after their write).
        if matches!(result, Ok(RoundEnd { more: false })) {
            self.rounds.send_modify(|r| r.finished = r.started);
        }
        // Handed-over reports are removed after the callers waiting for them were let go: a
        // crash before the removal only makes the gateway see them again, as duplicates.
        if !pump.applied.is_empty() {
            self.store.sim_outbox_done(pump.applied.clone()).await?;
            pump.applied.clear();
        }
        result
    }

    /// Reads and hands over; the cursor moves only once the whole batch was handed over, so
    /// a round cut short (a storage failure, its caller gone) is simply made again (the
    /// reports it handed over are duplicates then).
    async fn apply_round(&self, pump: &mut Pump, sink: &dyn ProviderEventSink) -> Result<RoundEnd, StoreError> {
        let batch = self.store.sim_outbox(pump.cursor, ROUND_BATCH).await?;
        let more = batch.len() as i64 == ROUND_BATCH;
        let cursor = batch.iter().map(|i| i.id).max().unwrap_or(pump.cursor).max(pump.cursor);
        let mut groups: Vec<(String, Vec<OutboxItem>)> = Vec::new();
        for item in batch {
            // A group's reports go one after another, its creation first (it is handed over
            // before what follows it, which cannot apply without it).
            let key = match &item.report {
                ProviderEvent::GroupCreated { wa_group_id, .. } => wa_group_id.clone(),
                other => other.correlation().to_string(),
            };
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, q)) => q.push(item),
                None => groups.push((key, vec![item])),
            }
        }
        let outcomes = futures_util::future::join_all(groups.into_iter().map(|(_, queue)| async move {
            let mut applied = Vec::new();
            for item in queue {
                let env = ProviderEnvelope {
                    waba_number: item.waba_number.clone(),
                    dedup_key: item.dedup_key.clone(),
                    event: item.report.clone(),
                };
                match sink.deliver(env).await {
                    Ok(_) => {}
                    Err(ServiceError::Store(e)) => return (applied, Some(e)),
                    Err(e) => {
                        tracing::warn!(report = ?item.report, error = %e, "the gateway refused a simulated report")
                    }
                }
                applied.push(item.id);
            }
            (applied, None)
        }))
        .await;
        let mut failure = None;
        for (applied, failed) in outcomes {
            pump.applied.extend(applied);
            failure = failure.or(failed);
        }
        match failure {
            Some(e) => Err(e),
            None => {
                pump.cursor = cursor;
                Ok(RoundEnd { more })
            }
        }
    }

    /// Rounds until the outbox is read to its end.
    async fn rounds_to_end(&self, pump: &mut Pump, sink: &dyn ProviderEventSink) -> Result<(), StoreError> {
        while self.round(pump, sink).await?.more {}
        Ok(())
    }

    /// Delivers reports until `shutdown`: woken when a report is queued, polling as a fallback.
    pub async fn run_pump(self: Arc<Self>, sink: Arc<dyn ProviderEventSink>, shutdown: CancellationToken) {
        self.pumping.store(true, Ordering::SeqCst);
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.outbox_ready.notified() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            let mut pump = self.pump.lock().await;
            delay = match self.rounds_to_end(&mut pump, sink.as_ref()).await {
                Ok(()) => Duration::from_millis(500),
                Err(e) => {
                    tracing::warn!(error = %e, "simulated network: delivering reports failed; retrying");
                    Duration::from_millis(200)
                }
            };
        }
        self.pumping.store(false, Ordering::SeqCst);
    }

    /// Waits until the reports queued before the call were handed to the gateway (or
    /// [`FLUSH_MAX`] passed): by the pump when it runs, otherwise by rounds run here.
    async fn wait_applied(&self, sink: &dyn ProviderEventSink) {
        if !self.pumping.load(Ordering::SeqCst) {
            let mut pump = self.pump.lock().await;
            if let Err(e) = self.rounds_to_end(&mut pump, sink).await {
                tracing::warn!(error = %e, "delivering simulated reports failed");
            }
            return;
        }
        // A round that starts after now reads what was queued before.
        let deadline = tokio::time::Instant::now() + FLUSH_MAX;
        let mut rounds = self.rounds.subscribe();
        let target = rounds.borrow().started + 1;
        self.outbox_ready.notify_one();
        let _ = tokio::time::timeout_at(deadline, rounds.wait_for(|r| r.finished >= target)).await;
    }
}

#[async_trait]
impl Provider for SimNetwork {
    async fn submit(&self, number: &Number, command: &Command) -> Result<Submitted, ProviderError> {
        match &command.payload {
            CommandPayload::CreateGroup {
                subject,
                description,
                join_approval_mode,
                participants,
                invite_fallback,
            } => {
                let now = Timestamp::now();
                let jid = format!("120363{}@g.us", ids::random_digits(12));
                let code = ids::random_alnum(22);
                // The simulated network echoes the command ID as its request ID.
                let request_id = command.command_id.to_string();
                let group = SimGroup {
                    jid: jid.clone(),
                    waba_number: number.waba_number.clone(),
                    profile: number.profile,
                    create_key: request_id.clone(),
                    subject: subject.clone(),
                    description: description.clone(),
                    approval_required: *join_approval_mode == JoinApprovalMode::ApprovalRequired,
                    invite_code: code.clone(),
                    created_at: now,
                    announcement_only: false,
                    locked: false,
                    deleted: false,
                    suspended: false,
                };
                let business = SimMember {
                    phone: number.waba_number.clone(),
                    role: ParticipantRole::Superadmin,
                    state: ParticipantState::Member,
                };
                let retry = |e: StoreError| ProviderError::Retryable(e.to_string());
                let mut users = Vec::with_capacity(participants.len());
                for p in participants {
                    users.push(self.store.sim_user(&number.org_id, p).await.map_err(retry)?);
                }
                let state = SimGroupState {
                    group: group.clone(),
                    members: vec![business.clone()],
                    join_requests: Vec::new(),
                    users,
                    next_write_refusal: None,
                };
                let populated = rules::populate(&state, participants, *invite_fallback, now);
                let mut reports = vec![ProviderEvent::GroupCreated {
                    request_id: request_id.clone(),
                    wa_group_id: jid,
                    invite_link: invite_link(&code),
                    at: now,
                    participants: populated.results,
                }];
                reports.extend(populated.reports);
                let mut members = vec![business];
                members.extend(populated.members);
                self.store
                    .sim_create_group(group, members, reports)
                    .await
                    .map_err(retry)?;
                self.outbox_ready.notify_one();
                Ok(Submitted { request_id })
            }
        }
    }

    /// On the linked-device profile the outcome is known at once; on the cloud profile, as on
    /// Meta's Cloud API, the write is accepted under its operation ID and confirmed by a
    /// report queued with its effects (or refused, when the sandbox asked for it).
    async fn operate(
        &self,
        number: &Number,
        wa_group_id: &str,
        op: &ProviderOp,
        operation_id: &str,
    ) -> Result<Operated, ProviderError> {
        let users = SimUsers {
            scope: number.org_id.to_string(),
            phones: match op {
                ProviderOp::AddParticipants { phones } | ProviderOp::Invite { phones } => phones.clone(),
                _ => Vec::new(),
            },
        };
        let op = op.clone();
        let asynchronous = number.profile == Profile::Cloud;
        let request_id = operation_id.to_string();
        let outcome = self
            .store
            .sim_mutate(
                SimTarget::Jid(wa_group_id.to_string()),
                users,
                Box::new(move |s| {
                    let now = Timestamp::now();
                    if let Some(r) = &s.next_write_refusal {
                        if !asynchronous {
                            return Err(r.clone());
                        }
                        return Ok(SimChange {
                            reports: vec![ProviderEvent::OperationFailed {
                                request_id: request_id.clone(),
                                code: r.code.clone(),
                                message: r.message.clone(),
                                at: now,
                                fallback: None,
                            }],
                            refusal_used: true,
                            ..SimChange::default()
                        });
                    }
                    let mut change = rules::operate(s, &op, now)?;
                    if asynchronous {
                        change.reports.push(ProviderEvent::OperationSucceeded {
                            request_id: request_id.clone(),
                            results: change.results.clone(),
                            at: now,
                            fallback: None,
                        });
                    }
                    Ok(change)
                }),
            )
            .await
            .map_err(|e| ProviderError::Retryable(e.to_string()))?;
        match outcome {
            None => Err(ProviderError::Rejected {
                code: "group_unknown".into(),
                message: format!("WhatsApp does not know group {wa_group_id}"),
            }),
            Some(Err(r)) => Err(ProviderError::Rejected {
                code: r.code,
                message: r.message,
            }),
            Some(Ok(change)) => {
                self.outbox_ready.notify_one();
                Ok(if asynchronous {
                    Operated::Accepted {
                        request_id: operation_id.to_string(),
                    }
                } else {
                    Operated::Done(change.results)
                })
            }
        }
    }

    /// Applies the reports queued so far    /// Applies the reports queued so far, so the caller reads the gateway's record after them.
    async fn flush(&self, sink: &dyn ProviderEventSink) {
        self.wait_applied(sink).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_codes() {
        assert_eq!(invite_code("https://chat.whatsapp.com/AbC123"), Some("AbC123"));
        assert_eq!(invite_code("AbC123"), Some("AbC123"));
        assert_eq!(invite_code("https://chat.whatsapp.com/"), None);
        assert_eq!(invite_code("https://evil.example/x y"), None);
    }
}
