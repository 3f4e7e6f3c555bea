//! Webhooks: signed, per-group ordered, at-least-once delivery to real local receivers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    harness::{TestServer, eventually},
    receiver::{Behaviour, Receiver, verify},
};

const LOCAL: &[&str] = &[
    "--allow-private-webhook-targets",
    "--webhook-retry-schedule",
    "0s,200ms,400ms,800ms",
];

async fn add_endpoint(s: &TestServer, body: Value) -> (String, String) {
    let (st, ep) = s.post("/v1/webhook-endpoints", &s.key, body).await;
    assert_eq!(st, 201, "{ep}");
    (
        ep["id"].as_str().unwrap().to_string(),
        ep["secret"].as_str().unwrap().to_string(),
    )
}

async fn wait_for<F: Fn() -> bool>(what: &str, timeout: Duration, f: F) {
    let ok = eventually(timeout, || async { f().then_some(()) }).await;
    assert!(ok.is_some(), "timed out waiting for {what}");
}

/// Joins `n` users to the group; returns the event count of the group (1 + n).
async fn joins(s: &TestServer, group: &Value, n: usize) -> usize {
    let link = group["inviteLink"].as_str().unwrap();
    for i in 0..n {
        let (st, b) = s
            .post(
                "/v1/sandbox/join",
                &s.key,
                json!({ "phone": format!("9198{i:08}"), "inviteLink": link }),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    1 + n
}

#[tokio::test]
async fn deliveries_are_signed_and_match_the_event_log() {
    let s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (id, secret) = add_endpoint(&s, json!({ "url": rx.url, "description": "crm" })).await;
    assert!(secret.starts_with("whsec_"));
    let (st, ep) = s.get(&format!("/v1/webhook-endpoints/{id}"), &s.key).await;
    assert_eq!(st, 200);
    assert!(
        ep.get("secret").is_none(),
        "the secret is shown only when it is made (creation, rotation)"
    );
    assert_eq!(ep["eventTypes"], Value::Null);
    // There is no way to read it back.
    let (st, _) = s.get(&format!("/v1/webhook-endpoints/{id}/secret"), &s.key).await;
    assert_eq!(st, 404);
    let (_, list) = s.get("/v1/webhook-endpoints", &s.key).await;
    assert!(!list.to_string().contains(&secret), "{list}");

    let g = s.active_group(&s.key, json!({ "groupId": "signed" })).await;
    joins(&s, &g, 1).await;
    wait_for("two deliveries", Duration::from_secs(10), || rx.accepted().len() >= 2).await;
    let got = rx.accepted();
    let log = s.events(&s.key, "signed").await;
    for (r, e) in got.iter().zip(&log) {
        assert!(
            verify(&secret, r),
            "signature verifies with standardwebhooks: {}",
            r.signature
        );
        assert_eq!(r.id, e["eventId"].as_str().unwrap(), "webhook-id is the eventId");
        assert_eq!(&r.json, e, "the webhook body is the logged event");
    }
    assert_eq!(got[0].json["eventType"], "GROUP_CREATED");
    assert_eq!(got[0].json["inviteLink"], g["inviteLink"]);
    assert_eq!(got[1].json["eventType"], "GROUP_PARTICIPANT_JOINED");
    assert!(
        !verify(&crate::receiver_secret_other(), &got[0]),
        "another secret does not verify"
    );

    let (_, d) = s
        .get(
            &format!("/v1/webhook-endpoints/{id}/deliveries?status=succeeded"),
            &s.key,
        )
        .await;
    let data = d["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["status"], "succeeded");
    assert_eq!(data[0]["attempts"][0]["statusCode"], 200);
    assert!(data[0]["attempts"][0]["latencyMs"].is_number());

    // Metrics count the outcome.
    let m = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("wagroups_webhook_deliveries_total"), "{m}");
    assert!(m.contains("wagroups_webhook_queue_depth"), "{m}");
    assert!(m.contains("wagroups_webhook_attempt_duration_seconds"), "{m}");
    // Both databases' writers count their commits (the gateway's and the simulated network's).
    for db in ["wg-db", "wg-sim"] {
        assert!(
            m.contains(&format!("wagroups_sqlite_commits_total{{db=\"{db}\"}}")),
            "{m}"
        );
        assert!(
            m.contains(&format!("wagroups_sqlite_write_jobs_total{{db=\"{db}\"}}")),
            "{m}"
        );
    }
}

#[tokio::test]
async fn rotated_secrets_overlap() {
    let s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (id, old) = add_endpoint(&s, json!({ "url": rx.url })).await;
    let (st, rotated) = s
        .post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), &s.key, json!({}))
        .await;
    assert_eq!(st, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(new.starts_with("whsec_"), "{rotated}");
    assert!(rotated["previousSecretExpiresAt"].is_string(), "{rotated}");
    s.active_group(&s.key, json!({})).await;
    wait_for("a delivery", Duration::from_secs(10), || !rx.accepted().is_empty()).await;
    let r = &rx.accepted()[0];
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
    assert!(verify(&new, r), "the new secret verifies");
    assert!(verify(&old, r), "the old secret still verifies during the overlap");
}

#[tokio::test]
async fn a_failing_receiver_gets_every_event_in_group_order_and_attempts_are_visible() {
    let s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::FailFirst(3)).await;
    let (id, _) = add_endpoint(&s, json!({ "url": rx.url })).await;
    let g = s.active_group(&s.key, json!({ "groupId": "ordered" })).await;
    let total = joins(&s, &g, 4).await;
    wait_for("every event", Duration::from_secs(15), || {
        rx.accepted_ids().len() == total
    })
    .await;
    let order = rx.first_accepted_sequences();
    assert_eq!(order["ordered"], (1..=total as i64).collect::<Vec<_>>());
    // Nothing of the group was sent before the first event succeeded.
    let all = rx.all();
    assert!(
        all[..3].iter().all(|r| r.json["sequence"] == 1),
        "only sequence 1 while it fails"
    );

    let (_, d) = s.get(&format!("/v1/webhook-endpoints/{id}/deliveries"), &s.key).await;
    let first = d["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["sequence"] == 1)
        .cloned()
        .unwrap();
    let codes: Vec<Value> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(500), json!(500), json!(200)]);
    assert!(first["attempts"][0]["nextAttemptAt"].is_string());
    assert!(first["attempts"][0]["error"].as_str().unwrap().contains("500"));
    assert_eq!(first["attempts"][3]["nextAttemptAt"], Value::Null);
}

