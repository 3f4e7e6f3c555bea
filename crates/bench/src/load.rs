//! The load generator: raw HTTP/1.1 keep-alive connections (one per worker), closed-loop
//! saturation and open-loop fixed-rate runs, latencies in an HDR histogram (microseconds).

use std::{
    net::SocketAddr,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, client::conn::http1};
use serde_json::Value;

pub type Req = Request<Full<Bytes>>;

#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    key: String,
}

pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn send(&mut self, req: Req) -> anyhow::Result<(u16, Bytes)> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

impl Client {
    pub fn new(addr: SocketAddr, key: &str) -> Client {
        Client {
            addr,
            key: key.to_string(),
        }
    }

    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn { sender })
    }

    fn request(&self, method: Method, path: &str, body: Option<Value>) -> Req {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.key));
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            None => Bytes::new(),
        };
        b.body(Full::new(body)).expect("request")
    }

    /// A POST of `body` with these extra headers (a webhook, signed by the caller).
    pub fn post_with(&self, path: &str, body: &'static str, headers: &[(&str, String)]) -> Req {
        self.post_owned(path, Bytes::from_static(body.as_bytes()), headers)
    }

    /// A POST of an owned `body` with these extra headers.
    pub fn post_owned(&self, path: &str, body: impl Into<Bytes>, headers: &[(&str, String)]) -> Req {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json");
        for (name, value) in headers {
            b = b.header(*name, value.as_str());
        }
        b.body(Full::new(body.into())).expect("request")
    }

    pub fn get(&self, path: &str) -> Req {
        self.request(Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Req {
        self.request(Method::POST, path, Some(body))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.once(self.get(path)).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        self.once(self.post(path, body)).await
    }

    async fn once(&self, req: Req) -> (u16, Value) {
        match self.connect().await {
            Ok(mut c) => match c.send(req).await {
                Ok((s, b)) => (
                    s,
                    serde_json::from_slice(&b).unwrap_or(Value::String(String::from_utf8_lossy(&b).into())),
                ),
                Err(e) => (0, Value::String(e.to_string())),
            },
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    /// A value of the server's `/metrics`: the first series of that name, or `name` may be a
    /// whole series (`name{label="value"}`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let mut c = self.connect().await.ok()?;
        let (_, body) = c.send(self.get("/metrics")).await.ok()?;
        let text = String::from_utf8_lossy(&body);
        text.lines()
            .find(|l| l.split(['{', ' ']).next() == Some(name) || l.split(' ').next() == Some(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
    }

    /// Deliveries not yet succeeded nor dead, from `/metrics`.
    pub async fn queue_depth(&self) -> Option<u64> {
        self.metric("wagroups_webhook_queue_depth").await.map(|v| v as u64)
    }

    /// The gateway database's commits and the write jobs they carried, so far.
    pub async fn commits(&self) -> (f64, f64) {
        (
            self.metric("wagroups_sqlite_commits_total{db=\"wg-db\"}")
                .await
                .unwrap_or(0.0),
            self.metric("wagroups_sqlite_write_jobs_total{db=\"wg-db\"}")
                .await
                .unwrap_or(0.0),
        )
    }

    /// Groups still pending (0 or 1: whether any is).
    pub async fn count_pending(&self) -> Option<u64> {
        let (s, v) = self.get_json("/v1/groups?status=pending&limit=1").await;
        (s == 200).then(|| v["data"].as_array().map_or(0, |a| a.len() as u64))
    }
}

pub struct Stats {
    /// Responses in the measured window.
    pub count: u64,
    /// 2xx responses in the measured window.
    pub ok_count: u64,
    /// 2xx responses, warm-up included.
    pub ok_all: u64,
    /// Non-2xx responses and I/O errors (whole run).
    pub errors: u64,
    pub first_error: String,
    pub hist: Histogram<u64>,
    pub window: Duration,
}

impl Stats {
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.window.as_secs_f64().max(1e-9)
    }
    pub fn ok(&self) -> u64 {
        self.ok_count
    }
}

struct Worker {
    hist: Histogram<u64>,
    count: u64,
    ok: u64,
    ok_all: u64,
    errors: u64,
    first_error: String,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            hist: Histogram::new(3).expect("histogram"),
            count: 0,
            ok: 0,
            ok_all: 0,
            errors: 0,
            first_error: String::new(),
        }
    }

    fn record(&mut self, result: &anyhow::Result<(u16, Bytes)>, latency: Duration, measured: bool) {
        let good = matches!(result, Ok((s, _)) if (200..300).contains(s));
        if good {
            self.ok_all += 1;
        }
        if !good {
            self.errors += 1;
            if self.first_error.is_empty() {
                self.first_error = match result {
                    Ok((s, b)) => format!("HTTP {s}: {}", String::from_utf8_lossy(b)),
                    Err(e) => e.to_string(),
                };
            }
        }
        if measured {
            self.count += 1;
            if good {
                self.ok += 1;
            }
            let _ = self.hist.record((latency.as_micros() as u64).max(1));
        }
    }
}

fn merge(workers: Vec<Worker>, window: Duration) -> Stats {
    let mut s = Stats {
        count: 0,
        ok_count: 0,
        ok_all: 0,
        errors: 0,
        first_error: String::new(),
        hist: Histogram::new(3).expect("histogram"),
        window,
    };
    for w in workers {
        s.count += w.count;
        s.ok_count += w.ok;
        s.ok_all += w.ok_all;
        s.errors += w.errors;
        if s.first_error.is_empty() {
            s.first_error = w.first_error;
        }
        let _ = s.hist.add(&w.hist);
    }
    s
}

/// Closed loop: `conc` connections send back to back for `warmup + duration`; only the
/// `duration` window is measured.
pub async fn saturate<F>(client: &Client, conc: usize, warmup: Duration, duration: Duration, make: F) -> Stats
where
    F: Fn(u64) -> Req + Sync,
{
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let seq = AtomicU64::new(0);
    let workers = (0..conc).map(|_| async {
        let mut w = Worker::new();
        let Ok(mut conn) = client.connect().await else {
            w.errors += 1;
            w.first_error = "connect failed".into();
            return w;
        };
        loop {
            let now = Instant::now();
            if now >= end {
                return w;
            }
            let req = make(seq.fetch_add(1, Ordering::Relaxed));
            let r = conn.send(req).await;
            let done = Instant::now();
            w.record(&r, done - now, now >= measure_from && done <= end);
            if r.is_err() {
                match client.connect().await {
                    Ok(c) => conn = c,
                    Err(_) => return w,
                }
            }
        }
    });
    let workers = futures_util::future::join_all(workers).await;
    merge(workers, duration)
}

/// Open loop: request `i` is due at `start + i / rate`; latency counts from that moment, so a
/// slow server cannot hide queueing (no coordinated omission).
pub async fn fixed_rate<F>(client: &Client, rate: u64, duration: Duration, conc: usize, make: F) -> Stats
where
    F: Fn(u64, Instant) -> Req + Sync,
{
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let start = Instant::now() + Duration::from_millis(50);
    let next = AtomicU64::new(0);
    let workers = (0..conc).map(|_| async {
        let mut w = Worker::new();
        let Ok(mut conn) = client.connect().await else {
            w.errors += 1;
            return w;
        };
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                return w;
            }
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let req = make(i, due);
            let r = conn.send(req).await;
            w.record(&r, Instant::now() - due, true);
        }
    });
    let workers = futures_util::future::join_all(workers).await;
    merge(workers, duration)
}
