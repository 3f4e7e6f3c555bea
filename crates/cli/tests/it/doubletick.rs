//! DoubleTick's `POST /whatsapp/wa-group/create`: every documented status code and body.

use serde_json::{Value, json};

use crate::harness::{NUMBER, TestServer};

const PATH: &str = "/whatsapp/wa-group/create";

async fn raw(s: &TestServer, auth: Option<&str>, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = s.http.post(s.url(PATH)).body(body);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn assert_error(status: u16, body: &Value, expected: u16, mentions: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["success"], false, "{body}");
    let msg = body["message"].as_str().unwrap_or_default();
    assert!(msg.contains(mentions), "message {msg:?} should mention {mentions:?}");
}

#[tokio::test]
async fn create_echoes_the_client_group_id_or_generates_one() {
    let s = TestServer::start().await;
    let (status, body) = s
        .post(
            PATH,
            &s.key,
            json!({
                "wabaNumber": NUMBER,
                "subject": "New Support – Jan 2026",
                "description": "Private support group for new customers.",
                "joinApprovalMode": "approval_required",
                "groupId": "new_support_2026"
            }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "success": true, "groupId": "new_support_2026" }));

    let (status, body) = s
        .post(PATH, &s.key, json!({ "wabaNumber": NUMBER, "subject": "No id" }))
        .await;
    assert_eq!(status, 200, "{body}");
    let generated = body["groupId"].as_str().unwrap();
    assert!(!generated.is_empty() && generated.len() <= 50, "{generated}");
    assert_ne!(generated, "new_support_2026");

    // The groups exist, with what was asked for; joinApprovalMode defaults to the number's.
    let g = s.wait_active(&s.key, "new_support_2026").await;
    assert_eq!(g["joinApprovalMode"], "approval_required");
    assert_eq!(g["description"], "Private support group for new customers.");
    let (_, g2) = s.get(&format!("/v1/groups/{generated}"), &s.key).await;
    assert_eq!(g2["joinApprovalMode"], "auto_approve");
}

#[tokio::test]
async fn bad_requests_are_400_naming_the_field() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {}", s.key);
    let cases = [
        (json!({ "subject": "x" }), "wabaNumber"),
        (json!({ "wabaNumber": NUMBER }), "subject"),
        (json!({ "wabaNumber": NUMBER, "subject": "   " }), "subject"),
        (json!({ "wabaNumber": NUMBER, "subject": 5 }), "subject"),
        (
            json!({ "wabaNumber": NUMBER, "subject": "x", "joinApprovalMode": "sometimes" }),
            "joinApprovalMode",
        ),
        (
            json!({ "wabaNumber": NUMBER, "subject": "x", "groupId": "has space" }),
            "groupId",
        ),
        (
            json!({ "wabaNumber": NUMBER, "subject": "x", "description": ["a"] }),
            "description",
        ),
        (json!({ "wabaNumber": "919999999999", "subject": "x" }), "wabaNumber"),
        (json!({ "wabaNumber": "not-a-number", "subject": "x" }), "wabaNumber"),
    ];
    for (body, field) in cases {
        let (status, resp) = raw(&s, Some(&auth), Some("application/json"), body.to_string().into_bytes()).await;
        assert_error(status, &resp, 400, field);
    }
    // Malformed JSON, a JSON array, and a wrong or missing content type are 400, never 500.
    let (st, b) = raw(&s, Some(&auth), Some("application/json"), b"{\"subject\": ".to_vec()).await;
    assert_error(st, &b, 400, "JSON");
    let (st, b) = raw(&s, Some(&auth), Some("application/json"), b"[1,2]".to_vec()).await;
    assert_error(st, &b, 400, "JSON object");
    let (st, b) = raw(&s, Some(&auth), Some("text/plain"), b"{}".to_vec()).await;
    assert_error(st, &b, 400, "Content-Type");
    let (st, b) = raw(&s, Some(&auth), None, b"{}".to_vec()).await;
    assert_error(st, &b, 400, "Content-Type");
    // Nothing was written by any of them.
    let (_, list) = s.get("/v1/groups", &s.key).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn field_limits_at_and_over_the_boundary() {
    let s = TestServer::start().await;
    let ok = |body: Value| {
        let s = &s;
        async move {
            let (st, b) = s.post(PATH, &s.key, body).await;
            (st, b)
        }
    };
    // Subject: trimmed, then 1..=128 characters (not bytes).
    let (st, b) =
        ok(json!({ "wabaNumber": NUMBER, "subject": format!("  {}  ", "é".repeat(128)), "groupId": "s128" })).await;
    assert_eq!(st, 200, "{b}");
    let (_, g) = s.get("/v1/groups/s128", &s.key).await;
    assert_eq!(g["subject"], "é".repeat(128), "subject is stored trimmed");
    let (st, b) = ok(json!({ "wabaNumber": NUMBER, "subject": "x".repeat(129) })).await;
    assert_error(st, &b, 400, "subject");
    assert!(b["message"].as_str().unwrap().contains("128"), "{b}");
    // Description: at most 2048.
    let (st, b) = ok(json!({ "wabaNumber": NUMBER, "subject": "d", "description": "d".repeat(2048) })).await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = ok(json!({ "wabaNumber": NUMBER, "subject": "d", "description": "d".repeat(2049) })).await;
    assert_error(st, &b, 400, "description");
    assert!(b["message"].as_str().unwrap().contains("2048"), "{b}");
    // groupId: 1..=50 of letters, digits, _ - .
    let id50 = format!("{}.-_", "a".repeat(47));
    let (st, b) = ok(json!({ "wabaNumber": NUMBER, "subject": "g", "groupId": id50 })).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["groupId"], id50);
    let (st, b) = ok(json!({ "wabaNumber": NUMBER, "subject": "g", "groupId": "a".repeat(51) })).await;
    assert_error(st, &b, 400, "groupId");
    assert!(b["message"].as_str().unwrap().contains("50"), "{b}");
    let (st, b) = ok(json!({ "wabaNumber": NUMBER, "subject": "g", "groupId": "" })).await;
    assert_error(st, &b, 400, "groupId");
}