#[tokio::test]
async fn dead_and_slow_endpoints_do_not_delay_a_healthy_one() {
    let mut args = LOCAL.to_vec();
    args.extend(["--webhook-timeout", "10s"]);
    let s = TestServer::start_with(&args).await;
    let dead = Receiver::start(Behaviour::Status(500)).await;
    let slow = Receiver::start(Behaviour::Slow(Duration::from_secs(2))).await;
    let healthy = Receiver::start(Behaviour::Ok).await;
    for rx in [&dead, &slow, &healthy] {
        add_endpoint(&s, json!({ "url": rx.url })).await;
    }
    let g1 = s.active_group(&s.key, json!({ "groupId": "h1" })).await;
    let g2 = s.active_group(&s.key, json!({ "groupId": "h2" })).await;
    let total = joins(&s, &g1, 3).await + 1;
    let _ = g2;
    wait_for("the healthy endpoint's events", Duration::from_secs(5), || {
        healthy.accepted_ids().len() == total
    })
    .await;
    // The slow endpoint is still working through group h1 in order (2 s per event).
    assert!(
        slow.accepted_ids().len() < total,
        "slow got {}",
        slow.accepted_ids().len()
    );
    // Different groups proceed concurrently even on the slow endpoint.
    let slow_groups: std::collections::HashSet<String> = slow
        .all()
        .iter()
        .map(|r| r.json["groupId"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        slow_groups.contains("h1") && slow_groups.contains("h2"),
        "{slow_groups:?}"
    );
    // And the dead endpoint is being retried, never delivered.
    assert!(dead.accepted().is_empty() && !dead.all().is_empty());
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::Status(410)).await;
    let (id, _) = add_endpoint(&s, json!({ "url": rx.url })).await;
    let g = s.active_group(&s.key, json!({})).await;
    let ep = eventually(Duration::from_secs(10), || async {
        let (_, ep) = s.get(&format!("/v1/webhook-endpoints/{id}"), &s.key).await;
        (ep["disabled"] == true).then_some(ep)
    })
    .await
    .expect("410 disables the endpoint");
    assert!(ep["disabledReason"].as_str().unwrap().contains("410"));
    joins(&s, &g, 1).await;
    // No delivery is even queued for a disabled endpoint.
    let (_, d) = s.get(&format!("/v1/webhook-endpoints/{id}/deliveries"), &s.key).await;
    assert_eq!(
        d["data"].as_array().unwrap().len(),
        1,
        "only the dead GROUP_CREATED: {d}"
    );
    assert_eq!(d["data"][0]["status"], "dead");
    assert_eq!(rx.all().len(), 1, "nothing is sent to a disabled endpoint");
    // Enabled again, it receives new events.
    rx.set(Behaviour::Ok);
    let (st, _) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            Some(json!({ "disabled": false })),
        )
        .await;
    assert_eq!(st, 200);
    s.active_group(&s.key, json!({})).await;
    wait_for("a delivery after re-enabling", Duration::from_secs(10), || {
        !rx.accepted().is_empty()
    })
    .await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let s = TestServer::start_with(&[
        "--allow-private-webhook-targets",
        "--webhook-retry-schedule",
        "0s,100ms,100ms",
    ])
    .await;
    let rx = Receiver::start(Behaviour::RetryAfterOnce(2)).await;
    add_endpoint(&s, json!({ "url": rx.url })).await;
    s.active_group(&s.key, json!({})).await;
    wait_for("the retried delivery", Duration::from_secs(10), || {
        rx.accepted().len() == 1
    })
    .await;
    let all = rx.all();
    assert_eq!(all.len(), 2);
    let gap = all[1].at.duration_since(all[0].at);
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, not the 2 s Retry-After"
    );
}

