//! Group management after creation: settings, participants, admins, invite link, join
//! requests, deletion. The gateway checks state, capabilities and input; the provider carries
//! the write out on WhatsApp and reports what changed, which the service applies.

use std::sync::Arc;

use crate::{
    DomainError, ValidationError,
    ids::OperationId,
    model::{
        ApiKey, Group, GroupStatus, JoinApprovalMode, JoinRequest, Number, Operation, OperationStatus, Participant,
        ParticipantState,
    },
    provider::{Capabilities, ItemResult, ItemStatus, Operated, Provider, ProviderError, ProviderOp, SettingsChange},
    service::{GroupService, ServiceError},
    store::NewOperation,
    time::Timestamp,
    validate,
};

/// How long a write waits for WhatsApp's confirmation (when the provider confirms later)
/// before answering with the pending operation.
pub const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often a waiting write looks at its operation.
const CONFIRM_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// How a write ended, as its answer tells it: carried out (with its outcome), or accepted by
/// WhatsApp and not confirmed yet (the operation to follow).
#[derive(Debug, Clone)]
pub enum Written<T> {
    Done(T),
    Pending(Box<Operation>),
}

impl<T> Written<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Written<U> {
        match self {
            Written::Done(t) => Written::Done(f(t)),
            Written::Pending(op) => Written::Pending(op),
        }
    }
}

/// How the caller wants a write answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Answer at once with the pending operation rather than wait for the confirmation
    /// (`Prefer: respond-async`).
    pub respond_async: bool,
}

pub use crate::participants::{ITEMS_MAX, ParsedParticipants, ParticipantResult, parse_participants};

/// Settings a PATCH may change (unvalidated strings from the dialect).
#[derive(Debug, Clone, Default)]
pub struct GroupPatch {
    pub subject: Option<String>,
    pub description: Option<String>,
    pub announcement_only: Option<bool>,
    pub locked: Option<bool>,
    pub join_approval_mode: Option<String>,
}

/// A join request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequestResult {
    pub join_request_id: String,
    pub phone: Option<String>,
    pub status: ItemStatus,
    pub message: Option<String>,
}

fn refuse_capability(number: &Number, what: &str, capability: &str) -> ServiceError {
    DomainError::Unprocessable {
        code: crate::error::code::CAPABILITY_MISSING.into(),
        message: format!(
            "{what} is not possible on number {}: its provider ({} provider, {} profile) lacks the {capability} capability",
            number.waba_number, number.provider, number.profile
        ),
        field: None,
    }
    .into()
}

fn provider_failed(e: ProviderError) -> ServiceError {
    match e {
        ProviderError::Retryable(m) | ProviderError::InDoubt(m) => DomainError::Unavailable {
            message: format!("WhatsApp is unavailable, try again later: {m}"),
        }
        .into(),
        ProviderError::Paused { message, .. } => DomainError::Unavailable { message }.into(),
        ProviderError::Rejected { code, message } | ProviderError::Ineligible { code, message } => {
            DomainError::Unprocessable {
                code,
                message: format!("WhatsApp refused: {message}"),
                field: None,
            }
            .into()
        }
    }
}

/// A group the key may write to, with its number and provider.
pub struct Writable {
    pub group: Group,
    /// Its participants as the record has them.
    pub participants: Vec<Participant>,
    pub wa_group_id: String,
    pub number: Number,
    pub provider: Arc<dyn Provider>,
    pub capabilities: Capabilities,
}

impl GroupService {
    /// The group, if the key may change it now: it exists, is active, not suspended, and its
    /// number has a provider.
    pub async fn writable(&self, key: &ApiKey, group_id: &str) -> Result<Writable, ServiceError> {
        let (group, participants) = self.get_group(key, group_id).await?;
        match group.status {
            GroupStatus::Active => {}
            GroupStatus::Deleted => {
                return Err(DomainError::conflict(
                    crate::error::code::GROUP_DELETED,
                    format!("group {group_id:?} was deleted"),
                )
                .into());
            }
            GroupStatus::Pending => {
                return Err(DomainError::conflict(
                    crate::error::code::GROUP_NOT_ACTIVE,
                    format!("group {group_id:?} is pending: WhatsApp has not confirmed its creation yet"),
                )
                .into());
            }
            GroupStatus::Failed => {
                return Err(DomainError::conflict(
                    crate::error::code::GROUP_NOT_ACTIVE,
                    format!("group {group_id:?} failed to be created"),
                )
                .into());
            }
        }
        if group.suspended {
            return Err(DomainError::conflict(
                crate::error::code::GROUP_SUSPENDED,
                format!(
                    "group {group_id:?} is suspended by WhatsApp; writes are refused until the suspension is cleared"
                ),
            )
            .into());
        }
        let number = self
            .store()
            .get_number(group.number_id)
            .await?
            .ok_or_else(|| DomainError::not_found("the group's number"))?;
        let provider = self.provider_for(&number)?;
        let wa_group_id = group.wa_group_id.clone().unwrap_or_default();
        Ok(Writable {
            capabilities: provider.capabilities(&number),
            group,
            participants,
            wa_group_id,
            number,
            provider,
        })
    }

