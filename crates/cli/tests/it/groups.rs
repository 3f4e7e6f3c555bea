//! The native `/v1` group API: creation, the pending → active lifecycle, reads, listing.

use std::collections::HashSet;

use serde_json::json;

use crate::harness::{NUMBER, TestServer, event_types, sequences};

#[tokio::test]
async fn a_group_goes_pending_then_active_with_a_group_created_event() {
    let s = TestServer::start().await;
    let (status, g) = s
        .post(
            "/v1/groups",
            &s.key,
            json!({ "wabaNumber": NUMBER, "subject": "  Onboarding  ", "description": "Welcome", "groupId": "onb-1" }),
        )
        .await;
    assert_eq!(status, 202, "{g}");
    assert_eq!(g["status"], "pending");
    assert_eq!(g["groupId"], "onb-1");
    assert_eq!(g["subject"], "Onboarding");
    assert_eq!(g["waGroupId"], json!(null));
    assert_eq!(g["inviteLink"], json!(null));

    let g = s.wait_active(&s.key, "onb-1").await;
    let jid = g["waGroupId"].as_str().unwrap();
    assert!(jid.ends_with("@g.us") && jid.len() > 10, "{jid}");
    let link = g["inviteLink"].as_str().unwrap();
    let code = link.strip_prefix("https://chat.whatsapp.com/").unwrap();
    assert_eq!(code.len(), 22, "{link}");
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(g["participantCount"], 0);
    assert_eq!(g["wabaNumber"], NUMBER);
    assert_eq!(g["joinApprovalMode"], "auto_approve");
    // The business number is the group's creator.
    let ps = g["participants"].as_array().unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0]["phone"], NUMBER);
    assert_eq!(ps[0]["role"], "superadmin");
    assert_eq!(ps[0]["state"], "member");
    for f in ["createdAt", "updatedAt"] {
        assert!(g[f].as_str().unwrap().ends_with('Z'), "{f}: {}", g[f]);
    }

    let events = s.events(&s.key, "onb-1").await;
    assert_eq!(event_types(&events), ["GROUP_CREATED"]);
    let e = &events[0];
    assert_eq!(e["sequence"], 1);
    assert!(e["eventId"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(e["groupId"], "onb-1");
    assert_eq!(e["groupName"], "Onboarding");
    assert_eq!(e["wabaNumber"], NUMBER);
    assert_eq!(e["inviteLink"], link);
    assert_eq!(e["waGroupId"], jid);
    assert!(e["orgId"].as_str().unwrap().starts_with("org_"));
    assert!(e["groupCreatedAt"].is_string() && e["occurredAt"].is_string());
}

#[tokio::test]
async fn native_errors_have_code_message_and_field() {
    let s = TestServer::start().await;
    let (st, b) = s
        .post(
            "/v1/groups",
            &s.key,
            json!({ "wabaNumber": NUMBER, "subject": "x".repeat(129) }),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(b["error"]["code"], "invalid_request");
    assert_eq!(b["error"]["field"], "subject");
    assert!(b["error"]["message"].as_str().unwrap().contains("128"));

    let (st, b) = s.get("/v1/groups/nope", &s.key).await;
    assert_eq!(st, 404);
    assert_eq!(b["error"]["code"], "not_found");
    let (st, b) = s.get("/v1/groups", "wag_nope").await;
    assert_eq!(st, 401);
    assert_eq!(b["error"]["code"], "unauthorized");
    let (st, b) = s.get("/v1/nothing-here", &s.key).await;
    assert_eq!(st, 404, "{b}");
    assert_eq!(b["error"]["code"], "not_found");
    for q in [
        "limit=0",
        "limit=1025",
        "limit=abc",
        "cursor=garbage!",
        "status=sleeping",
    ] {
        let (st, b) = s.get(&format!("/v1/groups?{q}"), &s.key).await;
        assert_eq!(st, 400, "{q}: {b}");
        assert!(b["error"]["field"].is_string(), "{q}: {b}");
    }
    let (st, b) = s.get("/v1/groups/nope/events?after=-1", &s.key).await;
    assert_eq!(st, 404, "{b}");
}

#[tokio::test]
async fn listing_pages_newest_first_with_a_cursor() {
    let s = TestServer::start().await;
    let total = 60;
    for i in 0..total {
        s.create_group(
            &s.key,
            json!({ "wabaNumber": NUMBER, "subject": format!("G{i}"), "groupId": format!("g{i:03}") }),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/groups?limit=25&cursor={c}"),
            None => "/v1/groups?limit=25".to_string(),
        };
        let (st, page) = s.get(&path, &s.key).await;
        assert_eq!(st, 200, "{page}");
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 25);
        assert!(
            data.iter().all(|g| g.get("participants").is_none()),
            "list items omit participants"
        );
        seen.extend(data.iter().map(|g| g["groupId"].as_str().unwrap().to_string()));
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..total).rev().map(|i| format!("g{i:03}")).collect();
    assert_eq!(seen, expected, "every group once, newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), total);

    // Default page size and filters.
    let (_, page) = s.get("/v1/groups", &s.key).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 25);
    s.wait_active(&s.key, "g000").await;
    crate::harness::eventually(std::time::Duration::from_secs(10), || async {
        let (_, p) = s.get("/v1/groups?status=pending", &s.key).await;
        p["data"].as_array().unwrap().is_empty().then_some(())
    })
    .await
    .expect("all groups become active");
    let (_, active) = s
        .get(
            &format!("/v1/groups?status=active&wabaNumber={NUMBER}&limit=1024"),
            &s.key,
        )
        .await;
    assert_eq!(active["data"].as_array().unwrap().len(), total);
    assert_eq!(active["nextCursor"], json!(null));
}

#[tokio::test]
async fn health_and_readiness() {
    let s = TestServer::start().await;
    let r = s.http.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(b["status"], "ready");
}

#[tokio::test]
async fn event_log_pages_by_sequence() {
    let s = TestServer::start().await;
    let g = s.active_group(&s.key, json!({ "groupId": "log" })).await;
    let link = g["inviteLink"].as_str().unwrap();
    for i in 0..3 {
        let (st, b) = s
            .post(
                "/v1/sandbox/join",
                &s.key,
                json!({ "phone": format!("91999999990{i}"), "inviteLink": link }),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let all = s.events(&s.key, "log").await;
    assert_eq!(sequences(&all), [1, 2, 3, 4]);
    let (_, page) = s.get("/v1/groups/log/events?after=1&limit=2", &s.key).await;
    assert_eq!(sequences(page["data"].as_array().unwrap()), [2, 3]);
    let (_, page) = s.get("/v1/groups/log/events?after=3", &s.key).await;
    assert_eq!(sequences(page["data"].as_array().unwrap()), [4]);
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_emitted_event() {
    let s = TestServer::start().await;
    let doc: serde_json::Value = s
        .http
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routes = [
        ("post", "/v1/groups"),
        ("get", "/v1/groups"),
        ("get", "/v1/groups/{groupId}"),
        ("get", "/v1/groups/{groupId}/events"),
        ("get", "/v1/events"),
        ("post", "/v1/events/{eventId}/redeliver"),
        ("post", "/v1/webhook-endpoints"),
        ("get", "/v1/webhook-endpoints"),
        ("get", "/v1/webhook-endpoints/{id}"),
        ("patch", "/v1/webhook-endpoints/{id}"),
        ("delete", "/v1/webhook-endpoints/{id}"),
        ("post", "/v1/webhook-endpoints/{id}/rotate-secret"),
        ("get", "/v1/webhook-endpoints/{id}/deliveries"),
        ("post", "/v1/webhook-endpoints/{id}/recover"),
        ("patch", "/v1/groups/{groupId}"),
        ("delete", "/v1/groups/{groupId}"),
        ("get", "/v1/groups/{groupId}/participants"),
        ("post", "/v1/groups/{groupId}/participants"),
        ("delete", "/v1/groups/{groupId}/participants"),
        ("post", "/v1/groups/{groupId}/admins"),
        ("delete", "/v1/groups/{groupId}/admins"),
        ("get", "/v1/groups/{groupId}/invite-link"),
        ("post", "/v1/groups/{groupId}/invite-link/reset"),
        ("get", "/v1/groups/{groupId}/join-requests"),
        ("post", "/v1/groups/{groupId}/join-requests/approve"),
        ("post", "/v1/groups/{groupId}/join-requests/reject"),
        ("post", "/v1/sandbox/cancel-request"),
        ("put", "/v1/sandbox/users/{phone}"),
        ("post", "/v1/sandbox/groups/{groupId}/suspend"),
        ("post", "/v1/sandbox/groups/{groupId}/unsuspend"),
        ("post", "/v1/sandbox/join"),
        ("post", "/v1/sandbox/leave"),
        ("post", "/whatsapp/wa-group/create"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    ];
    for (method, path) in routes {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    for event in [
        "GROUP_CREATED",
        "GROUP_CREATE_FAILED",
        "GROUP_PARTICIPANT_JOINED",
        "GROUP_PARTICIPANT_LEFT",
        "GROUP_JOIN_REQUEST_CREATED",
    ] {
        assert!(
            doc["webhooks"][event]["post"].is_object(),
            "webhook {event} is not documented"
        );
    }
    let yaml = s.http.get(s.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(yaml.headers()["content-type"], "application/yaml");
}