#[tokio::test]
async fn recover_and_redeliver() {
    let s = TestServer::start_with(&[
        "--allow-private-webhook-targets",
        "--webhook-retry-schedule",
        "0s,100ms",
    ])
    .await;
    let rx = Receiver::start(Behaviour::Status(500)).await;
    let (id, secret) = add_endpoint(&s, json!({ "url": rx.url })).await;
    let g = s.active_group(&s.key, json!({ "groupId": "rec" })).await;
    let total = joins(&s, &g, 2).await;
    // The first delivery dies after two attempts; the later ones of the group wait for it,
    // then die in turn.
    let dead = eventually(Duration::from_secs(15), || async {
        let (_, d) = s
            .get(&format!("/v1/webhook-endpoints/{id}/deliveries?status=dead"), &s.key)
            .await;
        (d["data"].as_array().unwrap().len() == total).then_some(())
    })
    .await;
    assert!(dead.is_some(), "every delivery dead");
    assert!(rx.accepted().is_empty());

    rx.set(Behaviour::Ok);
    let since = "2000-01-01T00:00:00Z";
    let (st, r) = s
        .post(
            &format!("/v1/webhook-endpoints/{id}/recover"),
            &s.key,
            json!({ "since": since }),
        )
        .await;
    assert_eq!(st, 202, "{r}");
    assert_eq!(r["requeued"], total);
    wait_for("recovered deliveries", Duration::from_secs(10), || {
        rx.accepted_ids().len() == total
    })
    .await;
    assert_eq!(
        rx.first_accepted_sequences()["rec"],
        (1..=total as i64).collect::<Vec<_>>()
    );

    let event_id = rx.accepted()[0].id.clone();
    let (st, r) = s
        .post(&format!("/v1/events/{event_id}/redeliver"), &s.key, json!({}))
        .await;
    assert_eq!(st, 202, "{r}");
    wait_for("the redelivered event", Duration::from_secs(10), || {
        rx.accepted().len() == total + 1
    })
    .await;
    let again = rx.accepted().last().cloned().unwrap();
    assert_eq!(again.id, event_id, "the same webhook-id");
    assert!(verify(&secret, &again));
    let (st, _) = s.post("/v1/events/evt_nope/redeliver", &s.key, json!({})).await;
    assert_eq!(st, 404);
    let (st, b) = s
        .post(
            &format!("/v1/webhook-endpoints/{id}/recover"),
            &s.key,
            json!({ "since": "yesterday" }),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["field"], "since");
}

