//! The group service: the use cases behind every dialect. It validates, applies the
//! domain rules and persists through the store, one transaction per change.

use std::sync::Arc;

use base64::Engine as _;

use crate::{
    DomainError, ValidationError,
    command::{COMMAND_MAX_ATTEMPTS, Command, CommandPayload, command_backoff_ms},
    event::StoredEvent,
    group::{self, GroupInput},
    ids::{self, CommandId, GroupId},
    model::{
        ApiKey, CommandStatus, Group, GroupStatus, HealthStatus, JoinApprovalMode, Number, NumberHealth, Participant,
        ProviderKind,
    },
    participants::{ParsedParticipants, ParticipantResult},
    provider::{ItemResult, ItemStatus, Provider, ProviderError, ProviderRegistry},
    store::{CreateGroupOutcome, GroupFilter, GroupTarget, Mutation, NewGroup, Store},
    tenancy,
    time::Timestamp,
    validate,
};

pub use crate::error::ServiceError;

/// A create-group request as the dialects read it: strings still unvalidated.
#[derive(Debug, Clone, Default)]
pub struct CreateGroupRequest {
    pub waba_number: Option<String>,
    pub subject: Option<String>,
    pub description: Option<String>,
    pub join_approval_mode: Option<String>,
    pub group_id: Option<String>,
    /// Participants to add at creation, as given (phones or JIDs).
    pub participants: Option<Vec<String>>,
    /// Invite (through the link) those who cannot be added; default true.
    pub invite_fallback: Option<bool>,
    /// Announcement-only and locked-info settings to apply once created (providers with
    /// those settings only).
    pub announcement_only: Option<bool>,
    pub locked: Option<bool>,
    /// Link the group to a community (no provider of wagroups can: refused when `true`).
    pub community: Option<bool>,
}

/// A creation WhatsApp confirmed, with its participants and the outcome for each asked for.
pub struct Confirmed {
    pub group: Group,
    pub participants: Vec<Participant>,
    pub results: Vec<ParticipantResult>,
    /// Why the settings asked for were not applied, when they were not (the group exists:
    /// it is answered all the same).
    pub settings_error: Option<String>,
}

/// A group just created, with what is needed to report its participants' outcomes.
pub struct Created {
    pub group: Group,
    pub command_id: CommandId,
    pub participants: ParsedParticipants,
}

/// A page of a number's active groups, pageable both ways.
pub struct ActivePage {
    pub groups: Vec<Group>,
    /// The cursor of the page's first group (pass as `before` for the newer page).
    pub before: Option<String>,
    /// The cursor of its last group (pass as `after` for the older page).
    pub after: Option<String>,
    /// Older groups follow the page.
    pub older: bool,
    /// Newer groups precede it.
    pub newer: bool,
}

/// A page of groups and the cursor of the next one.
pub struct GroupPage {
    pub groups: Vec<Group>,
    pub next_cursor: Option<String>,
}

/// How long a request waits for WhatsApp's answer to a creation it reports on (the outcome
/// for each participant; the group itself, for the dialects whose answer carries it).
pub const CREATION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub const LIST_LIMIT_MAX: i64 = 1024;
pub const LIST_LIMIT_DEFAULT: i64 = 25;
pub const EVENTS_LIMIT_MAX: i64 = 1000;
pub const EVENTS_LIMIT_DEFAULT: i64 = 100;

pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// What the delivery dispatcher is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliverySignal {
    /// New deliveries were queued.
    Queued,
    /// Endpoints changed, or deliveries were queued again under their old IDs.
    Changed,
}

pub type DeliveryWake = Arc<dyn Fn(DeliverySignal) + Send + Sync>;

/// What became of a command's submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// The provider accepted it under this request ID, which is still to be recorded.
    Accepted(String),
    /// A retry, or the command's failure, was recorded.
    Recorded,
}

