//! Idempotency keys and the answers kept for them (see [`crate::idempotency`]).

use async_trait::async_trait;

use super::StoreError;
use crate::idempotency::{Begin, Replay};
use crate::ids::OrgId;
use crate::time::Timestamp;

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// In one transaction: an expired key is forgotten; a new key is recorded as in flight
    /// (until `expires_at`) for this request's `fingerprint` ([`Begin::Proceed`]); a known
    /// one answers what it is.
    async fn begin_idempotent(
        &self,
        org_id: &OrgId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Begin, StoreError>;
    /// Keeps the answer of the request in flight under the key.
    async fn finish_idempotent(&self, org_id: &OrgId, key: &str, reply: &Replay) -> Result<(), StoreError>;
    /// Forgets the key (its request was not carried out: it may be sent again).
    async fn abandon_idempotent(&self, org_id: &OrgId, key: &str) -> Result<(), StoreError>;
}
