//! The provider port: how wagroups talks to WhatsApp (Meta's Cloud API or the simulated
//! network), what each provider can do, and what WhatsApp reports back.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{
    command::Command,
    model::{Number, NumberHealth, OperationKind, Profile},
    time::Timestamp,
};

/// What a provider can do for a number. The domain decides what to do when a capability is
/// missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Participants can be added directly (otherwise they are invited through the link).
    pub direct_add: bool,
    /// Admins can be promoted and demoted.
    pub admin_promotion: bool,
    /// Announcement-only and locked-info settings exist.
    pub announcement_and_locked: bool,
    /// Participants besides the business number.
    pub max_participants: usize,
    /// Writes are accepted and confirmed later by a report (Meta's Cloud API): the gateway
    /// records the operation before asking.
    pub confirms_writes_later: bool,
    /// A command submitted twice acts once (the simulated network keys on the command ID).
    /// When not (Meta's Cloud API), a command whose answer was lost is in doubt until the
    /// provider's listing settles it, never sent again blindly.
    pub idempotent_submit: bool,
}

impl Capabilities {
    pub fn for_profile(profile: Profile) -> Self {
        match profile {
            Profile::Cloud => Capabilities {
                direct_add: false,
                admin_promotion: false,
                announcement_and_locked: false,
                max_participants: 8,
                confirms_writes_later: true,
                idempotent_submit: true,
            },
            Profile::LinkedDevice => Capabilities {
                direct_add: true,
                admin_promotion: true,
                announcement_and_locked: true,
                max_participants: 1023,
                confirms_writes_later: false,
                idempotent_submit: true,
            },
        }
    }
}

/// A provider accepted a command; its outcome arrives later as a [`ProviderEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProviderError {
    /// Worth trying again later (network, rate limit, provider outage).
    #[error("provider unavailable: {0}")]
    Retryable(String),
    /// WhatsApp refused the command; retrying will not help.
    #[error("{code}: {message}")]
    Rejected { code: String, message: String },
    /// The request may have reached WhatsApp and its answer was lost (a timeout): the
    /// command is in doubt, to be settled by the provider's listing.
    #[error("no answer: {0}")]
    InDoubt(String),
    /// The number cannot be served for now: its credentials were refused (until they are
    /// replaced) or WhatsApp asked for a pause (until `health.until`). Its work waits, without
    /// counting as an attempt, and nothing is sent for it meanwhile.
    #[error("{message}")]
    Paused { health: NumberHealth, message: String },
    /// The number may not do this at all (Meta's `131215`: not eligible for the Groups API):
    /// refused, and the number's health says so.
    #[error("{code}: {message}")]
    Ineligible { code: String, message: String },
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn capabilities(&self, number: &Number) -> Capabilities {
        Capabilities::for_profile(number.profile)
    }

    /// Submits a command. Must be idempotent on `command.command_id`: a command submitted
    /// again after a crash must not act twice.
    async fn submit(&self, number: &Number, command: &Command) -> Result<Submitted, ProviderError>;

    /// Carries out a write to an existing group. What changed is reported as
    /// [`ProviderEvent`]s. A provider that knows the outcome at once answers it per item
    /// ([`Operated::Done`]); one that confirms later (Meta's Cloud API) answers
    /// [`Operated::Accepted`] and reports [`ProviderEvent::OperationSucceeded`] or
    /// [`ProviderEvent::OperationFailed`] under the request ID. `operation_id` identifies the
    /// write: a provider that sees it again must not act twice.
    async fn operate(
        &self,
        number: &Number,
        wa_group_id: &str,
        op: &ProviderOp,
        operation_id: &str,
    ) -> Result<Operated, ProviderError>;

    /// Hands the reports the provider has queued to `sink` before returning (providers whose
    /// reports arrive on their own schedule, like Meta's webhooks, do nothing).
    async fn flush(&self, _sink: &dyn ProviderEventSink) {}

    /// A group's invite link, asked of WhatsApp (to take over a group whose creation's answer
    /// was lost). `None` when the provider cannot say.
    async fn invite_link(&self, _number: &Number, _wa_group_id: &str) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }

    /// The number's groups as WhatsApp lists them now, for reconciliation (`None`: this
    /// provider's reports cannot be lost, so there is nothing to reconcile).
    async fn groups(&self, _number: &Number) -> Result<Option<Vec<RemoteGroup>>, ProviderError> {
        Ok(None)
    }
}

/// A group as the provider lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteGroup {
    pub wa_group_id: String,
    pub subject: String,
    pub description: String,
    pub suspended: bool,
    /// Members besides the business number (WhatsApp IDs: phone digits).
    pub members: Vec<String>,
}

