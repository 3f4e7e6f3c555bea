//! What an attacker with nothing but HTTP tries: connection floods and slow clients,
//! malformed and ambiguous requests, SSRF spellings, reading other tenants' sandbox users.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::harness::{NUMBER, TestServer, eventually};

/// Sends `request` on a new connection and reads until the server closes it (or `wait`).
async fn raw(s: &TestServer, request: &[u8], wait: Duration) -> String {
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    c.write_all(request).await.unwrap();
    read_until_closed(&mut c, wait)
        .await
        .unwrap_or_else(|got| panic!("not closed within {wait:?}; got {got:?}"))
}

/// Everything the server sends until it closes the connection; `Err` with what came if it
/// did not close within `wait`.
async fn read_until_closed(c: &mut TcpStream, wait: Duration) -> Result<String, String> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return Err(String::from_utf8_lossy(&out).into_owned()),
        }
    }
}

/// The status and JSON body of a raw HTTP/1.1 response.
fn parse(response: &str) -> (u16, Value) {
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    assert!(
        head.to_ascii_lowercase().contains("content-type: application/json"),
        "not JSON: {response:?}"
    );
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {response:?}"));
    (status, body)
}

/// The file-descriptor limit of this test process, raised so it can open thousands of
/// sockets.
fn raise_own_limit(to: u64) {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(hard >= to, "this test needs {to} open files; the hard limit is {hard}");
    rlimit::setrlimit(rlimit::Resource::NOFILE, to, hard).unwrap();
}

/// With 1,024 file descriptors, 2,000 silent connections and 200 clients sending a body a
/// byte at a time do not lock a fresh client out; the silent ones are closed after the
/// header timeout and the slow ones answered `408` after the body timeout.
#[tokio::test]
async fn a_connection_flood_does_not_lock_out_a_fresh_client() {
    raise_own_limit(8192);
    let s = TestServer::start_limited(
        Some("-n 1024"),
        &["--http-header-timeout", "2s", "--http-body-timeout", "2s"],
    )
    .await;
    let mut silent = Vec::new();
    for _ in 0..2000 {
        silent.push(TcpStream::connect(s.addr()).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(s.addr()).await.unwrap();
        let head = format!(
            "POST /v1/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{",
            s.key
        );
        c.write_all(head.as_bytes()).await.unwrap();
        slow.push(c);
    }
    // A byte every half second, stopping before the body timeout (so nothing is left unread
    // when the server answers and closes).
    let trickle = tokio::spawn(async move {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            for c in slow.iter_mut() {
                let _ = c.write_all(b" ").await;
            }
        }
        slow
    });
    // A fresh client, on a fresh connection, is answered within a second, more than once.
    for _ in 0..3 {
        let fresh = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let started = Instant::now();
        let r = fresh.get(s.url("/healthz")).send().await;
        assert!(
            matches!(&r, Ok(resp) if resp.status() == 200),
            "healthz during the flood: {r:?} after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every silent connection is closed: by the header timeout (2 s), or earlier to make room.
    let deadline = Duration::from_secs(6);
    let started = Instant::now();
    for (i, c) in silent.iter_mut().enumerate() {
        let left = deadline
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(10));
        let got = read_until_closed(c, left).await;
        assert_eq!(
            got,
            Ok(String::new()),
            "silent connection {i} after {:?}",
            started.elapsed()
        );
    }
    // The slow bodies are answered 408 in the native shape, and closed.
    let mut slow = trickle.await.unwrap();
    for c in slow.iter_mut() {
        let got = read_until_closed(c, Duration::from_secs(5)).await.unwrap();
        let (status, body) = parse(&got);
        assert_eq!(status, 408, "{got}");
        assert_eq!(body["error"]["code"], "request_timeout", "{got}");
    }
    // Nothing was created by the half-sent requests, and the server still serves.
    let (st, list) = s.get("/v1/groups", &s.key).await;
    assert_eq!(st, 200);
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let s = TestServer::start_limited(Some("-S -n 256"), &[]).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid().unwrap())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums[0], nums[1], "soft limit not raised to the hard one: {line}");
    assert_ne!(nums[0], "256", "{line}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let s = TestServer::start_with(&["--http-idle-timeout", "1s"]).await;
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle = Instant::now();
    assert_eq!(
        read_until_closed(&mut c, Duration::from_secs(5)).await,
        Ok(String::new())
    );
    let after = idle.elapsed();
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}, before the idle timeout"
    );
}

