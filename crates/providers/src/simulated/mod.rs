//! The simulated WhatsApp network. It keeps its own state (groups, members, join requests)
//! in the database, answers commands the way the number's profile does (Meta's Cloud API:
//! accepted now, confirmed later by a report), and lets a sandbox act as WhatsApp users.
//! Reports to the gateway go through a durable outbox, so none is lost in a crash.

pub mod rules;

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use wagroups_core::{
    DomainError,
    command::{Command, CommandPayload, JoinApprovalModeWire},
    ids,
    model::Number,
    provider::{
        ItemResult, Provider, ProviderEnvelope, ProviderError, ProviderEvent, ProviderEventSink, ProviderOp, Submitted,
    },
    service::ServiceError,
    store::{
        StoreError,
        sim::{OutboxItem, SimChange, SimGroup, SimGroupState, SimMember, SimRefusal, SimStore, SimTarget, SimUser},
    },
    time::Timestamp,
};

/// What became of one report in a drain.
enum Step {
    Applied(i64),
    Wait(i64, String),
    Failed(StoreError),
}

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
    /// Serialises draining so reports reach the gateway in order.
    drain_lock: Mutex<HashMap<i64, u32>>,
}

/// A report the gateway could not apply is retried this many times before it is dropped
/// (and logged): the gateway may not yet know the request it confirms.
const REPORT_MAX_ATTEMPTS: u32 = 50;

impl SimNetwork {
    pub fn new(store: Arc<dyn SimStore>) -> Self {
        SimNetwork {
            store,
            outbox_ready: Notify::new(),
            drain_lock: Mutex::new(HashMap::new()),
        }
    }

    /// The group behind an invite link, if the link is current.
    pub async fn group_by_invite(&self, code: &str) -> Result<Option<SimGroupState>, StoreError> {
        self.store.sim_group(SimTarget::InviteCode(code.to_string())).await
    }

