//! Meta's webhook format: a stored event in Meta's envelope and group shapes
//! (`meta-groups-api.md` §3), serialised as Meta serialises (every non-ASCII character
//! escaped as `\uXXXX`), for endpoints of format `meta`.

use serde_json::{Value, json};

/// The body of a Meta webhook for a stored event (the event log's JSON object), or `None`
/// when Meta has no webhook for it (see `WebhookFormat::carries`).
pub fn envelope(event: &Value) -> Option<Value> {
    let (field, group) = group_change(event)?;
    let phone_number_id = event["phoneNumberId"].as_str().unwrap_or_default();
    let waba_id = event["wabaId"].as_str().unwrap_or(phone_number_id);
    Some(json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": waba_id,
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": event["wabaNumber"],
                        "phone_number_id": phone_number_id,
                    },
                    "groups": [group],
                },
                "field": field,
            }],
        }],
    }))
}

/// Unix seconds of an RFC 3339 time, as Meta's `timestamp` (a string in its samples).
fn seconds(v: &Value) -> String {
    v.as_str()
        .and_then(wagroups_core::time::Timestamp::parse_rfc3339)
        .map_or(0, |t| t.millis().div_euclid(1000))
        .to_string()
}

/// An error as Meta writes it in webhooks; a code that is not Meta's number is `1`.
fn error(code: &Value, message: &Value) -> Value {
    let code = code
        .as_str()
        .and_then(|c| c.parse::<i64>().ok())
        .or_else(|| code.as_i64())
        .unwrap_or(1);
    let message = message.as_str().unwrap_or_default();
    json!({ "code": code, "message": message, "title": message, "error_data": { "details": message } })
}

