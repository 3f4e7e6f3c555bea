//! Wawp's group calls, as a Wawp client makes them (seed `002`).

use serde_json::{Value, json};

use crate::harness::{NUMBER, TestServer};

const LINKED: &str = "15550100029";

async fn server() -> TestServer {
    let s = TestServer::start().await;
    s.add_number(LINKED, "linked-device").await;
    s
}

/// A Wawp call with no Authorization header: the credentials are where Wawp puts them.
async fn wawp(s: &TestServer, method: reqwest::Method, path_and_query: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.http.request(method, s.url(path_and_query));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn encoded(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Wawp's error shape: `{"code", "message"}`.
fn wawp_error(body: &Value) -> (String, String) {
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    (
        body["code"].as_str().unwrap().to_string(),
        body["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_wawp_client_creates_a_group_as_wawps_page_shows_it() {
    let s = server().await;
    let (a, b, c) = ("5511999991001", "5511999991002", "5511999991003");
    s.sandbox_user(b, json!({ "addPrivacy": "contacts" })).await;
    s.sandbox_user(c, json!({ "onWhatsApp": false })).await;
    // Everything in the query string, as the seed's URL has it.
    let participants =
        json!([{ "id": format!("{a}@c.us") }, { "id": format!("{b}@c.us") }, { "id": format!("{c}@c.us") }])
            .to_string();
    let (st, g) = wawp(
        &s,
        reqwest::Method::POST,
        &format!(
            "/wawp/v2/groups?access_token={}&instance_id={LINKED}&name=New+Project&participants={}",
            s.key,
            encoded(&participants)
        ),
        None,
    )
    .await;
    assert_eq!(st, 201, "{g}");
    let id = g["id"].as_str().unwrap().to_string();
    assert!(id.ends_with("@g.us"), "{g}");
    assert_eq!(g["name"], "New Project");
    assert_eq!(g["owner"], format!("{LINKED}@c.us"));
    let results: Vec<(String, String)> = g["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            (format!("{a}@c.us"), "added".to_string()),
            (format!("{b}@c.us"), "invited".to_string()),
            (format!("{c}@c.us"), "not_on_whatsapp".to_string())
        ],
        "each one's outcome: the privacy-restricted user was sent the link, not silently dropped"
    );
    assert!(
        g["results"][1]["inviteLink"]
            .as_str()
            .unwrap()
            .starts_with("https://chat.whatsapp.com/")
    );
    let members: Vec<&str> = g["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(members, [format!("{LINKED}@c.us"), format!("{a}@c.us")]);
    assert_eq!(g["participants"][0]["isSuperAdmin"], true);

    // In the body, with the number's instance ID.
    let (ok, _, err) = s
        .cli_status(&["numbers", "update", LINKED, "--instance-id", "15550100001"])
        .await;
    assert!(
        !ok && err.contains("digits"),
        "an alias of digits could hide a number: {err}"
    );
    s.cli(&["numbers", "update", LINKED, "--instance-id", "inst-7"]).await;
    let (st, g2) = wawp(
        &s,
        reqwest::Method::POST,
        "/wawp/v2/groups",
        Some(json!({ "instance_id": "inst-7", "access_token": s.key, "name": "Second", "participants": [] })),
    )
    .await;
    assert_eq!(st, 201, "{g2}");
    let creds = format!("instance_id=inst-7&access_token={}", s.key);

    // List, info, participants, invite code and its revocation.
    let (st, list) = wawp(&s, reqwest::Method::GET, &format!("/wawp/v2/groups?{creds}"), None).await;
    assert_eq!(st, 200, "{list}");
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [g2["id"].as_str().unwrap(), id.as_str()], "newest first");
    assert_eq!(list[1]["participantsCount"], 2);
    let (st, info) = wawp(&s, reqwest::Method::GET, &format!("/wawp/v2/groups/{id}?{creds}"), None).await;
    assert_eq!(st, 200, "{info}");
    assert_eq!(info["name"], "New Project");
    let (_, members) = wawp(
        &s,
        reqwest::Method::GET,
        &format!("/wawp/v2/groups/{id}/participants?{creds}"),
        None,
    )
    .await;
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    let (st, code) = wawp(
        &s,
        reqwest::Method::GET,
        &format!("/wawp/v2/groups/{}/invite-code?{creds}", encoded(&id)),
        None,
    )
    .await;
    assert_eq!(st, 200, "{code}");
    let (st, revoked) = wawp(
        &s,
        reqwest::Method::POST,
        &format!("/wawp/v2/groups/{id}/invite-code/revoke"),
        Some(json!({ "instance_id": "inst-7", "access_token": s.key })),
    )
    .await;
    assert_eq!(st, 200, "{revoked}");
    assert_ne!(revoked["inviteCode"], code["inviteCode"]);

    // One group for every API: natively, and through WUTS by its JID.
    let (_, native) = s.get(&format!("/v1/groups?wabaNumber={LINKED}"), &s.key).await;
    let native_id = native["data"][1]["groupId"].as_str().unwrap().to_string();
    assert_eq!(native["data"][1]["waGroupId"], id.as_str());
    assert_eq!(native["data"][1]["inviteLink"], revoked["inviteLink"]);
    let (st, _) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/groups/{native_id}"),
            &s.key,
            Some(json!({ "subject": "Renamed natively" })),
        )
        .await;
    assert_eq!(st, 200);
    let (_, info) = wawp(&s, reqwest::Method::GET, &format!("/wawp/v2/groups/{id}?{creds}"), None).await;
    assert_eq!(info["name"], "Renamed natively");
    let (st, w) = s.get(&format!("/wuts/groups/{id}/invite"), &s.key).await;
    assert_eq!(st, 200, "{w}");
    assert_eq!(w["invite_link"], revoked["inviteLink"]);
    let types: Vec<String> = s
        .events(&s.key, &native_id)
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
            "GROUP_INVITE_LINK_RESET",
            "GROUP_UPDATED"
        ]
    );
}