#[tokio::test]
async fn auth_permission_conflict_disabled_and_size_errors() {
    let s = TestServer::start().await;
    let body = json!({ "wabaNumber": NUMBER, "subject": "x", "groupId": "dup" })
        .to_string()
        .into_bytes();
    // 401: missing, unknown, and (below) revoked keys.
    let (st, b) = raw(&s, None, Some("application/json"), body.clone()).await;
    assert_error(st, &b, 401, "API key");
    let (st, b) = raw(&s, Some("Bearer wag_unknown"), Some("application/json"), body.clone()).await;
    assert_error(st, &b, 401, "API key");
    // The bare key, as DoubleTick clients send it, is accepted.
    let (st, b) = raw(&s, Some(&s.key), Some("application/json"), body.clone()).await;
    assert_eq!(st, 200, "{b}");
    // 409: the organisation already has this groupId.
    let (st, b) = raw(&s, Some(&s.key), Some("application/json"), body.clone()).await;
    assert_error(st, &b, 409, "groupId");

    // 403: a key restricted to another number of the organisation.
    s.cli(&["numbers", "add", "--org", "default", "--waba-number", "15550100002"])
        .await;
    let restricted = s.new_key("default", Some("15550100002")).await;
    let (st, b) = s
        .post(PATH, &restricted, json!({ "wabaNumber": NUMBER, "subject": "x" }))
        .await;
    assert_error(st, &b, 403, NUMBER);
    let (st, b) = s
        .post(
            PATH,
            &restricted,
            json!({ "wabaNumber": "15550100002", "subject": "x" }),
        )
        .await;
    assert_eq!(st, 200, "{b}");

    // 422: the number is disabled; enabled again, it works.
    s.cli(&["numbers", "disable", NUMBER]).await;
    let (st, b) = s
        .post(PATH, &s.key, json!({ "wabaNumber": NUMBER, "subject": "x" }))
        .await;
    assert_error(st, &b, 422, "disabled");
    s.cli(&["numbers", "enable", NUMBER]).await;
    let (st, _) = s
        .post(PATH, &s.key, json!({ "wabaNumber": NUMBER, "subject": "x" }))
        .await;
    assert_eq!(st, 200);

    // 413: a body over 64 KiB.
    let big = json!({ "wabaNumber": NUMBER, "subject": "x", "description": "a".repeat(70_000) }).to_string();
    let (st, b) = raw(&s, Some(&s.key), Some("application/json"), big.into_bytes()).await;
    assert_error(st, &b, 413, "65536");

    // Revoked: 401 from the next request on.
    let listed = s.cli(&["keys", "list", "--org", "default"]).await;
    let restricted_id = listed
        .lines()
        .find(|l| l.contains("15550100002"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_string();
    s.cli(&["keys", "revoke", &restricted_id]).await;
    let (st, b) = s
        .post(
            PATH,
            &restricted,
            json!({ "wabaNumber": "15550100002", "subject": "x" }),
        )
        .await;
    assert_error(st, &b, 401, "API key");
}

#[tokio::test]
async fn the_key_may_come_in_x_public_api_key_and_doubletick_webhooks_have_doubleticks_fields() {
    use crate::receiver::{Behaviour, Receiver, verify};
    let s = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (st, ep) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": receiver.url, "format": "doubletick" }),
        )
        .await;
    assert_eq!(st, 201, "{ep}");
    assert_eq!(ep["format"], "doubletick");
    let secret = ep["secret"].as_str().unwrap().to_string();
    let resp = s
        .http
        .post(s.url(PATH))
        .header("x-public-api-key", &s.key)
        .json(&json!({ "wabaNumber": NUMBER, "subject": "Via the public key header", "groupId": "dt_header" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (st, _) = s
        .http
        .post(s.url(PATH))
        .header("x-public-api-key", "wag_wrong")
        .json(&json!({ "wabaNumber": NUMBER, "subject": "x" }))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(st, 401);
    let g = s.wait_active(&s.key, "dt_header").await;
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999990001", "inviteLink": g["inviteLink"] }),
        )
        .await;
    assert_eq!(st, 200);
    let got = crate::harness::eventually(std::time::Duration::from_secs(15), || async {
        let r: Vec<_> = receiver
            .accepted()
            .into_iter()
            .filter(|r| r.json["groupId"] == "dt_header")
            .collect();
        (r.len() >= 2).then_some(r)
    })
    .await
    .expect("two deliveries");
    let created = &got[0];
    assert!(verify(&secret, created), "signed as standard endpoints are");
    for common in ["event", "orgId", "integrationId", "groupId"] {
        assert!(
            created.json.get(common).is_some(),
            "DoubleTick's common field {common}: {}",
            created.json
        );
    }
    assert_eq!(created.json["event"], "GROUP_CREATED");
    assert_eq!(created.json["integrationId"], NUMBER);
    assert_eq!(created.json["groupName"], "Via the public key header");
    assert!(
        created.json["inviteLink"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.whatsapp.com/")
    );
    assert!(created.json["groupCreatedAt"].is_string());
    assert_eq!(got[1].json["event"], "GROUP_PARTICIPANT_JOINED");
    assert_eq!(got[1].json["customerPhone"], "919999990001");
    assert!(got[1].json["participantJoinedAt"].is_string());
}
