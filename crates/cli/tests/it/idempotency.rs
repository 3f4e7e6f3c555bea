//! `Idempotency-Key` on POSTs: replay, mismatch, across a restart, per organisation.

use serde_json::{Value, json};

use crate::harness::{NUMBER, TestServer};

async fn post_keyed(s: &TestServer, path: &str, key: &str, idem: &str, body: Value) -> (u16, Value, bool) {
    let resp = s
        .http
        .post(s.url(path))
        .bearer_auth(key)
        .header("Idempotency-Key", idem)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    (status, resp.json().await.unwrap_or(Value::Null), replayed)
}

async fn group_count(s: &TestServer, key: &str) -> usize {
    let (_, list) = s.get("/v1/groups?limit=100", key).await;
    list["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retried_create_with_its_key_gets_the_first_answer_and_no_second_group() {
    let mut s = TestServer::start().await;
    let body = json!({ "wabaNumber": NUMBER, "subject": "Retried" });
    let (st, first, replayed) = post_keyed(&s, "/v1/groups", &s.key, "create-42", body.clone()).await;
    assert_eq!((st, replayed), (202, false), "{first}");
    let (st, again, replayed) = post_keyed(&s, "/v1/groups", &s.key, "create-42", body.clone()).await;
    assert_eq!((st, replayed), (202, true));
    assert_eq!(again, first, "the first answer, as it was");
    assert_eq!(group_count(&s, &s.key).await, 1);
    // The key with another request: refused, naming it.
    let (st, e, _) = post_keyed(
        &s,
        "/v1/groups",
        &s.key,
        "create-42",
        json!({ "wabaNumber": NUMBER, "subject": "Other" }),
    )
    .await;
    assert_eq!(st, 422, "{e}");
    assert_eq!(e["error"]["code"], "idempotency_key_reused");
    assert_eq!(e["error"]["field"], "Idempotency-Key");
    // In each dialect's shape; a bad key is a 400.
    let (st, e, _) = post_keyed(
        &s,
        "/whatsapp/wa-group/create",
        &s.key,
        "create-42",
        json!({ "wabaNumber": NUMBER, "subject": "DT" }),
    )
    .await;
    assert_eq!((st, e["success"].clone()), (422, json!(false)), "{e}");
    let (st, e, _) = post_keyed(&s, "/v1/groups", &s.key, "has a space", body.clone()).await;
    assert_eq!(st, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("Idempotency-Key"));
    // A refusal did nothing: the key is free for the corrected request.
    let (st, _, _) = post_keyed(&s, "/v1/groups", &s.key, "fix-1", json!({ "wabaNumber": NUMBER })).await;
    assert_eq!(st, 400);
    let (st, fixed, replayed) = post_keyed(
        &s,
        "/v1/groups",
        &s.key,
        "fix-1",
        json!({ "wabaNumber": NUMBER, "subject": "Fixed" }),
    )
    .await;
    assert_eq!((st, replayed), (202, false), "{fixed}");
    // Another key of the organisation (it may be limited to other numbers) never gets this
    // key's answer.
    let second = s.new_key("default", None).await;
    let (st, e, _) = post_keyed(&s, "/v1/groups", &second, "create-42", body.clone()).await;
    assert_eq!(st, 422, "{e}");
    // An answer that shows a secret once is kept sealed, and replayed as it was.
    let ep = json!({ "url": "https://example.com/hook" });
    let (st, made, _) = post_keyed(&s, "/v1/webhook-endpoints", &s.key, "ep-1", ep.clone()).await;
    assert_eq!(st, 201, "{made}");
    let (_, again_ep, replayed) = post_keyed(&s, "/v1/webhook-endpoints", &s.key, "ep-1", ep).await;
    assert!(replayed);
    assert_eq!(again_ep["secret"], made["secret"]);
    let secret = made["secret"].as_str().unwrap().to_string();
    let db = rusqlite::Connection::open(s.dir().join("wagroups.db")).unwrap();
    let kept: Vec<Vec<u8>> = db
        .prepare("SELECT body FROM idempotency_keys WHERE body IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(!kept.is_empty());
    assert!(
        kept.iter()
            .all(|b| !String::from_utf8_lossy(b).contains(&secret) && !String::from_utf8_lossy(b).contains("groupId")),
        "kept answers are sealed"
    );
    // Keys are durable: after a restart the answer is the same.
    s.restart(&[]).await;
    let (st, after, replayed) = post_keyed(&s, "/v1/groups", &s.key, "create-42", body.clone()).await;
    assert_eq!((st, replayed), (202, true));
    assert_eq!(after["groupId"], first["groupId"]);
    assert_eq!(group_count(&s, &s.key).await, 2, "the retried one and the fixed one");
    // Another organisation's key is its own.
    let other = s.new_org("other", "15550100088", "cloud").await;
    let (st, theirs, replayed) = post_keyed(
        &s,
        "/v1/groups",
        &other,
        "create-42",
        json!({ "wabaNumber": "15550100088", "subject": "Retried" }),
    )
    .await;
    assert_eq!((st, replayed), (202, false), "{theirs}");
    assert_ne!(theirs["groupId"], first["groupId"]);
    // DoubleTick's create replays too, keeping its own duplicate rule.
    let dt = json!({ "wabaNumber": NUMBER, "subject": "DT", "groupId": "dt_idem" });
    let (st, a, _) = post_keyed(&s, "/whatsapp/wa-group/create", &s.key, "dt-1", dt.clone()).await;
    assert_eq!(st, 200, "{a}");
    let (st, b, replayed) = post_keyed(&s, "/whatsapp/wa-group/create", &s.key, "dt-1", dt.clone()).await;
    assert_eq!((st, replayed, b), (200, true, a));
    let (st, dup, _) = post_keyed(&s, "/whatsapp/wa-group/create", &s.key, "dt-2", dt).await;
    assert_eq!(st, 409, "a new key, the same groupId: {dup}");
}

#[tokio::test]
async fn a_request_sent_again_while_the_first_is_answered_is_409() {
    use crate::{
        cloud_groups::cloud_server,
        cloud_numbers::APP_SECRET,
        fake_graph::FakeGraph,
        receiver::{Behaviour, Receiver},
    };
    let graph = FakeGraph::start(APP_SECRET).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &receiver).await;
    // Meta takes a while to answer the create: WUTS's create waits for the group meanwhile.
    graph.slow_creates(std::time::Duration::from_millis(1500));
    let body = json!({ "name": "Slow at Meta" });
    let first = {
        let (http, url, key, body) = (s.http.clone(), s.url("/wuts/groups"), key.clone(), body.clone());
        tokio::spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "slow-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        })
    };
    let asked = crate::harness::eventually(std::time::Duration::from_secs(10), || async {
        (graph.count("createGroup") == 1).then_some(())
    })
    .await;
    assert!(asked.is_some(), "Meta was asked");
    let (st, e, _) = post_keyed(&s, "/wuts/groups", &key, "slow-1", body.clone()).await;
    assert_eq!(st, 409, "{e}");
    assert_eq!(e["error_code"], "CONFLICT", "in WUTS's shape: {e}");
    assert_eq!(first.await.unwrap(), 201);
    let (st, again, replayed) = post_keyed(&s, "/wuts/groups", &key, "slow-1", body).await;
    assert_eq!((st, replayed), (201, true), "{again}");
    assert_eq!(graph.count("createGroup"), 1, "Meta was asked once");
}
