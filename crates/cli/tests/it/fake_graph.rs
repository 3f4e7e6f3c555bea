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

struct Inner {
    spec: Value,
    app_secret: String,
    webhook_url: Mutex<Option<String>>,
    calls: Mutex<Vec<Call>>,
    /// Requests that broke Meta's document, with why.
    violations: Mutex<Vec<String>>,
    next: Mutex<u64>,
    http: reqwest::Client,
}

#[derive(Clone)]
pub struct FakeGraph {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

fn spec() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../specs/meta/meta-groups-subset_v23.0.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("Meta's OpenAPI document {path}: {e}"));
    serde_norway::from_str(&text).expect("Meta's OpenAPI document parses")
}

impl FakeGraph {
    pub async fn start(app_secret: &str) -> FakeGraph {
        let inner = Arc::new(Inner {
            spec: spec(),
            app_secret: app_secret.to_string(),
            webhook_url: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            next: Mutex::new(1),
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
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match operation.as_str() {
        "createGroup" => {
            let subject = json_body["subject"].as_str().unwrap_or("").to_string();
            if let Some(code) = marker(&subject, "sync") {
                return meta_error(code);
            }
            let n = {
                let mut next = inner.next.lock().unwrap();
                *next += 1;
                *next
            };
            let request_id = format!("{}{n:06}", segments[1]);
            let phone_number_id = segments[1].to_string();
            let group = json!({
                "timestamp": "1755548877",
                "group_id": format!("Y2FwaV9ncm91cDo{n:012}"),
                "type": "group_create",
                "request_id": request_id,
                "subject": subject,
                "invite_link": format!("https://chat.whatsapp.com/LINK{n:06}"),
                "join_approval_mode": json_body["join_approval_mode"].as_str().unwrap_or("auto_approve"),
            });
            let group = match marker(&subject, "fail") {
                Some(code) => json!({
                    "timestamp": "1755548877",
                    "type": "group_create",
                    "subject": subject,
                    "request_id": request_id,
                    "errors": [{ "code": code, "message": "Group create limit reached", "title": "t",
                                 "error_data": { "details": "d" } }]
                }),
                None => group,
            };
            let inner2 = inner.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                send_webhook(&inner2, &phone_number_id, "group_lifecycle_update", vec![group]).await;
            });
            axum::Json(json!({ "messaging_product": "whatsapp", "request_id": request_id })).into_response()
        }
        _ => meta_error(100),
    }
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
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": { "display_phone_number": "15550783881", "phone_number_id": phone_number_id },
                    "groups": groups
                },
                "field": field
            }]
        }]
    })
    .to_string();
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
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Meta's OpenAPI document, applied to a request

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

fn check_value(spec: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
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
            check_value(spec, &schema["items"], item, &format!("{at}[{i}]"))?;
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
                    Some(p) => check_value(spec, p, val, &format!("{at}.{k}"))?,
                    None => return Err(format!("{at}.{k} is not in Meta's document")),
                }
            }
        }
    }
    Ok(())
}
