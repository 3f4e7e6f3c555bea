//! A fake of Meta's Graph API: a real HTTP server on `127.0.0.1:0` that checks every request
//! against Meta's own OpenAPI document (`specs/meta/`, vendored from facebook/openapi:
//! method, path, required headers and their patterns, content type, required body fields,
//! enums, lengths, item counts), answers as Meta documents (error objects included), and
//! sends Meta's webhooks back to the gateway, signed with the app secret.
//!
//! What it does is steered by the group's subject: `[sync <code>]` answers the create with
//! Meta's error `<code>`; `[fail <code>]` accepts it and reports the failure by webhook.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub operation: String,
    pub body: Value,
}

/// A group as the fake keeps it.
#[derive(Debug, Clone, Default)]
pub struct FakeGroup {
    pub phone_number_id: String,
    pub subject: String,
    pub description: String,
    pub invite_link: String,
    pub members: Vec<String>,
    /// (join request ID, WhatsApp ID)
    pub join_requests: Vec<(String, String)>,
    pub deleted: bool,
}

struct Inner {
    spec: Value,
    groups: Mutex<std::collections::HashMap<String, FakeGroup>>,
    app_secret: String,
    webhook_url: Mutex<Option<String>>,
    calls: Mutex<Vec<Call>>,
    /// Requests that broke Meta's document, with why.
    violations: Mutex<Vec<String>>,
    next: Mutex<u64>,
    /// Webhooks are dropped instead of sent (Meta's are lost).
    lose_webhooks: Mutex<bool>,
    /// Webhooks are kept until released (Meta's are late): (phone number ID, field, group).
    held: Mutex<Option<Vec<(String, String, Value)>>>,
    /// How long a create's answer takes (the group is made first).
    slow_creates: Mutex<Duration>,
    /// Tokens Meta no longer accepts (answered `190`).
    revoked: Mutex<Vec<String>>,
    /// Errors the next calls get: (Meta's code, Retry-After seconds).
    failures: Mutex<std::collections::VecDeque<(i64, Option<u64>)>>,
    /// Recipients Meta cannot deliver to (answered `131026`).
    undeliverable: Mutex<Vec<String>>,
    /// Invite templates sent: (recipient, group ID in the parameter).
    invites: Mutex<Vec<(String, String)>>,
    /// Webhooks the gateway answered `200`.
    webhooks_accepted: Mutex<usize>,
    /// Seconds Meta's clock is ahead of this machine's (what its webhooks' timestamps say).
    clock_ahead: Mutex<i64>,
    http: reqwest::Client,
}

