//! The store port. Implementations (SQLite today, PostgreSQL beside it later) hold every
//! durable record; each method is one transaction.

use async_trait::async_trait;
use thiserror::Error;

use crate::{
    DomainError,
    command::{Command, CommandPayload},
    event::StoredEvent,
    group::{Decision, GroupState},
    model::{ApiKey, Group, GroupStatus, JoinApprovalMode, Number, Org, Participant, Profile, ProviderKind},
    time::Timestamp,
    webhook::{AttemptRecord, DeliveryStats, DeliveryStatus, DeliveryView, Endpoint, OpenDelivery},
};

/// Storage failed (not the client's fault).
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// A change refused by the rules, or a storage failure.
#[derive(Debug, Error)]
pub enum MutateError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct NewNumber {
    pub org_id: String,
    pub waba_number: String,
    pub provider: ProviderKind,
    pub profile: Profile,
    pub default_join_approval_mode: JoinApprovalMode,
}

pub struct NewApiKey {
    pub org_id: String,
    pub name: Option<String>,
    pub numbers: Option<Vec<String>>,
    pub key_hash: String,
}

/// A group to create, with the command that asks the provider to create it.
pub struct NewGroup {
    pub org_id: String,
    pub number_id: i64,
    pub group_id: String,
    pub subject: String,
    pub description: String,
    pub join_approval_mode: JoinApprovalMode,
    pub command_id: String,
    pub command: CommandPayload,
    pub now: Timestamp,
}

impl NewGroup {
    /// The group as it stands once written: pending, as yet unknown to WhatsApp. `id` is its
    /// row, `waba_number` its number's.
    pub fn pending(&self, id: i64, waba_number: String) -> Group {
        Group {
            id,
            org_id: self.org_id.clone(),
            number_id: self.number_id,
            waba_number,
            group_id: self.group_id.clone(),
            status: GroupStatus::Pending,
            subject: self.subject.clone(),
            description: self.description.clone(),
            join_approval_mode: self.join_approval_mode,
            wa_group_id: None,
            invite_link: None,
            participant_count: 0,
            announcement_only: false,
            locked: false,
            suspended: false,
            last_sequence: 0,
            failure_reason: None,
            created_at: self.now,
            updated_at: self.now,
        }
    }
}

pub struct NewEndpoint {
    pub org_id: String,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub waba_numbers: Option<Vec<String>>,
    pub secret: String,
}

/// Changes to an endpoint; `None` leaves a field as it is (`Some(None)` clears a filter).
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Option<Vec<String>>>,
    pub waba_numbers: Option<Option<Vec<String>>>,
    pub disabled: Option<bool>,
}

/// Filters of the organisation's event log.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub group_row_id: Option<i64>,
    pub event_type: Option<String>,
    /// Restricts to these numbers (a key limited to some numbers).
    pub number_ids: Option<Vec<i64>>,
}

pub enum CreateGroupOutcome {
    Created(Box<Group>),
    /// The organisation already has a group with this client ID.
    DuplicateGroupId,
}

/// How a change finds its group.
#[derive(Debug, Clone)]
pub enum GroupTarget {
    /// By the client's group ID within an organisation (API requests).
    ClientId { org_id: String, group_id: String },
    /// By WhatsApp's group ID on a number (provider reports).
    WaGroupId { number_id: i64, wa_group_id: String },
    /// By the provider request ID of a submitted command (provider confirmations).
    Request { number_id: i64, request_id: String },
}

/// The rule a mutation runs inside the transaction.
/// A decision on a group's state. Pure: the store may run it more than once (on the state it
/// reads each time) before one run is committed.
pub type Rule = Box<dyn Fn(&GroupState) -> Result<Decision, DomainError> + Send>;

#[derive(Debug)]
pub enum Mutation {
    /// The decision was persisted (its `group` is the new state).
    Applied(Box<Decision>),
    /// The provider report with this deduplication key was applied before.
    Duplicate,
}