/// How a provider took a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operated {
    /// Carried out: the outcome for each item.
    Done(Vec<ItemResult>),
    /// Carried out in part, then stopped by a failure that concerns the number (a refused
    /// token, a rate limit): the outcome for each item (those not carried out say why), and
    /// the failure, which the gateway records as it would have on its own.
    Partial {
        results: Vec<ItemResult>,
        stopped_by: ProviderError,
    },
    /// Accepted under this request ID; the outcome comes later as a report.
    Accepted { request_id: String },
}

pub use crate::model::{ItemResult, ItemStatus};

/// A write to an existing group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderOp {
    UpdateSettings(SettingsChange),
    /// Adds directly; users whose privacy forbids it are answered `invite_required`.
    AddParticipants {
        phones: Vec<String>,
    },
    /// Sends the user the group's invite link 1:1.
    Invite {
        phones: Vec<String>,
    },
    RemoveParticipants {
        phones: Vec<String>,
    },
    SetAdmins {
        phones: Vec<String>,
        promote: bool,
    },
    ResetInviteLink,
    ResolveJoinRequests {
        ids: Vec<String>,
        approve: bool,
    },
    Delete,
}

impl ProviderOp {
    /// The operation's name, as operations and `GROUP_OPERATION_FAILED` events show it.
    pub fn kind(&self) -> OperationKind {
        match self {
            ProviderOp::UpdateSettings(_) => OperationKind::UpdateSettings,
            ProviderOp::AddParticipants { .. } => OperationKind::AddParticipants,
            ProviderOp::Invite { .. } => OperationKind::InviteParticipants,
            ProviderOp::RemoveParticipants { .. } => OperationKind::RemoveParticipants,
            ProviderOp::SetAdmins { promote: true, .. } => OperationKind::PromoteAdmins,
            ProviderOp::SetAdmins { promote: false, .. } => OperationKind::DemoteAdmins,
            ProviderOp::ResetInviteLink => OperationKind::ResetInviteLink,
            ProviderOp::ResolveJoinRequests { approve: true, .. } => OperationKind::ApproveJoinRequests,
            ProviderOp::ResolveJoinRequests { approve: false, .. } => OperationKind::RejectJoinRequests,
            ProviderOp::Delete => OperationKind::DeleteGroup,
        }
    }
}

/// Settings to change; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_approval_mode: Option<crate::model::JoinApprovalMode>,
}

impl SettingsChange {
    pub fn is_empty(&self) -> bool {
        *self == SettingsChange::default()
    }
}

/// What WhatsApp reports about a number's groups, in one vocabulary for every provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderEvent {
    GroupCreated {
        request_id: String,
        wa_group_id: String,
        invite_link: String,
        at: Timestamp,
        /// Outcome for each participant asked for at creation.
        #[serde(default)]
        participants: Vec<ItemResult>,
    },
    GroupCreateFailed {
        request_id: String,
        code: String,
        message: String,
        at: Timestamp,
    },
    ParticipantJoined {
        wa_group_id: String,
        phone: String,
        at: Timestamp,
        /// `invite_link` (default), `added` or `join_request_approved`.
        #[serde(default)]
        reason: Option<String>,
    },
    ParticipantLeft {
        wa_group_id: String,
        phone: String,
        at: Timestamp,
    },
    ParticipantRemoved {
        wa_group_id: String,
        phone: String,
        at: Timestamp,
    },
    ParticipantInvited {
        wa_group_id: String,
        phone: String,
        /// The link sent; `None`: the group's link as the record has it (Meta's template puts
        /// the current link in at delivery and does not say which).
        invite_link: Option<String>,
        at: Timestamp,
    },
    ParticipantPromoted {
        wa_group_id: String,
        phone: String,
        at: Timestamp,
    },
    ParticipantDemoted {
        wa_group_id: String,
        phone: String,
        at: Timestamp,
    },
    JoinRequestCreated {
        wa_group_id: String,
        join_request_id: String,
        phone: String,
        at: Timestamp,
    },
    JoinRequestRevoked {
        wa_group_id: String,
        join_request_id: String,
        phone: String,
        at: Timestamp,
    },
    JoinRequestRejected {
        wa_group_id: String,
        join_request_id: String,
        phone: String,
        at: Timestamp,
    },
    SettingsUpdated {
        wa_group_id: String,
        change: SettingsChange,
        at: Timestamp,
    },
    InviteLinkReset {
        wa_group_id: String,
        invite_link: String,
        at: Timestamp,
    },
    GroupDeleted {
        wa_group_id: String,
        at: Timestamp,
    },
    GroupSuspended {
        wa_group_id: String,
        at: Timestamp,
    },
    GroupSuspensionCleared {
        wa_group_id: String,
        at: Timestamp,
    },
    /// A write accepted under `request_id` was carried out (its effects are reported on
    /// their own).
    OperationSucceeded {
        request_id: String,
        #[serde(default)]
        results: Vec<ItemResult>,
        at: Timestamp,
        /// How to find the operation when its request ID was never learned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback: Option<OperationFallback>,
    },
    /// A write accepted under `request_id` was refused.
    OperationFailed {
        request_id: String,
        code: String,
        message: String,
        at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback: Option<OperationFallback>,
    },
    /// A report the gateway does not understand (a new kind from the provider): kept as
    /// dead with its payload, and counted, never an error.
    Unrecognised {
        /// The group it names, if any.
        correlation: String,
        /// What it is, in words.
        what: String,
        /// The provider's own text of it.
        payload: String,
    },
}