#[derive(Clone)]
pub struct FakeGraph {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

/// Meta's document: the group paths and the send-message path, as one.
fn spec() -> Value {
    let load = |name: &str| -> Value {
        let path = format!("{}/../../specs/meta/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("Meta's OpenAPI document {path}: {e}"));
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("Meta's OpenAPI document {path} parses: {e}"))
    };
    let mut spec = load("meta-groups-subset_v23.0.yaml");
    let messages = load("meta-messages-subset_v23.0.yaml");
    for (k, v) in messages["paths"].as_object().expect("paths").clone() {
        spec["paths"][k] = v;
    }
    for (kind, items) in messages["components"].as_object().expect("components").clone() {
        for (k, v) in items.as_object().expect("a components section").clone() {
            spec["components"][&kind][k] = v;
        }
    }
    // The one departure from the document, and why: v23.0's template parameter types stop
    // at currency, date_time, document, image, text and video, while Meta's developer
    // documentation of the "group invite link" template (reference §1.12) sends a body
    // parameter {"type": "group_id", "group_id": "<GROUP_ID>"}. That parameter is added
    // as the documentation has it; everything else stays as published.
    let param = &mut spec["components"]["schemas"]["ParameterObject"];
    param["properties"]["type"]["enum"]
        .as_array_mut()
        .expect("ParameterObject's types")
        .push(json!("group_id"));
    param["discriminator"]["mapping"]["group_id"] = json!("#/components/schemas/GroupIdParameter (documentation)");
    spec["components"]["schemas"]["GroupIdParameter (documentation)"] = json!({
        "type": "object",
        "required": ["type", "group_id"],
        "properties": { "type": { "type": "string", "enum": ["group_id"] }, "group_id": { "type": "string" } }
    });
    spec
}

impl FakeGraph {
    pub async fn start(app_secret: &str) -> FakeGraph {
        let inner = Arc::new(Inner {
            spec: spec(),
            groups: Mutex::new(std::collections::HashMap::new()),
            app_secret: app_secret.to_string(),
            webhook_url: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            next: Mutex::new(1),
            revoked: Mutex::new(Vec::new()),
            lose_webhooks: Mutex::new(false),
            held: Mutex::new(None),
            slow_creates: Mutex::new(Duration::ZERO),
            failures: Mutex::new(std::collections::VecDeque::new()),
            undeliverable: Mutex::new(Vec::new()),
            invites: Mutex::new(Vec::new()),
            webhooks_accepted: Mutex::new(0),
            clock_ahead: Mutex::new(0),
            http: reqwest::Client::new(),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeGraph { inner, addr }
    }

    /// The `--graph-url` to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where its webhooks go (the gateway's `/providers/meta/webhook`).
    pub fn send_webhooks_to(&self, url: String) {
        *self.inner.webhook_url.lock().unwrap() = Some(url);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().unwrap().clone()
    }

    /// Every request that did not follow Meta's document.
    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().unwrap().clone()
    }

    /// From now on, webhooks are lost (`true`) or sent again (`false`).
    pub fn lose_webhooks(&self, lose: bool) {
        *self.inner.lose_webhooks.lock().unwrap() = lose;
    }

    /// From now on webhooks wait for [`FakeGraph::release_webhooks`].
    pub fn hold_webhooks(&self) {
        *self.inner.held.lock().unwrap() = Some(Vec::new());
    }

    /// Sends the webhooks held, in order, and stops holding.
    pub async fn release_webhooks(&self) {
        let held = self.inner.held.lock().unwrap().take().unwrap_or_default();
        for (pnid, field, group) in held {
            send_webhook(&self.inner, &pnid, &field, vec![group]).await;
        }
    }

    /// Sends the webhooks held as Meta may: all in one signed POST (one change per webhook),
    /// newest first, and then the same POST again (Meta retries); stops holding. The
    /// gateway's answer to each POST.
    pub async fn release_webhooks_batched_reversed_twice(&self) -> Vec<u16> {
        let held = self.inner.held.lock().unwrap().take().unwrap_or_default();
        let Some(url) = self.inner.webhook_url.lock().unwrap().clone() else {
            return Vec::new();
        };
        let changes: Vec<Value> = held
            .iter()
            .rev()
            .map(|(pnid, field, group)| change(pnid, field, vec![group.clone()]))
            .collect();
        let body = envelope(changes);
        let mut answers = Vec::new();
        for _ in 0..2 {
            answers.push(post_signed(&self.inner.http, &url, &self.inner.app_secret, body.clone()).await);
        }
        answers
    }

    /// A group made at Meta without the gateway (another tool, or before the number was
    /// added); its WhatsApp ID.
    pub fn foreign_group(&self, phone_number_id: &str, subject: &str) -> String {
        let id = format!("Y2FwaV9ncm91cDoFOREIGN{:06}", self.next());
        self.inner.groups.lock().unwrap().insert(
            id.clone(),
            FakeGroup {
                phone_number_id: phone_number_id.to_string(),
                subject: subject.to_string(),
                invite_link: format!("https://chat.whatsapp.com/F{id}"),
                ..FakeGroup::default()
            },
        );
        id
    }

    /// The WhatsApp ID of the group Meta made for the create with this subject.
    pub fn group_with_subject(&self, subject: &str) -> Option<String> {
        self.inner
            .groups
            .lock()
            .unwrap()
            .iter()
            .find(|(_, g)| g.subject == subject)
            .map(|(id, _)| id.clone())
    }

    /// A create's answer takes this long (Meta has made the group before it answers).
    pub fn slow_creates(&self, d: Duration) {
        *self.inner.slow_creates.lock().unwrap() = d;
    }

    /// Changes a group at Meta behind the gateway's back (its webhook lost or never sent).
    pub fn change_group(&self, id: &str, f: impl FnOnce(&mut FakeGroup)) {
        if let Some(g) = self.inner.groups.lock().unwrap().get_mut(id) {
            f(g);
        }
    }

    /// Meta stops accepting this token.
    pub fn revoke(&self, token: &str) {
        self.inner.revoked.lock().unwrap().push(token.to_string());
    }

    /// The next call is answered with Meta's error `code` (and `Retry-After`).
    pub fn fail_next(&self, code: i64, retry_after: Option<u64>) {
        self.inner.failures.lock().unwrap().push_back((code, retry_after));
    }

    /// Time passes at Meta: later webhooks are stamped this many seconds later.
    pub fn advance_clock(&self, seconds: i64) {
        *self.inner.clock_ahead.lock().unwrap() += seconds;
    }

    /// How many webhooks the gateway answered `200`.
    pub fn webhooks_accepted(&self) -> usize {
        *self.inner.webhooks_accepted.lock().unwrap()
    }

    /// Meta cannot deliver messages to this number (not on WhatsApp).
    pub fn undeliverable(&self, phone: &str) {
        self.inner.undeliverable.lock().unwrap().push(phone.to_string());
    }

    /// Invite templates delivered: (recipient, group ID).
    pub fn invites(&self) -> Vec<(String, String)> {
        self.inner.invites.lock().unwrap().clone()
    }

    /// How many calls of this operation Meta got.
    pub fn count(&self, operation: &str) -> usize {
        self.calls().iter().filter(|c| c.operation == operation).count()
    }

    pub fn group(&self, id: &str) -> Option<FakeGroup> {
        self.inner.groups.lock().unwrap().get(id).cloned()
    }

    fn next(&self) -> u64 {
        next(&self.inner)
    }

    async fn tell(&self, group_id: &str, field: &str, group: Value) {
        let pnid = self.group(group_id).map(|g| g.phone_number_id).unwrap_or_default();
        send_webhook(&self.inner, &pnid, field, vec![group]).await;
    }

    /// A WhatsApp user taps the group's link and joins.
    pub async fn user_joins(&self, group_id: &str, wa_id: &str) {
        if let Some(g) = self.inner.groups.lock().unwrap().get_mut(group_id) {
            g.members.push(wa_id.to_string());
        }
        self.tell(
            group_id,
            "group_participants_update",
            json!({ "timestamp": stamp(&self.inner), "group_id": group_id, "type": "group_participants_add",
                    "reason": "invite_link", "added_participants": [{ "wa_id": wa_id }] }),
        )
        .await;
    }

    /// A user asks to join (an approval_required group); the request's ID.
    pub async fn user_requests(&self, group_id: &str, wa_id: &str) -> String {
        let id = format!("MTY0NjcwNDM1OTU6{:08}", self.next());
        if let Some(g) = self.inner.groups.lock().unwrap().get_mut(group_id) {
            g.join_requests.push((id.clone(), wa_id.to_string()));
        }
        self.tell(
            group_id,
            "group_participants_update",
            json!({ "timestamp": stamp(&self.inner), "group_id": group_id, "type": "group_join_request_created",
                    "reason": "invite_link", "join_request_id": id, "wa_id": wa_id }),
        )
        .await;
        id
    }

    /// A member leaves (Meta's sample: no request ID, `initiated_by` left out).
    pub async fn user_leaves(&self, group_id: &str, wa_id: &str) {
        if let Some(g) = self.inner.groups.lock().unwrap().get_mut(group_id) {
            g.members.retain(|m| m != wa_id);
        }
        self.tell(
            group_id,
            "group_participants_update",
            json!({ "timestamp": stamp(&self.inner), "group_id": group_id, "type": "group_participants_remove",
                    "removed_participants": [{ "wa_id": wa_id }] }),
        )
        .await;
    }
}

/// A group ID as Meta makes them: `capi_group:<number>:<group>` in base64 (here with the
/// phone number ID for the number). With a 15-digit ID and an 18-digit group, it has no
/// padding, so it also reads as one of wagroups' own Graph IDs: the gateway must take it as
/// Meta's.
fn meta_group_id(phone_number_id: &str, n: u64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("capi_group:{phone_number_id}:{}", 120363000000000000u64 + n))
}

/// Meta's clock: Unix seconds.
fn seconds(inner: &Inner) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now + *inner.clock_ahead.lock().unwrap()
}