#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub number_id: Option<i64>,
    /// Restricts to these numbers (a key limited to some numbers).
    pub number_ids: Option<Vec<i64>>,
    pub status: Option<GroupStatus>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// The database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    // Tenancy.
    async fn create_org(&self, name: &str, now: Timestamp) -> Result<Option<Org>, StoreError>;
    async fn find_org(&self, name_or_id: &str) -> Result<Option<Org>, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError>;
    /// `None` when the number already exists (in any organisation).
    async fn add_number(&self, n: NewNumber, now: Timestamp) -> Result<Option<Number>, StoreError>;
    async fn set_number_disabled(&self, waba_number: &str, disabled: bool) -> Result<Option<Number>, StoreError>;
    async fn list_numbers(&self, org_id: Option<&str>) -> Result<Vec<Number>, StoreError>;
    async fn find_number(&self, waba_number: &str) -> Result<Option<Number>, StoreError>;
    async fn get_number(&self, number_id: i64) -> Result<Option<Number>, StoreError>;
    async fn create_api_key(&self, k: NewApiKey, now: Timestamp) -> Result<ApiKey, StoreError>;
    async fn list_api_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError>;
    /// True when the key existed and was not revoked before.
    async fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// The live (not revoked) key with this hash.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;

    // Groups.
    async fn create_group(&self, g: NewGroup) -> Result<CreateGroupOutcome, StoreError>;
    async fn get_group(&self, org_id: &str, group_id: &str) -> Result<Option<(Group, Vec<Participant>)>, StoreError>;
    /// Newest first; `before` is the row ID the previous page ended with.
    async fn list_groups(
        &self,
        org_id: &str,
        filter: &GroupFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Group>, StoreError>;
    /// The group's pending join requests, oldest first.
    async fn pending_join_requests(&self, group_row_id: i64) -> Result<Vec<crate::model::JoinRequest>, StoreError>;
    /// A command's status and its provider's answer (JSON), if the command exists.
    async fn command_outcome(&self, command_id: &str) -> Result<Option<(String, Option<String>)>, StoreError>;
    async fn find_group_by_wa_id(&self, number_id: i64, wa_group_id: &str) -> Result<Option<Group>, StoreError>;
    async fn group_events(&self, group_row_id: i64, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError>;
    /// Loads the group, runs `rule` on it and persists the decision, all in one transaction.
    /// With `dedup_key`, a report already applied under that key is skipped.
    async fn mutate_group(
        &self,
        target: GroupTarget,
        dedup_key: Option<String>,
        now: Timestamp,
        rule: Rule,
    ) -> Result<Mutation, MutateError>;

    // Commands.
    /// Up to `limit` commands waiting to be submitted whose time has come, after command row
    /// `after`, oldest first. Nothing is claimed: the one worker that submits commands keeps
    /// track of those it is submitting.
    async fn due_commands(&self, now: Timestamp, after: i64, limit: i64) -> Result<Vec<Command>, StoreError>;
    /// The provider accepted these commands (row, its request ID); their confirmations will
    /// arrive as provider events.
    async fn commands_submitted(&self, submitted: &[(i64, String)], now: Timestamp) -> Result<(), StoreError>;
    /// Submission failed; try again at `not_before` (the attempt is counted).
    async fn command_retry(&self, id: i64, error: &str, not_before: Timestamp) -> Result<(), StoreError>;
    // Webhook endpoints.
    async fn create_endpoint(&self, e: NewEndpoint, now: Timestamp) -> Result<Endpoint, StoreError>;
    async fn list_endpoints(&self, org_id: &str) -> Result<Vec<Endpoint>, StoreError>;
    async fn get_endpoint(&self, org_id: &str, id: &str) -> Result<Option<Endpoint>, StoreError>;
    async fn update_endpoint(
        &self,
        org_id: &str,
        id: &str,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;
    /// Deletes the endpoint; its undelivered deliveries are dropped with it.
    async fn delete_endpoint(&self, org_id: &str, id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Makes `secret` current; the old one keeps signing until `previous_until`.
    async fn rotate_endpoint_secret(
        &self,
        org_id: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;

    // Deliveries. One dispatcher per database schedules them (see `wagroups-delivery`): it
    // reads open deliveries in queue order (ID order) and records outcomes in batches.
    /// Enabled endpoints of every organisation (what the dispatcher sends to).
    async fn active_endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// The newest delivery ID (0 when there is none).
    async fn last_delivery_id(&self) -> Result<i64, StoreError>;
    /// Open (pending or failed) deliveries with an ID in `(after, upto]`, in ID order, of
    /// one endpoint or of all.
    async fn open_deliveries(
        &self,
        endpoint_id: Option<&str>,
        after: i64,
        upto: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OpenDelivery>, StoreError>;
    /// Records attempts in one transaction (a delivery no longer open is left as it is);
    /// a `DeadAndDisable` outcome disables the endpoint.
    async fn record_attempts(&self, records: &[(i64, AttemptRecord)]) -> Result<(), StoreError>;
    /// Newest first; `before` is the delivery ID the previous page ended with.
    async fn list_deliveries(
        &self,
        org_id: &str,
        endpoint_id: &str,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError>;
    /// Re-queues the endpoint's failed and dead deliveries created since `since`.
    async fn recover_deliveries(
        &self,
        org_id: &str,
        endpoint_id: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Queues the event again for its endpoints and for the endpoints that match it now.
    /// `None` when the organisation has no such event.
    async fn redeliver_event(&self, org_id: &str, event_id: &str, now: Timestamp) -> Result<Option<u64>, StoreError>;
    async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError>;

    // The organisation's event log.
    /// The row position of an event, for `after` cursors.
    async fn event_position(&self, org_id: &str, event_id: &str) -> Result<Option<i64>, StoreError>;
    /// Events in log order after position `after`, with their positions.
    async fn list_events(
        &self,
        org_id: &str,
        filter: &EventFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, StoredEvent)>, StoreError>;

    /// Commands not yet carried out (pending or awaiting confirmation).
    async fn open_commands(&self) -> Result<i64, StoreError>;
}

pub mod sim {
    //! Persistence of the simulated WhatsApp network (its own state, apart from the
    //! gateway's records), and its outbox of reports to the gateway.

    use async_trait::async_trait;

    use super::StoreError;
    use crate::{provider::ProviderEvent, time::Timestamp};

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SimGroup {
        pub jid: String,
        pub waba_number: String,
        pub profile: String,
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
        /// `everyone`, `contacts` or `nobody`.
        pub add_privacy: String,
        /// Business numbers that have the user as a contact.
        pub contact_of: Vec<String>,
    }

    impl SimUser {
        /// A user nobody configured: on WhatsApp, anyone may add them.
        pub fn default_for(phone: &str) -> SimUser {
            SimUser {
                phone: phone.to_string(),
                on_whatsapp: true,
                add_privacy: "everyone".into(),
                contact_of: Vec::new(),
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SimMember {
        pub phone: String,
        /// `superadmin`, `admin` or `member`.
        pub role: String,
        /// `member`, `left` or `removed`.
        pub state: String,
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SimJoinRequest {
        pub id: String,
        pub phone: String,
        /// `pending`, `approved`, `rejected` or `revoked`.
        pub state: String,
        pub created_at: Timestamp,
    }

    #[derive(Debug, Clone)]
    pub struct SimGroupState {
        pub group: SimGroup,
        pub members: Vec<SimMember>,
        pub join_requests: Vec<SimJoinRequest>,
        /// The users named in the action (configured ones only).
        pub users: Vec<SimUser>,
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
    }
}
