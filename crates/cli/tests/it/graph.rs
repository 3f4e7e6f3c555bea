//! Meta's Graph dialect, used as a Meta client uses it: every answer (success and error) is
//! held to the response schemas of Meta's official OpenAPI document.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    fake_graph::{check_answer, meta_document},
    harness::{NUMBER, TestServer, eventually},
};

/// A request body as a Meta client may send it.
pub enum Body {
    None,
    Json(Value),
    Form(&'static [(&'static str, &'static str)]),
    /// Multipart fields; a `(name, None)` part is a file.
    Multipart(Vec<(&'static str, Option<&'static str>)>),
}

/// A Meta client pointed at wagroups: base `…/graph/v23.0`, the key as its access token.
pub struct MetaClient {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
    spec: Value,
}

impl MetaClient {
    pub fn new(s: &TestServer, token: &str) -> MetaClient {
        MetaClient {
            base: s.url("/graph/v23.0"),
            token: token.to_string(),
            http: reqwest::Client::new(),
            spec: meta_document(),
        }
    }

    /// Sends the request with the token as a bearer and checks the answer against Meta's
    /// document (`GET …/invite_link` is Meta's but not in its document: not checked).
    pub async fn call(&self, method: &str, path: &str, body: Body) -> (u16, Value) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(m, &url).bearer_auth(&self.token);
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Form(pairs) => {
                let text = pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", percent(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                req.header("content-type", "application/x-www-form-urlencoded")
                    .body(text)
            }
            Body::Multipart(parts) => {
                let boundary = "wagroupsboundary7MA4YWxk";
                let mut text = String::new();
                for (name, value) in parts {
                    text.push_str(&format!("--{boundary}\r\n"));
                    match value {
                        Some(v) => text.push_str(&format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{v}\r\n")),
                        None => text.push_str(&format!(
                            "Content-Disposition: form-data; name=\"{name}\"; filename=\"square.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\u{1}\u{2}\u{3}\r\n"
                        )),
                    }
                }
                text.push_str(&format!("--{boundary}--\r\n"));
                req.header("content-type", format!("multipart/form-data; boundary={boundary}"))
                    .body(text)
            }
        };
        self.finish(method, &url, req).await
    }

    async fn finish(&self, method: &str, url: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {url}: not JSON: {text}"));
        assert!(ct.starts_with("application/json"), "{method} {url}: content type {ct}");
        let path = url.split("/graph").nth(1).unwrap_or("").split('?').next().unwrap_or("");
        let invite_get = method == "GET" && path.ends_with("/invite_link");
        if !invite_get {
            check_answer(&self.spec, method, path, status, &body)
                .unwrap_or_else(|e| panic!("{method} {url} → {status} {body}: not as Meta's document has it: {e}"));
        }
        if status >= 400 {
            assert_graph_error(&body);
        }
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, Body::None).await
    }
}