#[tokio::test]
async fn filters_by_event_type_and_number() {
    let s = TestServer::start_with(LOCAL).await;
    s.cli(&["numbers", "add", "--org", "default", "--waba-number", "15550100002"])
        .await;
    let joined_only = Receiver::start(Behaviour::Ok).await;
    let second_number = Receiver::start(Behaviour::Ok).await;
    let everything = Receiver::start(Behaviour::Ok).await;
    add_endpoint(
        &s,
        json!({ "url": joined_only.url, "eventTypes": ["GROUP_PARTICIPANT_JOINED"] }),
    )
    .await;
    add_endpoint(&s, json!({ "url": second_number.url, "wabaNumbers": ["15550100002"] })).await;
    add_endpoint(&s, json!({ "url": everything.url })).await;
    let g1 = s.active_group(&s.key, json!({ "groupId": "n1" })).await;
    let g2 = s
        .active_group(&s.key, json!({ "groupId": "n2", "wabaNumber": "15550100002" }))
        .await;
    joins(&s, &g1, 1).await;
    joins(&s, &g2, 1).await;
    wait_for("all four events", Duration::from_secs(10), || {
        everything.accepted_ids().len() == 4
    })
    .await;
    wait_for("filtered deliveries", Duration::from_secs(10), || {
        joined_only.accepted_ids().len() == 2 && second_number.accepted_ids().len() == 2
    })
    .await;
    assert!(
        joined_only
            .accepted()
            .iter()
            .all(|r| r.json["eventType"] == "GROUP_PARTICIPANT_JOINED")
    );
    assert!(
        second_number
            .accepted()
            .iter()
            .all(|r| r.json["wabaNumber"] == "15550100002")
    );

    // Filters are validated.
    let (st, b) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": everything.url, "eventTypes": ["NOPE"] }),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["field"], "eventTypes[0]");
    let (st, b) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": everything.url, "wabaNumbers": ["19999999999"] }),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["field"], "wabaNumbers[0]");
    let (st, b) = s
        .post("/v1/webhook-endpoints", &s.key, json!({ "url": "ftp://x.example/" }))
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["field"], "url");

    // The organisation's event log, for reconciliation.
    let (_, all) = s.get("/v1/events", &s.key).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 4);
    let (_, joined) = s
        .get("/v1/events?eventType=GROUP_PARTICIPANT_JOINED&groupId=n2", &s.key)
        .await;
    assert_eq!(joined["data"].as_array().unwrap().len(), 1);
    let first = all["data"][0]["eventId"].as_str().unwrap();
    let (_, after) = s.get(&format!("/v1/events?after={first}&limit=2"), &s.key).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 2);
    assert_eq!(after["data"][0], all["data"][1]);
}

#[tokio::test]
async fn private_targets_are_refused_without_the_flag() {
    let rx = Receiver::start(Behaviour::Ok).await;
    let mut s = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    // Registered while allowed, through a host name that resolves to 127.0.0.1.
    let (id, _) = add_endpoint(&s, json!({ "url": rx.localhost_url() })).await;
    s.restart(&[]).await;
    for url in [
        rx.url.clone(),
        rx.localhost_url(),
        "http://169.254.169.254/latest/meta-data".into(),
    ] {
        let (st, b) = s.post("/v1/webhook-endpoints", &s.key, json!({ "url": url })).await;
        assert_eq!(st, 400, "{url}: {b}");
        assert_eq!(b["error"]["field"], "url");
        assert!(b["error"]["message"].as_str().unwrap().contains("private"), "{b}");
    }
    // At delivery time the resolved address is checked again: nothing reaches the receiver.
    s.active_group(&s.key, json!({})).await;
    let attempt = eventually(Duration::from_secs(10), || async {
        let (_, d) = s.get(&format!("/v1/webhook-endpoints/{id}/deliveries"), &s.key).await;
        d["data"][0]["attempts"][0]["error"].as_str().map(str::to_string)
    })
    .await
    .expect("an attempt is recorded");
    assert!(attempt.contains("refused"), "{attempt}");
    assert!(rx.all().is_empty());
}

