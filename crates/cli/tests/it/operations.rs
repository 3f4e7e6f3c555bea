//! Writes WhatsApp confirms later. The simulated cloud profile, like Meta's Cloud API, accepts
//! a write and confirms it by a report: the answer waits for the confirmation (bounded), or
//! with `Prefer: respond-async` comes at once as `202` with an operation to follow.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{TestServer, eventually};

async fn send_async(s: &TestServer, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s
        .http
        .request(method, s.url(path))
        .bearer_auth(&s.key)
        .header("prefer", "respond-async");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits until the operation is no longer pending and returns it.
async fn settled(s: &TestServer, id: &str) -> Value {
    eventually(Duration::from_secs(10), || async {
        let (st, op) = s.get(&format!("/v1/operations/{id}"), &s.key).await;
        assert_eq!(st, 200, "{op}");
        (op["status"] != "pending").then_some(op)
    })
    .await
    .unwrap_or_else(|| panic!("operation {id} stayed pending"))
}

#[tokio::test]
async fn an_asynchronous_write_answers_202_and_its_operation_ends_with_the_outcome() {
    let s = TestServer::start().await;
    let g = s.active_group(&s.key, json!({ "groupId": "asy" })).await;
    let old_link = g["inviteLink"].as_str().unwrap().to_string();

    let (st, op) = send_async(&s, reqwest::Method::POST, "/v1/groups/asy/invite-link/reset", None).await;
    assert_eq!(st, 202, "{op}");
    assert_eq!(op["status"], "pending");
    assert_eq!(op["operation"], "reset_invite_link");
    assert_eq!(op["groupId"], "asy");
    let id = op["operationId"].as_str().unwrap();
    assert!(id.starts_with("op_"), "{op}");
    let done = settled(&s, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, g) = s.get("/v1/groups/asy", &s.key).await;
    assert_ne!(
        g["inviteLink"],
        old_link.as_str(),
        "the confirmation's effect is applied"
    );

    // Participants: the operation carries the outcome per item.
    let (st, op) = send_async(
        &s,
        reqwest::Method::POST,
        "/v1/groups/asy/participants",
        Some(json!({ "participants": ["+91 90000 00001", "919000000002"] })),
    )
    .await;
    assert_eq!(st, 202, "{op}");
    assert_eq!(op["operation"], "invite_participants", "cloud numbers invite");
    let done = settled(&s, op["operationId"].as_str().unwrap()).await;
    let statuses: Vec<(&str, &str)> = done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(statuses, [("919000000001", "invited"), ("919000000002", "invited")]);

    // Without the preference the answer waits for the confirmation, as before.
    let (st, r) = s
        .post(
            "/v1/groups/asy/participants",
            &s.key,
            json!({ "participants": ["919000000003"] }),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["results"][0]["status"], "invited");
}

async fn refuse(s: &TestServer, code: &str) {
    let (st, b) = s
        .post(
            "/v1/sandbox/groups/nope/refuse-next-write",
            &s.key,
            json!({ "code": code, "message": "not allowed here" }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test]
async fn a_write_whatsapp_refuses_after_accepting_it_fails_visibly() {
    let s = TestServer::start().await;
    s.active_group(&s.key, json!({ "groupId": "nope" })).await;
    // Waiting: the refusal is the answer.
    refuse(&s, "131009").await;
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/nope",
            &s.key,
            Some(json!({ "subject": "Renamed" })),
        )
        .await;
    assert_eq!(st, 422, "{b}");
    assert_eq!(b["error"]["code"], "131009");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("not allowed here"),
        "{b}"
    );
    let (_, g) = s.get("/v1/groups/nope", &s.key).await;
    assert_eq!(g["subject"], "Test group", "nothing changed");

    // Asynchronous: the operation ends failed, with WhatsApp's reason.
    refuse(&s, "131000").await;
    let (st, op) = send_async(
        &s,
        reqwest::Method::PATCH,
        "/v1/groups/nope",
        Some(json!({ "description": "x" })),
    )
    .await;
    assert_eq!(st, 202, "{op}");
    let done = settled(&s, op["operationId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "131000");
    assert_eq!(done["operation"], "update_settings");

    // Each refusal is a GROUP_OPERATION_FAILED event in the group's log.
    let events = s.events(&s.key, "nope").await;
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventType"] == "GROUP_OPERATION_FAILED")
        .collect();
    assert_eq!(failed.len(), 2, "{events:?}");
    assert_eq!(failed[1]["operationId"], done["operationId"]);
    assert_eq!(failed[1]["operation"], "update_settings");
    assert_eq!(failed[1]["error"]["code"], "131000");
    let seqs: Vec<i64> = events.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());

    // The next write goes through again.
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/nope",
            &s.key,
            Some(json!({ "subject": "Renamed" })),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["subject"], "Renamed");
}

#[tokio::test]
async fn synchronous_providers_answer_at_once_and_operations_are_tenant_scoped() {
    let s = TestServer::start().await;
    s.cli(&[
        "numbers",
        "add",
        "--org",
        "default",
        "--waba-number",
        "15550100008",
        "--profile",
        "linked-device",
    ])
    .await;
    s.active_group(&s.key, json!({ "wabaNumber": "15550100008", "groupId": "sync" }))
        .await;
    let (st, r) = send_async(
        &s,
        reqwest::Method::POST,
        "/v1/groups/sync/participants",
        Some(json!({ "participants": ["919000000001"] })),
    )
    .await;
    assert_eq!(st, 200, "the linked-device profile answers at once: {r}");
    assert_eq!(r["results"][0]["status"], "added");

    // A refusal asked for on a linked-device group is answered at once, once.
    let (st, b) = s
        .post(
            "/v1/sandbox/groups/sync/refuse-next-write",
            &s.key,
            json!({ "code": "131009" }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/sync",
            &s.key,
            Some(json!({ "subject": "Refused" })),
        )
        .await;
    assert_eq!(st, 422, "{b}");
    assert_eq!(b["error"]["code"], "131009");
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/sync",
            &s.key,
            Some(json!({ "subject": "Accepted" })),
        )
        .await;
    assert_eq!(st, 200, "the refusal was used up: {b}");

    s.active_group(&s.key, json!({ "groupId": "mine" })).await;
    let (_, op) = send_async(&s, reqwest::Method::POST, "/v1/groups/mine/invite-link/reset", None).await;
    let id = op["operationId"].as_str().unwrap().to_string();
    let other = s.new_org("other", "15550200008", "cloud").await;
    let (st, _) = s.get(&format!("/v1/operations/{id}"), &other).await;
    assert_eq!(st, 404, "another organisation's operation does not exist for it");
    let (st, b) = s.get("/v1/operations/op_nothing", &s.key).await;
    assert_eq!(st, 404, "{b}");
}
