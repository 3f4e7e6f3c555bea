//! Crashes lose nothing: acknowledged creates survive SIGKILL, pending commands are carried
//! out after a restart, and nothing is applied twice.

use std::time::Duration;

use serde_json::json;

use crate::harness::{NUMBER, TestServer, event_types, eventually, sequences};

async fn assert_created_once(s: &TestServer, ids: &[String]) {
    for id in ids {
        s.wait_active(&s.key, id).await;
        let events = s.events(&s.key, id).await;
        assert_eq!(event_types(&events), ["GROUP_CREATED"], "group {id}");
        assert_eq!(sequences(&events), [1], "group {id}");
    }
}

#[tokio::test]
async fn commands_pending_at_a_crash_are_carried_out_after_restart() {
    // An API-only server queues creation commands without carrying them out.
    let mut s = TestServer::start_with(&["--api-only"]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            s.create_group(&s.key, json!({ "wabaNumber": NUMBER, "subject": format!("P{i}") }))
                .await,
        );
    }
    let (_, page) = s.get("/v1/groups?status=pending&limit=100", &s.key).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
    s.kill().await;
    s.restart(&[]).await;
    assert_created_once(&s, &ids).await;
}

#[tokio::test]
async fn sigkill_mid_stream_loses_no_acknowledged_create_and_duplicates_nothing() {
    let mut s = TestServer::start().await;
    let mut acked: Vec<String> = Vec::new();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let http = s.http.clone();
        let url = s.url("/v1/groups");
        let key = s.key.clone();
        let done = done.clone();
        tasks.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({ "wabaNumber": NUMBER, "subject": format!("K{i}"), "groupId": format!("k{i}") }))
                .send()
                .await
                .ok()?;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (r.status().as_u16() == 202).then(|| format!("k{i}"))
        });
    }
    // Kill while requests and creations are in flight.
    eventually(Duration::from_secs(20), || async {
        (done.load(std::sync::atomic::Ordering::SeqCst) >= 60).then_some(())
    })
    .await
    .expect("requests are answered");
    s.kill().await;
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(id)) = r {
            acked.push(id);
        }
    }
    assert!(!acked.is_empty(), "some creates were acknowledged before the kill");
    s.restart(&[]).await;
    assert_created_once(&s, &acked).await;
    // Nothing is left half-done: every group that exists becomes active.
    let ok = eventually(Duration::from_secs(20), || async {
        let (_, p) = s.get("/v1/groups?status=pending&limit=1024", &s.key).await;
        p["data"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    assert!(ok.is_some(), "groups stayed pending after restart; log:\n{}", s.log());
}

#[tokio::test]
async fn the_simulated_network_survives_a_restart() {
    let mut s = TestServer::start().await;
    let g = s.active_group(&s.key, json!({ "groupId": "keep" })).await;
    let link = g["inviteLink"].as_str().unwrap().to_string();
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999991", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 200);
    s.kill().await;
    s.restart(&[]).await;
    // The group created before the restart can still be joined, and remembers its members.
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999992", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999991", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 409, "still a member after the restart");
    let events = s.events(&s.key, "keep").await;
    assert_eq!(
        event_types(&events),
        ["GROUP_CREATED", "GROUP_PARTICIPANT_JOINED", "GROUP_PARTICIPANT_JOINED"]
    );
    assert_eq!(sequences(&events), [1, 2, 3]);
}
