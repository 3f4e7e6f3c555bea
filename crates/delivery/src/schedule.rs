//! The dispatcher's view of the delivery queue, kept in memory and free of I/O.
//!
//! The database holds every open delivery; the schedule holds, per endpoint, a bounded window
//! of them (the oldest, in ID order) grouped into chains, one per group. A chain sends one
//! delivery at a time: its head goes out when due, and the next follows only after the head's
//! outcome was recorded, so a group's events reach an endpoint in order even across a crash.
//!
//! Loading follows two cursors. The tail is the newest delivery ID the dispatcher has read:
//! new deliveries of an endpoint that has room are taken from there. An endpoint that is new,
//! was resynchronised or ran out of room reads its own backlog instead (a backfill) from its
//! cursor up to the tail, and rejoins the tail when it has caught up.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
    sync::Arc,
};

use bytes::Bytes;
use wagroups_core::{
    ids::{EndpointId, EventId},
    secret::{Sealed, SecretKey},
    time::Timestamp,
    webhook::{self, AttemptNext, Endpoint, OpenDelivery},
};

use crate::sign::{SigningKey, header_with};

/// An endpoint as its attempts need it: the URL parsed and the signing keys made once, each
/// time the endpoint changes rather than for every attempt.
#[derive(Debug)]
pub struct Target {
    pub endpoint: Endpoint,
    /// The parsed URL, or why it does not parse.
    pub url: Result<url::Url, String>,
    current: Option<SigningKey>,
    previous: Option<(SigningKey, Timestamp)>,
    /// A `meta` endpoint's app secret (it signs alone: Meta's header carries one signature).
    pub(crate) app_secret: Option<crate::sign::AppSecretKey>,
}

impl Target {
    /// The endpoint's secrets are opened with `key` (the deployment's).
    pub fn new(endpoint: Endpoint, key: &SecretKey) -> Target {
        let url = url::Url::parse(&endpoint.url).map_err(|e| format!("invalid URL: {e}"));
        let open = |s: &Sealed| match webhook::open_secret(key, &endpoint.id, s) {
            Ok(s) => SigningKey::new(s.expose()),
            Err(e) => {
                tracing::error!(endpoint = %endpoint.id, error = %e, "an endpoint's signing secret does not open: its deliveries fail without being sent");
                None
            }
        };
        if endpoint.format == webhook::WebhookFormat::Meta {
            let app_secret = match webhook::open_secret(key, &endpoint.id, &endpoint.secret) {
                Ok(s) => crate::sign::AppSecretKey::new(s.expose()),
                Err(e) => {
                    tracing::error!(endpoint = %endpoint.id, error = %e, "an endpoint's app secret does not open: its deliveries fail without being sent");
                    None
                }
            };
            return Target {
                endpoint,
                url,
                current: None,
                previous: None,
                app_secret,
            };
        }
        let current = open(&endpoint.secret);
        let previous = match (&endpoint.previous_secret, endpoint.previous_secret_until) {
            (Some(s), Some(until)) => open(s).map(|k| (k, until)),
            _ => None,
        };
        Target {
            endpoint,
            url,
            current,
            previous,
            app_secret: None,
        }
    }

    /// The `webhook-signature` header at `now`: the current secret's signature, and the
    /// previous secret's during the overlap after a rotation.
    pub fn signature(&self, msg_id: &str, timestamp: i64, now: Timestamp, body: &[u8]) -> String {
        let previous = self.previous.as_ref().filter(|(_, until)| *until > now).map(|(k, _)| k);
        header_with(self.current.iter().chain(previous), msg_id, timestamp, body)
    }
}

/// One delivery attempt to make.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub target: Arc<Target>,
    pub group_row_id: i64,
    pub event_id: EventId,
    pub payload: Bytes,
    /// Attempts made before this one.
    pub attempts: i64,
}

#[derive(Debug)]
struct Queued {
    id: i64,
    attempts: i64,
    due: i64,
    event_id: EventId,
    payload: Bytes,
}

#[derive(Debug, Default)]
struct Chain {
    /// In ID order; while `busy`, the front is out (in flight or being recorded).
    queue: VecDeque<Queued>,
    busy: bool,
}

#[derive(Debug)]
struct EndpointQueue {
    target: Arc<Target>,
    chains: HashMap<i64, Chain>,
    /// Due times of chain heads that may go: (due, delivery ID, group). Entries whose chain
    /// has moved on are skipped when they surface.
    due: BinaryHeap<Reverse<(i64, i64, i64)>>,
    loaded: usize,
    in_flight: usize,
    /// Deliveries after this ID (up to the tail) are not loaded yet.
    backfill: Option<i64>,
}