/// A webhook's `timestamp` as Meta's samples write it: Unix seconds, as a string.
fn stamp(inner: &Inner) -> String {
    seconds(inner).to_string()
}

fn next(inner: &Inner) -> u64 {
    let mut next = inner.next.lock().unwrap();
    *next += 1;
    *next
}

/// Sends a webhook a moment after the answer, as Meta does.
fn later(inner: &Arc<Inner>, phone_number_id: String, field: &'static str, group: Value) {
    let inner = inner.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        send_webhook(&inner, &phone_number_id, field, vec![group]).await;
    });
}

/// Meta's error object, with its HTTP status.
fn meta_error(code: i64) -> Response {
    let (status, title) = match code {
        190 => (401, "Invalid OAuth access token - Cannot parse access token"),
        131207 => (403, "Group suspended"),
        131208 | 4 | 80007 | 130429 => (429, "Rate limit hit"),
        131211 => (400, "Group create limit reached"),
        131214 => (400, "Group creation is temporarily disabled"),
        131215 => (400, "This phone number is not eligible to access Groups APIs"),
        131026 => (400, "Message Undeliverable"),
        131009 => (400, "Parameter value is not valid"),
        100 => (400, "Invalid parameter"),
        _ => (400, "Error"),
    };
    let body = json!({
        "error": {
            "message": format!("(#{code}) {title}"),
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": title },
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"
        }
    });
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// `[sync 131215]` or `[fail 131211]` in a subject: the code asked for.
fn marker(subject: &str, what: &str) -> Option<i64> {
    let start = subject.find(&format!("[{what} "))? + what.len() + 2;
    subject[start..].split(']').next()?.trim().parse().ok()
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let json_body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let operation = match check(&inner.spec, &method, &path, uri.query(), &headers, &body, &json_body) {
        Ok(op) => op,
        Err(why) => {
            inner.violations.lock().unwrap().push(format!("{method} {path}: {why}"));
            return meta_error(100);
        }
    };
    inner.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: path.clone(),
        operation: operation.clone(),
        body: json_body.clone(),
    });
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    if inner.revoked.lock().unwrap().contains(&token) {
        return meta_error(190);
    }
    let failure = inner.failures.lock().unwrap().pop_front();
    if let Some((code, retry_after)) = failure {
        let mut r = meta_error(code);
        if let Some(secs) = retry_after {
            r.headers_mut().insert(
                "retry-after",
                axum::http::HeaderValue::from_str(&secs.to_string()).unwrap(),
            );
        }
        return r;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match operation.as_str() {
        "createGroup" => {
            let subject = json_body["subject"].as_str().unwrap_or("").to_string();
            if let Some(code) = marker(&subject, "sync") {
                return meta_error(code);
            }
            let n = next(&inner);
            let request_id = format!("{}{n:06}", segments[1]);
            let phone_number_id = segments[1].to_string();
            let group_id = meta_group_id(&phone_number_id, n);
            let group = json!({
                "timestamp": stamp(&inner),
                "group_id": group_id,
                "type": "group_create",
                "request_id": request_id,
                "subject": subject,
                "invite_link": format!("https://chat.whatsapp.com/LINK{n:06}"),
                "join_approval_mode": json_body["join_approval_mode"].as_str().unwrap_or("auto_approve"),
            });
            if marker(&subject, "fail").is_none() {
                inner.groups.lock().unwrap().insert(
                    group_id.clone(),
                    FakeGroup {
                        phone_number_id: phone_number_id.clone(),
                        subject: subject.clone(),
                        description: json_body["description"].as_str().unwrap_or("").to_string(),
                        invite_link: format!("https://chat.whatsapp.com/LINK{n:06}"),
                        ..FakeGroup::default()
                    },
                );
            }
            let group = match marker(&subject, "fail") {
                Some(code) => json!({
                    "timestamp": stamp(&inner),
                    "type": "group_create",
                    "subject": subject,
                    "request_id": request_id,
                    "errors": [{ "code": code, "message": "Group create limit reached", "title": "t",
                                 "error_data": { "details": "d" } }]
                }),
                None => group,
            };
            later(&inner, phone_number_id, "group_lifecycle_update", group);
            let slow = *inner.slow_creates.lock().unwrap();
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            axum::Json(json!({ "messaging_product": "whatsapp", "request_id": request_id })).into_response()
        }
        "getActiveGroups" => {
            let groups: Vec<Value> = inner
                .groups
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, g)| g.phone_number_id == segments[1] && !g.deleted)
                .map(|(id, g)| json!({ "id": id, "subject": g.subject, "created_at": "1755548877" }))
                .collect();
            axum::Json(json!({ "data": { "groups": groups }, "paging": { "cursors": { "after": "", "before": "" } } }))
                .into_response()
        }
        "sendMessage" => {
            let to = json_body["to"].as_str().unwrap_or("").to_string();
            if inner.undeliverable.lock().unwrap().contains(&to) {
                return meta_error(131026);
            }
            // Only a group of this number can be sent (Meta: 131009, a parameter value is not valid).
            let group_id = json_body["template"]["components"][0]["parameters"][0]["group_id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let known = inner
                .groups
                .lock()
                .unwrap()
                .get(&group_id)
                .is_some_and(|g| g.phone_number_id == segments[1] && !g.deleted);
            if !known {
                return meta_error(131009);
            }
            inner.invites.lock().unwrap().push((to.clone(), group_id));
            axum::Json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{ "input": to, "wa_id": to }],
                "messages": [{ "id": format!("wamid.HBgL{:08}", next(&inner)), "message_status": "accepted" }]
            }))
            .into_response()
        }
        op => group_call(&inner, op, segments.get(1).copied().unwrap_or(""), &json_body),
    }
}