    /// Carries out a write. A provider that answers at once gives the outcome per item; for
    /// one that confirms later, the operation is recorded and the confirmation awaited for
    /// up to [`CONFIRM_WAIT`] (not at all with `respond_async`): a refusal then fails the write
    /// (`422`), and no confirmation in time answers with the pending operation.
    async fn operate(
        &self,
        w: &Writable,
        op: ProviderOp,
        opts: WriteOptions,
    ) -> Result<Written<Vec<ItemResult>>, ServiceError> {
        // A paused number is not called: the write is refused for now, saying until when.
        if let Some((_, why)) = crate::service::paused(&w.number, Timestamp::now()) {
            return Err(DomainError::Unavailable { message: why }.into());
        }
        let operation_id = OperationId::new();
        let kind = op.kind();
        // A provider that confirms later: the operation is recorded before it is asked, so a
        // crash after WhatsApp accepted the write leaves the operation to close (or expire),
        // and its confirmation always finds it.
        let recorded = if w.capabilities.confirms_writes_later {
            Some(self.record_operation(w, &operation_id, &operation_id, kind).await?)
        } else {
            None
        };
        let answer = w.provider.operate(&w.number, &w.wa_group_id, &op, &operation_id).await;
        let now = Timestamp::now();
        match &answer {
            // The number's health follows what stopped it; the items are answered as done.
            Ok(Operated::Partial { stopped_by, .. }) => self.record_health(&w.number, stopped_by).await?,
            Ok(_) => self.number_healthy(&w.number).await?,
            Err(_) => {}
        }
        match (answer, recorded) {
            // Sent and unanswered: WhatsApp may have done it; its confirmation settles it.
            (Err(ProviderError::InDoubt(why)), Some(recorded)) => {
                tracing::warn!(operation = %operation_id, %why, "no answer to a write: pending until its confirmation");
                Ok(Written::Pending(Box::new(recorded)))
            }
            (Err(e), recorded) => {
                if recorded.is_some() {
                    let (code, message) = match &e {
                        ProviderError::Retryable(m) | ProviderError::InDoubt(m) => ("provider_unavailable", m.as_str()),
                        ProviderError::Paused { message, .. } => ("provider_paused", message.as_str()),
                        ProviderError::Rejected { code, message } | ProviderError::Ineligible { code, message } => {
                            (code.as_str(), message.as_str())
                        }
                    };
                    self.store()
                        .finish_operation(&operation_id, false, &[], Some((code, message)), now)
                        .await?;
                }
                self.record_health(&w.number, &e).await?;
                // What the write did before it failed (invites sent) is recorded all the same.
                w.provider.flush(self).await;
                Err(provider_failed(e))
            }
            (
                Ok(
                    Operated::Done(mut answers)
                    | Operated::Partial {
                        results: mut answers, ..
                    },
                ),
                recorded,
            ) => {
                // Whoever must be sent the link gets it in their result.
                for a in answers.iter_mut() {
                    if matches!(a.status, ItemStatus::InviteRequired | ItemStatus::Invited) && a.invite_link.is_none() {
                        a.invite_link = w.group.invite_link.clone();
                    }
                }
                if recorded.is_some() {
                    self.store()
                        .finish_operation(&operation_id, true, &answers, None, now)
                        .await?;
                }
                w.provider.flush(self).await;
                Ok(Written::Done(answers))
            }
            (Ok(Operated::Accepted { request_id }), recorded) => {
                let recorded = match recorded {
                    Some(r) if request_id == operation_id.as_str() => r,
                    Some(r) => {
                        self.store().operation_accepted(&operation_id, &request_id, now).await?;
                        // A confirmation that came before the request ID was recorded is held.
                        self.inbox_changed();
                        r
                    }
                    None => {
                        let r = self.record_operation(w, &operation_id, &request_id, kind).await?;
                        self.inbox_changed();
                        r
                    }
                };
                if opts.respond_async {
                    return Ok(Written::Pending(Box::new(recorded)));
                }
                self.await_operation(w, recorded).await
            }
        }
    }

