//! Group management on both simulated profiles: settings, participants, admins, invite link,
//! join requests, deletion, suspension, capabilities and concurrency.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    harness::{NUMBER, TestServer, event_types, sequences},
    receiver::{Behaviour, Receiver},
};

/// The linked-device number of the default organisation.
const LINKED: &str = "15550100009";

async fn server() -> TestServer {
    let s = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    s.add_number(LINKED, "linked-device").await;
    s
}

async fn group_on(s: &TestServer, number: &str, id: &str, extra: Value) -> Value {
    let mut body = json!({ "groupId": id, "wabaNumber": number });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    s.active_group(&s.key, body).await
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

async fn participant_state(s: &TestServer, group: &str, phone: &str) -> Option<(String, String)> {
    let (_, ps) = s.get(&format!("/v1/groups/{group}/participants"), &s.key).await;
    ps["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phone"] == phone)
        .map(|p| {
            (
                p["state"].as_str().unwrap().to_string(),
                p["role"].as_str().unwrap().to_string(),
            )
        })
}

#[tokio::test]
async fn linked_device_adds_subject_to_privacy_with_invite_fallback() {
    let s = server().await;
    group_on(&s, LINKED, "ld", json!({})).await;
    s.sandbox_user("919000000002", json!({ "addPrivacy": "contacts" }))
        .await;
    s.sandbox_user(
        "919000000003",
        json!({ "addPrivacy": "contacts", "contactOf": [LINKED] }),
    )
    .await;
    s.sandbox_user("919000000004", json!({ "addPrivacy": "nobody" })).await;
    s.sandbox_user("919000000005", json!({ "onWhatsApp": false })).await;

    let (st, b) = s
        .post(
            "/v1/groups/ld/participants",
            &s.key,
            json!({ "participants": ["+91 90000 00001", "919000000002@c.us", "919000000003", "919000000004", "919000000005", "not-a-phone"], "inviteFallback": true }),
        )
        .await;
    assert_eq!(st, 207, "{b}");
    assert_eq!(
        statuses(&b),
        ["added", "invited", "added", "invited", "not_on_whatsapp", "invalid"]
    );
    assert_eq!(b["results"][0]["participant"], "+91 90000 00001");
    assert_eq!(b["results"][0]["phone"], "919000000001");
    assert_eq!(b["results"][5]["phone"], Value::Null);
    assert!(
        b["results"][1]["inviteLink"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.whatsapp.com/")
    );

    // Without the fallback, the privacy-restricted user is invite_required, with the link to send.
    s.sandbox_user("919000000006", json!({ "addPrivacy": "contacts" }))
        .await;
    let (st, b) = s
        .post(
            "/v1/groups/ld/participants",
            &s.key,
            json!({ "participants": ["919000000006", "919000000001"], "inviteFallback": false }),
        )
        .await;
    assert_eq!(st, 207, "{b}");
    assert_eq!(statuses(&b), ["invite_required", "already_member"]);
    assert!(b["results"][0]["inviteLink"].is_string());

    assert_eq!(
        participant_state(&s, "ld", "919000000001").await,
        Some(("member".into(), "member".into()))
    );
    assert_eq!(
        participant_state(&s, "ld", "919000000002").await,
        Some(("invited".into(), "member".into()))
    );
    assert_eq!(participant_state(&s, "ld", "919000000006").await, None);
    let events = s.events(&s.key, "ld").await;
    let joined: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventType"] == "GROUP_PARTICIPANT_JOINED")
        .collect();
    assert_eq!(joined.len(), 2);
    assert!(joined.iter().all(|e| e["reason"] == "added"));
    assert_eq!(
        events
            .iter()
            .filter(|e| e["eventType"] == "GROUP_PARTICIPANT_INVITED")
            .count(),
        2
    );

    // All succeeded → 200. The invited user taps the link and becomes a member.
    let (st, b) = s
        .post(
            "/v1/groups/ld/participants",
            &s.key,
            json!({ "participants": ["919000000007"] }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (_, g) = s.get("/v1/groups/ld", &s.key).await;
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919000000002", "inviteLink": g["inviteLink"] }),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        participant_state(&s, "ld", "919000000002").await,
        Some(("member".into(), "member".into()))
    );
}

#[tokio::test]
async fn cloud_invites_everyone_and_caps_at_eight() {
    let s = server().await;
    group_on(&s, NUMBER, "cl", json!({})).await;
    let phones: Vec<String> = (1..=9).map(|i| format!("9190000001{i:02}")).collect();
    let (st, b) = s
        .post("/v1/groups/cl/participants", &s.key, json!({ "participants": phones }))
        .await;
    assert_eq!(st, 207, "{b}");
    let st8 = statuses(&b);
    assert_eq!(&st8[..8], vec!["invited"; 8].as_slice());
    assert_eq!(st8[8], "group_full");
    let (_, g) = s.get("/v1/groups/cl", &s.key).await;
    assert_eq!(g["participantCount"], 0, "invited users are not members yet");
    // Eight members fill the group: a ninth cannot join through the link.
    for p in &phones[..8] {
        let (st, b) = s
            .post(
                "/v1/sandbox/join",
                &s.key,
                json!({ "phone": p, "inviteLink": g["inviteLink"] }),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919999999000", "inviteLink": g["inviteLink"] }),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "group_full");
    let (_, g) = s.get("/v1/groups/cl", &s.key).await;
    assert_eq!(g["participantCount"], 8);
}

#[tokio::test]
async fn privacy_nobody_and_not_on_whatsapp_on_linked_device() {
    let s = server().await;
    group_on(&s, LINKED, "pv", json!({})).await;
    s.sandbox_user("919000000201", json!({ "addPrivacy": "nobody" })).await;
    s.sandbox_user("919000000202", json!({ "onWhatsApp": false })).await;
    let (st, b) = s
        .post(
            "/v1/groups/pv/participants",
            &s.key,
            json!({ "participants": ["919000000201", "919000000202"], "inviteFallback": false }),
        )
        .await;
    assert_eq!(st, 207);
    assert_eq!(statuses(&b), ["invite_required", "not_on_whatsapp"]);
    let (st, b) = s.get("/v1/sandbox/users/919000000201", &s.key).await;
    assert_eq!(st, 200);
    assert_eq!(b["addPrivacy"], "nobody");
    let (st, b) = s
        .send(
            reqwest::Method::PUT,
            "/v1/sandbox/users/919000000201",
            &s.key,
            Some(json!({ "addPrivacy": "sometimes" })),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"]["field"], "addPrivacy");
}

#[tokio::test]
async fn removal_admins_and_creator_immunity() {
    let s = server().await;
    group_on(&s, LINKED, "adm", json!({})).await;
    s.post(
        "/v1/groups/adm/participants",
        &s.key,
        json!({ "participants": ["919000000301", "919000000302"] }),
    )
    .await;

    let (st, b) = s
        .post(
            "/v1/groups/adm/admins",
            &s.key,
            json!({ "participants": ["919000000301", LINKED, "919000000399"] }),
        )
        .await;
    assert_eq!(st, 207, "{b}");
    assert_eq!(statuses(&b), ["promoted", "already_admin", "not_a_member"]);
    assert_eq!(
        participant_state(&s, "adm", "919000000301").await,
        Some(("member".into(), "admin".into()))
    );
    let (st, b) = s
        .send(
            reqwest::Method::DELETE,
            "/v1/groups/adm/admins",
            &s.key,
            Some(json!({ "participants": [LINKED, "919000000301"] })),
        )
        .await;
    assert_eq!(st, 207, "{b}");
    assert_eq!(statuses(&b), ["cannot_demote_creator", "demoted"]);

    let (st, b) = s
        .send(
            reqwest::Method::DELETE,
            "/v1/groups/adm/participants",
            &s.key,
            Some(json!({ "participants": ["919000000302", LINKED, "919000000399"] })),
        )
        .await;
    assert_eq!(st, 207, "{b}");
    assert_eq!(statuses(&b), ["removed", "cannot_remove_creator", "not_a_member"]);
    assert_eq!(
        participant_state(&s, "adm", "919000000302").await.map(|p| p.0),
        Some("removed".into())
    );
    assert_eq!(
        participant_state(&s, "adm", LINKED).await,
        Some(("member".into(), "superadmin".into()))
    );
    let types = event_types(&s.events(&s.key, "adm").await);
    for t in [
        "GROUP_PARTICIPANT_PROMOTED",
        "GROUP_PARTICIPANT_DEMOTED",
        "GROUP_PARTICIPANT_REMOVED",
    ] {
        assert!(types.contains(&t.to_string()), "{t} in {types:?}");
    }
    // On linked-device a removed user may be added again.
    let (st, b) = s
        .post(
            "/v1/groups/adm/participants",
            &s.key,
            json!({ "participants": ["919000000302"] }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test]
async fn cloud_refuses_promotion_and_settings_and_removed_users_rejoining() {
    let s = server().await;
    let g = group_on(&s, NUMBER, "cap", json!({})).await;
    let (st, b) = s
        .post(
            "/v1/groups/cap/admins",
            &s.key,
            json!({ "participants": ["919000000401"] }),
        )
        .await;
    assert_eq!(st, 422, "{b}");
    assert_eq!(b["error"]["code"], "capability_missing");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("admin_promotion") && msg.contains("simulated") && msg.contains("cloud"),
        "{msg}"
    );
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/cap",
            &s.key,
            Some(json!({ "settings": { "announcementOnly": true } })),
        )
        .await;
    assert_eq!(st, 422, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("announcement_and_locked")
    );
    let (_, after) = s.get("/v1/groups/cap", &s.key).await;
    assert_eq!(after["settings"]["announcementOnly"], false, "nothing changed");

    let link = g["inviteLink"].as_str().unwrap();
    s.post(
        "/v1/sandbox/join",
        &s.key,
        json!({ "phone": "919000000402", "inviteLink": link }),
    )
    .await;
    let (st, b) = s
        .send(
            reqwest::Method::DELETE,
            "/v1/groups/cap/participants",
            &s.key,
            Some(json!({ "participants": ["919000000402"] })),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919000000402", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "removed_cannot_rejoin");
}

#[tokio::test]
async fn settings_updates_on_linked_device() {
    let s = server().await;
    group_on(&s, LINKED, "set", json!({})).await;
    let (st, g) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/set",
            &s.key,
            Some(json!({ "subject": "  Renamed  ", "description": "New", "settings": { "announcementOnly": true, "locked": true }, "joinApprovalMode": "approval_required" })),
        )
        .await;
    assert_eq!(st, 200, "{g}");
    assert_eq!(g["subject"], "Renamed");
    assert_eq!(g["settings"], json!({ "announcementOnly": true, "locked": true }));
    assert_eq!(g["joinApprovalMode"], "approval_required");
    let events = s.events(&s.key, "set").await;
    let upd = events.last().unwrap();
    assert_eq!(upd["eventType"], "GROUP_UPDATED");
    assert_eq!(upd["changes"]["subject"], "Renamed");
    assert_eq!(upd["previous"]["subject"], "Test group");
    assert_eq!(upd["groupName"], "Renamed");
    let mut fields: Vec<&str> = upd["changedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "announcementOnly",
            "description",
            "joinApprovalMode",
            "locked",
            "subject"
        ]
    );

    for (body, field) in [
        (json!({ "subject": "  " }), "subject"),
        (json!({ "subject": "x".repeat(129) }), "subject"),
        (json!({ "description": "d".repeat(2049) }), "description"),
        (json!({ "joinApprovalMode": "never" }), "joinApprovalMode"),
        (json!({ "settings": { "locked": "yes" } }), "settings.locked"),
        (json!({}), "body"),
    ] {
        let (st, b) = s
            .send(reqwest::Method::PATCH, "/v1/groups/set", &s.key, Some(body))
            .await;
        assert_eq!(st, 400, "{b}");
        assert_eq!(b["error"]["field"], field, "{b}");
    }
    assert_eq!(
        s.events(&s.key, "set").await.len(),
        events.len(),
        "refused changes append nothing"
    );
}

#[tokio::test]
async fn invite_link_reset_invalidates_the_old_link() {
    let s = server().await;
    let g = group_on(&s, NUMBER, "lnk", json!({})).await;
    let old = g["inviteLink"].as_str().unwrap().to_string();
    let (st, b) = s.get("/v1/groups/lnk/invite-link", &s.key).await;
    assert_eq!(st, 200);
    assert_eq!(b["inviteLink"], old.as_str());
    let (st, b) = s.post("/v1/groups/lnk/invite-link/reset", &s.key, json!({})).await;
    assert_eq!(st, 200, "{b}");
    let new = b["inviteLink"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919000000501", "inviteLink": old }),
        )
        .await;
    assert_eq!(st, 404, "the old link stops working at once");
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919000000501", "inviteLink": new }),
        )
        .await;
    assert_eq!(st, 200);
    let events = s.events(&s.key, "lnk").await;
    let reset = events
        .iter()
        .find(|e| e["eventType"] == "GROUP_INVITE_LINK_RESET")
        .unwrap();
    assert_eq!(reset["inviteLink"], new.as_str());
}

#[tokio::test]
async fn join_requests_approve_reject_revoke() {
    let s = server().await;
    let g = group_on(&s, NUMBER, "jr", json!({ "joinApprovalMode": "approval_required" })).await;
    let link = g["inviteLink"].as_str().unwrap();
    let mut ids = Vec::new();
    for p in ["919000000601", "919000000602", "919000000603"] {
        let (st, b) = s
            .post("/v1/sandbox/join", &s.key, json!({ "phone": p, "inviteLink": link }))
            .await;
        assert_eq!(st, 200, "{b}");
        ids.push(b["joinRequestId"].as_str().unwrap().to_string());
    }
    let (st, list) = s.get("/v1/groups/jr/join-requests", &s.key).await;
    assert_eq!(st, 200);
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["joinRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(list["data"][0]["phone"], "919000000601");
    assert!(list["data"][0]["createdAt"].is_string());

    let (st, b) = s
        .post(
            "/v1/groups/jr/join-requests/approve",
            &s.key,
            json!({ "joinRequestIds": [ids[0], "jr_nope"] }),
        )
        .await;
    assert_eq!(st, 207, "{b}");
    assert_eq!(statuses(&b), ["approved", "not_found"]);
    assert_eq!(b["results"][0]["phone"], "919000000601");
    let (st, b) = s
        .post(
            "/v1/groups/jr/join-requests/reject",
            &s.key,
            json!({ "joinRequestIds": [ids[1]] }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(statuses(&b), ["rejected"]);
    let (st, b) = s
        .post(
            "/v1/sandbox/cancel-request",
            &s.key,
            json!({ "phone": "919000000603", "groupId": "jr" }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let (st, _) = s
        .post(
            "/v1/sandbox/cancel-request",
            &s.key,
            json!({ "phone": "919000000603", "groupId": "jr" }),
        )
        .await;
    assert_eq!(st, 409);

    assert_eq!(
        participant_state(&s, "jr", "919000000601").await,
        Some(("member".into(), "member".into()))
    );
    let (_, list) = s.get("/v1/groups/jr/join-requests", &s.key).await;
    assert_eq!(list["data"], json!([]));
    let events = s.events(&s.key, "jr").await;
    let approved = events
        .iter()
        .find(|e| e["eventType"] == "GROUP_PARTICIPANT_JOINED")
        .unwrap();
    assert_eq!(approved["reason"], "join_request_approved");
    let types = event_types(&events);
    assert!(types.contains(&"GROUP_JOIN_REQUEST_REJECTED".to_string()));
    assert!(types.contains(&"GROUP_JOIN_REQUEST_REVOKED".to_string()));
    // A rejected user may ask again.
    let (st, b) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919000000602", "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["result"], "join_request_created");
}

#[tokio::test]
async fn deleted_and_suspended_groups_refuse_writes() {
    let s = server().await;
    let g = group_on(&s, LINKED, "del", json!({})).await;
    s.post(
        "/v1/groups/del/participants",
        &s.key,
        json!({ "participants": ["919000000701"] }),
    )
    .await;

    let (st, b) = s.post("/v1/sandbox/groups/del/suspend", &s.key, json!({})).await;
    assert_eq!(st, 200, "{b}");
    let (_, after) = s.get("/v1/groups/del", &s.key).await;
    assert_eq!(after["suspended"], true);
    let (st, b) = s
        .post(
            "/v1/groups/del/participants",
            &s.key,
            json!({ "participants": ["919000000702"] }),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    assert_eq!(b["error"]["code"], "group_suspended");
    let (st, b) = s
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/del",
            &s.key,
            Some(json!({ "subject": "x" })),
        )
        .await;
    assert_eq!(st, 409, "{b}");
    let (st, _) = s.post("/v1/sandbox/groups/del/unsuspend", &s.key, json!({})).await;
    assert_eq!(st, 200);

    let (st, d) = s.send(reqwest::Method::DELETE, "/v1/groups/del", &s.key, None).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["status"], "deleted");
    assert_eq!(d["participantCount"], 0);
    assert_eq!(
        participant_state(&s, "del", "919000000701").await.map(|p| p.0),
        Some("removed".into())
    );
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            "/v1/groups/del",
            Some(json!({ "subject": "x" })),
        ),
        (
            reqwest::Method::POST,
            "/v1/groups/del/participants",
            Some(json!({ "participants": ["919000000702"] })),
        ),
        (
            reqwest::Method::POST,
            "/v1/groups/del/invite-link/reset",
            Some(json!({})),
        ),
        (reqwest::Method::DELETE, "/v1/groups/del", None),
    ] {
        let (st, b) = s.send(method, path, &s.key, body).await;
        assert_eq!(st, 409, "{path}: {b}");
        assert_eq!(b["error"]["code"], "group_deleted");
    }
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "919000000703", "inviteLink": g["inviteLink"] }),
        )
        .await;
    assert_eq!(st, 404, "a deleted group's link is dead");
    let types = event_types(&s.events(&s.key, "del").await);
    for t in ["GROUP_SUSPENDED", "GROUP_SUSPENSION_CLEARED", "GROUP_DELETED"] {
        assert!(types.contains(&t.to_string()), "{t} in {types:?}");
    }
}

#[tokio::test]
async fn create_with_participants_reports_each() {
    let s = server().await;
    s.sandbox_user("919000000802", json!({ "addPrivacy": "nobody" })).await;
    let (st, g) = s
        .post(
            "/v1/groups",
            &s.key,
            json!({ "wabaNumber": LINKED, "subject": "With people", "groupId": "wp", "participants": ["919000000801", "919000000802", "bogus"] }),
        )
        .await;
    assert_eq!(st, 202, "{g}");
    assert_eq!(statuses(&g), ["added", "invited", "invalid"]);
    let g = s.wait_active(&s.key, "wp").await;
    assert_eq!(g["participantCount"], 1);
    let types = event_types(&s.events(&s.key, "wp").await);
    assert_eq!(
        types,
        ["GROUP_CREATED", "GROUP_PARTICIPANT_JOINED", "GROUP_PARTICIPANT_INVITED"]
    );

    // Cloud: everyone is invited. DoubleTick's create accepts participants too.
    let (st, b) = s
        .post(
            "/whatsapp/wa-group/create",
            &s.key,
            json!({ "wabaNumber": NUMBER, "subject": "DT", "groupId": "dtp", "participants": ["919000000803"] }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    s.wait_active(&s.key, "dtp").await;
    crate::harness::eventually(Duration::from_secs(5), || async {
        let t = event_types(&s.events(&s.key, "dtp").await);
        (t == ["GROUP_CREATED", "GROUP_PARTICIPANT_INVITED"]).then_some(())
    })
    .await
    .expect("the invite follows the creation");
}

#[tokio::test]
async fn fifty_concurrent_adds_keep_a_consistent_list_and_log() {
    let s = server().await;
    group_on(&s, LINKED, "busy", json!({})).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let http = s.http.clone();
        let url = s.url("/v1/groups/busy/participants");
        let key = s.key.clone();
        tasks.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({ "participants": [format!("9190000009{i:02}")] }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        });
    }
    while let Some(r) = tasks.join_next().await {
        let (st, b) = r.unwrap();
        assert_eq!(st, 200, "{b}");
        assert_eq!(statuses(&b), ["added"]);
    }
    let (_, g) = s.get("/v1/groups/busy", &s.key).await;
    assert_eq!(g["participantCount"], 50);
    let members = g["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["state"] == "member")
        .count();
    assert_eq!(members, 51, "50 users and the business");
    let events = s.events(&s.key, "busy").await;
    assert_eq!(events.len(), 51);
    assert_eq!(sequences(&events), (1..=51).collect::<Vec<i64>>());
}

#[tokio::test]
async fn every_operation_reaches_a_webhook_receiver_as_logged() {
    let s = server().await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let (st, _) = s.post("/v1/webhook-endpoints", &s.key, json!({ "url": rx.url })).await;
    assert_eq!(st, 201);
    group_on(&s, LINKED, "wh", json!({})).await;
    s.post(
        "/v1/groups/wh/participants",
        &s.key,
        json!({ "participants": ["919000001001", "919000001002"] }),
    )
    .await;
    s.post(
        "/v1/groups/wh/admins",
        &s.key,
        json!({ "participants": ["919000001001"] }),
    )
    .await;
    s.send(
        reqwest::Method::DELETE,
        "/v1/groups/wh/admins",
        &s.key,
        Some(json!({ "participants": ["919000001001"] })),
    )
    .await;
    s.send(
        reqwest::Method::PATCH,
        "/v1/groups/wh",
        &s.key,
        Some(json!({ "subject": "Renamed" })),
    )
    .await;
    s.post("/v1/groups/wh/invite-link/reset", &s.key, json!({})).await;
    s.send(
        reqwest::Method::DELETE,
        "/v1/groups/wh/participants",
        &s.key,
        Some(json!({ "participants": ["919000001002"] })),
    )
    .await;
    s.post("/v1/sandbox/groups/wh/suspend", &s.key, json!({})).await;
    s.post("/v1/sandbox/groups/wh/unsuspend", &s.key, json!({})).await;
    s.send(reqwest::Method::DELETE, "/v1/groups/wh", &s.key, None).await;
    let log = s.events(&s.key, "wh").await;
    assert_eq!(
        event_types(&log),
        [
            "GROUP_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_PROMOTED",
            "GROUP_PARTICIPANT_DEMOTED",
            "GROUP_UPDATED",
            "GROUP_INVITE_LINK_RESET",
            "GROUP_PARTICIPANT_REMOVED",
            "GROUP_SUSPENDED",
            "GROUP_SUSPENSION_CLEARED",
            "GROUP_DELETED",
        ]
    );
    let ok = crate::harness::eventually(Duration::from_secs(10), || async {
        (rx.accepted_ids().len() == log.len()).then_some(())
    })
    .await;
    assert!(ok.is_some(), "every event delivered");
    let received: Vec<Value> = rx.accepted().into_iter().map(|r| r.json).collect();
    assert_eq!(received, log, "each webhook is the logged event, in order");
}
