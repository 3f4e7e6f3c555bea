//! The store port, split by concern. Implementations (SQLite today, PostgreSQL beside it
//! later) hold every durable record; each method is one transaction.
//!
//! # What every backend must guarantee
//!
//! The conformance suite (`wagroups-conformance`) checks each of these, with concurrent
//! writers where they matter, so a backend that gets one wrong fails it.
//!
//! - **Atomic changes.** A method's writes commit together or not at all; a change refused by
//!   its rule writes nothing.
//! - **Gap-free sequences.** A group's events carry `sequence` 1, 2, 3… with no gap and no
//!   repeat, however many writers change the group at once: concurrent changes of one group
//!   are serialised (SQLite's single writer, a row lock on PostgreSQL).
//! - **Cursors never skip.** A read "after position P" (`due_commands`, `open_deliveries`,
//!   `list_events`) must never miss a row that becomes visible later with a position at or
//!   below one it already returned: positions must become visible in position order. SQLite
//!   gets this from its single writer; a backend whose transactions commit out of position
//!   order (PostgreSQL sequences) must hold readers back to the oldest position whose
//!   transaction is still open, or assign positions at commit.
//! - **Claims.** Commands and deliveries are worked on by one worker at a time. With one
//!   process per database (SQLite), the worker's memory is the claim: it reads without
//!   claiming and remembers what it is working on, and a crash frees everything (the work is
//!   found again, pending, after the restart). A backend shared by several processes must
//!   claim in the database (a lock skipped by others, or a lease with fencing) and release a
//!   claim when its holder dies.
//! - **A claim ends once.** The end of a piece of work is a conditional write on its open
//!   state, so racing ends cannot both win: a command leaves `pending` once
//!   (`commands_submitted` keeps the first request ID; `command_retry` touches only a
//!   pending command), and a delivery leaves `pending`/`failed` once (`record_attempts` on a
//!   delivery that has succeeded or died records nothing, in its history or its count).

use async_trait::async_trait;

use crate::ids::{ApiKeyId, CommandId, EndpointId, GroupId, OrgId};
use crate::{
    DomainError,
    command::CommandPayload,
    group::{Decision, GroupState},
    model::{Group, GroupStatus, JoinApprovalMode, Profile, ProviderKind},
    time::Timestamp,
};

pub use crate::error::{MutateError, StoreError};

pub struct NewNumber {
    pub org_id: OrgId,
    pub waba_number: String,
    pub provider: ProviderKind,
    pub profile: Profile,
    pub default_join_approval_mode: JoinApprovalMode,
    /// The provider's configuration of the number (`{}` for the simulated network).
    pub provider_config: serde_json::Value,
    /// The number's name at its provider (Meta's phone number ID); unique per provider.
    pub provider_ref: Option<String>,
}

/// An organisation to create; its ID is minted by the core (`NewOrg::named`).
pub struct NewOrg {
    pub id: OrgId,
    pub name: String,
}

impl NewOrg {
    pub fn named(name: &str) -> NewOrg {
        NewOrg {
            id: OrgId::new(),
            name: name.to_string(),
        }
    }
}

pub struct NewApiKey {
    /// `key_…`, minted by the core.
    pub id: ApiKeyId,
    pub org_id: OrgId,
    pub name: Option<String>,
    pub numbers: Option<Vec<String>>,
    pub key_hash: String,
}

/// A group to create, with the command that asks the provider to create it.
pub struct NewGroup {
    pub org_id: OrgId,
    pub number_id: i64,
    pub group_id: GroupId,
    pub subject: String,
    pub description: String,
    pub join_approval_mode: JoinApprovalMode,
    pub command_id: CommandId,
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
            phone_number_id: None,
            waba_id: None,
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
    /// `ep_…`, minted by the core.
    pub id: EndpointId,
    pub org_id: OrgId,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub waba_numbers: Option<Vec<String>>,
    pub format: crate::webhook::WebhookFormat,
    /// Sealed by the core ([`crate::webhook::seal_secret`]): a backend stores it as it is.
    pub secret: crate::secret::Sealed,
    /// A `meta` endpoint's verify token, sealed by the core.
    pub verify_token: Option<crate::secret::Sealed>,
}