#[tokio::test]
async fn endpoints_crud_and_cli() {
    let s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (id, _) = add_endpoint(&s, json!({ "url": rx.url })).await;
    let (st, ep) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            Some(json!({ "eventTypes": ["GROUP_CREATED"], "description": "only creations" })),
        )
        .await;
    assert_eq!(st, 200, "{ep}");
    assert_eq!(ep["eventTypes"], json!(["GROUP_CREATED"]));
    let (_, list) = s.get("/v1/webhook-endpoints", &s.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let other = s.new_org("other", "15550900001", "cloud").await;
    let (st, _) = s.get(&format!("/v1/webhook-endpoints/{id}"), &other).await;
    assert_eq!(st, 404, "another organisation's endpoint is invisible");
    let (st, _) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            None,
        )
        .await;
    assert_eq!(st, 204);
    let (st, _) = s.get(&format!("/v1/webhook-endpoints/{id}"), &s.key).await;
    assert_eq!(st, 404);

    let out = s
        .cli(&[
            "webhooks",
            "add",
            "--org",
            "default",
            "--url",
            &rx.url,
            "--allow-private-webhook-targets",
        ])
        .await;
    assert!(out.lines().last().unwrap().starts_with("whsec_"), "{out}");
    let listed = s.cli(&["webhooks", "list", "--org", "default"]).await;
    let cli_id = listed.split('\t').next().unwrap().to_string();
    assert!(listed.contains(&rx.url), "{listed}");
    let (ok, _, err) = s
        .cli_status(&["webhooks", "add", "--org", "default", "--url", &rx.url])
        .await;
    assert!(!ok && err.contains("private"), "{err}");
    s.cli(&["webhooks", "remove", "--org", "default", &cli_id]).await;
    assert!(s.cli(&["webhooks", "list", "--org", "default"]).await.trim().is_empty());
}

#[tokio::test]
async fn sigkill_with_hundreds_of_events_in_flight_loses_nothing_and_keeps_group_order() {
    // Two attempts at a time, 20 ms each: the receiver takes about 3 s for all events, so
    // many are queued or in flight when the server is killed.
    let mut args = LOCAL.to_vec();
    args.extend(["--webhook-endpoint-concurrency", "2"]);
    let mut s = TestServer::start_with(&args).await;
    let rx = Receiver::start(Behaviour::Slow(Duration::from_millis(20))).await;
    add_endpoint(&s, json!({ "url": rx.url })).await;
    let mut groups = Vec::new();
    for i in 0..40 {
        groups.push(s.active_group(&s.key, json!({ "groupId": format!("kg{i}") })).await);
    }
    for g in &groups {
        joins(&s, g, 7).await;
    }
    // 40 groups × 8 events, many of them still queued or in flight: kill now.
    s.kill().await;
    let before_restart = rx.accepted_ids().len();
    s.restart(&args).await;
    let (_, log) = s.get("/v1/events?limit=1000", &s.key).await;
    let expected: std::collections::HashSet<String> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 40 * 8);
    assert!(
        before_restart < expected.len(),
        "the kill happened with deliveries outstanding"
    );
    wait_for(
        "every committed event after the restart",
        Duration::from_secs(60),
        || rx.accepted_ids().is_superset(&expected),
    )
    .await;
    for (group, seqs) in rx.first_accepted_sequences() {
        assert_eq!(seqs, (1..=8).collect::<Vec<i64>>(), "group {group} in order");
    }
}

#[tokio::test]
async fn sigterm_lets_an_attempt_in_flight_finish() {
    let mut s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::Slow(Duration::from_millis(1500))).await;
    let (id, _) = add_endpoint(&s, json!({ "url": rx.url })).await;
    s.active_group(&s.key, json!({ "groupId": "term" })).await;
    // The receiver has the request and will answer in 1.5 s: stop the server now.
    wait_for("the attempt to arrive", Duration::from_secs(10), || {
        !rx.all().is_empty()
    })
    .await;
    assert!(s.terminate().await, "clean exit on SIGTERM; log:\n{}", s.log());
    s.restart(LOCAL).await;
    let (_, d) = s.get(&format!("/v1/webhook-endpoints/{id}/deliveries"), &s.key).await;
    assert_eq!(
        d["data"][0]["status"], "succeeded",
        "the attempt finished and was recorded: {d}"
    );
    assert_eq!(d["data"][0]["attempts"].as_array().unwrap().len(), 1);
}

