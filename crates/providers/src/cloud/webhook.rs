//! Meta's webhooks for groups, read: the signature checked on the raw bytes, the envelope
//! (`entry[].changes[].value.groups[]`) turned into the core's [`ProviderEvent`]s, one per
//! thing that happened, each with a key that is the same when Meta delivers it again.
//!
//! Meta's payloads vary (`meta-groups-api.md` §3): timestamps as strings or numbers, error
//! codes as numbers or strings, `initiated_by` sometimes missing, the OpenAPI document's own
//! names for fields and types (`group_participant_update`, `group_add_participants`) beside
//! the ones the platform sends, and trailing commas in the documented samples. All are
//! read; what is not recognised is kept as such, never an error.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use wagroups_core::{
    model::{ItemResult, ItemStatus, OperationKind},
    provider::{OperationFallback, ProviderEvent, SettingsChange},
    time::Timestamp,
};

/// Whether `header` (`X-Hub-Signature-256: sha256=<hex>`) is the HMAC-SHA256 of `raw` with
/// `app_secret`. Compared in constant time.
pub fn signature_matches(app_secret: &str, raw: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return false;
    };
    mac.update(raw);
    mac.verify_slice(&expected).is_ok()
}

/// `sha256=<hex>` of `raw` with `app_secret`, as Meta sends it (for tests and fakes).
pub fn sign(app_secret: &str, raw: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(raw);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::from("sha256=");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The body as JSON. Meta sends JSON; its documented samples carry trailing commas, which
/// are tolerated (removed outside strings) when the strict reading fails.
pub fn parse_body(raw: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(raw) {
        Ok(v) => Ok(v),
        Err(strict) => {
            let text = std::str::from_utf8(raw).map_err(|_| strict.to_string())?;
            serde_json::from_str(&without_trailing_commas(text)).map_err(|_| strict.to_string())
        }
    }
}

fn without_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            ',' => {
                let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
                if !matches!(next, Some('}') | Some(']')) {
                    out.push(c);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Meta's phone number IDs the payload names (`metadata.phone_number_id` of each change).
pub fn phone_number_ids(payload: &Value) -> Vec<String> {
    let mut ids: Vec<String> = changes(payload)
        .filter_map(|(_, value)| text(&value["metadata"]["phone_number_id"]))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// One report read from a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The number it is for (Meta's phone number ID).
    pub phone_number_id: String,
    /// The same each time Meta delivers this report.
    pub dedup_key: String,
    pub event: ProviderEvent,
}

/// What a webhook carried.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    pub reports: Vec<Report>,
    /// Changes of the `messages` field (group messages and statuses: not handled here).
    pub messages: usize,
    /// Changes or group objects of a kind not known: kept as [`ProviderEvent::Unrecognised`]
    /// reports, and counted here.
    pub unrecognised: usize,
}

fn changes(payload: &Value) -> impl Iterator<Item = (&str, &Value)> {
    payload["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .map(|c| (c["field"].as_str().unwrap_or(""), &c["value"]))
}

/// A string field, or a number written as one.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Meta's Unix seconds (a number or a string); `now` when absent or not a number.
fn time(v: &Value, now: Timestamp) -> Timestamp {
    let secs = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if s > 0 => Timestamp(s.saturating_mul(1000)),
        _ => now,
    }
}

/// The first error of an `errors` array: Meta's code and its message.
fn first_error(v: &Value) -> Option<(String, String)> {
    let e = v.as_array()?.first()?;
    let code = text(&e["code"]).unwrap_or_else(|| "unknown".into());
    let message = [&e["message"], &e["error_data"]["details"], &e["title"]]
        .into_iter()
        .find_map(|m| m.as_str().filter(|s| !s.is_empty()))
        .unwrap_or("WhatsApp refused it")
        .to_string();
    Some((code, message))
}

/// A participant's phone: `wa_id` (the user's WhatsApp ID) or `input` (as the business gave
/// it).
fn participant(p: &Value) -> Option<String> {
    text(&p["wa_id"]).or_else(|| text(&p["input"]))
}

/// What a participant that failed to be removed is answered.
fn item_status(code: &str) -> ItemStatus {
    match code {
        "131212" => ItemStatus::NotAMember,
        _ => ItemStatus::Invalid,
    }
}

/// A stable text of a JSON value (object keys sorted), for deduplication keys.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn key_of(field: &str, phone_number_id: &str, group: &Value) -> String {
    let mut text = format!("{field}|{phone_number_id}|");
    canonical(group, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    let mut key = String::from("meta:");
    for b in digest.iter().take(16) {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// Reads a webhook's payload.
pub fn translate(payload: &Value, now: Timestamp) -> Batch {
    let mut batch = Batch::default();
    for (field, value) in changes(payload) {
        let Some(pnid) = text(&value["metadata"]["phone_number_id"]) else {
            batch.unrecognised += 1;
            continue;
        };
        if field == "messages" {
            batch.messages += 1;
            continue;
        }
        let groups = value["groups"].as_array();
        let known_field = matches!(
            field,
            "group_lifecycle_update"
                | "group_participants_update"
                | "group_participant_update"
                | "group_settings_update"
                | "group_status_update"
        );
        if !known_field || groups.is_none() {
            batch.unrecognised += 1;
            batch.reports.push(Report {
                phone_number_id: pnid.clone(),
                dedup_key: key_of(field, &pnid, value),
                event: ProviderEvent::Unrecognised {
                    correlation: String::new(),
                    what: format!("change field {field:?}"),
                    payload: value.to_string(),
                },
            });
            continue;
        }
        for group in groups.into_iter().flatten() {
            let base = key_of(field, &pnid, group);
            let events = group_events(group, now);
            batch.unrecognised += events
                .iter()
                .filter(|e| matches!(e, ProviderEvent::Unrecognised { .. }))
                .count();
            let many = events.len() > 1;
            for (i, event) in events.into_iter().enumerate() {
                batch.reports.push(Report {
                    phone_number_id: pnid.clone(),
                    dedup_key: if many { format!("{base}:{i}") } else { base.clone() },
                    event,
                });
            }
        }
    }
    batch
}

/// The events one `groups[]` object reports, in the order they happened.
fn group_events(g: &Value, now: Timestamp) -> Vec<ProviderEvent> {
    let kind = g["type"].as_str().unwrap_or("");
    let at = time(&g["timestamp"], now);
    let group_id = text(&g["group_id"]);
    let request_id = text(&g["request_id"]);
    let unrecognised = |what: String| ProviderEvent::Unrecognised {
        correlation: text(&g["group_id"]).unwrap_or_default(),
        what,
        payload: g.to_string(),
    };
    let Some(wa_group_id) = group_id.clone().or_else(|| (kind == "group_create").then(String::new)) else {
        return vec![unrecognised(format!("a {kind:?} report without a group_id"))];
    };
    match kind {
        "group_create" => {
            let Some(request_id) = request_id else {
                return vec![unrecognised("a group_create report without a request_id".into())];
            };
            match first_error(&g["errors"]) {
                Some((code, message)) => vec![ProviderEvent::GroupCreateFailed {
                    request_id,
                    code,
                    message,
                    at,
                }],
                None => match (group_id, text(&g["invite_link"])) {
                    (Some(wa_group_id), Some(invite_link)) => vec![ProviderEvent::GroupCreated {
                        request_id,
                        wa_group_id,
                        invite_link,
                        at,
                        participants: Vec::new(),
                    }],
                    _ => vec![unrecognised(
                        "a successful group_create without group_id or invite_link".into(),
                    )],
                },
            }
        }
        "group_delete" => confirmation(
            request_id,
            &g["errors"],
            at,
            fallback(&wa_group_id, OperationKind::DeleteGroup),
            vec![ProviderEvent::GroupDeleted {
                wa_group_id: wa_group_id.clone(),
                at,
            }],
        ),
        "group_participants_add" | "group_add_participants" => {
            let approved = g["added_participants"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p.get("input").is_some());
            g["added_participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(participant_wa_id)
                .map(|phone| ProviderEvent::ParticipantJoined {
                    wa_group_id: wa_group_id.clone(),
                    phone,
                    at,
                    reason: Some(
                        if approved {
                            "join_request_approved"
                        } else {
                            "invite_link"
                        }
                        .into(),
                    ),
                })
                .collect()
        }
        "group_participants_remove" | "group_remove_participants" => {
            // Meta's samples sometimes put `initiated_by` outside the object: a removal the
            // business asked for carries its request ID, a participant leaving does not.
            let by_business = match g["initiated_by"].as_str() {
                Some("business") => true,
                Some("participant") => false,
                _ => request_id.is_some(),
            };
            let removed: Vec<String> = g["removed_participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(participant)
                .collect();
            if !by_business {
                return removed
                    .into_iter()
                    .map(|phone| ProviderEvent::ParticipantLeft {
                        wa_group_id: wa_group_id.clone(),
                        phone,
                        at,
                    })
                    .collect();
            }
            let failed: Vec<(String, Option<(String, String)>)> = g["failed_participants"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((participant(p)?, first_error(&p["errors"]))))
                .collect();
            let mut events: Vec<ProviderEvent> = removed
                .iter()
                .map(|phone| ProviderEvent::ParticipantRemoved {
                    wa_group_id: wa_group_id.clone(),
                    phone: phone.clone(),
                    at,
                })
                .collect();
            let Some(request_id) = request_id else {
                return events;
            };
            if removed.is_empty()
                && failed.is_empty()
                && let Some((code, message)) = first_error(&g["errors"])
            {
                return vec![ProviderEvent::OperationFailed {
                    request_id,
                    code,
                    message,
                    at,
                    fallback: fallback(&wa_group_id, OperationKind::RemoveParticipants),
                }];
            }
            let mut results: Vec<ItemResult> = removed
                .iter()
                .map(|phone| ItemResult {
                    key: digits(phone),
                    status: ItemStatus::Removed,
                    invite_link: None,
                    message: None,
                })
                .collect();
            results.extend(failed.into_iter().map(|(phone, error)| {
                ItemResult {
                    key: digits(&phone),
                    status: error
                        .as_ref()
                        .map(|(c, _)| item_status(c))
                        .unwrap_or(ItemStatus::Invalid),
                    invite_link: None,
                    message: error.map(|(_, m)| m),
                }
            }));
            events.push(ProviderEvent::OperationSucceeded {
                request_id,
                results,
                at,
                fallback: fallback(&wa_group_id, OperationKind::RemoveParticipants),
            });
            events
        }
        "group_join_request_created" | "group_join_request_revoked" => {
            let (Some(join_request_id), Some(phone)) = (text(&g["join_request_id"]), participant_wa_id(g)) else {
                return vec![unrecognised(format!(
                    "a {kind} report without join_request_id or wa_id"
                ))];
            };
            vec![if kind == "group_join_request_created" {
                ProviderEvent::JoinRequestCreated {
                    wa_group_id,
                    join_request_id,
                    phone,
                    at,
                }
            } else {
                ProviderEvent::JoinRequestRevoked {
                    wa_group_id,
                    join_request_id,
                    phone,
                    at,
                }
            }]
        }
        "group_settings_update" => {
            let mut change = SettingsChange::default();
            let mut failure = None;
            for (key, slot) in [
                ("group_subject", &mut change.subject),
                ("group_description", &mut change.description),
            ] {
                let f = &g[key];
                if f.is_null() {
                    continue;
                }
                if f["update_successful"].as_bool() == Some(false) {
                    failure = failure.or_else(|| first_error(&f["errors"]));
                } else if let Some(t) = f["text"].as_str() {
                    *slot = Some(t.to_string());
                }
            }
            if g["profile_picture"]["update_successful"].as_bool() == Some(false) {
                failure = failure.or_else(|| first_error(&g["profile_picture"]["errors"]));
            }
            if failure.is_none() && change.is_empty() {
                failure = first_error(&g["errors"]);
            }
            let mut events = Vec::new();
            if !change.is_empty() {
                events.push(ProviderEvent::SettingsUpdated {
                    wa_group_id: wa_group_id.clone(),
                    change,
                    at,
                });
            }
            let Some(request_id) = request_id else {
                return events;
            };
            events.push(match failure {
                Some((code, message)) => ProviderEvent::OperationFailed {
                    request_id,
                    code,
                    message,
                    at,
                    fallback: fallback(&wa_group_id, OperationKind::UpdateSettings),
                },
                None => ProviderEvent::OperationSucceeded {
                    request_id,
                    results: Vec::new(),
                    at,
                    fallback: fallback(&wa_group_id, OperationKind::UpdateSettings),
                },
            });
            events
        }
        "group_suspend" => vec![ProviderEvent::GroupSuspended { wa_group_id, at }],
        "group_suspend_cleared" => vec![ProviderEvent::GroupSuspensionCleared { wa_group_id, at }],
        other => vec![unrecognised(format!("group report type {other:?}"))],
    }
}

/// A participant's WhatsApp ID (`wa_id`), or the input it was asked as.
fn participant_wa_id(p: &Value) -> Option<String> {
    participant(p)
}

fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// How a confirmation finds its operation when Meta's answer to the write named no request ID.
fn fallback(wa_group_id: &str, kind: OperationKind) -> Option<OperationFallback> {
    Some(OperationFallback {
        wa_group_id: wa_group_id.to_string(),
        kind,
    })
}

/// The confirmation of a write: its effects then its success, or its failure alone.
fn confirmation(
    request_id: Option<String>,
    errors: &Value,
    at: Timestamp,
    fallback: Option<OperationFallback>,
    effects: Vec<ProviderEvent>,
) -> Vec<ProviderEvent> {
    match (request_id, first_error(errors)) {
        (Some(request_id), Some((code, message))) => vec![ProviderEvent::OperationFailed {
            request_id,
            code,
            message,
            at,
            fallback: fallback.clone(),
        }],
        (Some(request_id), None) => {
            let mut events = effects;
            events.push(ProviderEvent::OperationSucceeded {
                request_id,
                results: Vec::new(),
                at,
                fallback: fallback.clone(),
            });
            events
        }
        (None, _) => effects,
    }
}