/// A call on an existing group (`segments[1]` is its ID). Writes Meta confirms by webhook
/// answer without a request ID, as Meta's document has it; the webhook carries one.
fn group_call(inner: &Arc<Inner>, op: &str, group_id: &str, body: &Value) -> Response {
    let Some(mut g) = inner
        .groups
        .lock()
        .unwrap()
        .get(group_id)
        .cloned()
        .filter(|g| !g.deleted)
    else {
        return meta_error(131041);
    };
    let request_id = format!("REQ{:08}", next(inner));
    let pnid = g.phone_number_id.clone();
    let answer = match op {
        "updateGroupSettings" => {
            let mut event = json!({ "timestamp": stamp(inner), "group_id": group_id, "type": "group_settings_update",
                                    "request_id": request_id });
            if let Some(s) = body["subject"].as_str() {
                g.subject = s.to_string();
                event["group_subject"] = json!({ "text": s, "update_successful": true });
            }
            if let Some(d) = body["description"].as_str() {
                g.description = d.to_string();
                event["group_description"] = json!({ "text": d, "update_successful": true });
            }
            later(inner, pnid, "group_settings_update", event);
            json!({ "success": true })
        }
        "deleteGroup" => {
            g.deleted = true;
            later(
                inner,
                pnid,
                "group_lifecycle_update",
                json!({ "timestamp": stamp(inner), "group_id": group_id, "type": "group_delete", "request_id": request_id }),
            );
            json!({ "success": true })
        }
        "removeGroupParticipants" => {
            let users: Vec<String> = body["participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["user"].as_str().map(str::to_string))
                .collect();
            let (removed, failed): (Vec<String>, Vec<String>) = users
                .into_iter()
                .partition(|u| g.members.contains(&u.trim_start_matches('+').to_string()));
            g.members.retain(|m| !removed.contains(&format!("+{m}")));
            let mut event = json!({ "timestamp": stamp(inner), "group_id": group_id, "type": "group_participants_remove",
                                    "request_id": request_id, "initiated_by": "business",
                                    "removed_participants": removed.iter().map(|u| json!({ "input": u })).collect::<Vec<_>>() });
            if !failed.is_empty() {
                event["failed_participants"] = failed
                    .iter()
                    .map(|u| json!({ "input": u, "errors": [{ "code": 131212, "message": "Participant is not a part of the group.",
                                                              "title": "t", "error_data": { "details": "d" } }] }))
                    .collect();
            }
            later(inner, pnid, "group_participants_update", event);
            json!({ "success": true })
        }
        "getGroupInfo" => json!({
            "messaging_product": "whatsapp",
            "id": group_id,
            "subject": g.subject,
            "description": g.description,
            "suspended": false,
            "participants": g.members.iter().map(|m| json!({ "wa_id": m })).collect::<Vec<_>>(),
            "total_participant_count": g.members.len(),
        }),
        "createGroupInviteLink" => {
            g.invite_link = format!("https://chat.whatsapp.com/RESET{:06}", next(inner));
            json!({ "messaging_product": "whatsapp", "invite_link": g.invite_link })
        }
        "getJoinRequests" => json!({
            "data": g.join_requests.iter().map(|(id, wa)| json!({ "join_request_id": id, "wa_id": wa,
                                                                   "creation_timestamp": 1755548877 })).collect::<Vec<_>>(),
            "paging": { "cursors": { "before": "b", "after": "a" } }
        }),
        "approveJoinRequests" | "rejectJoinRequests" => {
            let approve = op == "approveJoinRequests";
            let asked: Vec<String> = body["join_requests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect();
            let mut done = Vec::new();
            let mut failed = Vec::new();
            for id in asked {
                match g.join_requests.iter().position(|(r, _)| *r == id) {
                    Some(i) => {
                        let (_, wa) = g.join_requests.remove(i);
                        if approve {
                            g.members.push(wa.clone());
                            later(
                                inner,
                                pnid.clone(),
                                "group_participants_update",
                                json!({ "timestamp": seconds(inner), "group_id": group_id, "type": "group_participants_add",
                                        "reason": "invite_link", "added_participants": [{ "input": format!("+{wa}"), "wa_id": wa }] }),
                            );
                        }
                        done.push(id);
                    }
                    None => failed.push(json!({ "join_request_id": id, "errors": [{ "code": 131213,
                        "message": "Group join request does not exist.", "title": "t", "error_data": { "details": "d" } }] })),
                }
            }
            let key = if approve {
                "approved_join_requests"
            } else {
                "rejected_join_requests"
            };
            let mut answer = json!({ "messaging_product": "whatsapp", key: done });
            if !failed.is_empty() {
                answer["failed_join_requests"] = json!(failed);
            }
            answer
        }
        _ => return meta_error(100),
    };
    inner.groups.lock().unwrap().insert(group_id.to_string(), g);
    axum::Json(answer).into_response()
}

/// Posts a webhook with these `groups[]` to the gateway, signed as Meta signs it; retried
/// (as Meta retries) until it is answered 200.
pub async fn send_webhook_to(
    http: &reqwest::Client,
    url: &str,
    app_secret: &str,
    phone_number_id: &str,
    field: &str,
    groups: Vec<Value>,
) -> u16 {
    post_signed(
        http,
        url,
        app_secret,
        envelope(vec![change(phone_number_id, field, groups)]),
    )
    .await
}

/// One change of a webhook, as Meta shapes it.
fn change(phone_number_id: &str, field: &str, groups: Vec<Value>) -> Value {
    json!({
        "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": phone_number_id },
            "groups": groups
        },
        "field": field
    })
}

