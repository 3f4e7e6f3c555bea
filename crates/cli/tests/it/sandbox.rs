//! The sandbox acting as WhatsApp users: joining by invite link, join requests, leaving.

use serde_json::json;

use crate::harness::{NUMBER, TestServer, event_types, sequences};

#[tokio::test]
async fn join_and_leave_produce_events_and_participants() {
    let s = TestServer::start().await;
    let g = s.active_group(&s.key, json!({ "groupId": "club" })).await;
    let link = g["inviteLink"].as_str().unwrap().to_string();

    // Every documented phone shape names the same user, stored as digits.
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "+91 99999 99999", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["result"], "joined");
    assert_eq!(b["groupId"], "club");
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999999@c.us", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 409, "the same user again: {b}");
    assert_eq!(b["error"]["code"], "already_member");
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "918888888888@s.whatsapp.net", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 200);

    let (_, g) = s.get("/v1/groups/club", &s.key).await;
    assert_eq!(g["participantCount"], 2);
    let member = g["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phone"] == "919999999999")
        .cloned()
        .unwrap();
    assert_eq!(member["state"], "member");
    assert_eq!(member["role"], "member");
    assert_eq!(member["jid"], "919999999999@s.whatsapp.net");
    assert!(member["joinedAt"].is_string());

    let (st, b) = s
        .post(
            "/v1/sandbox/leave",
            &s.key,
            json!({ "phone": "919999999999", "groupId": "club" }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["result"], "left");
    let (st, b) = s
        .post(
            "/v1/sandbox/leave",
            &s.key,
            json!({ "phone": "919999999999", "groupId": "club" }),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "not_a_member");

    let (_, g) = s.get("/v1/groups/club", &s.key).await;
    assert_eq!(g["participantCount"], 1);
    let left = g["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phone"] == "919999999999")
        .cloned()
        .unwrap();
    assert_eq!(left["state"], "left");

    let events = s.events(&s.key, "club").await;
    assert_eq!(
        event_types(&events),
        [
            "GROUP_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_LEFT"
        ]
    );
    assert_eq!(sequences(&events), [1, 2, 3, 4]);
    assert_eq!(events[1]["customerPhone"], "919999999999");
    assert_eq!(events[1]["reason"], "invite_link");
    assert!(events[1]["participantJoinedAt"].is_string());
    assert_eq!(events[3]["customerPhone"], "919999999999");
    assert!(events[3]["participantLeftAt"].is_string());
}

#[tokio::test]
async fn approval_required_groups_get_join_requests() {
    let s = TestServer::start().await;
    let g = s
        .active_group(
            &s.key,
            json!({ "groupId": "vip", "joinApprovalMode": "approval_required" }),
        )
        .await;
    let link = g["inviteLink"].as_str().unwrap();
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999999", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["result"], "join_request_created");
    let request_id = b["joinRequestId"].as_str().unwrap().to_string();
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999999", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 409, "{b}");

    let (_, g) = s.get("/v1/groups/vip", &s.key).await;
    assert_eq!(g["participantCount"], 0, "a request is not a membership");
    let events = s.events(&s.key, "vip").await;
    assert_eq!(event_types(&events), ["GROUP_CREATED", "GROUP_JOIN_REQUEST_CREATED"]);
    assert_eq!(events[1]["joinRequestId"], request_id.as_str());
    assert_eq!(events[1]["customerPhone"], "919999999999");
}

#[tokio::test]
async fn unknown_links_and_bad_input() {
    let s = TestServer::start().await;
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999999", "inviteLink": "https://chat.whatsapp.com/AAAAAAAAAAAAAAAAAAAAAA" }),
        )
        .await;
    assert_eq!(st, 404, "{b}");
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "hello", "inviteLink": "x" }),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "phone");
    let (st, b) = s
        .post("/v1/sandbox/join", &s.key, json!({ "phone": "919999999999" }))
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "inviteLink");
    let (st, b) = s
        .post(
            "/v1/sandbox/leave",
            &s.key,
            json!({ "phone": "919999999999", "groupId": "nope" }),
        )
        .await;
    assert_eq!(st, 404, "{b}");
}

#[tokio::test]
async fn a_pending_group_cannot_be_left() {
    let s = TestServer::start_with(&["--api-only"]).await;
    let id = s
        .create_group(&s.key, json!({ "wabaNumber": NUMBER, "subject": "p" }))
        .await;
    let (st, b) = s
        .post(
            "/v1/sandbox/leave",
            &s.key,
            json!({ "phone": "919999999999", "groupId": id }),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "group_not_active");
}
