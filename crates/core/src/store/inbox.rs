//! The provider inbox: every report a provider sends (the simulated network's outbox, Meta's
//! webhooks) is recorded here, keyed by its deduplication key, before anything is done with
//! it — or in the same transaction as its application.
//!
//! A report is applied by `mutate_group` (which records it as applied in the change's own
//! transaction). One that cannot be applied yet — its group or its request is not known, or an
//! earlier report of its group is held — is *held*: kept with its payload, and applied by the
//! inbox applier when it can be, in order per group; one that can never be applied is
//! *dead*, kept and counted, never dropped silently.

use async_trait::async_trait;

use super::StoreError;
use crate::{provider::ProviderEvent, time::Timestamp};

/// A provider report on its way into the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRef {
    pub number_id: i64,
    /// Unique per report among the number's reports (a provider delivering it again
    /// delivers the same key).
    pub dedup_key: String,
    /// The group the report is about, as the provider names it: reports of one
    /// correlation are applied in the order they were received.
    pub correlation: String,
    /// Its place among held reports (`None` for a report just received).
    pub held_seq: Option<i64>,
}

/// A held report, as the inbox applier reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReport {
    pub report: ReportRef,
    pub waba_number: String,
    /// `None` when the stored payload no longer reads as a report (kept, to be given up).
    pub event: Option<ProviderEvent>,
    pub attempts: i64,
    pub received_at: Timestamp,
    pub next_attempt_at: Timestamp,
}

/// Reports held and dead, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxStats {
    pub held: i64,
    pub dead: i64,
}

#[async_trait]
pub trait InboxStore: Send + Sync {
    /// Records a report that cannot be applied now as held, with its payload, to be tried at
    /// `next_attempt_at`; `error` says why. A report the inbox already has (applied, held or
    /// dead) is left as it is. Returns whether it was recorded now.
    async fn hold_report(
        &self,
        report: &ReportRef,
        event: &ProviderEvent,
        error: &str,
        now: Timestamp,
        next_attempt_at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// The first held report of each group (correlation): soonest due first, or with
    /// `newest_first` the most recently held first; at most `limit`.
    async fn held_heads(&self, limit: i64, newest_first: bool) -> Result<Vec<HeldReport>, StoreError>;
    /// A held report could not be applied again: try at `next_attempt_at`.
    async fn retry_report(&self, report: &ReportRef, error: &str, next_attempt_at: Timestamp)
    -> Result<(), StoreError>;
    /// A held report that will never apply: kept as dead, with why, its payload as stored.
    async fn mark_dead(&self, report: &ReportRef, error: &str) -> Result<(), StoreError>;
    /// Every held report of one correlation on a number, kept as dead with why; how many.
    async fn mark_dead_held(&self, number_id: i64, correlation: &str, error: &str) -> Result<u64, StoreError>;
    /// A report that will never apply: kept as dead, with why. A report not yet in the inbox
    /// is recorded dead.
    async fn give_up_report(
        &self,
        report: &ReportRef,
        event: &ProviderEvent,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn inbox_stats(&self) -> Result<InboxStats, StoreError>;
}