    /// What a provider's refusal says about the number (paused, not eligible), recorded.
    async fn record_health(&self, number: &crate::model::Number, e: &ProviderError) -> Result<(), ServiceError> {
        let health = match e {
            ProviderError::Paused { health, .. } => health.clone(),
            ProviderError::Ineligible { code, message } => crate::model::NumberHealth {
                status: crate::model::HealthStatus::NotEligible,
                until: None,
                detail: Some(format!("{code}: {message}")),
            },
            _ => return Ok(()),
        };
        self.store().set_number_health(number.id, &health).await?;
        Ok(())
    }

    async fn record_operation(
        &self,
        w: &Writable,
        operation_id: &OperationId,
        request_id: &str,
        kind: crate::model::OperationKind,
    ) -> Result<Operation, ServiceError> {
        Ok(self
            .store()
            .create_operation(
                NewOperation {
                    id: operation_id.clone(),
                    org_id: w.group.org_id.clone(),
                    group_row_id: w.group.id,
                    number_id: w.number.id,
                    request_id: request_id.to_string(),
                    kind,
                },
                Timestamp::now(),
            )
            .await?)
    }

    async fn await_operation(&self, w: &Writable, op: Operation) -> Result<Written<Vec<ItemResult>>, ServiceError> {
        let deadline = Timestamp::now().plus_millis(CONFIRM_WAIT.as_millis() as i64);
        loop {
            w.provider.flush(self).await;
            let now = self
                .store()
                .get_operation(&op.org_id, &op.id)
                .await?
                .unwrap_or(op.clone());
            match now.status {
                OperationStatus::Succeeded => return Ok(Written::Done(now.results)),
                OperationStatus::Failed => {
                    return Err(DomainError::Unprocessable {
                        code: now.error_code.unwrap_or_else(|| "operation_failed".into()),
                        message: format!(
                            "WhatsApp refused: {}",
                            now.error_message.unwrap_or_else(|| "no reason given".into())
                        ),
                        field: None,
                    }
                    .into());
                }
                OperationStatus::Pending if Timestamp::now() >= deadline => return Ok(Written::Pending(Box::new(now))),
                OperationStatus::Pending => self.sleep(CONFIRM_POLL).await,
            }
        }
    }

    /// An operation of the key's organisation, on a number the key may use.
    pub async fn operation(&self, key: &ApiKey, id: &str) -> Result<Operation, ServiceError> {
        let not_found = || DomainError::not_found(format!("operation {id:?}"));
        let id = OperationId::parse(id).ok_or_else(not_found)?;
        let op = self
            .store()
            .get_operation(&key.org_id, &id)
            .await?
            .ok_or_else(not_found)?;
        if !key.allows(&op.waba_number) {
            return Err(DomainError::Forbidden {
                message: format!("this API key is not allowed to use number {}", op.waba_number),
            }
            .into());
        }
        Ok(op)
    }

    async fn reload_written(
        &self,
        key: &ApiKey,
        group_id: &str,
        w: Written<Vec<ItemResult>>,
    ) -> Result<Written<Group>, ServiceError> {
        Ok(match w {
            Written::Done(_) => Written::Done(self.reload(key, group_id).await?),
            Written::Pending(op) => Written::Pending(op),
        })
    }

    async fn reload(&self, key: &ApiKey, group_id: &str) -> Result<Group, ServiceError> {
        Ok(self.get_group(key, group_id).await?.0)
    }