/// The `changes[].field` and the `groups[]` item of an event.
fn group_change(e: &Value) -> Option<(&'static str, Value)> {
    let phone = e["customerPhone"].as_str().unwrap_or_default();
    let mut g = json!({
        "timestamp": seconds(&e["occurredAt"]),
        "group_id": e["graphGroupId"],
    });
    let set = |g: &mut Value, k: &str, v: Value| {
        g[k] = v;
    };
    let field = match e["eventType"].as_str()? {
        "GROUP_CREATED" => {
            set(&mut g, "type", json!("group_create"));
            set(&mut g, "request_id", e["groupId"].clone());
            set(&mut g, "subject", e["groupName"].clone());
            if e["description"].as_str().is_some_and(|d| !d.is_empty()) {
                set(&mut g, "description", e["description"].clone());
            }
            set(&mut g, "invite_link", e["inviteLink"].clone());
            set(&mut g, "join_approval_mode", e["joinApprovalMode"].clone());
            "group_lifecycle_update"
        }
        "GROUP_CREATE_FAILED" => {
            g = json!({
                "timestamp": seconds(&e["occurredAt"]),
                "type": "group_create",
                "subject": e["groupName"],
                "request_id": e["groupId"],
                "errors": [error(&e["error"]["code"], &e["error"]["message"])],
            });
            "group_lifecycle_update"
        }
        "GROUP_DELETED" => {
            set(&mut g, "type", json!("group_delete"));
            set(&mut g, "request_id", e["eventId"].clone());
            "group_lifecycle_update"
        }
        "GROUP_PARTICIPANT_JOINED" => {
            set(&mut g, "type", json!("group_participants_add"));
            set(&mut g, "reason", json!("invite_link"));
            let who = if e["reason"] == "join_request_approved" {
                json!({ "input": format!("+{phone}"), "wa_id": phone })
            } else {
                json!({ "wa_id": phone })
            };
            set(&mut g, "added_participants", json!([who]));
            "group_participants_update"
        }
        "GROUP_PARTICIPANT_LEFT" => {
            set(&mut g, "type", json!("group_participants_remove"));
            set(&mut g, "initiated_by", json!("participant"));
            set(&mut g, "removed_participants", json!([{ "wa_id": phone }]));
            "group_participants_update"
        }
        "GROUP_PARTICIPANT_REMOVED" => {
            set(&mut g, "type", json!("group_participants_remove"));
            set(&mut g, "request_id", e["eventId"].clone());
            set(&mut g, "initiated_by", json!("business"));
            set(
                &mut g,
                "removed_participants",
                json!([{ "input": format!("+{phone}"), "wa_id": phone }]),
            );
            "group_participants_update"
        }
        t @ ("GROUP_JOIN_REQUEST_CREATED" | "GROUP_JOIN_REQUEST_REVOKED") => {
            let kind = if t == "GROUP_JOIN_REQUEST_CREATED" {
                "group_join_request_created"
            } else {
                "group_join_request_revoked"
            };
            set(&mut g, "type", json!(kind));
            set(&mut g, "reason", json!("invite_link"));
            set(&mut g, "join_request_id", e["joinRequestId"].clone());
            set(&mut g, "wa_id", json!(phone));
            "group_participants_update"
        }
        "GROUP_UPDATED" => {
            let changes = e["changes"].as_object()?;
            set(&mut g, "type", json!("group_settings_update"));
            set(&mut g, "request_id", e["eventId"].clone());
            let mut any = false;
            for (ours, meta) in [("subject", "group_subject"), ("description", "group_description")] {
                if let Some(v) = changes.get(ours) {
                    set(&mut g, meta, json!({ "text": v, "update_successful": true }));
                    any = true;
                }
            }
            if !any {
                return None;
            }
            "group_settings_update"
        }
        "GROUP_SUSPENDED" => {
            set(&mut g, "type", json!("group_suspend"));
            "group_status_update"
        }
        "GROUP_SUSPENSION_CLEARED" => {
            set(&mut g, "type", json!("group_suspend_cleared"));
            "group_status_update"
        }
        "GROUP_OPERATION_FAILED" => {
            let errors = json!([error(&e["error"]["code"], &e["error"]["message"])]);
            set(&mut g, "request_id", e["operationId"].clone());
            match e["operation"].as_str()? {
                "update_settings" => {
                    set(&mut g, "type", json!("group_settings_update"));
                    set(&mut g, "errors", errors);
                    "group_settings_update"
                }
                "delete" => {
                    set(&mut g, "type", json!("group_delete"));
                    set(&mut g, "errors", errors);
                    "group_lifecycle_update"
                }
                "remove_participants" => {
                    set(&mut g, "type", json!("group_participants_remove"));
                    set(&mut g, "initiated_by", json!("business"));
                    set(&mut g, "errors", errors);
                    "group_participants_update"
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some((field, g))
}

/// JSON as Meta writes it: compact, every character outside ASCII escaped as `\uXXXX`
/// (UTF-16 surrogate pairs beyond the BMP), which is what its signature covers.
pub fn to_meta_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiEscaped);
    // Serialising a `Value` into memory cannot fail.
    if serde::Serialize::serialize(v, &mut ser).is_err() {
        return Vec::new();
    }
    out
}

struct AsciiEscaped;

impl serde_json::ser::Formatter for AsciiEscaped {
    fn write_string_fragment<W: ?Sized + std::io::Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if c.is_ascii() {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{u:04x}")?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn non_ascii_is_escaped_as_meta_escapes_it() {
        let v = json!({ "subject": "Café ☕ 😀", "n": 1 });
        let text = String::from_utf8(to_meta_json(&v)).unwrap();
        assert_eq!(text, r#"{"n":1,"subject":"Caf\u00e9 \u2615 \ud83d\ude00"}"#);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v, "the same JSON");
    }

    #[test]
    fn events_take_metas_shapes() {
        let joined = json!({
            "eventId": "evt_1", "eventType": "GROUP_PARTICIPANT_JOINED", "occurredAt": "2026-12-06T10:00:00.000Z",
            "wabaNumber": "15550100001", "groupId": "g", "graphGroupId": "Y2Fw", "phoneNumberId": "900000000000001",
            "customerPhone": "16505551234", "reason": "invite_link", "sequence": 2, "groupName": "G"
        });
        let e = envelope(&joined).unwrap();
        assert_eq!(e["object"], "whatsapp_business_account");
        assert_eq!(
            e["entry"][0]["id"], "900000000000001",
            "no WABA: the phone number ID stands in"
        );
        let change = &e["entry"][0]["changes"][0];
        assert_eq!(change["field"], "group_participants_update");
        assert_eq!(change["value"]["metadata"]["phone_number_id"], "900000000000001");
        assert_eq!(change["value"]["metadata"]["display_phone_number"], "15550100001");
        let g = &change["value"]["groups"][0];
        assert_eq!(g["type"], "group_participants_add");
        assert_eq!(g["group_id"], "Y2Fw");
        assert_eq!(g["timestamp"], "1796551200");
        assert_eq!(g["added_participants"], json!([{ "wa_id": "16505551234" }]));
        let reset = json!({ "eventType": "GROUP_INVITE_LINK_RESET" });
        assert!(envelope(&reset).is_none(), "Meta sends none");
    }
}
