//! Meta's Graph API, as the Groups API documents it: each call one HTTPS request with the
//! number's token, JSON both ways (`messaging_product: "whatsapp"` where Meta requires it),
//! bounded by a timeout, over pooled connections. Meta's errors come back typed
//! ([`GraphError::Meta`]) for the provider to map.

use std::time::Duration;

use serde_json::{Value, json};
use wagroups_core::{model::JoinApprovalMode, secret::Secret};

use super::config::CloudConfig;

/// How long one call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Meta answered with its error object.
    #[error("Meta error {code} (HTTP {status}): {message}")]
    Meta {
        status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        /// `Retry-After`, in seconds, when Meta sent one.
        retry_after: Option<u64>,
    },
    /// The request did not leave (no connection): Meta did nothing.
    #[error("Meta could not be reached: {0}")]
    Transport(String),
    /// The request was sent and no answer came (a timeout, a reset): Meta may have acted.
    #[error("Meta did not answer: {0}")]
    NoAnswer(String),
    /// An answer that is not what Meta documents.
    #[error("Meta's answer is not what it documents: {0}")]
    BadAnswer(String),
}

/// The Graph API client (one per process: it pools connections).
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
}

impl Graph {
    pub fn new() -> Result<Graph, GraphError> {
        Graph::with_timeout(CALL_TIMEOUT)
    }

    /// A client whose calls give up after `timeout` (tests use a short one).
    pub fn with_timeout(timeout: Duration) -> Result<Graph, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("wagroups/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Transport(e.to_string()))?;
        Ok(Graph { http })
    }

    /// One call: the path `segments` below `{graph_url}/{version}/` (each escaped as a path
    /// segment). Every call says `Content-Type: application/json`, as Meta's document asks
    /// even of calls without a body.
    async fn call(
        &self,
        config: &CloudConfig,
        token: &Secret,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, GraphError> {
        let mut url = url::Url::parse(&format!("{}/", config.graph_url))
            .map_err(|e| GraphError::Transport(format!("the Graph URL does not parse: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| GraphError::Transport("the Graph URL cannot take a path".into()))?
            .pop_if_empty()
            .push(&config.api_version)
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                GraphError::Transport(without_url(&e))
            } else {
                GraphError::NoAnswer(without_url(&e))
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = resp.text().await.map_err(|e| GraphError::NoAnswer(without_url(&e)))?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                if status >= 400 {
                    GraphError::Meta {
                        status,
                        code: 0,
                        subcode: None,
                        message: format!("HTTP {status} without Meta's error object"),
                        retry_after,
                    }
                } else {
                    GraphError::BadAnswer(format!("HTTP {status}, not JSON"))
                }
            })?
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let e = &value["error"];
        Err(GraphError::Meta {
            status,
            code: e["code"]
                .as_i64()
                .or_else(|| e["code"].as_str().and_then(|c| c.parse().ok()))
                .unwrap_or(0),
            subcode: e["error_subcode"].as_i64(),
            message: e["message"]
                .as_str()
                .or_else(|| e["error_data"]["details"].as_str())
                .unwrap_or("no message")
                .to_string(),
            retry_after,
        })
    }

    /// `POST /{phone-number-id}/groups`: the request ID the `group_create` webhook will carry.
    pub async fn create_group(
        &self,
        config: &CloudConfig,
        token: &Secret,
        subject: &str,
        description: &str,
        mode: JoinApprovalMode,
    ) -> Result<String, GraphError> {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "subject": subject,
            "join_approval_mode": mode.as_str(),
        });
        if !description.is_empty() {
            body["description"] = json!(description);
        }
        let v = self
            .call(
                config,
                token,
                reqwest::Method::POST,
                &[&config.phone_number_id, "groups"],
                &[],
                Some(body),
            )
            .await?;
        v["request_id"]
            .as_str()
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .ok_or_else(|| GraphError::BadAnswer("a group creation without request_id".into()))
    }

