//! A real local HTTP server that receives webhooks, records every request, and answers as
//! the test tells it to.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
    pub json: Value,
    pub at: Instant,
    /// The status this receiver answered.
    pub answered: u16,
}

#[derive(Clone, Debug)]
pub enum Behaviour {
    Ok,
    /// 500 for the first `n` requests, then 200.
    FailFirst(usize),
    /// Always this status.
    Status(u16),
    /// 503 with `Retry-After: secs` for the first request, then 200.
    RetryAfterOnce(u64),
    /// 200 after waiting this long.
    Slow(Duration),
}

struct Inner {
    received: Mutex<Vec<Received>>,
    behaviour: Mutex<Behaviour>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Receiver {
        let inner = Arc::new(Inner {
            received: Mutex::new(Vec::new()),
            behaviour: Mutex::new(behaviour),
        });
        let app = Router::new().route("/hook", post(handle)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://127.0.0.1:{}/hook", addr.port()),
            inner,
        }
    }

    /// The same receiver addressed by a host name that resolves to 127.0.0.1.
    pub fn localhost_url(&self) -> String {
        self.url.replace("127.0.0.1", "localhost")
    }

    pub fn set(&self, b: Behaviour) {
        *self.inner.behaviour.lock().unwrap() = b;
    }

    pub fn all(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// Requests this receiver accepted (2xx).
    pub fn accepted(&self) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    /// Distinct event IDs accepted.
    pub fn accepted_ids(&self) -> std::collections::HashSet<String> {
        self.accepted().into_iter().map(|r| r.id).collect()
    }

    /// Per group: sequences in the order first accepted.
    pub fn first_accepted_sequences(&self) -> HashMap<String, Vec<i64>> {
        let mut seen = std::collections::HashSet::new();
        let mut out: HashMap<String, Vec<i64>> = HashMap::new();
        for r in self.accepted() {
            if seen.insert(r.id.clone()) {
                let g = r.json["groupId"].as_str().unwrap_or_default().to_string();
                out.entry(g)
                    .or_default()
                    .push(r.json["sequence"].as_i64().unwrap_or(-1));
            }
        }
        out
    }
}

async fn handle(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let behaviour = inner.behaviour.lock().unwrap().clone();
    let count = inner.received.lock().unwrap().len();
    let mut delay = None;
    let (status, retry_after) = match behaviour {
        Behaviour::Ok => (200, None),
        Behaviour::FailFirst(n) => (if count < n { 500 } else { 200 }, None),
        Behaviour::Status(s) => (s, None),
        Behaviour::RetryAfterOnce(secs) => {
            if count == 0 {
                (503, Some(secs))
            } else {
                (200, None)
            }
        }
        Behaviour::Slow(d) => {
            delay = Some(d);
            (200, None)
        }
    };
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    inner.received.lock().unwrap().push(Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        body: text,
        at: Instant::now(),
        answered: status,
    });
    // Recorded on arrival; a slow receiver answers later.
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut resp = (StatusCode::from_u16(status).unwrap(), "ok").into_response();
    if let Some(s) = retry_after {
        resp.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
    }
    resp
}

/// Verifies a received request with the independent `standardwebhooks` crate.
pub fn verify(secret: &str, r: &Received) -> bool {
    let wh = standardwebhooks::Webhook::new(secret).unwrap();
    let mut h = axum::http::HeaderMap::new();
    h.insert("webhook-id", r.id.parse().unwrap());
    h.insert("webhook-timestamp", r.timestamp.parse().unwrap());
    h.insert("webhook-signature", r.signature.parse().unwrap());
    wh.verify(r.body.as_bytes(), &h).is_ok()
}
