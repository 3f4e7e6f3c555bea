//! The delivery dispatcher: one task per server schedules deliveries (see
//! [`crate::schedule`]), sends each attempt signed on its own task and records outcomes in
//! batches. Concurrency is bounded per endpoint and in total, so a slow or dead endpoint only
//! ever occupies its own slots.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    sync::{Notify, mpsc},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use wagroups_core::{
    ids::EndpointId,
    secret::KeySlot,
    store::{Store, StoreError},
    time::Timestamp,
    webhook::{AttemptNext, AttemptRecord, RetrySchedule},
};

use crate::{
    format, guard,
    schedule::{Job, Schedule},
};

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
    /// How often the queue is read when nothing woke the dispatcher (deliveries queued by
    /// another process).
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

/// Deliveries held in memory per endpoint (the rest waits in the database).
const WINDOW: usize = 1024;
/// Rows read from the tail of the queue at a time.
const TAIL_BATCH: i64 = 1024;
/// How often the endpoints are read again (the CLI may change them from another process).
const ENDPOINT_REFRESH: Duration = Duration::from_secs(2);
/// Pause before recording again after the database refused a batch, or reading again after
/// a failed read.
const STORE_RETRY: Duration = Duration::from_millis(200);
/// Longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);
/// Largest response body kept in an attempt's error text.
const BODY_EXCERPT: usize = 512;

/// A finished attempt, waiting to be recorded.
struct Done {
    endpoint_id: EndpointId,
    group_row_id: i64,
    id: i64,
    record: AttemptRecord,
}

type Recording = tokio::task::JoinHandle<(Vec<Done>, Result<(), StoreError>)>;

pub struct DeliveryWorker {
    store: Arc<dyn Store>,
    keys: Arc<KeySlot>,
    sender: Arc<Sender>,
    config: DeliveryConfig,
    /// Woken when deliveries are queued.
    ready: Arc<Notify>,
    /// Woken when endpoints changed or deliveries were queued again under their old IDs.
    changed: Arc<Notify>,
}

impl DeliveryWorker {
    /// `keys` opens the endpoints' signing secrets.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<KeySlot>,
        config: DeliveryConfig,
        ready: Arc<Notify>,
        changed: Arc<Notify>,
    ) -> reqwest::Result<Self> {
        Ok(DeliveryWorker {
            store,
            keys,
            sender: Arc::new(Sender {
                client: guard::client(config.allow_private_targets, config.max_in_flight)?,
                config: config.clone(),
            }),
            config,
            ready,
            changed,
        })
    }

    /// Runs until `shutdown`; then stops sending, lets attempts in flight finish (each is
    /// bounded by the timeout) and records them. An attempt cut short is made again after a
    /// restart: at least once.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut d = Dispatch {
            store: self.store.clone(),
            keys: self.keys.clone(),
            schedule: None,
            resync: true,
            read_tail: true,
            refreshed: Instant::now(),
            unrecorded: Vec::new(),
            recording: None,
            retry_at: None,
            per_endpoint: self.config.per_endpoint,
            meters: Meters::new(),
        };
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut attempts = JoinSet::new();
        loop {
            let mut pause = None;
            if let Err(e) = d.load().await {
                tracing::warn!(error = %e, "reading the delivery queue failed");
                pause = Some(STORE_RETRY);
            }
            if let Some(s) = d.schedule.as_mut() {
                let room = self.config.max_in_flight.saturating_sub(s.in_flight());
                for job in s.take_due(Timestamp::now(), room) {
                    let sender = self.sender.clone();
                    let tx = done_tx.clone();
                    attempts.spawn(async move {
                        let record = sender.attempt(&job).await;
                        let _ = tx.send(Done {
                            endpoint_id: job.target.endpoint.id.clone(),
                            group_row_id: job.group_row_id,
                            id: job.id,
                            record,
                        });
                    });
                }
            }
            d.start_recording();
            while attempts.try_join_next().is_some() {}

            let now = Instant::now();
            let mut wake = pause.unwrap_or(self.config.poll);
            if let Some(due) = d.schedule.as_ref().and_then(Schedule::next_due) {
                let ms = due.saturating_sub(Timestamp::now().millis()).max(0) as u64;
                wake = wake.min(Duration::from_millis(ms));
            }
            if let Some(t) = d.retry_at {
                wake = wake.min(t.saturating_duration_since(now));
            }
            // Biased: endpoints that changed are read again before deliveries queued after
            // the change are sent (a rotated secret signs the next event); finished attempts
            // and recordings come before new deliveries, so a steady stream of new events
            // never keeps slots from being freed.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = self.changed.notified() => d.resync = true,
                Some(done) = done_rx.recv() => {
                    d.attempted(done);
                    while let Ok(done) = done_rx.try_recv() {
                        d.attempted(done);
                    }
                }
                finished = async {
                    match d.recording.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                } => {
                    d.recording = None;
                    d.recorded(finished);
                }
                _ = self.ready.notified() => d.read_tail = true,
                _ = tokio::time::sleep(wake) => d.read_tail = true,
            }
        }
        // Let attempts in flight finish, and record them.
        let grace = tokio::time::sleep(self.config.timeout + Duration::from_secs(5));
        tokio::pin!(grace);
        while d.schedule.as_ref().is_some_and(|s| s.in_flight() > 0) {
            tokio::select! {
                Some(done) = done_rx.recv() => d.attempted(done),
                _ = &mut grace => break,
            }
        }
        attempts.abort_all();
        if let Some(h) = d.recording.take() {
            d.recorded(h.await);
        }
        if !d.unrecorded.is_empty() {
            let batch: Vec<(i64, AttemptRecord)> = d.unrecorded.iter().map(|x| (x.id, x.record.clone())).collect();
            if let Err(e) = self.store.record_attempts(&batch).await {
                tracing::warn!(error = %e, "recording attempts at shutdown failed; they are made again");
            }
        }
    }
}

