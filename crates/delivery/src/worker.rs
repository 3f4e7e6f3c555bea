//! The delivery worker: claims due deliveries (heads of their per-group chains), sends each
//! signed, records the attempt and schedules the next. Concurrency is bounded per endpoint
//! and in total, so a slow or dead endpoint only ever occupies its own slots.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;
use wagroups_core::{
    store::Store,
    time::Timestamp,
    webhook::{AttemptNext, AttemptRecord, DeliveryJob, RetrySchedule},
};

use crate::{guard, sign::signature_header};

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub schedule: RetrySchedule,
    /// Per attempt.
    pub timeout: Duration,
    pub allow_private_targets: bool,
    /// Attempts in flight to one endpoint.
    pub per_endpoint: usize,
    /// Attempts in flight in all.
    pub max_in_flight: usize,
    pub poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            allow_private_targets: false,
            per_endpoint: 16,
            max_in_flight: 512,
            poll: Duration::from_millis(250),
        }
    }
}

/// How long a freed slot waits for others before the next claim.
const SLOT_COALESCE: Duration = Duration::from_millis(2);

/// Longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);
/// Largest response body kept in an attempt's error text.
const BODY_EXCERPT: usize = 512;

pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    config: DeliveryConfig,
    /// Woken when deliveries are queued.
    pub ready: Arc<Notify>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// A hard cap on attempts in flight per endpoint (claims may run slightly ahead of it;
    /// the lease covers the wait).
    permits: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
    slot_freed: Notify,
}

impl DeliveryWorker {
    pub fn new(store: Arc<dyn Store>, config: DeliveryConfig, ready: Arc<Notify>) -> reqwest::Result<Self> {
        Ok(DeliveryWorker {
            store,
            client: guard::client(config.allow_private_targets)?,
            config,
            ready,
            in_flight: Mutex::new(HashMap::new()),
            permits: Mutex::new(HashMap::new()),
            slot_freed: Notify::new(),
        })
    }

    /// The lease covers waiting for an endpoint slot (at most one other attempt's timeout)
    /// and the attempt itself.
    fn lease_ms(&self) -> i64 {
        (self.config.timeout.as_millis() as i64) * 2 + 10_000
    }

    fn in_flight_snapshot(&self) -> (usize, Vec<String>) {
        let map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let total = map.values().sum();
        let saturated = map
            .iter()
            .filter(|(_, n)| **n >= self.config.per_endpoint)
            .map(|(k, _)| k.clone())
            .collect();
        (total, saturated)
    }

    fn adjust(&self, endpoint: &str, delta: isize) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(endpoint.to_string()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            map.remove(endpoint);
        }
    }

    /// Runs until `shutdown`; then stops claiming and lets attempts in flight finish (each
    /// is bounded by the timeout; one cut short is retried after its lease).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        let mut idle = false;
        loop {
            while tasks.try_join_next().is_some() {}
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = self.ready.notified() => {}
                    _ = self.slot_freed.notified() => {
                        // Let a few more attempts finish, so one claim fills several slots
                        // (a claim occupies the single writer).
                        tokio::time::sleep(SLOT_COALESCE).await;
                    }
                    _ = tokio::time::sleep(self.config.poll) => {}
                }
            } else if shutdown.is_cancelled() {
                break;
            }
            let (total, saturated) = self.in_flight_snapshot();
            let room = self.config.max_in_flight.saturating_sub(total);
            if room == 0 {
                idle = true;
                continue;
            }
            let claimed = match self
                .store
                .claim_deliveries(
                    Timestamp::now(),
                    self.lease_ms(),
                    room.min(256) as i64,
                    self.config.per_endpoint as i64,
                    &saturated,
                )
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed");
                    idle = true;
                    continue;
                }
            };
            idle = claimed.is_empty();
            for job in claimed {
                self.adjust(&job.endpoint_id, 1);
                let me = self.clone();
                tasks.spawn(async move {
                    let endpoint = job.endpoint_id.clone();
                    me.deliver(job).await;
                    me.adjust(&endpoint, -1);
                    me.slot_freed.notify_one();
                });
            }
        }
        let grace = self.config.timeout + Duration::from_secs(5);
        let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    }

    fn permits_for(&self, endpoint: &str) -> Arc<tokio::sync::Semaphore> {
        let mut map = self.permits.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(endpoint.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(self.config.per_endpoint)))
            .clone()
    }

    async fn deliver(&self, job: DeliveryJob) {
        let permits = self.permits_for(&job.endpoint_id);
        let _permit = permits.acquire().await;
        let record = self.attempt(&job).await;
        let outcome = match &record.next {
            AttemptNext::Succeeded => "succeeded",
            AttemptNext::RetryAt(_) => "failed",
            AttemptNext::Dead | AttemptNext::DeadAndDisable(_) => "dead",
        };
        metrics::counter!("wagroups_webhook_deliveries_total", "outcome" => outcome).increment(1);
        metrics::histogram!("wagroups_webhook_attempt_duration_seconds").record(record.latency_ms as f64 / 1000.0);
        if let Err(e) = self.store.record_attempt(job.id, &record).await {
            // The lease expires and the delivery is attempted again: at least once.
            tracing::warn!(delivery = job.id, error = %e, "recording an attempt failed");
        }
    }

    /// Sends one attempt and decides what follows.
    pub async fn attempt(&self, job: &DeliveryJob) -> AttemptRecord {
        let attempted_at = Timestamp::now();
        let ts = attempted_at.millis() / 1000;
        let signature = signature_header(&job.secrets, &job.event_id, ts, job.payload.as_bytes());
        let started = Instant::now();
        let result = match reqwest::Url::parse(&job.url) {
            Err(e) => Err(format!("invalid URL: {e}")),
            Ok(url) => match guard::check_literal(&url, self.config.allow_private_targets) {
                Err(reason) => Err(reason),
                Ok(()) => self
                    .client
                    .post(url)
                    .timeout(self.config.timeout)
                    .header("content-type", "application/json")
                    .header("webhook-id", &job.event_id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", signature)
                    .body(job.payload.clone())
                    .send()
                    .await
                    .map_err(|e| error_chain(&e)),
            },
        };
        let n = (job.attempts + 1) as usize;
        let scheduled = self.config.schedule.delay_before(n + 1);
        let retry = |extra: Option<Duration>| match scheduled {
            None => AttemptNext::Dead,
            Some(d) => {
                let d = extra.map_or(d, |ra| ra.min(RETRY_AFTER_MAX).max(d));
                AttemptNext::RetryAt(Timestamp::now().plus_millis(d.as_millis() as i64))
            }
        };
        let (status_code, error, next) = match result {
            Err(e) => (None, Some(e), retry(None)),
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = resp.text().await.unwrap_or_default();
                let excerpt: String = body.chars().take(BODY_EXCERPT).collect();
                if status.is_success() {
                    (Some(status.as_u16()), None, AttemptNext::Succeeded)
                } else if status.as_u16() == 410 {
                    (
                        Some(410),
                        Some(format!("410 Gone: endpoint disabled. {excerpt}").trim().to_string()),
                        AttemptNext::DeadAndDisable("the endpoint answered 410 Gone".into()),
                    )
                } else {
                    let honour = matches!(status.as_u16(), 429 | 503).then_some(retry_after).flatten();
                    (
                        Some(status.as_u16()),
                        Some(format!("HTTP {status}: {excerpt}").trim().to_string()),
                        retry(honour),
                    )
                }
            }
        };
        AttemptRecord {
            attempted_at,
            status_code,
            latency_ms: started.elapsed().as_millis() as i64,
            error,
            next,
        }
    }
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut out = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