/// Changes to an endpoint; `None` leaves a field as it is (`Some(None)` clears a filter).
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Option<Vec<String>>>,
    pub waba_numbers: Option<Option<Vec<String>>>,
    pub format: Option<crate::webhook::WebhookFormat>,
    pub disabled: Option<bool>,
    /// A new verify token (sealed by the core).
    pub verify_token: Option<crate::secret::Sealed>,
}

impl EndpointPatch {
    /// The endpoint with the patch applied. Disabling through the API gives the reason
    /// "disabled by the API" unless the endpoint was already disabled for another (a `410`);
    /// enabling clears the reason.
    pub fn apply(&self, ep: &mut crate::webhook::Endpoint) {
        if let Some(url) = &self.url {
            ep.url = url.clone();
        }
        if let Some(d) = &self.description {
            ep.description = d.clone();
        }
        if let Some(t) = &self.event_types {
            ep.event_types = t.clone();
        }
        if let Some(n) = &self.waba_numbers {
            ep.waba_numbers = n.clone();
        }
        if let Some(f) = self.format {
            ep.format = f;
        }
        if let Some(t) = &self.verify_token {
            ep.verify_token = Some(t.clone());
        }
        if let Some(disabled) = self.disabled {
            ep.disabled = disabled;
            if !disabled {
                ep.disabled_reason = None;
            } else if ep.disabled_reason.is_none() {
                ep.disabled_reason = Some("disabled by the API".into());
            }
        }
    }
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
    ClientId { org_id: OrgId, group_id: GroupId },
    /// By WhatsApp's group ID on a number (provider reports).
    WaGroupId { number_id: i64, wa_group_id: String },
    /// By the provider request ID of a submitted command (provider confirmations).
    Request { number_id: i64, request_id: String },
    /// By the provider request ID of a pending operation (confirmations of writes), or,
    /// when no operation has that request ID, by `fallback`.
    Operation {
        number_id: i64,
        request_id: String,
        fallback: Option<crate::provider::OperationFallback>,
    },
}

/// The rule a mutation runs inside the transaction.
/// A decision on a group's state. Pure: the store may run it more than once (on the state it
/// reads each time) before one run is committed.
pub type Rule = Box<dyn Fn(&GroupState) -> Result<Decision, DomainError> + Send>;

#[derive(Debug)]
pub enum Mutation {
    /// The decision was persisted (its `group` is the new state).
    Applied(Box<Decision>),
    /// The provider report was applied before (or is held, or dead): nothing was done.
    Duplicate,
    /// An earlier report of the same group is held: this one must wait behind it. Nothing
    /// was done.
    Blocked,
}

#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub number_id: Option<i64>,
    /// Restricts to these numbers (a key limited to some numbers).
    pub number_ids: Option<Vec<i64>>,
    pub status: Option<GroupStatus>,
    /// Only groups created after this one (row ID), oldest first: the page before a cursor.
    /// `None`: newest first, before the `before` row given beside the filter.
    pub newer_than: Option<i64>,
}

mod commands;
mod events;
mod groups;
mod idempotency;
mod inbox;
mod operations;
pub mod sim;
mod tenancy;
mod webhooks;

pub use commands::CommandStore;
pub use events::EventLogStore;
pub use groups::GroupStore;
pub use idempotency::IdempotencyStore;
pub use inbox::{HeldReport, InboxStats, InboxStore, ReportRef};
pub use operations::{NewOperation, OperationStore};
pub use tenancy::TenancyStore;
pub use webhooks::WebhookStore;

/// Every store trait, for code that calls a concrete store's methods.
pub mod prelude {
    pub use super::{
        CommandStore, EventLogStore, GroupStore, IdempotencyStore, InboxStore, OperationStore, Store, TenancyStore,
        WebhookStore, sim::SimStore,
    };
}

/// The whole gateway store: every concern's port, and a liveness check.
#[async_trait]
pub trait Store:
    TenancyStore
    + GroupStore
    + CommandStore
    + WebhookStore
    + EventLogStore
    + InboxStore
    + OperationStore
    + IdempotencyStore
    + Send
    + Sync
{
    /// The database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Releases what the store holds, at shutdown (after the workers stopped).
    async fn close(&self) {}
}
