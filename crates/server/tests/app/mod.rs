//! `spawn_app()`: the real server in this process — its router, its workers, fresh databases,
//! on `127.0.0.1:0` — with a handle on its service for typed checks, and hooks (`Extras`) for
//! test providers.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wagroups_server::{AppState, Config, DeliveryConfig, Extras, HttpLimits, Server};

pub struct TestApp {
    pub base: String,
    /// The bootstrap key of organisation `default`.
    pub key: String,
    pub state: AppState,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub const NUMBER: &str = "15550100001";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Extras::default()).await
}

pub async fn spawn_app_with(extras: Extras) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        bind: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", dir.path().join("app.db").display()),
        sim_database_url: None,
        api_only: false,
        delivery: DeliveryConfig {
            allow_private_targets: true,
            ..DeliveryConfig::default()
        },
        http: HttpLimits::for_open_files(4096),
        secret_key: None,
        reconcile_every: None,
    };
    let server = Server::start_with(&config, extras).await.expect("the server starts");
    let key = server
        .bootstrap
        .as_ref()
        .expect("a first start bootstraps")
        .secret
        .clone();
    let base = format!("http://{}", server.local_addr);
    let state = server.state();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));
    TestApp {
        base,
        key,
        state,
        http: reqwest::Client::new(),
        shutdown,
        task: Some(task),
        _dir: dir,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl TestApp {
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates a group and waits until it is active.
    pub async fn active_group(&self, id: &str, extra: Value) -> Value {
        let mut body = json!({ "wabaNumber": NUMBER, "subject": format!("Group {id}"), "groupId": id });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let (st, g) = self.post("/v1/groups", body).await;
        assert_eq!(st, 202, "{g}");
        self.until(Duration::from_secs(15), &format!("group {id} active"), || async {
            let (_, g) = self.get(&format!("/v1/groups/{id}")).await;
            (g["status"] == "active").then_some(g)
        })
        .await
    }

    /// Polls `check` until it yields, or fails the test after `timeout`.
    pub async fn until<T, F, Fut>(&self, timeout: Duration, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn events(&self, group_id: &str) -> Vec<Value> {
        let (st, e) = self.get(&format!("/v1/groups/{group_id}/events?limit=1000")).await;
        assert_eq!(st, 200, "{e}");
        e["data"].as_array().cloned().unwrap_or_default()
    }
}
