//! Webhook endpoints and the delivery queue. Deliveries are written with their events (in
//! `mutate_group`); one dispatcher per database schedules them: it reads open deliveries in
//! queue order (ID order) after a cursor and records outcomes in batches.

use async_trait::async_trait;

use super::{EndpointPatch, NewEndpoint, StoreError};
use crate::ids::{EndpointId, EventId, OrgId};
use crate::secret::Sealed;
use crate::time::Timestamp;
use crate::webhook::{AttemptRecord, DeliveryStats, DeliveryStatus, DeliveryView, Endpoint, OpenDelivery};

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_endpoint(&self, e: NewEndpoint, now: Timestamp) -> Result<Endpoint, StoreError>;
    async fn list_endpoints(&self, org_id: &OrgId) -> Result<Vec<Endpoint>, StoreError>;
    async fn get_endpoint(&self, org_id: &OrgId, id: &EndpointId) -> Result<Option<Endpoint>, StoreError>;
    async fn update_endpoint(
        &self,
        org_id: &OrgId,
        id: &EndpointId,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;
    /// Deletes the endpoint; its undelivered deliveries are dropped with it.
    async fn delete_endpoint(&self, org_id: &OrgId, id: &EndpointId, now: Timestamp) -> Result<bool, StoreError>;
    /// Makes `secret` (sealed) current; the old one keeps signing until `previous_until`.
    async fn rotate_endpoint_secret(
        &self,
        org_id: &OrgId,
        id: &EndpointId,
        secret: &Sealed,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError>;

    /// Enabled endpoints of every organisation (what the dispatcher sends to).
    async fn active_endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// Every endpoint row of every organisation: disabled and deleted ones too (a deleted
    /// endpoint's secrets are still stored).
    async fn all_endpoints(&self) -> Result<Vec<Endpoint>, StoreError>;
    /// Replaces the stored form of an endpoint's secrets, `(secret, previous)`, with `new`
    /// when they are still `was` (a rotation in between wins), leaving everything else,
    /// `updated_at` included, and leaving no copy of the old form behind where the backend
    /// can avoid it. Whether it replaced them.
    async fn reseal_endpoint_secrets(
        &self,
        id: &EndpointId,
        was: (&Sealed, Option<&Sealed>),
        new: (&Sealed, Option<&Sealed>),
    ) -> Result<bool, StoreError>;
    /// The newest delivery ID (0 when there is none).
    async fn last_delivery_id(&self) -> Result<i64, StoreError>;
    /// Open (pending or failed) deliveries with an ID in `(after, upto]`, in ID order, of
    /// one endpoint or of all.
    async fn open_deliveries(
        &self,
        endpoint_id: Option<&EndpointId>,
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
        org_id: &OrgId,
        endpoint_id: &EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError>;
    /// Re-queues the endpoint's failed and dead deliveries created since `since`.
    async fn recover_deliveries(
        &self,
        org_id: &OrgId,
        endpoint_id: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError>;
    /// Queues the event again for its endpoints and for the endpoints that match it now.
    /// `None` when the organisation has no such event.
    async fn redeliver_event(
        &self,
        org_id: &OrgId,
        event_id: &EventId,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError>;
    async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError>;
}