/// A webhook's body: one entry with these changes.
fn envelope(changes: Vec<Value>) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": changes }]
    })
    .to_string()
}

/// POSTs `body` signed with the app secret; the gateway's status (0: no answer).
async fn post_signed(http: &reqwest::Client, url: &str, app_secret: &str, body: String) -> u16 {
    let signature = super::cloud_numbers::meta_signature(app_secret, body.as_bytes());
    match http
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn send_webhook(inner: &Inner, phone_number_id: &str, field: &str, groups: Vec<Value>) {
    let Some(url) = inner.webhook_url.lock().unwrap().clone() else {
        return;
    };
    if *inner.lose_webhooks.lock().unwrap() {
        return;
    }
    if let Some(held) = inner.held.lock().unwrap().as_mut() {
        for g in &groups {
            held.push((phone_number_id.to_string(), field.to_string(), g.clone()));
        }
        return;
    }
    for _ in 0..50 {
        let status = send_webhook_to(
            &inner.http,
            &url,
            &inner.app_secret,
            phone_number_id,
            field,
            groups.clone(),
        )
        .await;
        if status == 200 {
            *inner.webhooks_accepted.lock().unwrap() += 1;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Meta's OpenAPI document, applied to a request

/// Meta's OpenAPI document (the group paths and the send-message path).
pub fn meta_document() -> Value {
    spec()
}

/// Checks an answer of Meta's dialect against Meta's document: `path` as Meta's (after the
/// base URL, `/v23.0/…`), the answer's status and JSON body. A status the operation lists is
/// held to its schema (none: Meta documents no body for some writes); an error status it does
/// not list, to Meta's `ErrorResponse`; 206 (Meta's partial success, on its error-codes page)
/// to nothing; any other status fails. Meta's error objects carry `error_data` and `fbtrace_id`, which its
/// error-codes page documents and the document leaves out: those are allowed.
pub fn check_answer(spec: &Value, method: &str, path: &str, status: u16, body: &Value) -> Result<String, String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut candidates: Vec<(&String, &Value)> = spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(t, _)| {
            let ts: Vec<&str> = t.trim_start_matches('/').split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
        .collect();
    // A literal segment beats a parameter (`/{v}/{id}/groups` over `/{v}/{id}/{x}`).
    candidates.sort_by_key(|(t, _)| t.matches('{').count());
    let (template, item) = candidates
        .first()
        .copied()
        .ok_or_else(|| format!("no path of Meta's document is {path}"))?;
    let op = &item[method.to_ascii_lowercase()];
    if !op.is_object() {
        return Err(format!("{template} has no {method} in Meta's document"));
    }
    let id = op["operationId"].as_str().unwrap_or("?").to_string();
    let listed = resolve(spec, &op["responses"][status.to_string()]);
    let schema = if listed.is_object() {
        listed["content"]["application/json"]["schema"].clone()
    } else if status >= 400 {
        json!({ "$ref": "#/components/schemas/ErrorResponse" })
    } else if status == 206 {
        // Meta's error-codes page: 131201, a partial success, is HTTP 206 (not in the document).
        Value::Null
    } else {
        return Err(format!("{id} does not answer {status} in Meta's document"));
    };
    if schema.is_null() {
        return Ok(id);
    }
    check_value_with(
        spec,
        &schema,
        body,
        &format!("{id} {status}"),
        &["error_data", "fbtrace_id"],
    )?;
    Ok(id)
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let mut node = spec;
            for part in r.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            node
        }
        None => v,
    }
}

/// The operation the request is, if it follows the document; why not otherwise.
fn check(
    spec: &Value,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    raw: &Bytes,
    body: &Value,
) -> Result<String, String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (template, item) = spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .find(|(t, _)| {
            let ts: Vec<&str> = t.trim_start_matches('/').split('/').collect();
            ts.len() == segments.len()
                && ts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
        .ok_or_else(|| format!("no path of Meta's document is {path}"))?;
    let op = &item[method.as_str().to_ascii_lowercase()];
    if !op.is_object() {
        return Err(format!("{template} has no {method} in Meta's document"));
    }
    let id = op["operationId"].as_str().unwrap_or("?").to_string();
    for p in op["parameters"].as_array().into_iter().flatten() {
        let p = resolve(spec, p);
        let name = p["name"].as_str().unwrap_or("");
        match p["in"].as_str() {
            Some("header") => {
                let value = headers.get(name).and_then(|v| v.to_str().ok());
                match value {
                    None if p["required"] == true => return Err(format!("{id}: header {name} is required")),
                    None => {}
                    Some(v) => {
                        let v = if name.eq_ignore_ascii_case("content-type") {
                            v.split(';').next().unwrap_or("").trim()
                        } else {
                            v
                        };
                        check_value(
                            spec,
                            &p["schema"],
                            &Value::String(v.to_string()),
                            &format!("header {name}"),
                        )?;
                    }
                }
            }
            Some("query") => {
                // Query values arrive as text: only integers are read as numbers.
                let value = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned());
                if let Some(v) = value {
                    let as_json = if p["schema"]["type"] == "integer" {
                        v.parse::<i64>().map(Value::from).unwrap_or(Value::String(v))
                    } else {
                        Value::String(v)
                    };
                    check_value(spec, &p["schema"], &as_json, &format!("query {name}"))?;
                }
            }
            _ => {}
        }
    }
    let rb = resolve(spec, &op["requestBody"]);
    if rb.is_object() {
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let schema = &rb["content"][content_type.as_str()]["schema"];
        if !schema.is_object() {
            return Err(format!("{id}: Meta's document has no body of type {content_type:?}"));
        }
        if raw.is_empty() && rb["required"] == true {
            return Err(format!("{id}: a body is required"));
        }
        if body.is_null() && !raw.is_empty() {
            return Err(format!("{id}: the body is not JSON"));
        }
        check_value(spec, schema, body, "body")?;
    } else if !raw.is_empty() {
        return Err(format!("{id}: Meta's document takes no body"));
    }
    Ok(id)
}

/// `schema` with its `allOf` merged into one object schema (required fields and properties
/// of every part; a later part's property wins), its parts' discriminators dropped (the
/// part is the discriminated-to schema's base).
fn merged(spec: &Value, schema: &Value) -> Value {
    let schema = resolve(spec, schema);
    let Some(parts) = schema["allOf"].as_array() else {
        return schema.clone();
    };
    let mut out = json!({ "type": "object", "required": [], "properties": {} });
    for part in parts {
        let part = merged(spec, part);
        for r in part["required"].as_array().into_iter().flatten() {
            out["required"].as_array_mut().expect("an array").push(r.clone());
        }
        for (k, p) in part["properties"].as_object().into_iter().flatten() {
            out["properties"][k] = p.clone();
        }
    }
    out
}

fn check_value(spec: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    check_value_with(spec, schema, v, at, &[])
}

/// [`check_value`], also allowing properties named in `extra` that the document leaves out.
fn check_value_with(spec: &Value, schema: &Value, v: &Value, at: &str, extra: &[&str]) -> Result<(), String> {
    let schema = &merged(spec, schema);
    // A discriminated schema: the one its mapping names for the value's discriminator.
    if let Some(name) = schema["discriminator"]["propertyName"].as_str() {
        let kind = v[name].as_str().unwrap_or("");
        let Some(target) = schema["discriminator"]["mapping"][kind].as_str() else {
            return Err(format!(
                "{at}.{name} must be one of Meta's {:?}, got {kind:?}",
                schema["discriminator"]["mapping"]
                    .as_object()
                    .map(|m| m.keys().collect::<Vec<_>>())
            ));
        };
        let target = json!({ "$ref": target });
        let mut inner = merged(spec, &target);
        if let Some(o) = inner.as_object_mut() {
            o.remove("discriminator");
        }
        return check_value_with(spec, &inner, v, at, extra);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let fits = options
            .iter()
            .filter(|o| check_value_with(spec, o, v, at, extra).is_ok())
            .count();
        if fits != 1 {
            return Err(format!(
                "{at} fits {fits} of Meta's {} alternatives, not one",
                options.len()
            ));
        }
        return Ok(());
    }
    if let Some(t) = schema["type"].as_str() {
        let ok = match t {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            _ => true,
        };
        if !ok {
            return Err(format!("{at} must be {t}, got {v}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        return Err(format!("{at} must be one of {allowed:?}, got {v}"));
    }
    if let Some(s) = v.as_str() {
        if let Some(max) = schema["maxLength"].as_u64()
            && s.chars().count() as u64 > max
        {
            return Err(format!("{at} is longer than {max}"));
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            let re = regex::Regex::new(pattern).map_err(|e| format!("{at}: pattern {pattern}: {e}"))?;
            if !re.is_match(s) {
                return Err(format!("{at} {s:?} does not match {pattern}"));
            }
        }
    }
    if let Some(n) = v.as_i64()
        && (schema["minimum"].as_i64().is_some_and(|m| n < m) || schema["maximum"].as_i64().is_some_and(|m| n > m))
    {
        return Err(format!("{at} {n} is out of range"));
    }
    if let Some(items) = v.as_array() {
        if schema["minItems"].as_u64().is_some_and(|m| (items.len() as u64) < m) {
            return Err(format!("{at} has fewer than {} items", schema["minItems"]));
        }
        if schema["maxItems"].as_u64().is_some_and(|m| items.len() as u64 > m) {
            return Err(format!("{at} has more than {} items", schema["maxItems"]));
        }
        for (i, item) in items.iter().enumerate() {
            check_value_with(spec, &schema["items"], item, &format!("{at}[{i}]"), extra)?;
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(r) {
                return Err(format!("{at}.{r} is required"));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, val) in obj {
                match props.get(k) {
                    Some(p) => check_value_with(spec, p, val, &format!("{at}.{k}"), extra)?,
                    None if extra.contains(&k.as_str()) => {}
                    None => return Err(format!("{at}.{k} is not in Meta's document")),
                }
            }
        }
    }
    Ok(())
}
