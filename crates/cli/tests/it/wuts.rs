//! The WUTS gateway's group calls, as a WUTS client makes them (seed `004`).

use serde_json::{Value, json};

use crate::{
    harness::{NUMBER, TestServer},
    receiver::{Behaviour, Receiver, verify},
};

const LINKED: &str = "15550100019";

/// A server with a linked-device number, a key restricted to it, and a standard endpoint.
async fn server() -> (TestServer, String, Receiver, String) {
    let s = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    s.add_number(LINKED, "linked-device").await;
    let key = s.new_key("default", Some(LINKED)).await;
    let receiver = Receiver::start(Behaviour::Ok).await;
    let (st, ep) = s
        .post("/v1/webhook-endpoints", &s.key, json!({ "url": receiver.url }))
        .await;
    assert_eq!(st, 201, "{ep}");
    let secret = ep["secret"].as_str().unwrap().to_string();
    (s, key, receiver, secret)
}

/// The seed's error shape, whole; its code.
fn wuts_error(body: &Value) -> String {
    assert_eq!(body["success"], false, "{body}");
    assert!(!body["error"].as_str().unwrap().is_empty(), "{body}");
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        wagroups_core::time::Timestamp::parse_rfc3339(ts).is_some() && ts.ends_with('Z'),
        "{body}"
    );
    assert_eq!(body.as_object().unwrap().len(), 4, "exactly the seed's fields: {body}");
    body["error_code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_wuts_client_creates_a_group_with_its_participants() {
    let (s, key, receiver, secret) = server().await;
    let (a, b, c) = ("5511999990001", "5511999990002", "5511999990003");
    s.sandbox_user(b, json!({ "addPrivacy": "contacts" })).await;
    s.sandbox_user(c, json!({ "onWhatsApp": false })).await;
    let (st, created) = s
        .post(
            "/wuts/groups",
            &key,
            json!({ "name": "WUTS Launch",
                    "participants": [format!("{a}@s.whatsapp.net"), format!("{b}@s.whatsapp.net"), format!("{c}@s.whatsapp.net")],
                    "options": { "announcement": true, "locked": false, "join_approval": true, "community": false } }),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["success"], true);
    let g = &created["group"];
    let jid = g["jid"].as_str().unwrap().to_string();
    assert!(jid.ends_with("@g.us"), "{g}");
    assert_eq!(g["name"], "WUTS Launch");
    assert_eq!(g["owner"], format!("{LINKED}@s.whatsapp.net"));
    assert!(g["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        (
            g["is_announce"].clone(),
            g["is_locked"].clone(),
            g["join_approval"].clone()
        ),
        (json!(true), json!(false), json!(true))
    );
    assert_eq!(g["members_count"], 2, "the business and the one who could be added");
    assert_eq!(
        g["participants"],
        json!([
            { "jid": format!("{LINKED}@s.whatsapp.net"), "phone_number": format!("{LINKED}@s.whatsapp.net"), "is_admin": true, "is_super_admin": true },
            { "jid": format!("{a}@s.whatsapp.net"), "phone_number": format!("{a}@s.whatsapp.net"), "is_admin": false, "is_super_admin": false }
        ])
    );
    let keys: Vec<&String> = g.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 9, "the seed's group fields: {keys:?}");
    // Who was not added, and why: the invite fallback, never a silent failure.
    let not_added = created["participants_not_added"].as_array().unwrap();
    assert_eq!(not_added.len(), 2, "{created}");
    assert_eq!(not_added[0]["jid"], format!("{b}@s.whatsapp.net"));
    assert_eq!(not_added[0]["status"], "invited");
    assert!(
        not_added[0]["invite_link"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.whatsapp.com/")
    );
    assert_eq!(
        (not_added[1]["jid"].clone(), not_added[1]["status"].clone()),
        (json!(format!("{c}@s.whatsapp.net")), json!("not_on_whatsapp"))
    );

    // The same group natively: its events, and the customer's webhooks.
    let (_, list) = s.get(&format!("/v1/groups?wabaNumber={LINKED}"), &key).await;
    let id = list["data"][0]["groupId"].as_str().unwrap().to_string();
    assert_eq!(list["data"][0]["waGroupId"], jid.as_str());
    let types: Vec<String> = s
        .events(&key, &id)
        .await
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "GROUP_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_PARTICIPANT_INVITED",
            "GROUP_UPDATED"
        ]
    );
    let delivered = crate::harness::eventually(std::time::Duration::from_secs(15), || async {
        let got: Vec<String> = receiver
            .accepted()
            .iter()
            .filter(|r| r.json["groupId"] == id.as_str() && verify(&secret, r))
            .map(|r| r.json["eventType"].as_str().unwrap().to_string())
            .collect();
        (got.len() >= 4).then_some(got)
    })
    .await;
    assert_eq!(delivered.unwrap().len(), 4);
    // And in DoubleTick's format, to an endpoint that asked for it.
    let dt = Receiver::start(Behaviour::Ok).await;
    let (st, ep) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": dt.url, "format": "doubletick" }),
        )
        .await;
    assert_eq!(st, 201, "{ep}");
    let dt_secret = ep["secret"].as_str().unwrap().to_string();
    let (st, removed) = s
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/groups/{id}/participants"),
            &key,
            Some(json!({ "participants": [a] })),
        )
        .await;
    assert_eq!(st, 200, "{removed}");
    let got = crate::harness::eventually(std::time::Duration::from_secs(15), || async {
        dt.accepted()
            .into_iter()
            .find(|r| r.json["groupId"] == id.as_str() && verify(&dt_secret, r))
    })
    .await
    .expect("a DoubleTick-format delivery");
    assert_eq!(got.json["event"], "GROUP_PARTICIPANT_REMOVED");
    assert_eq!(got.json["customerPhone"], a);
    assert_eq!(got.json["integrationId"], LINKED);

    // The invite link, by JID; a reset gives a new one.
    let (st, invite) = s.get(&format!("/wuts/groups/{jid}/invite"), &key).await;
    assert_eq!(st, 200, "{invite}");
    let link = invite["invite_link"].as_str().unwrap().to_string();
    assert!(link.ends_with(invite["invite_code"].as_str().unwrap()));
    let (st, reset) = s
        .post(&format!("/wuts/groups/{jid}/invite/reset"), &key, json!({}))
        .await;
    assert_eq!(st, 200, "{reset}");
    assert_ne!(reset["invite_link"], link.as_str());
    let (_, g) = s.get(&format!("/v1/groups/{id}"), &key).await;
    assert_eq!(g["inviteLink"], reset["invite_link"], "one group for both APIs");
}