impl EndpointQueue {
    fn new(endpoint: Endpoint, key: &SecretKey) -> Self {
        EndpointQueue {
            target: Arc::new(Target::new(endpoint, key)),
            chains: HashMap::new(),
            due: BinaryHeap::new(),
            loaded: 0,
            in_flight: 0,
            backfill: Some(0),
        }
    }

    /// Adds a loaded delivery to its chain, unless it is there already.
    fn insert(&mut self, d: OpenDelivery) {
        let chain = self.chains.entry(d.group_row_id).or_default();
        let at = chain.queue.partition_point(|q| q.id < d.id);
        if chain.queue.get(at).is_some_and(|q| q.id == d.id) {
            return;
        }
        // A busy head stays first (a re-queued earlier delivery follows it).
        let at = if chain.busy { at.max(1) } else { at };
        chain.queue.insert(
            at,
            Queued {
                id: d.id,
                attempts: d.attempts,
                due: d.next_attempt_at.millis(),
                event_id: d.event_id,
                payload: Bytes::from(d.payload),
            },
        );
        self.loaded += 1;
        if !chain.busy && at == 0 {
            self.due
                .push(Reverse((d.next_attempt_at.millis(), d.id, d.group_row_id)));
        }
    }

    /// Drops everything not out, to be loaded again.
    fn forget(&mut self) {
        self.chains.retain(|_, c| {
            if c.busy {
                c.queue.truncate(1);
            }
            c.busy
        });
        self.loaded = self.chains.values().map(|c| c.queue.len()).sum();
        self.due.clear();
        self.backfill = Some(0);
    }

    /// The next due head, if it is due at `now`.
    fn pop_due(&mut self, now: i64) -> Option<Job> {
        while let Some(Reverse((due, id, group))) = self.due.peek().copied() {
            let live = self
                .chains
                .get(&group)
                .and_then(|c| (!c.busy).then(|| c.queue.front()).flatten())
                .is_some_and(|q| q.id == id && q.due == due);
            if !live {
                self.due.pop();
                continue;
            }
            if due > now {
                return None;
            }
            self.due.pop();
            let chain = self.chains.get_mut(&group)?;
            chain.busy = true;
            let q = chain.queue.front()?;
            self.in_flight += 1;
            return Some(Job {
                id: q.id,
                target: self.target.clone(),
                group_row_id: group,
                event_id: q.event_id.clone(),
                payload: q.payload.clone(),
                attempts: q.attempts,
            });
        }
        None
    }
}

#[derive(Debug)]
pub struct Schedule {
    per_endpoint: usize,
    window: usize,
    endpoints: HashMap<EndpointId, EndpointQueue>,
    tail: i64,
}

impl Schedule {
    /// At most `per_endpoint` attempts in flight per endpoint, `window` deliveries loaded per
    /// endpoint; `tail` is the newest delivery ID at start (older ones come by backfill).
    pub fn new(per_endpoint: usize, window: usize, tail: i64) -> Self {
        Schedule {
            per_endpoint: per_endpoint.max(1),
            window: window.max(1),
            endpoints: HashMap::new(),
            tail,
        }
    }

    pub fn tail(&self) -> i64 {
        self.tail
    }

    pub fn knows(&self, endpoint_id: &str) -> bool {
        self.endpoints.contains_key(endpoint_id)
    }

    pub fn in_flight(&self) -> usize {
        self.endpoints.values().map(|e| e.in_flight).sum()
    }

    /// Deliveries held in memory.
    pub fn loaded(&self) -> usize {
        self.endpoints.values().map(|e| e.loaded).sum()
    }

    /// Takes the enabled endpoints as they are now: new ones start with a backfill, changed
    /// ones sign and send with their new settings, missing ones (disabled, deleted) are dropped.
    /// Their secrets are opened with `key`.
    pub fn set_endpoints(&mut self, endpoints: Vec<Endpoint>, key: &SecretKey) {
        let mut fresh: HashMap<EndpointId, Endpoint> = endpoints.into_iter().map(|e| (e.id.clone(), e)).collect();
        self.endpoints.retain(|id, q| match fresh.remove(id) {
            Some(e) => {
                if q.target.endpoint != e {
                    q.target = Arc::new(Target::new(e, key));
                }
                true
            }
            None => false,
        });
        for (id, e) in fresh {
            self.endpoints.insert(id, EndpointQueue::new(e, key));
        }
    }

