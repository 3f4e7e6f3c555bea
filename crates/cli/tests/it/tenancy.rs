//! Tenant isolation and key restrictions.

use serde_json::json;

use crate::harness::{NUMBER, TestServer};

#[tokio::test]
async fn another_organisation_sees_nothing_of_ours() {
    let s = TestServer::start().await;
    let a = s.active_group(&s.key, json!({ "groupId": "a-secret" })).await;
    let link = a["inviteLink"].as_str().unwrap();
    let b_key = s.new_org("beta", "15550200001", "cloud").await;

    // Read, events, list: 404 and empty.
    let (st, body) = s.get("/v1/groups/a-secret", &b_key).await;
    assert_eq!(st, 404, "{body}");
    let (st, _) = s.get("/v1/groups/a-secret/events", &b_key).await;
    assert_eq!(st, 404);
    let (st, list) = s.get("/v1/groups", &b_key).await;
    assert_eq!(st, 200);
    assert_eq!(list["data"], json!([]));
    // Create on our number: it is not theirs (400 on both dialects), and writes nothing.
    let (st, body) = s
        .post("/v1/groups", &b_key, json!({ "wabaNumber": NUMBER, "subject": "x" }))
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["field"], "wabaNumber");
    let (st, body) = s
        .post(
            "/whatsapp/wa-group/create",
            &b_key,
            json!({ "wabaNumber": NUMBER, "subject": "x" }),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("wabaNumber"));
    let (_, list) = s.get("/v1/groups", &s.key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // Filtering by our number: not theirs.
    let (st, _) = s.get(&format!("/v1/groups?wabaNumber={NUMBER}"), &b_key).await;
    assert_eq!(st, 400);
    // Sandbox: our invite link and our group are invisible to them.
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &b_key,
            json!({ "phone": "919999999999", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 404);
    let (st, _) = s
        .post(
            "/v1/sandbox/leave",
            &b_key,
            json!({ "phone": "919999999999", "groupId": "a-secret" }),
        )
        .await;
    assert_eq!(st, 404);

    // The same client groupId in two organisations is two groups.
    let (st, _) = s
        .post(
            "/v1/groups",
            &b_key,
            json!({ "wabaNumber": "15550200001", "subject": "theirs", "groupId": "a-secret" }),
        )
        .await;
    assert_eq!(st, 202);
    let (_, ours) = s.get("/v1/groups/a-secret", &s.key).await;
    assert_eq!(ours["subject"], "Test group");
}

#[tokio::test]
async fn a_restricted_key_is_limited_to_its_numbers() {
    let s = TestServer::start().await;
    s.cli(&["numbers", "add", "--org", "default", "--waba-number", "15550100002"])
        .await;
    s.active_group(&s.key, json!({ "groupId": "on-1" })).await;
    let (st, _) = s
        .post(
            "/v1/groups",
            &s.key,
            json!({ "wabaNumber": "15550100002", "subject": "two", "groupId": "on-2" }),
        )
        .await;
    assert_eq!(st, 202);
    let only2 = s.new_key("default", Some("15550100002")).await;

    let (st, b) = s.get("/v1/groups/on-1", &only2).await;
    assert_eq!(st, 403, "{b}");
    assert_eq!(b["error"]["code"], "forbidden");
    let (st, _) = s.get("/v1/groups/on-2", &only2).await;
    assert_eq!(st, 200);
    let (_, list) = s.get("/v1/groups", &only2).await;
    let ids: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["groupId"].clone())
        .collect();
    assert_eq!(ids, [json!("on-2")]);
    let (st, _) = s.get(&format!("/v1/groups?wabaNumber={NUMBER}"), &only2).await;
    assert_eq!(st, 403);
    let (st, _) = s
        .post("/v1/groups", &only2, json!({ "wabaNumber": NUMBER, "subject": "x" }))
        .await;
    assert_eq!(st, 403);
}

#[tokio::test]
async fn a_restricted_key_cannot_reach_other_numbers_events_or_contacts() {
    let s = TestServer::start().await;
    s.cli(&["numbers", "add", "--org", "default", "--waba-number", "15550100002"])
        .await;
    s.active_group(&s.key, json!({ "groupId": "one" })).await;
    let only2 = s.new_key("default", Some("15550100002")).await;
    let events = s.events(&s.key, "one").await;
    let event_id = events[0]["eventId"].as_str().unwrap();
    let (st, _) = s
        .post(&format!("/v1/events/{event_id}/redeliver"), &only2, json!({}))
        .await;
    assert_eq!(st, 404, "an event of another number is invisible to a restricted key");
    let (st, _) = s
        .post(&format!("/v1/events/{event_id}/redeliver"), &s.key, json!({}))
        .await;
    assert_eq!(st, 202);
    let (_, log) = s.get("/v1/events", &only2).await;
    assert_eq!(log["data"], json!([]));

    // Simulated users' contacts are per organisation.
    let other = s.new_org("other", "15550900001", "linked-device").await;
    let (st, b) = s
        .send(
            reqwest::Method::PUT,
            "/v1/sandbox/users/919000000001",
            &other,
            Some(json!({ "contactOf": [NUMBER] })),
        )
        .await;
    assert_eq!(st, 400, "not their number: {b}");
    let (st, _) = s
        .send(
            reqwest::Method::PUT,
            "/v1/sandbox/users/919000000001",
            &other,
            Some(json!({ "contactOf": ["15550900001"] })),
        )
        .await;
    assert_eq!(st, 200);
    let (_, mine) = s
        .send(
            reqwest::Method::PUT,
            "/v1/sandbox/users/919000000001",
            &s.key,
            Some(json!({ "contactOf": [NUMBER] })),
        )
        .await;
    assert_eq!(
        mine["contactOf"],
        json!([NUMBER]),
        "the other organisation's number is not shown"
    );
    let (_, theirs) = s.get("/v1/sandbox/users/919000000001", &other).await;
    assert_eq!(theirs["contactOf"], json!(["15550900001"]), "and not erased");
}