fn percent(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Meta's error shape, whole: `(#code) title`, `OAuthException`, `error_data`, `fbtrace_id`.
fn assert_graph_error(body: &Value) {
    let e = &body["error"];
    let code = e["code"].as_i64().unwrap_or_else(|| panic!("no code: {body}"));
    assert!(
        e["message"].as_str().unwrap().starts_with(&format!("(#{code}) ")),
        "{body}"
    );
    assert_eq!(e["type"], "OAuthException");
    assert_eq!(e["error_data"]["messaging_product"], "whatsapp");
    assert!(!e["error_data"]["details"].as_str().unwrap().is_empty());
    assert!(e["fbtrace_id"].as_str().unwrap().len() > 8);
}

/// The error's code and details.
fn error(body: &Value) -> (i64, String) {
    (
        body["error"]["code"].as_i64().unwrap(),
        body["error"]["error_data"]["details"].as_str().unwrap().to_string(),
    )
}

/// The phone number ID `GET /v1/numbers` shows for `number`.
pub async fn phone_number_id(s: &TestServer, key: &str, number: &str) -> String {
    let (st, numbers) = s.get("/v1/numbers", key).await;
    assert_eq!(st, 200, "{numbers}");
    let n = numbers["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["wabaNumber"] == number)
        .unwrap_or_else(|| panic!("{number} not in {numbers}"))
        .clone();
    let id = n["phoneNumberId"].as_str().unwrap().to_string();
    assert!(id.len() >= 10 && id.bytes().all(|b| b.is_ascii_digit()), "{n}");
    id
}

/// Waits for the group created with this request ID (the native group ID) to be active;
/// returns the native group.
pub async fn wait_created(s: &TestServer, key: &str, request_id: &str) -> Value {
    s.wait_active(key, request_id).await
}

async fn join(s: &TestServer, phone: &str, link: &str) -> Value {
    let (st, r) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": phone, "inviteLink": link }),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    r
}

#[tokio::test]
async fn a_meta_client_manages_a_simulated_number_through_the_graph_dialect() {
    let s = TestServer::start().await;
    let meta = MetaClient::new(&s, &s.key);
    let pnid = phone_number_id(&s, &s.key, NUMBER).await;

    // Create, by request ID.
    let (st, created) = meta
        .call(
            "POST",
            &format!("/{pnid}/groups"),
            Body::Json(json!({ "messaging_product": "whatsapp", "subject": "  Car purchase  ",
                               "description": "Jim's new car", "join_approval_mode": "approval_required" })),
        )
        .await;
    assert_eq!(st, 200, "{created}");
    assert_eq!(created["messaging_product"], "whatsapp");
    let request_id = created["request_id"].as_str().unwrap();
    let native = wait_created(&s, &s.key, request_id).await;
    let gid = native["graphGroupId"].as_str().unwrap().to_string();
    assert_ne!(gid, native["groupId"].as_str().unwrap());
    assert!(
        gid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{gid}"
    );

    // Info: only the fields asked for.
    let (st, bare) = meta.get(&format!("/{gid}")).await;
    assert_eq!(st, 200);
    assert_eq!(bare, json!({ "messaging_product": "whatsapp", "id": gid }));
    let all =
        "subject,description,participants,join_approval_mode,suspended,creation_timestamp,total_participant_count";
    let (_, info) = meta.get(&format!("/{gid}?fields={all}")).await;
    assert_eq!(info["subject"], "Car purchase", "trimmed, as Meta trims");
    assert_eq!(info["description"], "Jim's new car");
    assert_eq!(info["join_approval_mode"], "approval_required");
    assert_eq!(info["suspended"], false);
    assert_eq!(info["participants"], json!([]));
    assert_eq!(info["total_participant_count"], 0);
    assert!(info["creation_timestamp"].as_i64().unwrap() > 1_700_000_000);
    let (st, bad) = meta.get(&format!("/{gid}?fields=subject,colour")).await;
    assert_eq!(st, 400);
    assert_eq!(error(&bad).0, 100);
    assert!(error(&bad).1.contains("colour"), "{bad}");

    // The invite link; two users ask to join; one is approved, one rejected.
    let (st, link) = meta.get(&format!("/{gid}/invite_link")).await;
    assert_eq!(st, 200);
    assert_eq!(link["messaging_product"], "whatsapp");
    let link = link["invite_link"].as_str().unwrap().to_string();
    assert!(link.starts_with("https://chat.whatsapp.com/"), "{link}");
    let (a, b) = ("16505551234", "16505551235");
    let ja = join(&s, a, &link).await["joinRequestId"].as_str().unwrap().to_string();
    let jb = join(&s, b, &link).await["joinRequestId"].as_str().unwrap().to_string();
    let (st, requests) = meta.get(&format!("/{gid}/join_requests")).await;
    assert_eq!(st, 200);
    let listed: Vec<(&str, &str)> = requests["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["join_request_id"].as_str().unwrap(), r["wa_id"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [(ja.as_str(), a), (jb.as_str(), b)]);
    let (st, approved) = meta
        .call(
            "POST",
            &format!("/{gid}/join_requests"),
            Body::Json(json!({ "messaging_product": "whatsapp", "join_requests": [ja] })),
        )
        .await;
    assert_eq!(st, 200, "{approved}");
    assert_eq!(approved["approved_join_requests"], json!([ja]));
    let (st, rejected) = meta
        .call(
            "DELETE",
            &format!("/{gid}/join_requests"),
            Body::Json(json!({ "messaging_product": "whatsapp", "join_requests": [jb] })),
        )
        .await;
    assert_eq!(st, 200, "{rejected}");
    assert_eq!(rejected["rejected_join_requests"], json!([jb]));
    let (st, unknown) = meta
        .call(
            "POST",
            &format!("/{gid}/join_requests"),
            Body::Json(json!({ "messaging_product": "whatsapp", "join_requests": ["MTY0NjcwNDM1OTU6MTIw"] })),
        )
        .await;
    assert_eq!(st, 400, "{unknown}");
    assert_eq!(error(&unknown).0, 131213);
    let (_, info) = meta
        .get(&format!("/{gid}?fields=participants,total_participant_count"))
        .await;
    assert_eq!(info["participants"], json!([{ "wa_id": a }]));
    assert_eq!(info["total_participant_count"], 1);

    // Participants: Meta's limits and codes, then a removal.
    let nine: Vec<Value> = (0..9).map(|i| json!({ "user": format!("+1650555100{i}") })).collect();
    let (st, over) = meta
        .call(
            "DELETE",
            &format!("/{gid}/participants"),
            Body::Json(json!({ "messaging_product": "whatsapp", "participants": nine })),
        )
        .await;
    assert_eq!(st, 400);
    let (code, details) = error(&over);
    assert_eq!(code, 100);
    assert!(details.contains("participants") && details.contains('8'), "{details}");
    let (st, twice) = meta
        .call(
            "DELETE",
            &format!("/{gid}/participants"),
            Body::Json(json!({ "messaging_product": "whatsapp", "participants": [{ "user": "+16505551234" }, { "user": "16505551234" }] })),
        )
        .await;
    assert_eq!((st, error(&twice).0), (400, 131202), "{twice}");
    let (st, outsider) = meta
        .call(
            "DELETE",
            &format!("/{gid}/participants"),
            Body::Json(json!({ "messaging_product": "whatsapp", "participants": [{ "user": "+16505559999" }] })),
        )
        .await;
    assert_eq!((st, error(&outsider).0), (400, 131212), "{outsider}");
    let (st, removed) = meta
        .call(
            "DELETE",
            &format!("/{gid}/participants"),
            Body::Json(json!({ "messaging_product": "whatsapp", "participants": [{ "user": format!("+{a}") }] })),
        )
        .await;
    assert_eq!(st, 200, "{removed}");
    assert_eq!(removed, json!({ "success": true }));
    let (_, info) = meta.get(&format!("/{gid}?fields=participants")).await;
    assert_eq!(info["participants"], json!([]));

    // Settings, as a form; a picture is refused, naming it.
    let (st, updated) = meta
        .call(
            "POST",
            &format!("/{gid}"),
            Body::Form(&[("messaging_product", "whatsapp"), ("subject", "Car purchase (2027)")]),
        )
        .await;
    assert_eq!(st, 200, "{updated}");
    assert_eq!(updated, json!({ "success": true }));
    let (_, g) = s.get(&format!("/v1/groups/{request_id}"), &s.key).await;
    assert_eq!(g["subject"], "Car purchase (2027)", "one group, seen by both APIs");
    let (st, picture) = meta
        .call(
            "POST",
            &format!("/{gid}"),
            Body::Multipart(vec![("messaging_product", Some("whatsapp")), ("file", None)]),
        )
        .await;
    assert_eq!((st, error(&picture).0), (400, 100));
    assert!(error(&picture).1.contains("file"), "{picture}");
    let long = "x".repeat(129);
    let (st, too_long) = meta
        .call(
            "POST",
            &format!("/{gid}"),
            Body::Json(json!({ "messaging_product": "whatsapp", "subject": long })),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        error(&too_long).1.contains("subject") && error(&too_long).1.contains("128"),
        "{too_long}"
    );

    // A new link; the old one stops working.
    let (st, reset) = meta
        .call(
            "POST",
            &format!("/{gid}/invite_link"),
            Body::Json(json!({ "messaging_product": "whatsapp" })),
        )
        .await;
    assert_eq!(st, 200, "{reset}");
    assert_ne!(reset["invite_link"], link.as_str());
    let (st, deleted_link) = meta
        .call(
            "DELETE",
            &format!("/{gid}/invite_link"),
            Body::Json(json!({ "messaging_product": "whatsapp" })),
        )
        .await;
    assert_eq!(st, 200, "{deleted_link}");
    assert_eq!(deleted_link["success"], "true");
    let (st, _) = s
        .post(
            "/v1/sandbox/join",
            &s.key,
            json!({ "phone": "16505557777", "inviteLink": reset["invite_link"] }),
        )
        .await;
    assert_eq!(st, 404, "the reset link was revoked by the delete");

    // Listed among the number's active groups; deleted, it is unknown.
    let (st, list) = meta.get(&format!("/{pnid}/groups")).await;
    assert_eq!(st, 200);
    assert!(
        list["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == gid.as_str()),
        "{list}"
    );
    let (st, deleted) = meta.call("DELETE", &format!("/{gid}"), Body::None).await;
    assert_eq!(st, 200, "{deleted}");
    assert_eq!(deleted, json!({ "success": true }));
    let (st, gone) = meta.get(&format!("/{gid}?fields=subject")).await;
    assert_eq!((st, error(&gone).0), (400, 131041));

    // The native event log has it all, in order.
    let types: Vec<String> = s
        .events(&s.key, request_id)
        .await
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "GROUP_CREATED",
            "GROUP_JOIN_REQUEST_CREATED",
            "GROUP_JOIN_REQUEST_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_JOIN_REQUEST_REJECTED",
            "GROUP_PARTICIPANT_REMOVED",
            "GROUP_UPDATED",
            "GROUP_INVITE_LINK_RESET",
            "GROUP_INVITE_LINK_RESET",
            "GROUP_DELETED"
        ]
    );
}

#[tokio::test]
async fn graph_errors_are_metas_codes_with_metas_statuses() {
    let s = TestServer::start().await;
    let meta = MetaClient::new(&s, &s.key);
    let pnid = phone_number_id(&s, &s.key, NUMBER).await;
    let create = |body: Value| {
        let path = format!("/{pnid}/groups");
        let meta = &meta;
        async move { meta.call("POST", &path, Body::Json(body)).await }
    };
    // Tokens: none (104), not a key (190); the access_token parameter is one.
    let anonymous = MetaClient::new(&s, "");
    let (st, none) = anonymous.get(&format!("/{pnid}/groups")).await;
    assert_eq!((st, error(&none).0), (401, 104));
    let wrong = MetaClient::new(&s, "EAAG-not-a-key");
    let (st, bad) = wrong.get(&format!("/{pnid}/groups")).await;
    assert_eq!((st, error(&bad).0), (401, 190));
    let by_param = reqwest::get(format!("{}/{pnid}/groups?access_token={}", meta.base, s.key))
        .await
        .unwrap();
    assert_eq!(by_param.status(), 200);
    // A key limited to another number may not use this one (200).
    s.cli(&["numbers", "add", "--org", "default", "--waba-number", "15550100077"])
        .await;
    let limited = s.new_key("default", Some("15550100077")).await;
    let (st, denied) = MetaClient::new(&s, &limited).get(&format!("/{pnid}/groups")).await;
    assert_eq!((st, error(&denied).0), (403, 200), "{denied}");
    // Parameters (100), naming the parameter and the limit.
    for (body, field) in [
        (json!({ "subject": "No product" }), "messaging_product"),
        (
            json!({ "messaging_product": "sms", "subject": "x" }),
            "messaging_product",
        ),
        (json!({ "messaging_product": "whatsapp" }), "subject"),
        (json!({ "messaging_product": "whatsapp", "subject": "   " }), "subject"),
        (
            json!({ "messaging_product": "whatsapp", "subject": "x".repeat(129) }),
            "128",
        ),
        (
            json!({ "messaging_product": "whatsapp", "subject": "x", "description": "d".repeat(2049) }),
            "2048",
        ),
        (
            json!({ "messaging_product": "whatsapp", "subject": "x", "join_approval_mode": "maybe" }),
            "join_approval_mode",
        ),
    ] {
        let (st, e) = create(body.clone()).await;
        assert_eq!((st, error(&e).0), (400, 100), "{body} → {e}");
        assert!(error(&e).1.contains(field), "{body} → {e} names {field}");
    }
    let (st, e) = meta.get(&format!("/{pnid}/groups?limit=1025")).await;
    assert_eq!((st, error(&e).0), (400, 100));
    assert!(error(&e).1.contains("limit") && error(&e).1.contains("1024"), "{e}");
    let (st, e) = meta.get(&format!("/{pnid}/groups?after=not-a-cursor")).await;
    assert_eq!((st, error(&e).0), (400, 131059), "{e}");
    let (st, e) = meta.get("/999999999999999/groups").await;
    assert_eq!((st, error(&e).0), (400, 100), "{e}");
    let (st, e) = meta
        .get("/Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD?fields=subject")
        .await;
    assert_eq!((st, error(&e).0), (400, 131041), "{e}");
    let raw = reqwest::get(s.url(&format!("/graph/latest/{pnid}/groups?access_token={}", s.key)))
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(error(&body).0, 100);
    assert!(error(&body).1.contains("version"), "{body}");
    // A suspended group refuses writes (131207, 403).
    let g = s.active_group(&s.key, json!({ "subject": "Suspended one" })).await;
    let gid = g["graphGroupId"].as_str().unwrap().to_string();
    let (st, _) = s
        .post(
            &format!("/v1/sandbox/groups/{}/suspend", g["groupId"].as_str().unwrap()),
            &s.key,
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let (st, e) = meta
        .call(
            "POST",
            &format!("/{gid}"),
            Body::Json(json!({ "messaging_product": "whatsapp", "subject": "Renamed" })),
        )
        .await;
    assert_eq!((st, error(&e).0), (403, 131207), "{e}");
    let (_, info) = meta.get(&format!("/{gid}?fields=suspended")).await;
    assert_eq!(info["suspended"], true);
}

#[tokio::test]
async fn active_groups_page_both_ways_with_graph_cursors() {
    let s = TestServer::start().await;
    let meta = MetaClient::new(&s, &s.key);
    let pnid = phone_number_id(&s, &s.key, NUMBER).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let g = s.active_group(&s.key, json!({ "subject": format!("Paged {i}") })).await;
        ids.push(g["graphGroupId"].as_str().unwrap().to_string());
    }
    ids.reverse(); // newest first
    let page = |v: &Value| -> Vec<String> {
        v["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, first) = meta.get(&format!("/{pnid}/groups?limit=2")).await;
    assert_eq!(page(&first), ids[0..2]);
    assert!(first["paging"]["previous"].is_null(), "{first}");
    let next = first["paging"]["next"].as_str().unwrap().to_string();
    let (_, second) = meta.get(&next).await;
    assert_eq!(page(&second), ids[2..4]);
    let (_, third) = meta.get(second["paging"]["next"].as_str().unwrap()).await;
    assert_eq!(page(&third), ids[4..5]);
    assert!(third["paging"]["next"].is_null(), "the last page: {third}");
    // Back: `before` gives the newer page before it.
    let (_, back) = meta.get(third["paging"]["previous"].as_str().unwrap()).await;
    assert_eq!(page(&back), ids[2..4]);
    let before = back["paging"]["cursors"]["before"].as_str().unwrap();
    let (_, top) = meta.get(&format!("/{pnid}/groups?limit=2&before={before}")).await;
    assert_eq!(page(&top), ids[0..2]);
    assert!(top["paging"]["previous"].is_null(), "nothing newer: {top}");
    let (_, all) = meta.get(&format!("/{pnid}/groups")).await;
    assert_eq!(page(&all), ids, "25 by default");
    // A native group appears here and a Graph one natively: one and the same groups.
    let (_, native) = s.get(&format!("/v1/groups?wabaNumber={NUMBER}"), &s.key).await;
    let native: Vec<&str> = native["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["graphGroupId"].as_str().unwrap())
        .collect();
    assert_eq!(native, ids);
}

#[tokio::test]
async fn graph_bodies_may_be_forms_with_json_valued_fields() {
    let s = TestServer::start().await;
    let meta = MetaClient::new(&s, &s.key);
    let pnid = phone_number_id(&s, &s.key, NUMBER).await;
    let (st, created) = meta
        .call(
            "POST",
            &format!("/{pnid}/groups"),
            Body::Multipart(vec![
                ("messaging_product", Some("whatsapp")),
                ("subject", Some("From a form")),
            ]),
        )
        .await;
    assert_eq!(st, 200, "{created}");
    let g = wait_created(&s, &s.key, created["request_id"].as_str().unwrap()).await;
    let gid = g["graphGroupId"].as_str().unwrap().to_string();
    let link = g["inviteLink"].as_str().unwrap();
    join(&s, "16505552001", link).await;
    join(&s, "16505552002", link).await;
    let ok = eventually(Duration::from_secs(10), || async {
        let (_, info) = meta.get(&format!("/{gid}?fields=total_participant_count")).await;
        (info["total_participant_count"] == 2).then_some(())
    })
    .await;
    assert!(ok.is_some());
    // Graph takes arrays in form fields as JSON text.
    let (st, partial) = meta
        .call(
            "DELETE",
            &format!("/{gid}/participants"),
            Body::Form(&[
                ("messaging_product", "whatsapp"),
                ("participants", r#"[{"user":"+16505552001"},{"user":"+16505552999"}]"#),
            ]),
        )
        .await;
    assert_eq!(st, 206, "one removed, one not a member: {partial}");
    assert_eq!(partial["removed_participants"], json!([{ "input": "+16505552001" }]));
    assert_eq!(partial["failed_participants"][0]["input"], "+16505552999");
    assert_eq!(partial["failed_participants"][0]["errors"][0]["code"], 131212);
    assert_eq!(partial["errors"][0]["code"], 131201);
}

// ---------------------------------------------------------------------------------------
// Meta's webhooks, received as a Meta client's webhook server receives them

/// A Meta client's webhook server: it answers Meta's handshake for its verify token, and
/// checks each POST's `X-Hub-Signature-256` against the raw body with the app secret, as
/// Meta's documentation says.
#[derive(Clone)]
pub struct MetaReceiver {
    pub url: String,
    inner: std::sync::Arc<MetaInner>,
}

struct MetaInner {
    verify_token: String,
    app_secret: std::sync::Mutex<String>,
    handshakes: std::sync::Mutex<usize>,
    /// (raw body, the signature verified).
    posts: std::sync::Mutex<Vec<(String, bool)>>,
}

impl MetaReceiver {
    pub async fn start(verify_token: &str) -> MetaReceiver {
        use axum::{
            body::Bytes,
            extract::{Query, State},
            http::HeaderMap,
            routing::get,
        };
        let inner = std::sync::Arc::new(MetaInner {
            verify_token: verify_token.to_string(),
            app_secret: std::sync::Mutex::new(String::new()),
            handshakes: std::sync::Mutex::new(0),
            posts: std::sync::Mutex::new(Vec::new()),
        });
        async fn handshake(
            State(i): State<std::sync::Arc<MetaInner>>,
            Query(q): Query<std::collections::HashMap<String, String>>,
        ) -> (axum::http::StatusCode, String) {
            *i.handshakes.lock().unwrap() += 1;
            let ok = q.get("hub.mode").map(String::as_str) == Some("subscribe")
                && q.get("hub.verify_token") == Some(&i.verify_token);
            match (ok, q.get("hub.challenge")) {
                (true, Some(c)) => (axum::http::StatusCode::OK, c.clone()),
                _ => (axum::http::StatusCode::FORBIDDEN, "no".into()),
            }
        }
        async fn notify(State(i): State<std::sync::Arc<MetaInner>>, headers: HeaderMap, body: Bytes) -> &'static str {
            let secret = i.app_secret.lock().unwrap().clone();
            let expected = crate::cloud_numbers::meta_signature(&secret, &body);
            let got = headers
                .get("x-hub-signature-256")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let text = String::from_utf8_lossy(&body).into_owned();
            i.posts.lock().unwrap().push((text, got == expected));
            "ok"
        }
        let app = axum::Router::new()
            .route("/meta", get(handshake).post(notify))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MetaReceiver {
            url: format!("http://127.0.0.1:{port}/meta"),
            inner,
        }
    }

    pub fn set_app_secret(&self, s: &str) {
        *self.inner.app_secret.lock().unwrap() = s.to_string();
    }

    pub fn handshakes(&self) -> usize {
        *self.inner.handshakes.lock().unwrap()
    }

    /// Each POST: its body parsed, and whether its signature verified.
    pub fn posts(&self) -> Vec<(String, Value, bool)> {
        self.inner
            .posts
            .lock()
            .unwrap()
            .iter()
            .map(|(b, ok)| (b.clone(), serde_json::from_str(b).unwrap(), *ok))
            .collect()
    }

    /// (field, group type) of each change received, in order.
    pub fn changes(&self) -> Vec<(String, String)> {
        self.posts()
            .iter()
            .flat_map(|(_, v, _)| {
                v["entry"][0]["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        (
                            c["field"].as_str().unwrap().to_string(),
                            c["value"]["groups"][0]["type"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub async fn wait(&self, n: usize) -> Vec<(String, String)> {
        let got = eventually(Duration::from_secs(15), || async {
            let c = self.changes();
            (c.len() >= n).then_some(c)
        })
        .await;
        got.unwrap_or_else(|| panic!("fewer than {n} Meta webhooks: {:?}", self.changes()))
    }

    /// The `groups[]` item of the last change of this type.
    pub fn last(&self, kind: &str) -> Value {
        self.posts()
            .iter()
            .rev()
            .map(|(_, v, _)| v["entry"][0]["changes"][0]["value"]["groups"][0].clone())
            .find(|g| g["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} webhook: {:?}", self.changes()))
    }
}

/// A `meta` endpoint for `receiver`; its app secret (given to the receiver).
pub async fn meta_endpoint(s: &TestServer, key: &str, receiver: &MetaReceiver) -> String {
    let (st, ep) = s
        .post(
            "/v1/webhook-endpoints",
            key,
            json!({ "url": receiver.url, "format": "meta", "verifyToken": "vibecoding" }),
        )
        .await;
    assert_eq!(st, 201, "{ep}");
    assert_eq!(ep["format"], "meta");
    assert!(ep.get("secret").is_none(), "{ep}");
    let secret = ep["appSecret"].as_str().unwrap().to_string();
    assert!(
        secret.len() == 32 && secret.bytes().all(|b| b.is_ascii_hexdigit()),
        "{secret}"
    );
    receiver.set_app_secret(&secret);
    secret
}

/// The scenario of a Meta client: create by request ID, the `group_create` webhook, the
/// invite link, two join requests, approve one and reject the other, list, remove the
/// member, rename, delete; each of Meta's webhooks verified. `pnid`: the number's phone
/// number ID.
async fn meta_client_scenario(world: crate::cloud_groups::World<'_>, s: &TestServer, key: &str, pnid: &str) {
    let receiver = MetaReceiver::start("vibecoding").await;
    meta_endpoint(s, key, &receiver).await;
    assert_eq!(receiver.handshakes(), 1, "Meta's handshake was made before saving");
    let meta = MetaClient::new(s, key);
    let (st, created) = meta
        .call(
            "POST",
            &format!("/{pnid}/groups"),
            Body::Json(json!({ "messaging_product": "whatsapp", "subject": "Café ☕ club",
                               "join_approval_mode": "approval_required" })),
        )
        .await;
    assert_eq!(st, 200, "{created}");
    let request_id = created["request_id"].as_str().unwrap().to_string();
    receiver.wait(1).await;
    let create = receiver.last("group_create");
    assert_eq!(create["request_id"], request_id.as_str(), "correlated by request ID");
    assert_eq!(create["subject"], "Café ☕ club");
    assert_eq!(create["join_approval_mode"], "approval_required");
    let gid = create["group_id"].as_str().unwrap().to_string();
    let (raw, envelope, _) = receiver.posts()[0].clone();
    assert!(
        raw.contains(r"Caf\u00e9 \u2615") && !raw.contains('é'),
        "escaped as Meta escapes: {raw}"
    );
    assert_eq!(envelope["object"], "whatsapp_business_account");
    let value = &envelope["entry"][0]["changes"][0]["value"];
    assert_eq!(value["messaging_product"], "whatsapp");
    assert_eq!(value["metadata"]["phone_number_id"], pnid);

    let (_, link) = meta.get(&format!("/{gid}/invite_link")).await;
    assert_eq!(link["invite_link"], create["invite_link"]);
    let native = s.wait_active(key, &request_id).await;
    let (a, b) = ("16505553301", "16505553302");
    let ja = world.requests(s, key, &native, a).await;
    let jb = world.requests(s, key, &native, b).await;
    receiver.wait(3).await;
    assert_eq!(receiver.last("group_join_request_created")["wa_id"], b);
    let (st, approved) = meta
        .call(
            "POST",
            &format!("/{gid}/join_requests"),
            Body::Json(json!({ "messaging_product": "whatsapp", "join_requests": [ja] })),
        )
        .await;
    assert_eq!(st, 200, "{approved}");
    receiver.wait(4).await;
    assert_eq!(
        receiver.last("group_participants_add")["added_participants"][0]["wa_id"],
        a
    );
    let (st, rejected) = meta
        .call(
            "DELETE",
            &format!("/{gid}/join_requests"),
            Body::Json(json!({ "messaging_product": "whatsapp", "join_requests": [jb] })),
        )
        .await;
    assert_eq!(st, 200, "{rejected}");
    let (_, list) = meta.get(&format!("/{pnid}/groups")).await;
    assert!(
        list["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == gid.as_str())
    );
    let (st, _) = meta
        .call(
            "DELETE",
            &format!("/{gid}/participants"),
            Body::Json(json!({ "messaging_product": "whatsapp", "participants": [{ "user": format!("+{a}") }] })),
        )
        .await;
    assert_eq!(st, 200);
    receiver.wait(5).await;
    let removed = receiver.last("group_participants_remove");
    assert_eq!(removed["initiated_by"], "business");
    assert_eq!(removed["removed_participants"][0]["wa_id"], a);
    let (st, _) = meta
        .call(
            "POST",
            &format!("/{gid}"),
            Body::Json(json!({ "messaging_product": "whatsapp", "subject": "Café club (closed)" })),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = meta.call("DELETE", &format!("/{gid}"), Body::None).await;
    assert_eq!(st, 200);
    let changes = receiver.wait(7).await;
    let expected: Vec<(String, String)> = [
        ("group_lifecycle_update", "group_create"),
        ("group_participants_update", "group_join_request_created"),
        ("group_participants_update", "group_join_request_created"),
        ("group_participants_update", "group_participants_add"),
        ("group_participants_update", "group_participants_remove"),
        ("group_settings_update", "group_settings_update"),
        ("group_lifecycle_update", "group_delete"),
    ]
    .iter()
    .map(|(f, t)| (f.to_string(), t.to_string()))
    .collect();
    assert_eq!(changes, expected, "Meta's webhooks, in order; none for the rejection");
    assert_eq!(
        receiver.last("group_settings_update")["group_subject"],
        json!({ "text": "Café club (closed)", "update_successful": true })
    );
    assert!(
        receiver.posts().iter().all(|(_, _, ok)| *ok),
        "every signature verified"
    );
    // What wagroups sends reads, with wagroups' own reader of Meta's webhooks (held to Meta's
    // documented samples), as the events it came from.
    let now = wagroups_core::time::Timestamp::now();
    let mut read = Vec::new();
    for (raw, _, _) in receiver.posts() {
        let body = wagroups_providers::cloud::webhook::parse_body(raw.as_bytes()).unwrap();
        let batch = wagroups_providers::cloud::webhook::translate(&body, now);
        assert_eq!(batch.unrecognised, 0, "{raw}");
        for r in batch.reports {
            assert_eq!(r.phone_number_id, pnid);
            read.push(match r.event {
                wagroups_core::provider::ProviderEvent::GroupCreated {
                    request_id: rid,
                    wa_group_id,
                    ..
                } => {
                    assert_eq!(
                        (rid.as_str(), wa_group_id.as_str()),
                        (request_id.as_str(), gid.as_str())
                    );
                    "created"
                }
                wagroups_core::provider::ProviderEvent::JoinRequestCreated { .. } => "join_request",
                wagroups_core::provider::ProviderEvent::ParticipantJoined { .. } => "joined",
                wagroups_core::provider::ProviderEvent::ParticipantRemoved { .. } => "removed",
                wagroups_core::provider::ProviderEvent::SettingsUpdated { .. } => "settings",
                // A write's confirmation (its request ID), beside what it did.
                wagroups_core::provider::ProviderEvent::OperationSucceeded { .. } => continue,
                wagroups_core::provider::ProviderEvent::GroupDeleted { .. } => "deleted",
                other => panic!("read as {other:?}"),
            });
        }
    }
    read.dedup();
    assert_eq!(
        read,
        ["created", "join_request", "joined", "removed", "settings", "deleted"]
    );
    for (_, v, _) in receiver.posts() {
        for g in v["entry"][0]["changes"][0]["value"]["groups"].as_array().unwrap() {
            if g["type"] != "group_create" || g.get("errors").is_none() {
                assert_eq!(g["group_id"], gid.as_str(), "{g}");
            }
            assert!(g["timestamp"].as_str().unwrap().parse::<i64>().unwrap() > 1_700_000_000);
        }
    }
    // The native stream has the same events, and those Meta has no webhook for.
    let types: Vec<String> = s
        .events(key, &request_id)
        .await
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "GROUP_CREATED",
            "GROUP_JOIN_REQUEST_CREATED",
            "GROUP_JOIN_REQUEST_CREATED",
            "GROUP_PARTICIPANT_JOINED",
            "GROUP_JOIN_REQUEST_REJECTED",
            "GROUP_PARTICIPANT_REMOVED",
            "GROUP_UPDATED",
            "GROUP_DELETED"
        ]
    );
}

#[tokio::test]
async fn a_meta_client_gets_metas_webhooks_on_a_simulated_number() {
    let s = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    let pnid = phone_number_id(&s, &s.key, NUMBER).await;
    meta_client_scenario(crate::cloud_groups::World::Simulated, &s, &s.key, &pnid).await;
}

#[tokio::test]
async fn a_meta_client_gets_metas_webhooks_on_a_cloud_api_number() {
    use crate::{
        cloud_groups::{NUMBER as CLOUD_NUMBER, PHONE_NUMBER_ID, World, cloud_server},
        cloud_numbers::APP_SECRET,
        fake_graph::FakeGraph,
        receiver::{Behaviour, Receiver},
    };
    let graph = FakeGraph::start(APP_SECRET).await;
    let standard = Receiver::start(Behaviour::Ok).await;
    let (s, key, _) = cloud_server(&graph, &standard).await;
    assert_eq!(
        phone_number_id(&s, &key, CLOUD_NUMBER).await,
        PHONE_NUMBER_ID,
        "Meta's own"
    );
    meta_client_scenario(World::Meta(&graph), &s, &key, PHONE_NUMBER_ID).await;
    assert!(graph.violations().is_empty(), "{:?}", graph.violations());
    // On Meta, a group's Graph ID is Meta's group ID.
    let created = graph
        .group_with_subject("Café club (closed)")
        .expect("Meta has the group");
    let (_, groups) = s.get("/v1/groups", &key).await;
    assert_eq!(groups["data"][0]["graphGroupId"], created.as_str());
}

#[tokio::test]
async fn a_meta_endpoint_is_refused_unless_it_passes_metas_handshake() {
    let s = TestServer::start_with(&["--allow-private-webhook-targets"]).await;
    let receiver = MetaReceiver::start("the-right-token").await;
    let (st, e) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": receiver.url, "format": "meta", "verifyToken": "a-wrong-token" }),
        )
        .await;
    assert_eq!(st, 400, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains(&receiver.url) && message.contains("403"), "{message}");
    assert_eq!(e["error"]["field"], "url");
    let (_, list) = s.get("/v1/webhook-endpoints", &s.key).await;
    assert_eq!(list["data"], json!([]), "nothing saved");
    // verifyToken is required for meta, and only for meta.
    let (st, e) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": receiver.url, "format": "meta" }),
        )
        .await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("verifyToken")), "{e}");
    let (st, e) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": receiver.url, "verifyToken": "x" }),
        )
        .await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("verifyToken")), "{e}");
    // With the right token and an app secret of one's own; a new URL is verified again.
    let (st, ep) = s
        .post(
            "/v1/webhook-endpoints",
            &s.key,
            json!({ "url": receiver.url, "format": "meta", "verifyToken": "the-right-token", "appSecret": "my-app-secret" }),
        )
        .await;
    assert_eq!(st, 201, "{ep}");
    assert_eq!(ep["appSecret"], "my-app-secret");
    let id = ep["id"].as_str().unwrap();
    let (_, read) = s.get(&format!("/v1/webhook-endpoints/{id}"), &s.key).await;
    assert!(
        read.get("appSecret").is_none() && read.get("verifyToken").is_none(),
        "{read}"
    );
    let other = MetaReceiver::start("another-token").await;
    let (st, e) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            Some(json!({ "url": other.url })),
        )
        .await;
    assert_eq!(st, 400, "the new URL does not know the token: {e}");
    let (st, e) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            Some(json!({ "url": other.url, "verifyToken": "another-token" })),
        )
        .await;
    assert_eq!(st, 200, "{e}");
    assert_eq!(other.handshakes(), 2);
    let (st, e) = s
        .send(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            &s.key,
            Some(json!({ "format": "standard" })),
        )
        .await;
    assert_eq!((st, e["error"]["field"].as_str()), (400, Some("format")), "{e}");
    // Events go out signed with that secret.
    other.set_app_secret("my-app-secret");
    s.active_group(&s.key, json!({ "subject": "Signed" })).await;
    let got = eventually(Duration::from_secs(15), || async {
        (!other.posts().is_empty()).then(|| other.posts())
    })
    .await;
    let posts = got.expect("a Meta webhook");
    assert!(posts[0].2, "signed with the app secret given");
    assert!(!s.log().contains("my-app-secret"), "never logged");
}
