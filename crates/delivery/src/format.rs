//! Webhook formats: how a stored event becomes the body and headers of one delivery attempt.
//! An event is stored once, in the domain's own shape; the endpoint's format renders it when
//! it is sent (each attempt, since signatures carry the attempt's time), so a new format is
//! one renderer here.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use wagroups_core::{time::Timestamp, webhook::WebhookFormat};

use crate::schedule::Target;

const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// One attempt's request body and headers.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Renders event `event_id` (its stored payload) for `target`'s format, at `attempted_at`.
pub fn render(target: &Target, event_id: &str, payload: &Bytes, attempted_at: Timestamp) -> Result<Rendered, String> {
    match target.endpoint.format {
        WebhookFormat::Standard => standard(target, event_id, payload, attempted_at),
        WebhookFormat::Meta => meta(target, payload),
        WebhookFormat::Doubletick => {
            let body = doubletick(payload)?;
            standard(target, event_id, &body, attempted_at)
        }
    }
}

/// DoubleTick's group webhooks: the event with DoubleTick's `event` field, its common
/// fields (`orgId`, `integrationId`: the business number, `groupId`) and the event's own
/// (which are DoubleTick's names already: `groupName`, `inviteLink`, `customerPhone`…).
fn doubletick(payload: &Bytes) -> Result<Bytes, String> {
    let event: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).map_err(|e| format!("the stored event does not read as JSON: {e}"))?;
    let mut out = serde_json::Map::new();
    out.insert("event".into(), event.get("eventType").cloned().unwrap_or_default());
    out.insert("orgId".into(), event.get("orgId").cloned().unwrap_or_default());
    out.insert(
        "integrationId".into(),
        event.get("wabaNumber").cloned().unwrap_or_default(),
    );
    out.insert("groupId".into(), event.get("groupId").cloned().unwrap_or_default());
    for (k, v) in event {
        out.entry(k).or_insert(v);
    }
    serde_json::to_vec(&out)
        .map(Bytes::from)
        .map_err(|e| format!("the event could not be written: {e}"))
}

const X_HUB_SIGNATURE_256: HeaderName = HeaderName::from_static("x-hub-signature-256");

/// Meta's webhooks: the event in Meta's envelope, serialised as Meta does, with
/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the app secret>`.
fn meta(target: &Target, payload: &Bytes) -> Result<Rendered, String> {
    let Some(key) = &target.app_secret else {
        return Err("the endpoint's app secret does not open with this deployment's key: not sent".into());
    };
    let event: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("the stored event does not read as JSON: {e}"))?;
    let envelope = crate::meta::envelope(&event)
        .ok_or_else(|| format!("Meta has no webhook for a {} event", event["eventType"]))?;
    let body = crate::meta::to_meta_json(&envelope);
    let signature = HeaderValue::from_str(&key.sign(&body)).map_err(|e| format!("cannot send the signature: {e}"))?;
    Ok(Rendered {
        body: Bytes::from(body),
        headers: vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (X_HUB_SIGNATURE_256, signature),
        ],
    })
}

/// Standard Webhooks: the event as stored, `webhook-id` (the event ID, the same on every
/// retry), `webhook-timestamp` (this attempt's Unix seconds) and `webhook-signature`.
fn standard(target: &Target, event_id: &str, payload: &Bytes, attempted_at: Timestamp) -> Result<Rendered, String> {
    let ts = attempted_at.millis() / 1000;
    let signature = target.signature(event_id, ts, attempted_at, payload);
    if signature.is_empty() {
        // Never sent unsigned: the attempt fails here, and is retried (or dead-lettered).
        return Err("the endpoint's signing secret does not open with this deployment's key: not sent".into());
    }
    let value = |v: &str| HeaderValue::from_str(v).map_err(|e| format!("cannot send header value {v:?}: {e}"));
    Ok(Rendered {
        body: payload.clone(),
        headers: vec![
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (WEBHOOK_ID, value(event_id)?),
            (WEBHOOK_TIMESTAMP, HeaderValue::from(ts)),
            (WEBHOOK_SIGNATURE, value(&signature)?),
        ],
    })
}