    /// Changes subject, description, settings or join approval mode.
    pub async fn update_group(
        &self,
        key: &ApiKey,
        group_id: &str,
        patch: GroupPatch,
        opts: WriteOptions,
    ) -> Result<Written<Group>, ServiceError> {
        let mut change = SettingsChange::default();
        if let Some(s) = &patch.subject {
            change.subject = Some(validate::subject("subject", s)?);
        }
        if let Some(d) = &patch.description {
            change.description = Some(validate::description("description", d)?);
        }
        if let Some(m) = &patch.join_approval_mode {
            change.join_approval_mode = Some(JoinApprovalMode::validate("joinApprovalMode", m)?);
        }
        change.announcement_only = patch.announcement_only;
        change.locked = patch.locked;
        if change.is_empty() {
            return Err(ValidationError::new(
                "body",
                "nothing to change: give subject, description, joinApprovalMode or settings",
            )
            .into());
        }
        let w = self.writable(key, group_id).await?;
        if (change.announcement_only.is_some() || change.locked.is_some()) && !w.capabilities.announcement_and_locked {
            return Err(refuse_capability(
                &w.number,
                "changing announcement-only or locked settings",
                "announcement_and_locked",
            ));
        }
        let written = self.operate(&w, ProviderOp::UpdateSettings(change), opts).await?;
        self.reload_written(key, group_id, written).await
    }

    /// Adds participants (or, where the provider cannot add directly, invites them).
    pub async fn add_participants(
        &self,
        key: &ApiKey,
        group_id: &str,
        inputs: &[String],
        invite_fallback: bool,
        opts: WriteOptions,
    ) -> Result<Written<Vec<ParticipantResult>>, ServiceError> {
        let parsed = parse_participants(inputs)?;
        let w = self.writable(key, group_id).await?;
        let phones = parsed.valid_phones();
        let mut answers = Vec::new();
        if !phones.is_empty() {
            if w.capabilities.direct_add {
                answers = match self.operate(&w, ProviderOp::AddParticipants { phones }, opts).await? {
                    Written::Done(a) => a,
                    // The invite fallback needs the adds' outcome: the operation tells it.
                    Written::Pending(op) => return Ok(Written::Pending(op)),
                };
                let blocked: Vec<String> = answers
                    .iter()
                    .filter(|a| a.status == ItemStatus::InviteRequired)
                    .map(|a| a.key.clone())
                    .collect();
                if invite_fallback && !blocked.is_empty() {
                    let invited = match self.operate(&w, ProviderOp::Invite { phones: blocked }, opts).await? {
                        Written::Done(a) => a,
                        Written::Pending(op) => return Ok(Written::Pending(op)),
                    };
                    for inv in invited {
                        if let Some(a) = answers.iter_mut().find(|a| a.key == inv.key) {
                            *a = inv;
                        }
                    }
                } else if !blocked.is_empty() {
                    let link = self.reload(key, group_id).await?.invite_link;
                    for a in answers.iter_mut().filter(|a| a.status == ItemStatus::InviteRequired) {
                        a.invite_link = link.clone();
                        a.message = Some(
                            "the user's privacy settings do not allow adding them: send them the invite link".into(),
                        );
                    }
                }
            } else {
                // Invite-only provider (Meta's Cloud API): the domain invites instead of adding,
                // none who is a member already, nor anyone removed (WhatsApp does not let them
                // back in through the link).
                let (answered, to_invite) = invite_prechecks(&w.participants, phones);
                answers = answered;
                if !to_invite.is_empty() {
                    match self.operate(&w, ProviderOp::Invite { phones: to_invite }, opts).await? {
                        Written::Done(a) => answers.extend(a),
                        Written::Pending(op) => return Ok(Written::Pending(op)),
                    }
                }
            }
        }
        Ok(Written::Done(parsed.results(&answers)))
    }

    pub async fn remove_participants(
        &self,
        key: &ApiKey,
        group_id: &str,
        inputs: &[String],
        opts: WriteOptions,
    ) -> Result<Written<Vec<ParticipantResult>>, ServiceError> {
        let parsed = parse_participants(inputs)?;
        let w = self.writable(key, group_id).await?;
        let phones = parsed.valid_phones();
        let answers = if phones.is_empty() {
            Written::Done(Vec::new())
        } else {
            self.operate(&w, ProviderOp::RemoveParticipants { phones }, opts)
                .await?
        };
        Ok(answers.map(|a| parsed.results(&a)))
    }

    /// Promotes (`promote`) or demotes participants.
    pub async fn set_admins(
        &self,
        key: &ApiKey,
        group_id: &str,
        inputs: &[String],
        promote: bool,
        opts: WriteOptions,
    ) -> Result<Written<Vec<ParticipantResult>>, ServiceError> {
        let parsed = parse_participants(inputs)?;
        let w = self.writable(key, group_id).await?;
        if !w.capabilities.admin_promotion {
            let what = if promote { "promoting admins" } else { "demoting admins" };
            return Err(refuse_capability(&w.number, what, "admin_promotion"));
        }
        let phones = parsed.valid_phones();
        let answers = if phones.is_empty() {
            Written::Done(Vec::new())
        } else {
            self.operate(&w, ProviderOp::SetAdmins { phones, promote }, opts)
                .await?
        };
        Ok(answers.map(|a| parsed.results(&a)))
    }