/// Sleeps for a while (the runtime's timer): for the bounded waits of writes WhatsApp
/// confirms later.
pub type Sleep =
    Arc<dyn Fn(std::time::Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// How the service tells the workers there is work, and waits.
#[derive(Clone)]
pub struct Signals {
    /// A command was queued (wakes the provider worker).
    pub commands: Wake,
    /// Webhook deliveries were queued or endpoints changed (tells the delivery dispatcher).
    pub deliveries: DeliveryWake,
    /// A provider report was held, or what held ones wait for may have come (wakes the
    /// inbox applier).
    pub inbox: Wake,
    pub sleep: Sleep,
}

impl Signals {
    /// Tells nobody, and does not wait (an administrative process with no workers).
    pub fn none() -> Signals {
        Signals {
            commands: Arc::new(|| {}),
            deliveries: Arc::new(|_| {}),
            inbox: Arc::new(|| {}),
            sleep: Arc::new(|_| Box::pin(std::future::ready(()))),
        }
    }
}

pub struct GroupService {
    store: Arc<dyn Store>,
    providers: Arc<dyn ProviderRegistry>,
    signals: Signals,
}

impl GroupService {
    pub fn new(store: Arc<dyn Store>, providers: Arc<dyn ProviderRegistry>, signals: Signals) -> Self {
        GroupService {
            store,
            providers,
            signals,
        }
    }

    /// Sleeps `d` (bounded waits).
    pub async fn sleep(&self, d: std::time::Duration) {
        (self.signals.sleep)(d).await;
    }

    /// Wakes the inbox applier.
    /// Wakes the command worker (a command is due).
    pub fn commands_ready(&self) {
        (self.signals.commands)();
    }

    pub fn inbox_changed(&self) {
        (self.signals.inbox)();
    }

    /// The provider a number is bound to.
    pub fn provider_for(&self, number: &Number) -> Result<Arc<dyn Provider>, ServiceError> {
        self.providers.for_number(number).ok_or_else(|| {
            DomainError::Unprocessable {
                code: "no_provider".into(),
                message: format!(
                    "no {} provider is available for number {}",
                    number.provider, number.waba_number
                ),
                field: None,
            }
            .into()
        })
    }

    /// Wakes the delivery dispatcher.
    pub fn deliveries_queued(&self) {
        (self.signals.deliveries)(DeliverySignal::Queued);
    }

    /// Wakes the command runner (a command is due).
    pub fn commands_queued(&self) {
        (self.signals.commands)();
    }

    /// Tells the delivery dispatcher to read endpoints and backlogs again.
    pub fn deliveries_changed(&self) {
        (self.signals.deliveries)(DeliverySignal::Changed);
    }

    fn after_mutation(&self, m: &Mutation) {
        if let Mutation::Applied(d) = m
            && !d.events.is_empty()
        {
            self.deliveries_queued();
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The live API key whose secret this is.
    pub async fn authenticate(&self, secret: &str) -> Result<ApiKey, ServiceError> {
        if secret.is_empty() {
            return Err(ServiceError::Unauthorized);
        }
        self.store
            .find_api_key(&ids::hash_api_key(secret))
            .await?
            .ok_or(ServiceError::Unauthorized)
    }

    /// The caller's number `waba_number` (see [`tenancy::number_for`]).
    pub async fn number_for(&self, key: &ApiKey, field: &str, waba_number: &str) -> Result<Number, ServiceError> {
        tenancy::number_for(self.store.as_ref(), key, field, waba_number).await
    }

    pub async fn create_group(&self, key: &ApiKey, req: CreateGroupRequest) -> Result<Created, ServiceError> {
        let waba = req
            .waba_number
            .ok_or_else(|| ValidationError::new("wabaNumber", "is required"))?;
        let subject = validate::subject(
            "subject",
            req.subject
                .as_deref()
                .ok_or_else(|| ValidationError::new("subject", "is required (1 to 128 characters)"))?,
        )?;
        let description = match req.description.as_deref() {
            Some(d) => validate::description("description", d)?,
            None => String::new(),
        };
        let mode = req
            .join_approval_mode
            .as_deref()
            .map(|m| JoinApprovalMode::validate("joinApprovalMode", m))
            .transpose()?;
        let group_id = match req.group_id.as_deref() {
            Some(g) => GroupId::from(validate::group_id("groupId", g)?),
            None => GroupId::new(),
        };
        let number = self.number_for(key, "wabaNumber", &waba).await?;
        if number.disabled {
            return Err(DomainError::Unprocessable {
                code: "number_disabled".into(),
                message: format!("number {} is disabled", number.waba_number),
                field: Some("wabaNumber".into()),
            }
            .into());
        }
        if req.community == Some(true) {
            return Err(DomainError::Unprocessable {
                code: crate::error::code::CAPABILITY_MISSING.into(),
                message: format!(
                    "linking a group to a community is not possible on number {}: no provider of wagroups has communities",
                    number.waba_number
                ),
                field: Some("community".into()),
            }
            .into());
        }
        if (req.announcement_only == Some(true) || req.locked == Some(true))
            && !self
                .provider_for(&number)?
                .capabilities(&number)
                .announcement_and_locked
        {
            return Err(DomainError::Unprocessable {
                code: crate::error::code::CAPABILITY_MISSING.into(),
                message: format!(
                    "announcement-only or locked settings are not possible on number {}: its provider ({} provider, {} profile) lacks the announcement_and_locked capability",
                    number.waba_number, number.provider, number.profile
                ),
                field: None,
            }
            .into());
        }
        let mode: JoinApprovalMode = mode.unwrap_or(number.default_join_approval_mode);
        let participants = crate::participants::parse_participants(req.participants.as_deref().unwrap_or(&[]))?;
        let valid: Vec<String> = participants.valid_phones();
        let command_id = CommandId::new();
        let outcome = self
            .store
            .create_group(NewGroup {
                org_id: key.org_id.clone(),
                number_id: number.id,
                group_id: group_id.clone(),
                subject: subject.clone(),
                description: description.clone(),
                join_approval_mode: mode,
                command_id: command_id.clone(),
                command: CommandPayload::CreateGroup {
                    subject,
                    description,
                    join_approval_mode: mode,
                    participants: valid,
                    invite_fallback: req.invite_fallback.unwrap_or(true),
                },
                now: Timestamp::now(),
            })
            .await?;
        match outcome {
            CreateGroupOutcome::Created(g) => {
                (self.signals.commands)();
                Ok(Created {
                    group: *g,
                    command_id,
                    participants,
                })
            }
            CreateGroupOutcome::DuplicateGroupId => Err(DomainError::Conflict {
                code: "duplicate_group_id".into(),
                message: format!("groupId: this organisation already has a group with ID {group_id:?}"),
            }
            .into()),
        }
    }

    /// The outcome for each participant asked for at creation, waiting (up to `wait`) for
    /// WhatsApp's answer; `None` when it did not come in time.
    pub async fn creation_results_within(
        &self,
        created: &Created,
        wait: std::time::Duration,
    ) -> Result<Option<Vec<ParticipantResult>>, ServiceError> {
        let deadline = Timestamp::now().plus_millis(wait.as_millis() as i64);
        loop {
            if let Some(r) = self.creation_results(created).await? {
                self.settle(created.group.number_id).await?;
                return Ok(Some(r));
            }
            if Timestamp::now() >= deadline {
                return Ok(None);
            }
            self.sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Creates a group and waits (up to `wait`) until WhatsApp confirmed it, for the dialects
    /// whose answer carries the WhatsApp group (linked-device gateways); then applies the
    /// settings asked for. WhatsApp's refusal is the failure it gave; no confirmation in time
    /// is `Unavailable` (the group stays pending, and its events follow).
    pub async fn create_confirmed(
        &self,
        key: &ApiKey,
        req: CreateGroupRequest,
        wait: std::time::Duration,
    ) -> Result<Confirmed, ServiceError> {
        let settings = (req.announcement_only, req.locked);
        let created = self.create_group(key, req).await?;
        let id = created.group.group_id.clone();
        let results = self.creation_results_within(&created, wait).await?;
        let (mut group, mut participants) = self.get_group(key, &id).await?;
        match (group.status, results) {
            (GroupStatus::Active, Some(results)) => {
                // Only what differs from the new group's (both are off at creation).
                let announcement_only = settings.0.filter(|v| *v != group.announcement_only);
                let locked = settings.1.filter(|v| *v != group.locked);
                let mut settings_error = None;
                if announcement_only.is_some() || locked.is_some() {
                    let patch = crate::ops::GroupPatch {
                        announcement_only,
                        locked,
                        ..Default::default()
                    };
                    if let Err(e) = self
                        .update_group(key, &id, patch, crate::ops::WriteOptions::default())
                        .await
                    {
                        tracing::warn!(group = %id, error = %e, "a new group's settings were not applied");
                        settings_error = Some(e.to_string());
                    }
                    (group, participants) = self.get_group(key, &id).await?;
                }
                Ok(Confirmed {
                    group,
                    participants,
                    results,
                    settings_error,
                })
            }
            (GroupStatus::Failed, _) => Err(DomainError::Unprocessable {
                code: "group_create_failed".into(),
                message: format!(
                    "WhatsApp refused to create the group: {}",
                    group.failure_reason.take().unwrap_or_default()
                ),
                field: None,
            }
            .into()),
            _ => Err(DomainError::Unavailable {
                message: format!(
                    "WhatsApp did not confirm the group within {} s; it is pending (group {id}: its events follow)",
                    wait.as_secs()
                ),
            }
            .into()),
        }
    }

    /// The row IDs of the numbers a restricted key may use (see [`tenancy::allowed_number_ids`]).
    pub async fn allowed_number_ids(&self, key: &ApiKey) -> Result<Option<Vec<i64>>, ServiceError> {
        tenancy::allowed_number_ids(self.store.as_ref(), key).await
    }

    /// The outcome for each participant asked for at creation, once WhatsApp answered
    /// (`None` while the creation is pending).
    pub async fn creation_results(&self, created: &Created) -> Result<Option<Vec<ParticipantResult>>, ServiceError> {
        let Some((status, result)) = self.store.command_outcome(&created.command_id).await? else {
            return Ok(None);
        };
        match status {
            CommandStatus::Done => {
                let answers: Vec<ItemResult> = result
                    .as_deref()
                    .and_then(|r| serde_json::from_str(r).ok())
                    .unwrap_or_default();
                Ok(Some(created.participants.results(&answers)))
            }
            CommandStatus::Failed => {
                let answers: Vec<ItemResult> = created
                    .participants
                    .valid_phones()
                    .into_iter()
                    .map(|p| ItemResult::new(p, ItemStatus::GroupCreateFailed))
                    .collect();
                Ok(Some(created.participants.results(&answers)))
            }
            CommandStatus::Pending | CommandStatus::Submitted => Ok(None),
        }
    }

    /// Applies what the number's provider has reported so far (so a read that follows sees it).
    pub async fn settle(&self, number_id: i64) -> Result<(), ServiceError> {
        if let Some(number) = self.store.get_number(number_id).await?
            && let Some(p) = self.providers.for_number(&number)
        {
            p.flush(self).await;
        }
        Ok(())
    }

    /// A group of the key's organisation, with its participants (see [`tenancy::group_of`]).
    pub async fn get_group(&self, key: &ApiKey, group_id: &str) -> Result<(Group, Vec<Participant>), ServiceError> {
        tenancy::group_of(self.store.as_ref(), key, group_id).await
    }

    /// The key's numbers, in the order they were added (those it may use).
    pub async fn numbers(&self, key: &ApiKey) -> Result<Vec<Number>, ServiceError> {
        let mut numbers = self.store.list_numbers(Some(&key.org_id)).await?;
        numbers.retain(|n| key.allows(&n.waba_number));
        Ok(numbers)
    }

    /// The key's number a linked-device gateway's client names by its instance: its digits, or
    /// the alias set with `numbers update --instance-id`.
    pub async fn number_by_instance(&self, key: &ApiKey, field: &str, instance: &str) -> Result<Number, ServiceError> {
        if let Some(n) = self.store.find_number_by_instance_id(instance).await?
            && n.org_id == key.org_id
        {
            return self.number_for(key, field, &n.waba_number).await;
        }
        self.number_for(key, field, instance).await
    }

    /// The key's number with this phone number ID (Meta's for a cloud-api number, the
    /// simulated network's own for a simulated one).
    pub async fn number_by_phone_number_id(&self, key: &ApiKey, phone_number_id: &str) -> Result<Number, ServiceError> {
        let mut found = None;
        for kind in ProviderKind::ALL {
            if let Some(n) = self.store.find_number_by_ref(*kind, phone_number_id).await? {
                found = Some(n);
                break;
            }
        }
        let number = found
            .filter(|n| n.org_id == key.org_id)
            .ok_or_else(|| DomainError::not_found(format!("phone number ID {phone_number_id:?}")))?;
        if !key.allows(&number.waba_number) {
            return Err(DomainError::Forbidden {
                message: format!("this API key is not allowed to use number {}", number.waba_number),
            }
            .into());
        }
        Ok(number)
    }

    /// The key's group with this WhatsApp group ID (a JID, or Meta's ID), on the numbers the
    /// key may use (only `on_number`, when given).
    pub async fn group_by_wa_id(
        &self,
        key: &ApiKey,
        wa_group_id: &str,
        on_number: Option<&str>,
    ) -> Result<(Group, Vec<Participant>), ServiceError> {
        for n in self.numbers(key).await? {
            if on_number.is_some_and(|w| w != n.waba_number) {
                continue;
            }
            if let Some(g) = self.store.find_group_by_wa_id(n.id, wa_group_id).await? {
                return self.get_group(key, &g.group_id).await;
            }
        }
        Err(DomainError::not_found(format!("group {wa_group_id:?}")).into())
    }

    /// The one number a key stands for, as a gateway whose token names one instance has it:
    /// `asked` when given, else the key's only number (restricted to one, or in an
    /// organisation with one).
    pub async fn sole_number(&self, key: &ApiKey, field: &str, asked: Option<&str>) -> Result<Number, ServiceError> {
        if let Some(a) = asked.filter(|a| !a.is_empty()) {
            return self.number_for(key, field, a).await;
        }
        let numbers = self.numbers(key).await?;
        match numbers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(DomainError::Forbidden {
                message: "this API key may use no number of its organisation".into(),
            }
            .into()),
            _ => Err(ValidationError::new(
                field,
                format!(
                    "is required: this API key may use {} numbers, so name the one to use (?{field}=DIGITS)",
                    numbers.len()
                ),
            )
            .into()),
        }
    }

    /// The key's group with this Graph group ID ([`ids::graph_group_id`]): Meta's own ID as it
    /// is (tried first: some of Meta's IDs also read as one of ours), else one of ours.
    pub async fn group_by_graph_id(
        &self,
        key: &ApiKey,
        graph_id: &str,
    ) -> Result<(Group, Vec<Participant>), ServiceError> {
        let numbers = self.numbers(key).await?;
        let mut candidates: Vec<(i64, String)> = numbers.iter().map(|n| (n.id, graph_id.to_string())).collect();
        if let Some((waba, jid)) = ids::graph_group_jid(graph_id) {
            candidates.extend(
                numbers
                    .iter()
                    .filter(|n| n.waba_number == waba)
                    .map(|n| (n.id, jid.clone())),
            );
        }
        for (number_id, wa) in candidates {
            if let Some(g) = self.store.find_group_by_wa_id(number_id, &wa).await? {
                return self.get_group(key, &g.group_id).await;
            }
        }
        Err(DomainError::not_found(format!("group {graph_id:?}")).into())
    }

    /// A page of a number's active groups for a dialect that pages both ways: newest first
    /// after the `after` cursor, or the page just before the `before` cursor. With whether
    /// older groups follow it and newer ones precede it.
    pub async fn active_groups_page(
        &self,
        number: &Number,
        limit: Option<&str>,
        after: Option<&str>,
        before: Option<&str>,
    ) -> Result<ActivePage, ServiceError> {
        let limit = parse_limit("limit", limit, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)?;
        let filter = |newer_than| GroupFilter {
            number_id: Some(number.id),
            status: Some(GroupStatus::Active),
            newer_than,
            ..GroupFilter::default()
        };
        let after = after.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let before = before.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let org = &number.org_id;
        let (groups, older, newer) = match before {
            Some(b) => {
                let mut groups = self.store.list_groups(org, &filter(Some(b)), None, limit + 1).await?;
                let newer = groups.len() as i64 > limit;
                groups.truncate(limit as usize);
                groups.reverse();
                (groups, true, newer)
            }
            None => {
                let mut groups = self.store.list_groups(org, &filter(None), after, limit + 1).await?;
                let older = groups.len() as i64 > limit;
                groups.truncate(limit as usize);
                (groups, older, after.is_some())
            }
        };
        Ok(ActivePage {
            before: groups.first().map(|g| encode_cursor(g.id)),
            after: groups.last().map(|g| encode_cursor(g.id)),
            groups,
            older,
            newer,
        })
    }

    pub async fn list_groups(
        &self,
        key: &ApiKey,
        waba_number: Option<&str>,
        status: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<GroupPage, ServiceError> {
        let limit = parse_limit("limit", limit, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX)?;
        let mut filter = GroupFilter::default();
        if let Some(w) = waba_number.filter(|w| !w.is_empty()) {
            filter.number_id = Some(self.number_for(key, "wabaNumber", w).await?.id);
        } else {
            filter.number_ids = self.allowed_number_ids(key).await?;
        }
        if let Some(s) = status.filter(|s| !s.is_empty()) {
            filter.status = Some(GroupStatus::validate("status", s)?);
        }
        let before = cursor.filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
        let mut groups = self.store.list_groups(&key.org_id, &filter, before, limit + 1).await?;
        let next_cursor = if groups.len() as i64 > limit {
            groups.truncate(limit as usize);
            groups.last().map(|g| encode_cursor(g.id))
        } else {
            None
        };
        Ok(GroupPage { groups, next_cursor })
    }

    /// The group's event log after sequence `after`, in order.
    pub async fn group_events(
        &self,
        key: &ApiKey,
        group_id: &str,
        after: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        let (g, _) = self.get_group(key, group_id).await?;
        let after = match after.filter(|a| !a.is_empty()) {
            Some(a) => a.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ValidationError::new("after", format!("must be a sequence number (0 or more), got {a:?}"))
            })?,
            None => 0,
        };
        let limit = parse_limit("limit", limit, EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX)?;
        Ok(self.store.group_events(g.id, after, limit).await?)
    }

    /// Submits a due command to its number's provider. A retry with backoff, or (rejected, or
    /// out of retries) the failure on the group, is recorded here; an accepted command is
    /// answered with the provider's request ID, for the caller to record with others
    /// ([`GroupService::commands_submitted`]).
    pub async fn submit_command(
        &self,
        cmd: &Command,
        number: &Number,
        provider: Option<&dyn Provider>,
    ) -> Result<Submission, ServiceError> {
        let now = Timestamp::now();
        // A paused number's commands wait, not counted as attempts, and Meta is not called.
        if let Some((until, why)) = paused(number, now) {
            self.store.command_defer(cmd.id, &why, until).await?;
            return Ok(Submission::Recorded);
        }
        // Accepted before: a creation confirmed without its participants, who are invited now.
        if let Some(request_id) = &cmd.request_id {
            return self.invite_created(cmd, request_id, number).await;
        }
        // A provider that is not idempotent: marked first, so that a crash before its answer is
        // recorded leaves the command in doubt rather than due to be sent again.
        if let Some(p) = provider
            && !p.capabilities(number).idempotent_submit
        {
            self.store.command_sending(cmd.id, now).await?;
        }
        let result = match provider {
            Some(p) => p.submit(number, cmd).await,
            None => Err(ProviderError::Rejected {
                code: "no_provider".into(),
                message: format!(
                    "no provider {} is available for number {}",
                    number.provider, number.waba_number
                ),
            }),
        };
        let (code, message) = match result {
            Ok(submitted) => {
                self.number_healthy(number).await?;
                return Ok(Submission::Accepted(submitted.request_id));
            }
            Err(ProviderError::Paused { health, message }) => {
                let until = pause_end(&health, now);
                self.store.set_number_health(number.id, &health).await?;
                tracing::warn!(number = %number.waba_number, health = %health.status, %message, "number paused");
                self.store.command_defer(cmd.id, &message, until).await?;
                return Ok(Submission::Recorded);
            }
            Err(ProviderError::InDoubt(why)) => {
                tracing::warn!(command = %cmd.command_id, %why, "no answer to a command: in doubt until the provider's listing settles it");
                return Ok(Submission::Recorded);
            }
            Err(ProviderError::Ineligible { code, message }) => {
                self.store
                    .set_number_health(
                        number.id,
                        &NumberHealth {
                            status: HealthStatus::NotEligible,
                            until: None,
                            detail: Some(format!("{code}: {message}")),
                        },
                    )
                    .await?;
                (code, message)
            }
            Err(ProviderError::Retryable(e)) if cmd.attempts < COMMAND_MAX_ATTEMPTS => {
                let next = now.plus_millis(command_backoff_ms(cmd.attempts));
                self.store.command_retry(cmd.id, &e, next).await?;
                return Ok(Submission::Recorded);
            }
            Err(ProviderError::Retryable(e)) => ("provider_unavailable".to_string(), e),
            Err(ProviderError::Rejected { code, message }) => (code, message),
        };
        let input = match cmd.payload {
            CommandPayload::CreateGroup { .. } => GroupInput::CreateFailed { code, message, at: now },
        };
        let m = self
            .store
            .mutate_group(
                GroupTarget::Request {
                    number_id: cmd.number_id,
                    request_id: cmd.command_id.to_string(),
                },
                None,
                now,
                Box::new(move |state| group::apply(state, &input, now)),
            )
            .await?;
        self.after_mutation(&m);
        Ok(Submission::Recorded)
    }

    /// A number the provider served is healthy again (it was paused or refused).
    pub async fn number_healthy(&self, number: &Number) -> Result<(), ServiceError> {
        if number.health.status != HealthStatus::Ok {
            self.store
                .set_number_health(number.id, &NumberHealth::default())
                .await?;
        }
        Ok(())
    }

    /// Records commands the provider accepted: (command row, the provider's request ID).
    /// Confirmations that came before their request ID was known are held: now they apply.
    pub async fn commands_submitted(&self, submitted: &[(i64, String)]) -> Result<(), ServiceError> {
        self.store.commands_submitted(submitted, Timestamp::now()).await?;
        self.inbox_changed();
        Ok(())
    }
}

/// How long a number whose credentials were refused waits before its work is looked at again
/// (a `numbers update` with a new token makes it healthy: the next look sends).
pub const CREDENTIALS_RECHECK_MS: i64 = 30_000;
/// A pause asked for without an end lasts this long.
pub const DEFAULT_PAUSE_MS: i64 = 60_000;

/// When a pause of this health ends.
pub fn pause_end(health: &NumberHealth, now: Timestamp) -> Timestamp {
    match (health.status, health.until) {
        (HealthStatus::RateLimited, Some(until)) if until > now => until,
        (HealthStatus::RateLimited, _) => now.plus_millis(DEFAULT_PAUSE_MS),
        _ => now.plus_millis(CREDENTIALS_RECHECK_MS),
    }
}

/// Whether the number is paused now: until when, and why.
pub fn paused(number: &Number, now: Timestamp) -> Option<(Timestamp, String)> {
    let h = &number.health;
    match h.status {
        HealthStatus::CredentialsInvalid => Some((
            now.plus_millis(CREDENTIALS_RECHECK_MS),
            format!(
                "number {}'s access token was refused ({}): replace it with `wagroups numbers update {} --access-token …`",
                number.waba_number,
                h.detail.as_deref().unwrap_or("no detail"),
                number.waba_number
            ),
        )),
        HealthStatus::RateLimited => h.until.filter(|u| *u > now).map(|u| {
            (
                u,
                format!("number {} is rate limited until {}", number.waba_number, u.to_rfc3339()),
            )
        }),
        HealthStatus::Ok | HealthStatus::NotEligible => None,
    }
}

/// Parses a page size: absent means `default`, else 1 to `max`.
pub fn parse_limit(field: &str, raw: Option<&str>, default: i64, max: i64) -> Result<i64, ValidationError> {
    match raw.filter(|r| !r.is_empty()) {
        None => Ok(default),
        Some(r) => r
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ValidationError::new(field, format!("must be an integer from 1 to {max}, got {r:?}"))),
    }
}

fn encode_cursor(row_id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("g{row_id}"))
}

fn decode_cursor(c: &str) -> Result<i64, ValidationError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix('g').and_then(|n| n.parse::<i64>().ok()))
        .ok_or_else(|| {
            ValidationError::new(
                "cursor",
                "is not a cursor returned by this API (start again without it)",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Ok(42));
        assert!(decode_cursor("not-a-cursor!").is_err());
        assert!(decode_cursor("eA").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("limit", None, 25, 1024), Ok(25));
        assert_eq!(parse_limit("limit", Some("1024"), 25, 1024), Ok(1024));
        assert!(parse_limit("limit", Some("0"), 25, 1024).is_err());
        assert!(parse_limit("limit", Some("1025"), 25, 1024).is_err());
        assert!(parse_limit("limit", Some("x"), 25, 1024).is_err());
    }
}