    /// `GET /{phone-number-id}`: the number as Meta knows it (a cheap check of the token and
    /// the number).
    pub async fn phone_number(&self, config: &CloudConfig, token: &Secret) -> Result<Value, GraphError> {
        self.call(
            config,
            token,
            reqwest::Method::GET,
            &[&config.phone_number_id],
            &[("fields", "display_phone_number,verified_name,quality_rating")],
            None,
        )
        .await
    }
}

impl Graph {
    /// `POST /{group-id}`: a new subject and/or description (confirmed by
    /// `group_settings_update`). Meta's answer carries no documented body; a request ID in it
    /// is returned when there is one.
    pub async fn update_group(
        &self,
        config: &CloudConfig,
        token: &Secret,
        group_id: &str,
        subject: Option<&str>,
        description: Option<&str>,
    ) -> Result<Option<String>, GraphError> {
        let mut body = json!({ "messaging_product": "whatsapp" });
        if let Some(s) = subject {
            body["subject"] = json!(s);
        }
        if let Some(d) = description {
            body["description"] = json!(d);
        }
        let v = self
            .call(config, token, reqwest::Method::POST, &[group_id], &[], Some(body))
            .await?;
        Ok(request_id(&v))
    }

    /// `DELETE /{group-id}` (confirmed by `group_delete`).
    pub async fn delete_group(
        &self,
        config: &CloudConfig,
        token: &Secret,
        group_id: &str,
    ) -> Result<Option<String>, GraphError> {
        let v = self
            .call(config, token, reqwest::Method::DELETE, &[group_id], &[], None)
            .await?;
        Ok(request_id(&v))
    }

    /// `DELETE /{group-id}/participants` with at most 8 users (confirmed by
    /// `group_participants_remove`).
    pub async fn remove_participants(
        &self,
        config: &CloudConfig,
        token: &Secret,
        group_id: &str,
        phones: &[String],
    ) -> Result<Option<String>, GraphError> {
        let participants: Vec<Value> = phones.iter().map(|p| json!({ "user": format!("+{p}") })).collect();
        let body = json!({ "messaging_product": "whatsapp", "participants": participants });
        let v = self
            .call(
                config,
                token,
                reqwest::Method::DELETE,
                &[group_id, "participants"],
                &[],
                Some(body),
            )
            .await?;
        Ok(request_id(&v))
    }

    /// `POST /{group-id}/invite_link`: the new link (the old one stops working).
    pub async fn reset_invite_link(
        &self,
        config: &CloudConfig,
        token: &Secret,
        group_id: &str,
    ) -> Result<String, GraphError> {
        let v = self
            .call(
                config,
                token,
                reqwest::Method::POST,
                &[group_id, "invite_link"],
                &[],
                Some(json!({ "messaging_product": "whatsapp" })),
            )
            .await?;
        v["invite_link"]
            .as_str()
            .filter(|l| l.starts_with("https://chat.whatsapp.com/"))
            .map(str::to_string)
            .ok_or_else(|| GraphError::BadAnswer("a reset invite link without invite_link".into()))
    }

