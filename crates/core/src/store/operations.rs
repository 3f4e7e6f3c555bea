//! Writes WhatsApp confirms later (operations): recorded when the provider accepts them,
//! closed by their confirmation (through `mutate_group`, with `GroupTarget::Operation`).

use async_trait::async_trait;

use super::StoreError;
use crate::ids::{OperationId, OrgId};
use crate::{model::Operation, time::Timestamp};

pub struct NewOperation {
    /// `op_…`, minted by the core.
    pub id: OperationId,
    pub org_id: OrgId,
    pub group_row_id: i64,
    pub number_id: i64,
    /// What the provider accepted it under (its confirmation names it).
    pub request_id: String,
    pub kind: crate::model::OperationKind,
}

#[async_trait]
pub trait OperationStore: Send + Sync {
    async fn create_operation(&self, op: NewOperation, now: Timestamp) -> Result<Operation, StoreError>;
    /// An operation of the organisation.
    async fn get_operation(&self, org_id: &OrgId, id: &OperationId) -> Result<Option<Operation>, StoreError>;
    /// The provider accepted the write under `request_id` (its confirmation will name it).
    async fn operation_accepted(&self, id: &OperationId, request_id: &str, now: Timestamp) -> Result<(), StoreError>;
    /// The provider answered at once: the operation ends here (a pending one only).
    async fn finish_operation(
        &self,
        id: &OperationId,
        succeeded: bool,
        results: &[crate::model::ItemResult],
        error: Option<(&str, &str)>,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// Pending operations recorded before `before`, oldest first: (number row, request ID).
    async fn stale_operations(&self, before: Timestamp, limit: i64) -> Result<Vec<(i64, String)>, StoreError>;
}