    /// Forgets what is loaded and reads every endpoint's backlog again (after deliveries were
    /// re-queued under their old IDs).
    pub fn resync(&mut self) {
        for q in self.endpoints.values_mut() {
            q.forget();
        }
    }

    /// Takes deliveries read from the tail, in ID order, up to and including `upto`.
    pub fn accept_tail(&mut self, rows: Vec<OpenDelivery>, upto: i64) {
        for d in rows {
            let Some(q) = self.endpoints.get_mut(&d.endpoint_id) else {
                continue;
            };
            if q.backfill.is_some() {
                continue;
            }
            if q.loaded >= self.window {
                q.backfill = Some(d.id - 1);
                continue;
            }
            q.insert(d);
        }
        self.tail = self.tail.max(upto);
    }

    /// Endpoints that read their backlog next: (endpoint, after, how many).
    pub fn backfills(&self) -> Vec<(EndpointId, i64, usize)> {
        self.endpoints
            .iter()
            .filter_map(|(id, q)| {
                let after = q.backfill?;
                let room = self.window.saturating_sub(q.loaded);
                (room > 0).then(|| (id.clone(), after, room))
            })
            .collect()
    }

    /// Takes an endpoint's backlog read after `after` up to the tail, asked for `limit` rows.
    pub fn accept_backfill(&mut self, endpoint_id: &str, rows: Vec<OpenDelivery>, limit: usize) {
        let Some(q) = self.endpoints.get_mut(endpoint_id) else {
            return;
        };
        if q.backfill.is_none() {
            return;
        }
        let complete = rows.len() < limit;
        for d in rows {
            if q.loaded >= self.window {
                return;
            }
            let id = d.id;
            q.insert(d);
            q.backfill = Some(id);
        }
        if complete {
            q.backfill = None;
        }
    }

    /// Takes up to `max` due heads, a few from each endpoint in turn, within each endpoint's
    /// limit of attempts in flight.
    pub fn take_due(&mut self, now: Timestamp, max: usize) -> Vec<Job> {
        let mut jobs = Vec::with_capacity(max.min(self.loaded()));
        let mut progress = true;
        while progress && jobs.len() < max {
            progress = false;
            for q in self.endpoints.values_mut() {
                if jobs.len() >= max {
                    break;
                }
                if q.in_flight >= self.per_endpoint {
                    continue;
                }
                if let Some(job) = q.pop_due(now.millis()) {
                    jobs.push(job);
                    progress = true;
                }
            }
        }
        jobs
    }

    /// When the next head that could go now comes due (None: nothing is waiting).
    pub fn next_due(&self) -> Option<i64> {
        self.endpoints
            .values()
            .filter(|q| q.in_flight < self.per_endpoint)
            .filter_map(|q| q.due.peek().map(|Reverse((due, ..))| *due))
            .min()
    }

    /// An attempt came back; its chain waits until the outcome is recorded.
    pub fn attempted(&mut self, endpoint_id: &str) {
        if let Some(q) = self.endpoints.get_mut(endpoint_id) {
            q.in_flight = q.in_flight.saturating_sub(1);
        }
    }