/// The dispatcher's state between turns.
struct Dispatch {
    store: Arc<dyn Store>,
    /// Opens the endpoints' secrets.
    keys: Arc<KeySlot>,
    /// Made on the first successful read of the queue.
    schedule: Option<Schedule>,
    /// Read the endpoints and every backlog again.
    resync: bool,
    read_tail: bool,
    refreshed: Instant,
    unrecorded: Vec<Done>,
    recording: Option<Recording>,
    /// After a failed write, when to record again.
    retry_at: Option<Instant>,
    per_endpoint: usize,
    meters: Meters,
}

/// The delivery metrics, registered once.
struct Meters {
    succeeded: metrics::Counter,
    failed: metrics::Counter,
    dead: metrics::Counter,
    latency: metrics::Histogram,
}

impl Meters {
    fn new() -> Meters {
        let outcome = |o: &'static str| metrics::counter!("wagroups_webhook_deliveries_total", "outcome" => o);
        Meters {
            succeeded: outcome("succeeded"),
            failed: outcome("failed"),
            dead: outcome("dead"),
            latency: metrics::histogram!("wagroups_webhook_attempt_duration_seconds"),
        }
    }
}

impl Dispatch {
    /// Brings the schedule up to date with the database.
    async fn load(&mut self) -> Result<(), StoreError> {
        let s = match self.schedule.as_mut() {
            Some(s) => s,
            None => {
                let tail = self.store.last_delivery_id().await?;
                self.resync = true;
                self.schedule.insert(Schedule::new(self.per_endpoint, WINDOW, tail))
            }
        };
        let key = self
            .keys
            .get()
            .ok_or_else(|| StoreError::Database("the secret key is not loaded: endpoint secrets do not open".into()))?;
        if self.resync || self.refreshed.elapsed() >= ENDPOINT_REFRESH {
            s.set_endpoints(self.store.active_endpoints().await?, &key);
            self.refreshed = Instant::now();
            if self.resync {
                s.resync();
                self.resync = false;
            }
        }
        if self.read_tail {
            loop {
                let after = s.tail();
                let rows = self.store.open_deliveries(None, after, None, TAIL_BATCH).await?;
                let full = rows.len() as i64 == TAIL_BATCH;
                let upto = rows.last().map_or(after, |r| r.id);
                // An endpoint created since the last refresh: read the endpoints; its
                // deliveries then come by backfill.
                if rows.iter().any(|r| !s.knows(&r.endpoint_id)) {
                    s.set_endpoints(self.store.active_endpoints().await?, &key);
                    self.refreshed = Instant::now();
                }
                s.accept_tail(rows, upto);
                if !full {
                    break;
                }
            }
            self.read_tail = false;
        }
        for (endpoint, after, room) in s.backfills() {
            let rows = self
                .store
                .open_deliveries(Some(&endpoint), after, Some(s.tail()), room as i64)
                .await?;
            s.accept_backfill(&endpoint, rows, room);
        }
        Ok(())
    }