    /// `POST /{phone-number-id}/messages`: Meta's "group invite link" template sent 1:1 to
    /// `to`, the group ID as its body parameter (Meta puts the group's current link in its
    /// place when it delivers). The message ID Meta answers with.
    pub async fn send_invite_template(
        &self,
        config: &CloudConfig,
        token: &Secret,
        to: &str,
        (template, language): (&str, &str),
        group_id: &str,
    ) -> Result<String, GraphError> {
        let body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "template",
            "template": {
                "name": template,
                "language": { "policy": "deterministic", "code": language },
                "components": [{
                    "type": "body",
                    "parameters": [{ "type": "group_id", "group_id": group_id }],
                }],
            },
        });
        let v = self
            .call(
                config,
                token,
                reqwest::Method::POST,
                &[&config.phone_number_id, "messages"],
                &[],
                Some(body),
            )
            .await?;
        v["messages"][0]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| GraphError::BadAnswer("a sent message without messages[0].id".into()))
    }

    /// `GET /{group-id}/join_requests`: (join request ID, WhatsApp ID) of each open request.
    pub async fn join_requests(
        &self,
        config: &CloudConfig,
        token: &Secret,
        group_id: &str,
    ) -> Result<Vec<(String, String)>, GraphError> {
        let v = self
            .call(
                config,
                token,
                reqwest::Method::GET,
                &[group_id, "join_requests"],
                &[],
                None,
            )
            .await?;
        Ok(v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["join_request_id"].as_str()?.to_string(), text(&r["wa_id"])?)))
            .collect())
    }

    /// `POST` (approve) or `DELETE` (reject) `/{group-id}/join_requests`: the requests done,
    /// and each that failed with Meta's error code and message.
    pub async fn resolve_join_requests(
        &self,
        config: &CloudConfig,
        token: &Secret,
        group_id: &str,
        ids: &[String],
        approve: bool,
    ) -> Result<(Vec<String>, Vec<(String, String, String)>), GraphError> {
        let method = if approve {
            reqwest::Method::POST
        } else {
            reqwest::Method::DELETE
        };
        let v = self
            .call(
                config,
                token,
                method,
                &[group_id, "join_requests"],
                &[],
                Some(json!({ "messaging_product": "whatsapp", "join_requests": ids })),
            )
            .await?;
        let done_key = if approve {
            "approved_join_requests"
        } else {
            "rejected_join_requests"
        };
        let done = v[done_key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect();
        let failed = v["failed_join_requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| {
                let id = f["join_request_id"].as_str()?.to_string();
                let e = &f["errors"][0];
                Some((
                    id,
                    text(&e["code"]).unwrap_or_default(),
                    e["message"].as_str().unwrap_or("").to_string(),
                ))
            })
            .collect();
        Ok((done, failed))
    }
}

/// A group as Meta lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub id: String,
    pub subject: String,
    /// Unix seconds (a string or a number in Meta's answers).
    pub created_at: Option<i64>,
}

impl Graph {
    /// `GET /{phone-number-id}/groups`: one page of the number's active groups, and the
    /// cursor of the next page.
    pub async fn active_groups(
        &self,
        config: &CloudConfig,
        token: &Secret,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<ListedGroup>, Option<String>), GraphError> {
        let limit = limit.clamp(1, 1024).to_string();
        let mut query = vec![("limit", limit.as_str())];
        if let Some(a) = after {
            query.push(("after", a));
        }
        let v = self
            .call(
                config,
                token,
                reqwest::Method::GET,
                &[&config.phone_number_id, "groups"],
                &query,
                None,
            )
            .await?;
        let groups = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| {
                Some(ListedGroup {
                    id: text(&g["id"])?,
                    subject: g["subject"].as_str().unwrap_or("").to_string(),
                    created_at: text(&g["created_at"]).and_then(|t| t.parse().ok()),
                })
            })
            .collect::<Vec<_>>();
        let next = v["paging"]["next"]
            .as_str()
            .and(text(&v["paging"]["cursors"]["after"]))
            .filter(|_| !groups.is_empty());
        Ok((groups, next))
    }
}

impl Graph {
    /// `GET /{group-id}?fields=…`: the group as Meta has it.
    pub async fn group_info(
        &self,
        config: &CloudConfig,
        token: &Secret,
        group_id: &str,
    ) -> Result<wagroups_core::provider::RemoteGroup, GraphError> {
        let v = self
            .call(
                config,
                token,
                reqwest::Method::GET,
                &[group_id],
                &[("fields", "subject,description,suspended,participants")],
                None,
            )
            .await?;
        Ok(wagroups_core::provider::RemoteGroup {
            wa_group_id: group_id.to_string(),
            subject: v["subject"].as_str().unwrap_or("").to_string(),
            description: v["description"].as_str().unwrap_or("").to_string(),
            suspended: v["suspended"].as_bool().unwrap_or(v["suspended"] == "true"),
            members: v["participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| text(&p["wa_id"]))
                .collect(),
        })
    }
}

/// A request ID in an answer, if Meta gave one.
fn request_id(v: &Value) -> Option<String> {
    text(&v["request_id"])
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What went wrong with a call, in words, without its URL.
fn without_url(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("timed out after {} s", CALL_TIMEOUT.as_secs());
    }
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    // The innermost cause says why (connection refused, reset…).
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    format!("{what}: {cause}")
}