    /// An attempt's outcome is durable: the chain moves on (or retries its head later).
    pub fn recorded(&mut self, endpoint_id: &str, group_row_id: i64, id: i64, next: &AttemptNext) {
        if matches!(next, AttemptNext::DeadAndDisable(_)) {
            self.endpoints.remove(endpoint_id);
            return;
        }
        let Some(q) = self.endpoints.get_mut(endpoint_id) else {
            return;
        };
        let Some(chain) = q.chains.get_mut(&group_row_id) else {
            return;
        };
        if chain.queue.front().is_some_and(|h| h.id == id) {
            chain.busy = false;
            match next {
                AttemptNext::RetryAt(t) => {
                    if let Some(head) = chain.queue.front_mut() {
                        head.due = t.millis();
                        head.attempts += 1;
                    }
                }
                _ => {
                    chain.queue.pop_front();
                    q.loaded = q.loaded.saturating_sub(1);
                }
            }
        }
        match chain.queue.front() {
            None => {
                q.chains.remove(&group_row_id);
            }
            Some(head) if !chain.busy => q.due.push(Reverse((head.due, head.id, group_row_id))),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(id: &str) -> Endpoint {
        Endpoint {
            id: id.into(),
            org_id: "org".into(),
            url: format!("https://example.com/{id}"),
            description: None,
            event_types: None,
            waba_numbers: None,
            format: Default::default(),
            disabled: false,
            disabled_reason: None,
            secret: Sealed::from_stored("whsec_x".into()),
            previous_secret: None,
            previous_secret_until: None,
            verify_token: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    /// Any key: the test endpoints' secrets are stored as from before sealing.
    fn key() -> SecretKey {
        SecretKey::generate()
    }

    fn row(id: i64, ep: &str, group: i64, due: i64) -> OpenDelivery {
        OpenDelivery {
            id,
            endpoint_id: ep.into(),
            group_row_id: group,
            attempts: 0,
            next_attempt_at: Timestamp(due),
            event_id: format!("evt_{id}").into(),
            payload: "{}".into(),
        }
    }

    fn ids(jobs: &[Job]) -> Vec<i64> {
        let mut v: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        v.sort();
        v
    }

    fn caught_up(s: &mut Schedule, ep: &str) {
        s.accept_backfill(ep, vec![], 10);
    }

    #[test]
    fn a_secret_that_does_not_open_is_never_sent_unsigned() {
        let mut e = endpoint("a");
        e.secret = webhook::seal_secret(&SecretKey::generate(), &e.id, &webhook::new_secret());
        // Another deployment's key: the secret does not open.
        let t = Target::new(e, &SecretKey::generate());
        let r = crate::format::render(&t, "evt_1", &Bytes::from_static(b"{}"), Timestamp(1_000));
        assert!(r.is_err(), "rendered without a signature");
    }

    #[test]
    fn both_secrets_sign_during_the_rotation_overlap_only() {
        let key = SecretKey::generate();
        let mut e = endpoint("a");
        let seal = |s| webhook::seal_secret(&key, &e.id, &s);
        let (current, previous) = (seal(webhook::new_secret()), seal(webhook::new_secret()));
        e.secret = current;
        e.previous_secret = Some(previous);
        e.previous_secret_until = Some(Timestamp(1_000));
        let t = Target::new(e, &key);
        let during = t.signature("evt_1", 1, Timestamp(999), b"{}");
        let after = t.signature("evt_1", 1, Timestamp(1_000), b"{}");
        assert_eq!(during.split(' ').count(), 2, "{during}");
        assert_eq!(after.split(' ').count(), 1, "{after}");
        assert!(during.starts_with(&after), "the current secret signs first");
    }

    #[test]
    fn chains_send_one_at_a_time_in_order_and_wait_for_the_record() {
        let mut s = Schedule::new(16, 100, 0);
        s.set_endpoints(vec![endpoint("a")], &key());
        caught_up(&mut s, "a");
        s.accept_tail(vec![row(1, "a", 7, 0), row(2, "a", 8, 0), row(3, "a", 7, 0)], 3);
        let first = s.take_due(Timestamp(10), 100);
        assert_eq!(ids(&first), vec![1, 2], "one head per group");
        s.attempted("a");
        assert!(
            s.take_due(Timestamp(10), 100).is_empty(),
            "group 7 waits for the record"
        );
        s.recorded("a", 7, 1, &AttemptNext::Succeeded);
        assert_eq!(ids(&s.take_due(Timestamp(10), 100)), vec![3]);
    }

    #[test]
    fn a_retry_holds_its_chain_until_due() {
        let mut s = Schedule::new(16, 100, 0);
        s.set_endpoints(vec![endpoint("a")], &key());
        caught_up(&mut s, "a");
        s.accept_tail(vec![row(1, "a", 7, 0), row(2, "a", 7, 0)], 2);
        assert_eq!(ids(&s.take_due(Timestamp(0), 100)), vec![1]);
        s.attempted("a");
        s.recorded("a", 7, 1, &AttemptNext::RetryAt(Timestamp(500)));
        assert!(s.take_due(Timestamp(499), 100).is_empty());
        assert_eq!(s.next_due(), Some(500));
        let again = s.take_due(Timestamp(500), 100);
        assert_eq!(ids(&again), vec![1]);
        assert_eq!(again[0].attempts, 1);
    }

    #[test]
    fn per_endpoint_limit_and_fair_turns() {
        let mut s = Schedule::new(2, 100, 0);
        s.set_endpoints(vec![endpoint("a"), endpoint("b")], &key());
        caught_up(&mut s, "a");
        caught_up(&mut s, "b");
        let rows = (1..=10)
            .map(|i| row(i, if i % 2 == 0 { "a" } else { "b" }, i, 0))
            .collect();
        s.accept_tail(rows, 10);
        let jobs = s.take_due(Timestamp(0), 100);
        assert_eq!(jobs.len(), 4, "two per endpoint");
        assert_eq!(jobs.iter().filter(|j| j.target.endpoint.id == "a").count(), 2);
        assert_eq!(s.take_due(Timestamp(0), 100).len(), 0);
        s.attempted("a");
        assert_eq!(s.take_due(Timestamp(0), 100).len(), 1);
    }

    #[test]
    fn a_full_window_switches_to_backfill_and_catches_up() {
        let mut s = Schedule::new(16, 2, 0);
        s.set_endpoints(vec![endpoint("a")], &key());
        caught_up(&mut s, "a");
        s.accept_tail((1..=5).map(|i| row(i, "a", i, 0)).collect(), 5);
        assert_eq!(s.loaded(), 2);
        assert_eq!(s.backfills(), vec![]);
        for j in s.take_due(Timestamp(0), 100) {
            s.attempted("a");
            s.recorded("a", j.group_row_id, j.id, &AttemptNext::Succeeded);
        }
        assert_eq!(s.backfills(), vec![(EndpointId::from("a"), 2, 2)], "reads from 3 on");
        s.accept_backfill("a", vec![row(3, "a", 3, 0), row(4, "a", 4, 0)], 2);
        assert_eq!(s.backfills(), vec![], "window full again");
        // Rows of the tail are left to the backfill meanwhile.
        s.accept_tail(vec![row(6, "a", 6, 0)], 6);
        assert_eq!(s.loaded(), 2);
        for j in s.take_due(Timestamp(0), 100) {
            s.attempted("a");
            s.recorded("a", j.group_row_id, j.id, &AttemptNext::Succeeded);
        }
        s.accept_backfill("a", vec![row(5, "a", 5, 0), row(6, "a", 6, 0)], 2);
        s.accept_backfill("a", vec![], 2);
        let last = s.take_due(Timestamp(0), 100);
        assert_eq!(ids(&last), vec![5, 6]);
        for j in last {
            s.attempted("a");
            s.recorded("a", j.group_row_id, j.id, &AttemptNext::Succeeded);
        }
        s.accept_tail(vec![row(7, "a", 7, 0)], 7);
        assert_eq!(s.loaded(), 1, "back on the tail");
        assert_eq!(ids(&s.take_due(Timestamp(0), 100)), vec![7]);
    }

    #[test]
    fn resync_keeps_what_is_out_and_reloads_the_rest() {
        let mut s = Schedule::new(16, 100, 0);
        s.set_endpoints(vec![endpoint("a")], &key());
        caught_up(&mut s, "a");
        s.accept_tail(vec![row(1, "a", 7, 0), row(2, "a", 7, 0), row(3, "a", 8, 0)], 3);
        let out = s.take_due(Timestamp(0), 1);
        assert_eq!(out.len(), 1);
        s.resync();
        assert_eq!(s.loaded(), 1);
        // The backlog comes back, including the delivery that is out: it is not sent twice.
        s.accept_backfill("a", vec![row(1, "a", 7, 0), row(2, "a", 7, 0), row(3, "a", 8, 0)], 10);
        let again = s.take_due(Timestamp(0), 100);
        assert!(again.iter().all(|j| j.id != out[0].id));
        assert_eq!(s.loaded(), 3);
    }

    #[test]
    fn dropped_and_disabled_endpoints_leave() {
        let mut s = Schedule::new(16, 100, 0);
        s.set_endpoints(vec![endpoint("a"), endpoint("b")], &key());
        caught_up(&mut s, "a");
        caught_up(&mut s, "b");
        s.accept_tail(vec![row(1, "a", 7, 0), row(2, "b", 7, 0)], 2);
        let jobs = s.take_due(Timestamp(0), 100);
        assert_eq!(jobs.len(), 2);
        s.recorded("a", 7, 1, &AttemptNext::DeadAndDisable("410".into()));
        assert!(!s.knows("a"));
        s.set_endpoints(vec![endpoint("a")], &key());
        assert!(!s.knows("b"));
        assert_eq!(
            s.backfills(),
            vec![(EndpointId::from("a"), 0, 100)],
            "a re-enabled endpoint reads its backlog"
        );
        s.attempted("b");
        s.recorded("b", 7, 2, &AttemptNext::Succeeded);
    }
}
