//! Test harness: runs the real `wagroups` binary on `127.0.0.1:0` with its own database in a
//! temporary directory, and talks HTTP to it.

use std::{
    future::Future,
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_wagroups");

/// The binary under test: this build's, or `WAGROUPS_TEST_BIN` (to show a new test failing
/// on an earlier build).
pub fn bin() -> String {
    std::env::var("WAGROUPS_TEST_BIN").unwrap_or_else(|_| BIN.to_string())
}
pub const NUMBER: &str = "15550100001";

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    /// The bootstrap key of organisation `default`.
    pub key: String,
    pub http: reqwest::Client,
    child: Child,
}

/// What `serve` printed before it started accepting requests.
struct Started {
    child: Child,
    base: String,
    key: Option<String>,
}

async fn spawn(db_url: &str, log: PathBuf, extra: &[&str], nofile: Option<&str>) -> Started {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open server log: {e}"));
    let bin = bin();
    let mut command = match nofile {
        // `ulimit -n N` sets the soft and hard limits, `-S -n N` the soft one only.
        Some(limit) => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit {limit} && exec \"$0\" \"$@\""), &bin]);
            c
        }
        None => Command::new(&bin),
    };
    let mut child = command
        .args(["serve", "--bind", "127.0.0.1:0", "--database", db_url])
        .args(extra)
        .env("WAGROUPS_LOG", "info,sqlx=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let mut key = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("server did not print 'listening on' within 30 s"))
            .unwrap_or_else(|e| panic!("read server stdout: {e}"))
            .unwrap_or_else(|| panic!("server exited before listening"));
        if let Some(k) = line.trim().strip_prefix("API key:") {
            key = k.split_whitespace().next().map(str::to_string);
        }
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Started { child, base, key }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> TestServer {
        Self::start_limited(None, extra).await
    }

    /// A server started under `ulimit {nofile}` (for example `-n 1024`, or `-S -n 256`).
    pub async fn start_limited(nofile: Option<&str>, extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let s = TestServer::db_url_in(&dir);
        let started = spawn(&s, dir.path().join("server.log"), extra, nofile).await;
        let key = started.key.unwrap_or_else(|| panic!("first start printed no API key"));
        TestServer {
            base: started.base,
            key,
            http: reqwest::Client::new(),
            child: started.child,
            dir,
        }
    }

    fn db_url_in(dir: &tempfile::TempDir) -> String {
        format!("sqlite://{}", dir.path().join("wagroups.db").display())
    }

    pub fn db_url(&self) -> String {
        Self::db_url_in(&self.dir)
    }

    /// The server's directory (its database, key file and log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then waits (up to 30 s) for the process to exit; true when it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await,
            Ok(Ok(status)) if status.success()
        )
    }

    /// Starts the server again on the same database (killing it first if it runs).
    pub async fn restart(&mut self, extra: &[&str]) {
        let _ = self.child.kill().await;
        let started = spawn(&self.db_url(), self.dir.path().join("server.log"), extra, None).await;
        assert!(started.key.is_none(), "a second start must not bootstrap again");
        self.base = started.base;
        self.child = started.child;
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs a CLI command against this server's database; returns stdout, panics on failure.
    pub async fn cli(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.cli_status(args).await;
        assert!(ok, "wagroups {args:?} failed: {err}");
        out
    }

    pub async fn cli_status(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_env(args, &[]).await
    }

    /// [`TestServer::cli_status`] with these environment variables set.
    pub async fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
        let out = Command::new(bin())
            .args(args)
            .env("WAGROUPS_DATABASE_URL", self.db_url())
            .envs(env.iter().copied())
            .output()
            .await
            .unwrap_or_else(|e| panic!("run cli: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Adds a simulated number with this profile to the default organisation.
    pub async fn add_number(&self, number: &str, profile: &str) {
        self.cli(&[
            "numbers",
            "add",
            "--org",
            "default",
            "--waba-number",
            number,
            "--profile",
            profile,
        ])
        .await;
    }

    /// Configures a simulated user (`PUT /v1/sandbox/users/{phone}`).
    pub async fn sandbox_user(&self, phone: &str, body: Value) {
        let (st, b) = self
            .send(
                reqwest::Method::PUT,
                &format!("/v1/sandbox/users/{phone}"),
                &self.key,
                Some(body),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }

    /// A new organisation with one simulated number and a key; returns the key.
    pub async fn new_org(&self, name: &str, number: &str, profile: &str) -> String {
        self.cli(&["orgs", "create", name]).await;
        self.cli(&[
            "numbers",
            "add",
            "--org",
            name,
            "--waba-number",
            number,
            "--profile",
            profile,
        ])
        .await;
        self.new_key(name, None).await
    }

    pub async fn new_key(&self, org: &str, numbers: Option<&str>) -> String {
        let mut args = vec!["keys", "create", "--org", org];
        if let Some(n) = numbers {
            args.extend(["--numbers", n]);
        }
        let out = self.cli(&args).await;
        out.lines().last().unwrap_or_default().trim().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("request {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, key, None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, key, Some(body)).await
    }

    /// Creates a group through the native API and returns its ID.
    pub async fn create_group(&self, key: &str, body: Value) -> String {
        let (status, g) = self.post("/v1/groups", key, body).await;
        assert_eq!(status, 202, "create group: {g}");
        g["groupId"].as_str().unwrap_or_default().to_string()
    }

    /// Waits until the group is active and returns it.
    pub async fn wait_active(&self, key: &str, group_id: &str) -> Value {
        let path = format!("/v1/groups/{group_id}");
        eventually(Duration::from_secs(15), || async {
            let (s, g) = self.get(&path, key).await;
            (s == 200 && g["status"] == "active").then_some(g)
        })
        .await
        .unwrap_or_else(|| panic!("group {group_id} did not become active; log:\n{}", self.log()))
    }

    /// An active group with the given extra create fields.
    pub async fn active_group(&self, key: &str, extra: Value) -> Value {
        let mut body = json!({ "wabaNumber": NUMBER, "subject": "Test group" });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let id = self.create_group(key, body).await;
        self.wait_active(key, &id).await
    }

    pub async fn events(&self, key: &str, group_id: &str) -> Vec<Value> {
        let (s, e) = self.get(&format!("/v1/groups/{group_id}/events?limit=1000"), key).await;
        assert_eq!(s, 200, "events: {e}");
        e["data"].as_array().cloned().unwrap_or_default()
    }
}

/// Polls `check` until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn event_types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub fn sequences(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["sequence"].as_i64().unwrap_or(-1)).collect()
}