/// Each endpoint has a format (Standard Webhooks unless asked otherwise), shown on the
/// endpoint and changeable; an unknown one is refused naming the field and the choices.
#[tokio::test]
async fn endpoints_have_a_format() {
    let s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (st, ep) = s.post("/v1/webhook-endpoints", &s.key, json!({ "url": rx.url })).await;
    assert_eq!(st, 201, "{ep}");
    assert_eq!(ep["format"], "standard");
    let id = ep["id"].as_str().unwrap();
    let (st, b) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": rx.url, "format": "soap" }),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "format");
    assert!(b["error"]["message"].as_str().unwrap().contains("standard"), "{b}");
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            Some(json!({ "format": "standard", "description": "std" })),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["format"], "standard");
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            Some(json!({ "format": 3 })),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "format");
    // Standard deliveries: the event log's bytes, signed.
    s.active_group(&s.key, json!({ "groupId": "fmt" })).await;
    wait_for("a delivery", Duration::from_secs(10), || !rx.accepted().is_empty()).await;
    let got = &rx.accepted()[0];
    let log = s.events(&s.key, "fmt").await;
    assert_eq!(got.json, log[0]);
    assert_eq!(got.id, log[0]["eventId"].as_str().unwrap());
}

/// Every byte the database keeps (its file and its write-ahead log).
fn database_bytes(s: &TestServer) -> Vec<u8> {
    let mut out = Vec::new();
    for name in ["wagroups.db", "wagroups.db-wal"] {
        if let Ok(b) = std::fs::read(s.dir().join(name)) {
            out.extend(b);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn signing_secrets_are_stored_sealed_and_old_plaintext_ones_are_sealed_at_start() {
    let mut s = TestServer::start_with(LOCAL).await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (id, secret) = add_endpoint(&s, json!({ "url": rx.url })).await;
    let (st, rotated) = s
        .post(&format!("/v1/webhook-endpoints/{id}/rotate-secret"), &s.key, json!({}))
        .await;
    assert_eq!(st, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    let stored = database_bytes(&s);
    assert!(
        !contains(&stored, &secret),
        "the first secret is in the database in plaintext"
    );
    assert!(
        !contains(&stored, &new_secret),
        "the rotated secret is in the database in plaintext"
    );
    assert!(
        s.dir().join("wagroups.db.key").exists(),
        "the key file is made at the first start"
    );

    // A database from before secrets were sealed: its secret is in plaintext.
    assert!(s.terminate().await, "the server stops cleanly");
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let db = rusqlite::Connection::open(s.dir().join("wagroups.db")).unwrap();
    db.execute(
        "UPDATE webhook_endpoints SET secret = ?1, previous_secret = NULL, previous_secret_until = NULL WHERE id = ?2",
        rusqlite::params![old, id],
    )
    .unwrap();
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    drop(db);
    assert!(contains(&database_bytes(&s), old));

    // The next start seals it; deliveries are still signed with it.
    s.restart(LOCAL).await;
    let db = rusqlite::Connection::open(s.dir().join("wagroups.db")).unwrap();
    let stored: String = db
        .query_row("SELECT secret FROM webhook_endpoints WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        stored.starts_with("v1."),
        "the old secret was sealed at start: {stored}"
    );
    // Once the log is checkpointed into the file, no byte of the old plaintext is left.
    let checkpointed = eventually(Duration::from_secs(10), || async {
        let busy: i64 = db
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        (busy == 0).then_some(())
    })
    .await;
    assert!(checkpointed.is_some(), "the log could not be checkpointed");
    drop(db);
    assert!(
        !contains(&database_bytes(&s), old),
        "the old plaintext is still in the file"
    );
    let g = s.active_group(&s.key, json!({ "groupId": "sealed-1" })).await;
    let received = eventually(Duration::from_secs(15), || async {
        rx.accepted()
            .into_iter()
            .find(|r| r.json["groupId"] == g["groupId"] && r.json["eventType"] == "GROUP_CREATED")
    })
    .await
    .expect("GROUP_CREATED delivered");
    assert!(verify(old, &received), "signed with the secret the customer has");
}