#[tokio::test]
async fn wawp_errors_name_the_parameter_and_never_answer_500_for_bad_input() {
    let s = server().await;
    let other = s.new_key("default", Some(NUMBER)).await;
    for (query, body, status, code, names) in [
        (
            format!("instance_id={LINKED}&name=x"),
            None,
            401,
            "invalid_access_token",
            "access_token",
        ),
        (
            format!("instance_id={LINKED}&access_token=wag_nope&name=x"),
            None,
            401,
            "invalid_access_token",
            "access_token",
        ),
        (
            format!("access_token={}&name=x", s.key),
            None,
            400,
            "invalid_parameter",
            "instance_id",
        ),
        (
            format!("access_token={}&instance_id=99&name=x", s.key),
            None,
            400,
            "invalid_parameter",
            "instance_id",
        ),
        (
            format!("access_token={}&instance_id={LINKED}", s.key),
            None,
            400,
            "invalid_parameter",
            "name",
        ),
        (
            format!("access_token={}&instance_id={LINKED}&name=x&participants=%7Bnot", s.key),
            None,
            400,
            "invalid_parameter",
            "participants",
        ),
        (
            format!("access_token={}&instance_id={LINKED}", s.key),
            Some(json!({ "name": "x", "participants": [{ "jid": "1@c.us" }] })),
            400,
            "invalid_parameter",
            "participants[0].id",
        ),
        (
            format!("access_token={other}&instance_id={LINKED}&name=x"),
            None,
            403,
            "forbidden",
            LINKED,
        ),
    ] {
        let (st, e) = wawp(
            &s,
            reqwest::Method::POST,
            &format!("/wawp/v2/groups?{query}"),
            body.clone(),
        )
        .await;
        let (c, message) = wawp_error(&e);
        assert_eq!((st, c.as_str()), (status, code), "{query} {body:?} → {e}");
        assert!(message.contains(names), "{query} → {message} names {names}");
    }
    let (st, e) = wawp(
        &s,
        reqwest::Method::GET,
        &format!(
            "/wawp/v2/groups/120363000000000000@g.us?instance_id={LINKED}&access_token={}",
            s.key
        ),
        None,
    )
    .await;
    assert_eq!((st, wawp_error(&e).0.as_str()), (404, "not_found"));
}

#[tokio::test]
async fn on_an_invite_only_number_wawp_participants_are_invited_and_the_answer_says_so() {
    let s = server().await;
    let (st, g) = wawp(
        &s,
        reqwest::Method::POST,
        "/wawp/v2/groups",
        Some(json!({ "instance_id": NUMBER, "access_token": s.key, "name": "Cloud", "participants": [{ "id": "5511999991101@c.us" }] })),
    )
    .await;
    assert_eq!(st, 201, "{g}");
    assert_eq!(g["results"][0]["status"], "invited");
    assert_eq!(g["participants"].as_array().unwrap().len(), 1, "only the business: {g}");
}
