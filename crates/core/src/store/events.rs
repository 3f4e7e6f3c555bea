//! The organisation's event log, read in log order for reconciliation.

use async_trait::async_trait;

use super::{EventFilter, StoreError};
use crate::event::StoredEvent;
use crate::ids::{EventId, OrgId};

#[async_trait]
pub trait EventLogStore: Send + Sync {
    /// The row position of an event, for `after` cursors.
    async fn event_position(&self, org_id: &OrgId, event_id: &EventId) -> Result<Option<i64>, StoreError>;
    /// Events in log order after position `after`, with their positions.
    async fn list_events(
        &self,
        org_id: &OrgId,
        filter: &EventFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, StoredEvent)>, StoreError>;
}