    async fn act(
        &self,
        target: SimTarget,
        what: &str,
        rule: impl FnOnce(&SimGroupState) -> Result<SimChange, SimRefusal> + Send + 'static,
    ) -> Result<SimChange, SandboxError> {
        let change = match self.store.sim_mutate(target, Vec::new(), Box::new(rule)).await? {
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

    /// Configures a simulated user.
    pub async fn put_user(&self, user: SimUser) -> Result<(), StoreError> {
        self.store.sim_put_user(user).await
    }

    pub async fn user(&self, phone: &str) -> Result<SimUser, StoreError> {
        self.store.sim_user(phone).await
    }

    /// Hands every queued report to `sink`: the reports of one group in order, different
    /// groups concurrently (so their transactions share commits). Returns when the outbox is
    /// empty, or `false` when a report must wait (the gateway could not apply it yet).
    pub async fn drain(&self, sink: &dyn ProviderEventSink) -> Result<bool, StoreError> {
        let mut attempts = self.drain_lock.lock().await;
        loop {
            let batch = self.store.sim_outbox(512).await?;
            if batch.is_empty() {
                return Ok(true);
            }
            // Partition by group, keeping each group's reports in order.
            let mut groups: Vec<(String, Vec<OutboxItem>)> = Vec::new();
            for item in batch {
                let key = match &item.report {
                    ProviderEvent::GroupCreated { wa_group_id, .. } => wa_group_id.clone(),
                    ProviderEvent::GroupCreateFailed { request_id, .. } => request_id.clone(),
                    other => other.wa_group_id().unwrap_or_default().to_string(),
                };
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, items)) => items.push(item),
                    None => groups.push((key, vec![item])),
                }
            }
            let outcomes = futures_util::future::join_all(groups.into_iter().map(|(_, items)| async move {
                let mut done = Vec::new();
                for item in items {
                    let env = ProviderEnvelope {
                        waba_number: item.waba_number.clone(),
                        dedup_key: format!("sim:{}", item.id),
                        event: item.report.clone(),
                    };
                    match sink.deliver(env).await {
                        Ok(()) => done.push(Step::Applied(item.id)),
                        Err(ServiceError::Domain(DomainError::NotFound { what })) => {
                            done.push(Step::Wait(item.id, what));
                            break;
                        }
                        Err(ServiceError::Store(e)) => {
                            done.push(Step::Failed(e));
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(report = ?item.report, error = %e, "simulated report not applicable; dropped");
                            done.push(Step::Applied(item.id));
                        }
                    }
                }
                done
            }))
            .await;
            let mut finished = Vec::new();
            let mut waiting = false;
            let mut failure = None;
            for step in outcomes.into_iter().flatten() {
                match step {
                    Step::Applied(id) => {
                        attempts.remove(&id);
                        finished.push(id);
                    }
                    Step::Wait(id, what) => {
                        let n = attempts.entry(id).or_insert(0);
                        *n += 1;
                        if *n >= REPORT_MAX_ATTEMPTS {
                            tracing::error!(%what, "dropping a simulated report: its group is unknown");
                            attempts.remove(&id);
                            finished.push(id);
                        } else {
                            waiting = true;
                        }
                    }
                    Step::Failed(e) => failure = Some(e),
                }
            }
            self.store.sim_outbox_done(finished).await?;
            if let Some(e) = failure {
                return Err(e);
            }
            if waiting {
                return Ok(false);
            }
        }
    }

    /// Delivers reports until `shutdown`: woken when a report is queued, polling as a fallback.
    pub async fn run_pump(self: Arc<Self>, sink: Arc<dyn ProviderEventSink>, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(500);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.outbox_ready.notified() => {}
                _ = tokio::time::sleep(delay) => {}
            }
            delay = match self.drain(sink.as_ref()).await {
                Ok(true) => Duration::from_millis(500),
                Ok(false) => Duration::from_millis(20),
                Err(e) => {
                    tracing::warn!(error = %e, "simulated network: delivering reports failed; retrying");
                    Duration::from_millis(200)
                }
            };
        }
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
                let request_id = command.command_id.clone();
                let group = SimGroup {
                    jid: jid.clone(),
                    waba_number: number.waba_number.clone(),
                    profile: number.profile.as_str().to_string(),
                    create_key: command.command_id.clone(),
                    subject: subject.clone(),
                    description: description.clone(),
                    approval_required: *join_approval_mode == JoinApprovalModeWire::ApprovalRequired,
                    invite_code: code.clone(),
                    created_at: now,
                    announcement_only: false,
                    locked: false,
                    deleted: false,
                    suspended: false,
                };
                let business = SimMember {
                    phone: number.waba_number.clone(),
                    role: "superadmin".into(),
                    state: "member".into(),
                };
                let retry = |e: StoreError| ProviderError::Retryable(e.to_string());
                let mut users = Vec::with_capacity(participants.len());
                for p in participants {
                    users.push(self.store.sim_user(p).await.map_err(retry)?);
                }
                let state = SimGroupState {
                    group: group.clone(),
                    members: vec![business.clone()],
                    join_requests: Vec::new(),
                    users,
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

    async fn operate(
        &self,
        _number: &Number,
        wa_group_id: &str,
        op: &ProviderOp,
    ) -> Result<Vec<ItemResult>, ProviderError> {
        let users = match op {
            ProviderOp::AddParticipants { phones } | ProviderOp::Invite { phones } => phones.clone(),
            _ => Vec::new(),
        };
        let op = op.clone();
        let outcome = self
            .store
            .sim_mutate(
                SimTarget::Jid(wa_group_id.to_string()),
                users,
                Box::new(move |s| rules::operate(s, &op, Timestamp::now())),
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
                Ok(change.results)
            }
        }
    }

    /// Applies the reports queued so far, so the caller reads the gateway's record after them.
    async fn flush(&self, sink: &dyn ProviderEventSink) {
        for _ in 0..100 {
            match self.drain(sink).await {
                Ok(true) => return,
                Ok(false) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "delivering simulated reports failed");
                    return;
                }
            }
        }
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