/// A body that arrives in several reads (over hyper's first 8 KiB) is no next request: the
/// connection is then idle, closed quietly after the idle timeout, not answered `408` after
/// the header timeout.
#[tokio::test]
async fn a_keep_alive_connection_after_a_large_body_is_idle_not_in_a_head() {
    let s = TestServer::start_with(&["--http-header-timeout", "1s", "--http-idle-timeout", "3s"]).await;
    let body = json!({ "wabaNumber": NUMBER, "subject": "big", "pad": "x".repeat(30_000) }).to_string();
    let mut c = TcpStream::connect(s.addr()).await.unwrap();
    let head = format!(
        "POST /v1/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        s.key,
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.as_bytes().chunks(4096) {
        c.write_all(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut buf = vec![0u8; 8192];
    let n = c.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle = Instant::now();
    assert_eq!(
        read_until_closed(&mut c, Duration::from_secs(8)).await,
        Ok(String::new()),
        "no answer but the close"
    );
    assert!(
        idle.elapsed() >= Duration::from_millis(2500),
        "closed after {:?}",
        idle.elapsed()
    );
}

#[tokio::test]
async fn a_partial_request_head_is_answered_408_in_the_dialect_shape() {
    let s = TestServer::start_with(&["--http-header-timeout", "1s"]).await;
    let got = raw(
        &s,
        b"POST /v1/groups HTTP/1.1\r\nHost: x\r\nContent-Le",
        Duration::from_secs(4),
    )
    .await;
    let (status, body) = parse(&got);
    assert_eq!(status, 408);
    assert_eq!(body["error"]["code"], "request_timeout", "{got}");
    let got = raw(
        &s,
        b"POST /whatsapp/wa-group/create HTTP/1.1\r\nHo",
        Duration::from_secs(4),
    )
    .await;
    let (status, body) = parse(&got);
    assert_eq!(status, 408);
    assert_eq!(body["success"], false, "{got}");
    assert!(body["message"].as_str().unwrap().contains("header timeout"), "{got}");
}

#[tokio::test]
async fn malformed_requests_are_answered_in_the_dialect_shape() {
    let s = TestServer::start().await;
    // A control character in a header: hyper refuses the request; the answer is still ours.
    let got = raw(
        &s,
        b"GET /v1/groups HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let (status, body) = parse(&got);
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "malformed_request", "{got}");
    let got = raw(
        &s,
        b"POST /whatsapp/wa-group/create HTTP/1.1\r\nHost: x\r\nAuthorization: \x01\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let (status, body) = parse(&got);
    assert_eq!(status, 400);
    assert_eq!(body["success"], false, "{got}");
    // A head over the limit: 431, in JSON.
    let big = format!(
        "GET /v1/groups HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let (status, body) = parse(&raw(&s, big.as_bytes(), Duration::from_secs(3)).await);
    assert_eq!(status, 431);
    assert!(body["error"]["message"].as_str().unwrap().contains("16384"), "{body}");

    // Rejections of the query string, the path and the method name what is wrong.
    let (st, b) = s.get("/v1/groups?limit=1&limit=2", &s.key).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "limit");
    let (st, b) = s.get("/v1/events?after=%FF", &s.key).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "after");
    let (st, b) = s.get("/v1/groups/%FF%FE", &s.key).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "groupId");
    let (st, b) = s.get("/v1/groups/%FF%FE/events", &s.key).await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = s
        .send(reqwest::Method::PUT, "/v1/groups", &s.key, Some(json!({})))
        .await;
    assert_eq!(st, 405, "{b}");
    assert_eq!(b["error"]["code"], "method_not_allowed");
    let (st, b) = s
        .send(reqwest::Method::GET, "/whatsapp/wa-group/create", &s.key, None)
        .await;
    assert_eq!(st, 405, "{b}");
    assert_eq!(b["success"], false);
    let (st, b) = s.get("/whatsapp/nothing-here", &s.key).await;
    assert_eq!(st, 404, "{b}");
    assert_eq!(b["success"], false);
}

#[tokio::test]
async fn a_key_given_twice_in_a_json_body_is_refused() {
    let s = TestServer::start().await;
    for path in ["/v1/groups", "/whatsapp/wa-group/create"] {
        let resp = s
            .http
            .post(s.url(path))
            .bearer_auth(&s.key)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"wabaNumber":"{NUMBER}","subject":"x","groupId":"a","groupId":"b"}}"#
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        let message = body["error"]["message"].as_str().or(body["message"].as_str()).unwrap();
        assert!(
            message.contains("groupId") && message.contains("more than once"),
            "{body}"
        );
    }
    let (_, list) = s.get("/v1/groups", &s.key).await;
    assert_eq!(list["data"], json!([]), "nothing was created");
    // Nested objects too.
    s.active_group(&s.key, json!({ "groupId": "g" })).await;
    let resp = s
        .http
        .patch(s.url("/v1/groups/g"))
        .bearer_auth(&s.key)
        .header("content-type", "application/json")
        .body(r#"{"settings":{"locked":true,"locked":false}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["field"], "settings.locked", "{body}");
}

#[tokio::test]
async fn control_characters_are_refused_in_texts_whatsapp_shows() {
    let s = TestServer::start().await;
    let (st, b) = s
        .post(
            "/v1/groups",
            &s.key,
            json!({ "wabaNumber": NUMBER, "subject": "nul\u{0}here" }),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "subject");
    assert!(b["error"]["message"].as_str().unwrap().contains("U+0000"), "{b}");
    let (st, b) = s
        .post(
            "/whatsapp/wa-group/create",
            &s.key,
            json!({ "wabaNumber": NUMBER, "subject": "ok", "description": "bell\u{7}" }),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert!(b["message"].as_str().unwrap().starts_with("description:"), "{b}");
    let (_, list) = s.get("/v1/groups", &s.key).await;
    assert_eq!(list["data"], json!([]));
    // Line breaks and tabs stay in descriptions.
    let g = s
        .active_group(
            &s.key,
            json!({ "groupId": "lines", "description": "one\ntwo\r\n\tthree" }),
        )
        .await;
    assert_eq!(g["description"], "one\ntwo\r\n\tthree");
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/lines",
            &s.key,
            Some(json!({ "subject": "esc\u{1b}[31m" })),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": "https://example.com/hook", "description": "x\u{0}" }),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "description");
}

/// Loopback, private and metadata addresses in every spelling are refused at registration
/// (and at delivery: `guard` unit tests), without `--allow-private-webhook-targets`.
#[tokio::test]
async fn every_spelling_of_a_private_target_is_refused_at_registration() {
    let s = TestServer::start().await;
    let spellings = [
        "http://localhost.:9000/",
        "http://LocalHost:9000/",
        "http://api.localhost./hook",
        "http://[::127.0.0.1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:0:a9fe:a9fe]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[64:ff9b:1::a00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://0x7f.0.0.1/",
        "http://2130706433/",
        "http://127.1/",
        "http://169.254.169.254/latest/meta-data/",
    ];
    for url in spellings {
        let (st, b) = s.post("/v1/webhook-endpoints", &s.key, json!({ "url": url })).await;
        assert_eq!(st, 400, "{url} was accepted: {b}");
        assert_eq!(b["error"]["field"], "url", "{url}: {b}");
    }
    let (st, ep) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": "https://hooks.example.com/x" }),
        )
        .await;
    assert_eq!(st, 201, "{ep}");
    let id = ep["id"].as_str().unwrap();
    for url in spellings {
        let (st, b) = s
            .send(
                reqwest::Method::PATCH,
                &format!("/v1/webhook-endpoints/{id}"),
                &s.key,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(st, 400, "PATCH to {url} was accepted: {b}");
    }
    let (_, list) = s.get("/v1/webhook-endpoints", &s.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["url"], "https://hooks.example.com/x");
}

/// Each organisation's sandbox has its own simulated users: another organisation neither
/// sees nor changes them, and its adds are not governed by them.
#[tokio::test]
async fn simulated_users_are_scoped_to_their_organisation() {
    let s = TestServer::start().await;
    s.cli(&[
        "numbers",
        "add",
        "--org",
        "default",
        "--waba-number",
        "15550100009",
        "--profile",
        "linked-device",
    ])
    .await;
    let b_key = s.new_org("beta", "15550200009", "linked-device").await;
    let phone = "919000000001";
    let (st, u) = s
        .send(
            reqwest::Method::PUT,
            &format!("/v1/sandbox/users/{phone}"),
            &s.key,
            Some(json!({ "onWhatsApp": true, "addPrivacy": "nobody", "contactOf": ["15550100009"] })),
        )
        .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["addPrivacy"], "nobody");
    // Beta sees the user as nobody configured it.
    let (st, u) = s.get(&format!("/v1/sandbox/users/{phone}"), &b_key).await;
    assert_eq!(st, 200);
    assert_eq!(
        u,
        json!({ "phone": phone, "onWhatsApp": true, "addPrivacy": "everyone", "contactOf": [] })
    );
    // Beta's change is beta's alone.
    let (st, _) = s
        .send(
            reqwest::Method::PUT,
            &format!("/v1/sandbox/users/{phone}"),
            &b_key,
            Some(json!({ "onWhatsApp": false })),
        )
        .await;
    assert_eq!(st, 200);
    let (_, u) = s.get(&format!("/v1/sandbox/users/{phone}"), &s.key).await;
    assert_eq!(
        u,
        json!({ "phone": phone, "onWhatsApp": true, "addPrivacy": "nobody", "contactOf": ["15550100009"] })
    );
    // Adds follow the adding organisation's view: ours cannot add (privacy), theirs finds
    // the user not on WhatsApp.
    let ours = s
        .active_group(&s.key, json!({ "wabaNumber": "15550100009", "groupId": "ours" }))
        .await;
    assert_eq!(ours["status"], "active");
    let (_, r) = s
        .post(
            "/v1/groups/ours/participants",
            &s.key,
            json!({ "participants": [phone], "inviteFallback": false }),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "invite_required", "{r}");
    let theirs = s
        .active_group(&b_key, json!({ "wabaNumber": "15550200009", "groupId": "theirs" }))
        .await;
    assert_eq!(theirs["status"], "active");
    let (_, r) = s
        .post(
            "/v1/groups/theirs/participants",
            &b_key,
            json!({ "participants": [phone] }),
        )
        .await;
    assert_eq!(r["results"][0]["status"], "not_on_whatsapp", "{r}");
}

#[tokio::test]
async fn logs_carry_no_colour_codes_and_can_be_json() {
    let mut s = TestServer::start().await;
    assert!(s.terminate().await, "the server did not stop cleanly");
    let log = s.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in a log file: {log:?}");

    let j = TestServer::start_with(&["--log-format", "json"]).await;
    let found = eventually(Duration::from_secs(5), || async {
        let log = j.log();
        (!log.trim().is_empty()).then_some(log)
    })
    .await
    .unwrap();
    for line in found.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