    /// A new invite link; the old one stops working at once.
    pub async fn reset_invite_link(
        &self,
        key: &ApiKey,
        group_id: &str,
        opts: WriteOptions,
    ) -> Result<Written<Group>, ServiceError> {
        let w = self.writable(key, group_id).await?;
        let written = self.operate(&w, ProviderOp::ResetInviteLink, opts).await?;
        self.reload_written(key, group_id, written).await
    }

    /// Resets the link and waits for WhatsApp's new one (for the dialects whose answer
    /// carries it): not confirmed in time is `Unavailable` (the reset goes on; read the link
    /// again).
    pub async fn reset_invite_link_confirmed(&self, key: &ApiKey, group_id: &str) -> Result<Group, ServiceError> {
        match self.reset_invite_link(key, group_id, WriteOptions::default()).await? {
            Written::Done(g) => Ok(g),
            Written::Pending(_) => Err(DomainError::Unavailable {
                message: "WhatsApp has not confirmed the new link yet: read it again shortly".into(),
            }
            .into()),
        }
    }

    pub async fn delete_group(
        &self,
        key: &ApiKey,
        group_id: &str,
        opts: WriteOptions,
    ) -> Result<Written<Group>, ServiceError> {
        let w = self.writable(key, group_id).await?;
        let written = self.operate(&w, ProviderOp::Delete, opts).await?;
        self.reload_written(key, group_id, written).await
    }

    /// Pending join requests.
    pub async fn join_requests(&self, key: &ApiKey, group_id: &str) -> Result<Vec<JoinRequest>, ServiceError> {
        let (group, _) = self.get_group(key, group_id).await?;
        Ok(self.store().pending_join_requests(group.id).await?)
    }

    /// Approves (`approve`) or rejects join requests.
    pub async fn resolve_join_requests(
        &self,
        key: &ApiKey,
        group_id: &str,
        ids: &[String],
        approve: bool,
        opts: WriteOptions,
    ) -> Result<Written<Vec<JoinRequestResult>>, ServiceError> {
        if ids.is_empty() || ids.len() > ITEMS_MAX {
            return Err(ValidationError::new(
                "joinRequestIds",
                format!("must list 1 to {ITEMS_MAX} join request IDs, got {}", ids.len()),
            )
            .into());
        }
        let w = self.writable(key, group_id).await?;
        let pending = self.store().pending_join_requests(w.group.id).await?;
        let mut distinct: Vec<String> = Vec::new();
        for id in ids {
            if !distinct.contains(id) {
                distinct.push(id.clone());
            }
        }
        let answers = match self
            .operate(&w, ProviderOp::ResolveJoinRequests { ids: distinct, approve }, opts)
            .await?
        {
            Written::Done(a) => a,
            Written::Pending(op) => return Ok(Written::Pending(op)),
        };
        Ok(Written::Done(
            ids.iter()
                .map(|id| {
                    let answer = answers.iter().find(|a| &a.key == id);
                    JoinRequestResult {
                        join_request_id: id.clone(),
                        phone: pending
                            .iter()
                            .find(|r| &r.join_request_id == id)
                            .map(|r| r.phone.as_str().to_string()),
                        status: answer.map_or(ItemStatus::NotFound, |a| a.status),
                        message: answer.and_then(|a| a.message.clone()),
                    }
                })
                .collect(),
        ))
    }
}