#[tokio::test]
async fn wuts_errors_have_the_seeds_shape_and_a_code_per_cause() {
    let (s, key, _, _) = server().await;
    let post = |key: String, path: &'static str, body: Value| {
        let s = &s;
        async move { s.post(path, &key, body).await }
    };
    let (st, e) = post("wag_not_a_key".into(), "/wuts/groups", json!({ "name": "x" })).await;
    assert_eq!((st, wuts_error(&e).as_str()), (401, "UNAUTHORIZED"));
    // The bootstrap key may use every number: it must name one.
    let (st, e) = post(s.key.clone(), "/wuts/groups", json!({ "name": "x" })).await;
    assert_eq!((st, wuts_error(&e).as_str()), (400, "VALIDATION_ERROR"));
    assert!(e["error"].as_str().unwrap().contains("wabaNumber"), "{e}");
    // A key restricted to another number.
    let (st, e) = s
        .post(
            &format!("/wuts/groups?wabaNumber={NUMBER}"),
            &key,
            json!({ "name": "x" }),
        )
        .await;
    assert_eq!((st, wuts_error(&e).as_str()), (403, "FORBIDDEN"));
    for (body, names) in [
        (json!({}), "name"),
        (json!({ "name": "  " }), "name"),
        (json!({ "name": "x".repeat(129) }), "128"),
        (json!({ "name": "x", "options": { "locked": "yes" } }), "options.locked"),
        (json!({ "name": "x", "participants": "5511999990001" }), "participants"),
    ] {
        let (st, e) = post(key.clone(), "/wuts/groups", body.clone()).await;
        assert_eq!((st, wuts_error(&e).as_str()), (400, "VALIDATION_ERROR"), "{body}");
        assert!(e["error"].as_str().unwrap().contains(names), "{body} → {e}");
    }
    let (st, e) = post(
        key.clone(),
        "/wuts/groups",
        json!({ "name": "x", "options": { "community": true } }),
    )
    .await;
    assert_eq!((st, wuts_error(&e).as_str()), (422, "CAPABILITY_MISSING"), "{e}");
    assert!(e["error"].as_str().unwrap().contains("communit"), "{e}");
    let raw = s
        .http
        .post(s.url("/wuts/groups"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let e: Value = raw.json().await.unwrap();
    assert_eq!(wuts_error(&e), "VALIDATION_ERROR");
    let (st, e) = s.get("/wuts/groups/120363999999999999@g.us/invite", &key).await;
    assert_eq!((st, wuts_error(&e).as_str()), (404, "NOT_FOUND"));
    // Settings the number's provider lacks (the cloud profile): refused before anything is made.
    let (st, e) = s
        .post(
            &format!("/wuts/groups?wabaNumber={NUMBER}"),
            &s.key,
            json!({ "name": "x", "options": { "announcement": true } }),
        )
        .await;
    assert_eq!((st, wuts_error(&e).as_str()), (422, "CAPABILITY_MISSING"), "{e}");
    let (_, list) = s.get(&format!("/v1/groups?wabaNumber={NUMBER}"), &s.key).await;
    assert_eq!(list["data"], json!([]), "nothing created");
}

#[tokio::test]
async fn on_an_invite_only_number_wuts_participants_are_invited_and_the_answer_says_so() {
    let (s, _, _, _) = server().await;
    let a = "5511999990011";
    let (st, created) = s
        .post(
            &format!("/wuts/groups?wabaNumber={NUMBER}"),
            &s.key,
            // The seed's own options, all off: nothing the cloud profile lacks is asked for.
            json!({ "name": "Cloud group", "participants": [format!("{a}@s.whatsapp.net")],
                "options": { "announcement": false, "locked": false, "join_approval": false, "community": false } }),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(
        created["group"]["members_count"], 1,
        "only the business: WhatsApp's cloud groups take no adds"
    );
    assert_eq!(
        created["participants_not_added"],
        json!([{ "jid": format!("{a}@s.whatsapp.net"), "status": "invited",
                 "invite_link": created["participants_not_added"][0]["invite_link"] }])
    );
}
