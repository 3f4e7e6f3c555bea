//! Persistence of the simulated WhatsApp network (its own state, apart from the
//! gateway's records), and its outbox of reports to the gateway.

use async_trait::async_trait;

use super::StoreError;
use crate::{
    model::{AddPrivacy, JoinRequestState, ParticipantRole, ParticipantState, Profile},
    provider::ProviderEvent,
    time::Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGroup {
    pub jid: String,
    pub waba_number: String,
    pub profile: Profile,
    pub create_key: String,
    pub subject: String,
    pub description: String,
    pub approval_required: bool,
    pub invite_code: String,
    pub created_at: Timestamp,
    pub announcement_only: bool,
    pub locked: bool,
    pub deleted: bool,
    pub suspended: bool,
}

/// A simulated WhatsApp user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    pub phone: String,
    pub on_whatsapp: bool,
    pub add_privacy: AddPrivacy,
    /// Business numbers that have the user as a contact.
    pub contact_of: Vec<String>,
}

impl SimUser {
    /// A user nobody configured: on WhatsApp, anyone may add them.
    pub fn default_for(phone: &str) -> SimUser {
        SimUser {
            phone: phone.to_string(),
            on_whatsapp: true,
            add_privacy: AddPrivacy::Everyone,
            contact_of: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMember {
    pub phone: String,
    pub role: ParticipantRole,
    /// `member`, `invited`, `left` or `removed`.
    pub state: ParticipantState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimJoinRequest {
    pub id: String,
    pub phone: String,
    pub state: JoinRequestState,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct SimGroupState {
    pub group: SimGroup,
    pub members: Vec<SimMember>,
    pub join_requests: Vec<SimJoinRequest>,
    /// The users named in the action (configured ones only).
    pub users: Vec<SimUser>,
    /// A refusal the sandbox asked for the group's next write.
    pub next_write_refusal: Option<SimRefusal>,
}

/// The users an action names, as the organisation that acts has configured them: each
/// organisation has simulated users of its own (its `scope`).
#[derive(Debug, Clone, Default)]
pub struct SimUsers {
    pub scope: String,
    pub phones: Vec<String>,
}

impl SimGroupState {
    pub fn user(&self, phone: &str) -> SimUser {
        self.users
            .iter()
            .find(|u| u.phone == phone)
            .cloned()
            .unwrap_or_else(|| SimUser::default_for(phone))
    }
}

/// A change of the simulated network, with the reports it sends to the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimChange {
    /// The group's new row, when it changed.
    pub group: Option<SimGroup>,
    pub members: Vec<SimMember>,
    pub join_requests: Vec<SimJoinRequest>,
    pub reports: Vec<ProviderEvent>,
    /// The network's answer for each item of the action.
    pub results: Vec<crate::provider::ItemResult>,
    /// The change used up the group's [`SimGroupState::next_write_refusal`].
    pub refusal_used: bool,
}

#[derive(Debug, Clone)]
pub enum SimTarget {
    InviteCode(String),
    Jid(String),
}

/// Why the simulated WhatsApp refused a user's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRefusal {
    /// A stable machine-readable reason, e.g. `already_member`.
    pub code: String,
    pub message: String,
}

/// A change to a simulated group's state. Pure: it may run more than once.
pub type SimRule = Box<dyn Fn(&SimGroupState) -> Result<SimChange, SimRefusal> + Send>;

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    /// Unique to this report across every simulated network the gateway has heard from
    /// (its ID, qualified by the network's database).
    pub dedup_key: String,
    pub waba_number: String,
    pub report: ProviderEvent,
}

#[async_trait]
pub trait SimStore: Send + Sync {
    /// Creates the group unless one with the same `create_key` exists, and queues the
    /// `reports` in the same transaction. Returns the group as stored (the existing one
    /// when the key was seen before) and whether it was new.
    async fn sim_create_group(
        &self,
        group: SimGroup,
        members: Vec<SimMember>,
        reports: Vec<ProviderEvent>,
    ) -> Result<(SimGroup, bool), StoreError>;
    /// Loads a group, runs `rule` and persists the change and its reports atomically.
    /// `None` when no group matches; nothing is written when the rule refuses.
    /// `users` are loaded into the state for the rule.
    async fn sim_mutate(
        &self,
        target: SimTarget,
        users: SimUsers,
        rule: SimRule,
    ) -> Result<Option<Result<SimChange, SimRefusal>>, StoreError>;
    /// Configures a user in `scope`.
    async fn sim_put_user(&self, scope: &str, user: SimUser) -> Result<(), StoreError>;
    /// A user as `scope` configured it, else the default.
    async fn sim_user(&self, scope: &str, phone: &str) -> Result<SimUser, StoreError>;
    /// A group's whole state: the group, its members and join requests.
    async fn sim_group(&self, target: SimTarget) -> Result<Option<SimGroupState>, StoreError>;
    /// A group, without its members.
    async fn sim_find_group(&self, target: SimTarget) -> Result<Option<SimGroup>, StoreError>;
    /// Queued reports after report `after`, oldest first.
    async fn sim_outbox(&self, after: i64, limit: i64) -> Result<Vec<OutboxItem>, StoreError>;
    /// Removes delivered reports.
    async fn sim_outbox_done(&self, ids: Vec<i64>) -> Result<(), StoreError>;
    /// The group's next write is refused so (`None`: no longer).
    async fn sim_refuse_next_write(&self, jid: &str, refusal: Option<SimRefusal>) -> Result<(), StoreError>;
}
