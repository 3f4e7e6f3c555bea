//! The webhook sink: a local HTTP server that verifies every delivery's Standard Webhooks
//! signature with the independent `standardwebhooks` crate, counts deliveries, and records when
//! each group's `GROUP_CREATED` arrived.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};

use crate::{dashmap_lite::Times, load::Client, server::Server};

#[derive(Default)]
struct Inner {
    verifiers: std::sync::RwLock<Vec<standardwebhooks::Webhook>>,
    failing: AtomicBool,
    accepted: AtomicU64,
    failed: AtomicU64,
    bad_signatures: AtomicU64,
    created: Mutex<HashMap<String, Instant>>,
    created_count: AtomicU64,
}

pub struct Sink {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

async fn hook(State(inner): State<Arc<Inner>>, Path(n): Path<usize>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let ok = {
        let v = inner.verifiers.read().unwrap();
        v.get(n).is_some_and(|w| w.verify(&body, &headers).is_ok())
    };
    if !ok {
        inner.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    }
    if inner.failing.load(Ordering::Relaxed) {
        inner.failed.fetch_add(1, Ordering::Relaxed);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    // Only GROUP_CREATED is looked into (a byte search first: parsing every body would cost
    // the sink, which shares the machine with the server, more than the rest of its work).
    if n == 0
        && body.windows(b"GROUP_CREATED".len()).any(|w| w == b"GROUP_CREATED")
        && let Ok(v) = serde_json::from_slice::<Value>(&body)
        && v["eventType"] == "GROUP_CREATED"
        && let Some(g) = v["groupId"].as_str()
    {
        let mut created = inner.created.lock().unwrap();
        if created.insert(g.to_string(), now).is_none() {
            inner.created_count.fetch_add(1, Ordering::Relaxed);
        }
    }
    inner.accepted.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

impl Sink {
    pub async fn start(failing: bool) -> anyhow::Result<Sink> {
        let inner = Arc::new(Inner::default());
        inner.failing.store(failing, Ordering::Relaxed);
        let app = Router::new().route("/hook/{n}", post(hook)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Sink { addr, inner })
    }

    /// Registers endpoints (at least one) on the server; returns their IDs.
    pub async fn attach(&self, srv: &Server, endpoints: &[()]) -> anyhow::Result<Vec<String>> {
        let client = Client::new(srv.addr, &srv.key);
        let mut ids = Vec::new();
        for n in 0..endpoints.len().max(1) {
            let url = format!("http://{}/hook/{n}", self.addr);
            let (s, ep) = client.post_json("/v1/webhook-endpoints", json!({ "url": url })).await;
            if s != 201 {
                anyhow::bail!("registering a webhook endpoint answered {s}: {ep}");
            }
            let secret = ep["secret"].as_str().unwrap_or_default();
            self.inner
                .verifiers
                .write()
                .unwrap()
                .push(standardwebhooks::Webhook::new(secret)?);
            ids.push(ep["id"].as_str().unwrap_or_default().to_string());
        }
        Ok(ids)
    }

    /// Accepts webhooks signed with `secret` at `/hook/N`; answers N.
    pub fn add_secret(&self, secret: &str) -> anyhow::Result<usize> {
        let mut v = self.inner.verifiers.write().unwrap();
        v.push(standardwebhooks::Webhook::new(secret)?);
        Ok(v.len() - 1)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn set_failing(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }

    pub fn created_count(&self) -> u64 {
        self.inner.created_count.load(Ordering::Relaxed)
    }

    pub fn problems(&self) -> Vec<String> {
        let bad = self.inner.bad_signatures.load(Ordering::Relaxed);
        if bad > 0 {
            vec![format!("{bad} deliveries failed signature verification")]
        } else {
            Vec::new()
        }
    }

    async fn wait(&self, timeout: Duration, done: impl Fn() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn wait_total(&self, target: u64, timeout: Duration) {
        self.wait(timeout, || self.total() >= target).await;
    }

    pub async fn wait_created(&self, target: u64, timeout: Duration) {
        self.wait(timeout, || self.created_count() >= target).await;
    }

    /// Waits until no delivery arrived for half a second.
    pub async fn wait_quiet(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = self.total();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.total();
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= Duration::from_millis(500) {
                return;
            }
        }
    }

    /// Microseconds from each create's scheduled send to its verified `GROUP_CREATED`; the
    /// groups are `{prefix}0`, `{prefix}1`…
    pub async fn created_latencies(&self, prefix: &str, sent: &Times, n: usize, timeout: Duration) -> Vec<u64> {
        let ids: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
        self.wait(timeout, || {
            let c = self.inner.created.lock().unwrap();
            ids.iter().all(|id| c.contains_key(id))
        })
        .await;
        let c = self.inner.created.lock().unwrap();
        ids.iter()
            .filter_map(|id| Some(c.get(id)?.saturating_duration_since(sent.get(id)?).as_micros() as u64))
            .collect()
    }
}