    fn attempted(&mut self, done: Done) {
        match &done.record.next {
            AttemptNext::Succeeded => &self.meters.succeeded,
            AttemptNext::RetryAt(_) => &self.meters.failed,
            AttemptNext::Dead | AttemptNext::DeadAndDisable(_) => &self.meters.dead,
        }
        .increment(1);
        self.meters.latency.record(done.record.latency_ms as f64 / 1000.0);
        if let Some(s) = self.schedule.as_mut() {
            s.attempted(&done.endpoint_id);
        }
        self.unrecorded.push(done);
    }

    /// Writes the finished attempts in one transaction, unless a write is under way.
    fn start_recording(&mut self) {
        if self.recording.is_some() || self.unrecorded.is_empty() || self.retry_at.is_some_and(|t| t > Instant::now()) {
            return;
        }
        let batch = std::mem::take(&mut self.unrecorded);
        let store = self.store.clone();
        self.recording = Some(tokio::spawn(async move {
            let rows: Vec<(i64, AttemptRecord)> = batch.iter().map(|x| (x.id, x.record.clone())).collect();
            let result = store.record_attempts(&rows).await;
            (batch, result)
        }));
    }

    fn recorded(&mut self, finished: Result<(Vec<Done>, Result<(), StoreError>), tokio::task::JoinError>) {
        match finished {
            Ok((batch, Ok(()))) => {
                self.retry_at = None;
                if let Some(s) = self.schedule.as_mut() {
                    for d in &batch {
                        s.recorded(&d.endpoint_id, d.group_row_id, d.id, &d.record.next);
                    }
                }
            }
            Ok((mut batch, Err(e))) => {
                tracing::warn!(error = %e, n = batch.len(), "recording attempts failed; retrying");
                batch.append(&mut self.unrecorded);
                self.unrecorded = batch;
                self.retry_at = Some(Instant::now() + STORE_RETRY);
            }
            Err(e) => {
                // The write task panicked: its chains stay held until a restart resends them.
                tracing::error!(error = %e, "recording attempts failed");
            }
        }
    }
}

/// Sends attempts (shared by the attempt tasks).
struct Sender {
    client: reqwest::Client,
    config: DeliveryConfig,
}

impl Sender {
    /// Sends one attempt and decides what follows.
    pub async fn attempt(&self, job: &Job) -> AttemptRecord {
        let attempted_at = Timestamp::now();
        let rendered = format::render(&job.target, &job.event_id, &job.payload, attempted_at);
        let started = Instant::now();
        let result = match (&job.target.url, rendered) {
            (Err(e), _) => Err(e.clone()),
            (_, Err(e)) => Err(e),
            (Ok(url), Ok(rendered)) => match guard::check_literal(url, self.config.allow_private_targets) {
                Err(reason) => Err(reason),
                Ok(()) => {
                    let mut req = self.client.post(url.clone()).timeout(self.config.timeout);
                    for (name, value) in rendered.headers {
                        req = req.header(name, value);
                    }
                    req.body(rendered.body).send().await.map_err(|e| error_chain(&e))
                }
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

/// A client error with its causes (a refused target says why).
pub(crate) fn error_chain(e: &reqwest::Error) -> String {
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