impl GroupService {
    /// The second step of a creation on a provider that adds nobody at creation (Meta's Cloud
    /// API): the group is active, and the participants the command asked for are invited as
    /// adding them later would (members and removed users answered without asking). The
    /// command then closes with each one's outcome, which the create's answer reports. A
    /// failure is tried again later, as a command's submission is; after the last attempt,
    /// those not invited are answered `invite_required` with the link.
    pub(crate) async fn invite_created(
        &self,
        cmd: &crate::command::Command,
        request_id: &str,
        number: &Number,
    ) -> Result<crate::service::Submission, ServiceError> {
        use crate::command::{COMMAND_MAX_ATTEMPTS, CommandPayload, command_backoff_ms};
        let CommandPayload::CreateGroup { participants, .. } = &cmd.payload;
        let now = Timestamp::now();
        let answers = match self.store().group_by_row(cmd.group_row_id).await? {
            Some((group, current)) if group.status == GroupStatus::Active && !group.suspended => {
                let provider = self.provider_for(number)?;
                let w = Writable {
                    capabilities: provider.capabilities(number),
                    wa_group_id: group.wa_group_id.clone().unwrap_or_default(),
                    group,
                    participants: current,
                    number: number.clone(),
                    provider,
                };
                let (mut answers, to_invite) = invite_prechecks(&w.participants, participants.clone());
                // Invited by an earlier try of this step (cut short before it closed): not again.
                let (already, to_invite): (Vec<String>, Vec<String>) = to_invite.into_iter().partition(|p| {
                    w.participants
                        .iter()
                        .any(|q| q.phone.as_str() == p && q.state == ParticipantState::Invited)
                });
                answers.extend(already.into_iter().map(|p| {
                    let mut r = ItemResult::new(p, ItemStatus::Invited);
                    r.invite_link = w.group.invite_link.clone();
                    r
                }));
                if !to_invite.is_empty() {
                    let invited = self
                        .operate(
                            &w,
                            ProviderOp::Invite {
                                phones: to_invite.clone(),
                            },
                            WriteOptions { respond_async: true },
                        )
                        .await;
                    match invited {
                        Ok(Written::Done(a)) => answers.extend(a),
                        failed if cmd.attempts < COMMAND_MAX_ATTEMPTS => {
                            let why = match failed {
                                Err(e) => e.to_string(),
                                Ok(_) => "WhatsApp did not answer the invitations".into(),
                            };
                            tracing::warn!(command = %cmd.command_id, %why, "inviting a new group's participants failed; trying again");
                            self.store()
                                .command_retry(cmd.id, &why, now.plus_millis(command_backoff_ms(cmd.attempts)))
                                .await?;
                            return Ok(crate::service::Submission::Recorded);
                        }
                        _ => answers.extend(not_invited(
                            to_invite,
                            &w.group.invite_link,
                            "the invitation could not be sent: send them the group's invite link",
                        )),
                    }
                }
                answers
            }
            // Gone, or not writable any more: nobody is invited.
            other => not_invited(
                participants.clone(),
                &other.and_then(|(g, _)| g.invite_link),
                "the group is not active: nobody was invited",
            ),
        };
        let result = serde_json::to_string(&answers).ok();
        let m = self
            .store()
            .mutate_group(
                crate::store::GroupTarget::Request {
                    number_id: number.id,
                    request_id: request_id.to_string(),
                },
                None,
                now,
                Box::new(move |state| {
                    let mut d = crate::group::Decision::from_state(state);
                    if let Some(id) = state.command_id {
                        d.close_command = Some(crate::group::CommandClose::Done {
                            id,
                            result: result.clone(),
                        });
                    }
                    Ok(d)
                }),
            )
            .await;
        match m {
            Ok(_) => Ok(crate::service::Submission::Recorded),
            Err(crate::store::MutateError::Store(e)) => Err(e.into()),
            Err(crate::store::MutateError::Domain(e)) => Err(e.into()),
        }
    }
}

/// Each of `phones` answered `invite_required`, with the link to send and why.
fn not_invited(phones: Vec<String>, link: &Option<String>, why: &str) -> Vec<ItemResult> {
    phones
        .into_iter()
        .map(|p| {
            let mut r = ItemResult::new(p, ItemStatus::InviteRequired);
            r.message = Some(why.to_string());
            r.invite_link = link.clone();
            r
        })
        .collect()
}

/// Who an invite-only provider is not asked to invite, answered: members already, and those
/// removed from the group (WhatsApp keeps them out of its invite link); and who is left.
fn invite_prechecks(participants: &[Participant], phones: Vec<String>) -> (Vec<ItemResult>, Vec<String>) {
    let mut answered = Vec::new();
    let mut left = Vec::new();
    for phone in phones {
        match participants.iter().find(|p| p.phone.as_str() == phone).map(|p| p.state) {
            Some(ParticipantState::Member) => answered.push(ItemResult::new(phone, ItemStatus::AlreadyMember)),
            Some(ParticipantState::Removed) => {
                let mut r = ItemResult::new(phone, ItemStatus::RemovedCannotRejoin);
                r.message = Some("a user removed from the group cannot rejoin through the invite link".into());
                answered.push(r);
            }
            _ => left.push(phone),
        }
    }
    (answered, left)
}