/// Where a confirmation's operation is when its request ID was never learned (Meta's answer
/// to a write named none, while its confirmation does): the group's oldest pending operation
/// of this kind whose request ID is still unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFallback {
    pub wa_group_id: String,
    pub kind: OperationKind,
}

impl ProviderEvent {
    /// What the report is about, as the provider names it: reports of one correlation are
    /// applied in the order received. A creation's confirmation (or failure) names its request:
    /// it must not queue behind the group's other reports, which may come first (Meta sends
    /// in no set order) and cannot apply before it; they wait for it instead (the group is
    /// not known until it applies). Other reports name the WhatsApp group.
    pub fn correlation(&self) -> &str {
        match self {
            ProviderEvent::GroupCreated { request_id, .. }
            | ProviderEvent::GroupCreateFailed { request_id, .. }
            | ProviderEvent::OperationSucceeded { request_id, .. }
            | ProviderEvent::OperationFailed { request_id, .. } => request_id,
            ProviderEvent::Unrecognised { correlation, .. } => correlation,
            other => other.wa_group_id().unwrap_or_default(),
        }
    }

    /// The WhatsApp group the report is about (creation reports name the request instead).
    pub fn wa_group_id(&self) -> Option<&str> {
        match self {
            ProviderEvent::GroupCreated { .. }
            | ProviderEvent::GroupCreateFailed { .. }
            | ProviderEvent::OperationSucceeded { .. }
            | ProviderEvent::OperationFailed { .. }
            | ProviderEvent::Unrecognised { .. } => None,
            ProviderEvent::ParticipantJoined { wa_group_id, .. }
            | ProviderEvent::ParticipantLeft { wa_group_id, .. }
            | ProviderEvent::ParticipantRemoved { wa_group_id, .. }
            | ProviderEvent::ParticipantInvited { wa_group_id, .. }
            | ProviderEvent::ParticipantPromoted { wa_group_id, .. }
            | ProviderEvent::ParticipantDemoted { wa_group_id, .. }
            | ProviderEvent::JoinRequestCreated { wa_group_id, .. }
            | ProviderEvent::JoinRequestRevoked { wa_group_id, .. }
            | ProviderEvent::JoinRequestRejected { wa_group_id, .. }
            | ProviderEvent::SettingsUpdated { wa_group_id, .. }
            | ProviderEvent::InviteLinkReset { wa_group_id, .. }
            | ProviderEvent::GroupDeleted { wa_group_id, .. }
            | ProviderEvent::GroupSuspended { wa_group_id, .. }
            | ProviderEvent::GroupSuspensionCleared { wa_group_id, .. } => Some(wa_group_id),
        }
    }
}

/// Finds the provider a number is bound to.
pub trait ProviderRegistry: Send + Sync {
    fn for_number(&self, number: &Number) -> Option<std::sync::Arc<dyn Provider>>;
}

/// The providers of this process, by kind: a provider joins with one [`Registry::with`].
#[derive(Clone, Default)]
pub struct Registry {
    providers: std::collections::HashMap<crate::model::ProviderKind, std::sync::Arc<dyn Provider>>,
}

impl Registry {
    /// `kind`'s numbers are served by `provider`.
    pub fn with(mut self, kind: crate::model::ProviderKind, provider: std::sync::Arc<dyn Provider>) -> Registry {
        self.providers.insert(kind, provider);
        self
    }
}

impl ProviderRegistry for Registry {
    /// `None` when this process has no provider for the number's kind.
    fn for_number(&self, number: &Number) -> Option<std::sync::Arc<dyn Provider>> {
        self.providers.get(&number.provider).cloned()
    }
}

/// A provider event for one business number, with a key that identifies it across
/// redeliveries (the same report applied twice changes nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEnvelope {
    pub waba_number: String,
    pub dedup_key: String,
    pub event: ProviderEvent,
}

/// What the inbox made of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Applied,
    /// Seen before (applied, held or dead).
    Duplicate,
    /// Kept, to be applied when it can be.
    Held,
    /// It can never be applied (kept as dead).
    Dead,
}

/// Where providers hand their reports: the provider inbox (see [`crate::inbox`]).
#[async_trait]
pub trait ProviderEventSink: Send + Sync {
    /// Takes one report: when this returns `Ok`, the report is durably the gateway's (applied,
    /// held, or kept as dead) and the provider may forget it. An error (storage) means it
    /// was not taken: deliver it again.
    async fn deliver(&self, envelope: ProviderEnvelope) -> Result<Received, crate::error::ServiceError>;
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}")))
    }
}
