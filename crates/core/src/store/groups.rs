//! Groups, their participants and join requests, and the events their changes append.
//!
//! `mutate_group` is the one way a group changes after its creation: the group is loaded,
//! the rule decides, and the decision with its events (the next sequences) and their
//! deliveries commits at once. Two concurrent mutations of one group are serialised: the
//! second sees the first's result.

use async_trait::async_trait;

use super::{
    CreateGroupOutcome, GroupFilter, GroupTarget, MutateError, Mutation, NewGroup, ReportRef, Rule, StoreError,
};
use crate::event::StoredEvent;
use crate::ids::{GroupId, OrgId};
use crate::model::{Group, Participant};
use crate::time::Timestamp;

#[async_trait]
pub trait GroupStore: Send + Sync {
    async fn create_group(&self, g: NewGroup) -> Result<CreateGroupOutcome, StoreError>;
    async fn get_group(
        &self,
        org_id: &OrgId,
        group_id: &GroupId,
    ) -> Result<Option<(Group, Vec<Participant>)>, StoreError>;
    /// A group by its row ID (as a command names it), with its participants.
    async fn group_by_row(&self, group_row_id: i64) -> Result<Option<(Group, Vec<Participant>)>, StoreError>;
    /// Newest first; `before` is the row ID the previous page ended with.
    async fn list_groups(
        &self,
        org_id: &OrgId,
        filter: &GroupFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Group>, StoreError>;
    /// The group's pending join requests, oldest first.
    async fn pending_join_requests(&self, group_row_id: i64) -> Result<Vec<crate::model::JoinRequest>, StoreError>;
    async fn find_group_by_wa_id(&self, number_id: i64, wa_group_id: &str) -> Result<Option<Group>, StoreError>;
    async fn group_events(&self, group_row_id: i64, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError>;
    /// Loads the group, runs `rule` on it and persists the decision, all in one transaction.
    ///
    /// With a provider `report`: a report the inbox already has is not applied again
    /// ([`Mutation::Duplicate`]; a held one only when `report.held_seq` names it); one behind
    /// a held report of the same correlation waits ([`Mutation::Blocked`]); an applied one is
    /// recorded as applied in the same transaction. An unknown group (or request) is
    /// `DomainError::NotFound`, and nothing is written.
    async fn mutate_group(
        &self,
        target: GroupTarget,
        report: Option<ReportRef>,
        now: Timestamp,
        rule: Rule,
    ) -> Result<Mutation, MutateError>;
}
