//! Meta's group webhooks, in the shapes Meta documents (`meta-groups-api.md` §3, its quirks
//! kept: trailing commas, timestamps as strings and as numbers, `initiated_by` missing where
//! Meta's samples put it outside the object, the OpenAPI document's own names), read into
//! the core's reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wagroups_core::{model::ItemStatus, provider::ProviderEvent, time::Timestamp};
use wagroups_providers::cloud::webhook::{Batch, parse_body, phone_number_ids, sign, signature_matches, translate};

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn envelope(field: &str, groups: &str) -> String {
    format!(
        r#"{{
  "object": "whatsapp_business_account",
  "entry": [
    {{
      "id": "102290129340398",
      "changes": [
        {{
          "value": {{
            "messaging_product": "whatsapp",
            "metadata": {{
              "display_phone_number": "15550783881",
              "phone_number_id": "106540352242922",
            }},
            "groups": [{groups}]
          }},
          "field": "{field}"
        }}
      ]
    }}
  ]
}}"#
    )
}

fn read(body: &str) -> Batch {
    translate(&parse_body(body.as_bytes()).expect("the body reads"), NOW)
}

fn events(body: &str) -> Vec<ProviderEvent> {
    read(body).reports.into_iter().map(|r| r.event).collect()
}

const GROUP: &str = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";

#[test]
fn group_create_success_and_failure() {
    let ok = envelope(
        "group_lifecycle_update",
        &format!(
            r#"{{
                "timestamp": "1755548877",
                "group_id": "{GROUP}",
                "type": "group_create",
                "request_id": "106540352242922_req",
                "subject": "test invite link",
                "invite_link": "https://chat.whatsapp.com/LINK_ID",
                "join_approval_mode": "auto_approve"
              }}"#
        ),
    );
    let b = read(&ok);
    assert_eq!(b.reports[0].phone_number_id, "106540352242922");
    assert_eq!(
        b.reports.into_iter().map(|r| r.event).collect::<Vec<_>>(),
        vec![ProviderEvent::GroupCreated {
            request_id: "106540352242922_req".into(),
            wa_group_id: GROUP.into(),
            invite_link: "https://chat.whatsapp.com/LINK_ID".into(),
            at: Timestamp(1_755_548_877_000),
            participants: vec![],
        }]
    );
    // Meta's failure sample: placeholders for the timestamp and a string error code.
    let failed = envelope(
        "group_lifecycle_update",
        r#"{
                    "timestamp": "TIMESTAMP",
                    "type": "group_create",
                    "subject": "GROUP_SUBJECT",
                    "description": "GROUP_DESCRIPTION",
                    "request_id": "REQUEST_ID",
                    "group_id": "GROUP_ID",
                    "errors": [
                      {
                        "code": "131211",
                        "message": "Group create limit reached",
                        "title": "ERROR_TITLE",
                        "error_data": {
                          "details": "ERROR_DETAILS"
                        }
                      }
                    ]
          }"#,
    );
    assert_eq!(
        events(&failed),
        vec![ProviderEvent::GroupCreateFailed {
            request_id: "REQUEST_ID".into(),
            code: "131211".into(),
            message: "Group create limit reached".into(),
            at: NOW,
        }]
    );
}

#[test]
fn group_delete_confirms_its_operation() {
    let ok = envelope(
        "group_lifecycle_update",
        &format!(
            r#"{{
                    "timestamp": "1755548877",
                    "group_id": "{GROUP}",
                    "type": "group_delete",
                    "request_id": "REQ_DELETE",
                 }}"#
        ),
    );
    let e = events(&ok);
    assert!(matches!(&e[0], ProviderEvent::GroupDeleted { wa_group_id, .. } if wa_group_id == GROUP));
    assert!(matches!(&e[1], ProviderEvent::OperationSucceeded { request_id, .. } if request_id == "REQ_DELETE"));
    let failed = envelope(
        "group_lifecycle_update",
        &format!(
            r#"{{
                    "timestamp": 1755548877,
                    "group_id": "{GROUP}",
                    "type": "group_delete",
                    "request_id": "REQ_DELETE",
                    "errors": [{{ "code": 131207, "message": "Group suspended", "title": "t", "error_data": {{ "details": "d" }} }}]
                 }}"#
        ),
    );
    assert_eq!(
        events(&failed),
        vec![ProviderEvent::OperationFailed {
            request_id: "REQ_DELETE".into(),
            code: "131207".into(),
            message: "Group suspended".into(),
            at: Timestamp(1_755_548_877_000),
            fallback: Some(wagroups_core::provider::OperationFallback {
                wa_group_id: GROUP.into(),
                kind: wagroups_core::model::OperationKind::DeleteGroup,
            }),
        }]
    );
}

#[test]
fn joins_join_requests_and_approvals() {
    let joined = envelope(
        "group_participants_update",
        &format!(
            r#"{{
                    "timestamp": "1755548877",
                    "group_id": "{GROUP}",
                    "type": "group_participants_add",
                    "reason": "invite_link",
                    "added_participants": [
                        {{
                          "wa_id": "16505551234",
                        }},
                    ]
                 }}"#
        ),
    );
    assert_eq!(
        events(&joined),
        vec![ProviderEvent::ParticipantJoined {
            wa_group_id: GROUP.into(),
            phone: "16505551234".into(),
            at: Timestamp(1_755_548_877_000),
            reason: Some("invite_link".into()),
        }]
    );
    for (kind, expect_created) in [
        ("group_join_request_created", true),
        ("group_join_request_revoked", false),
    ] {
        let body = envelope(
            "group_participants_update",
            &format!(
                r#"{{
                "timestamp": "1755548877",
                "group_id": "{GROUP}",
                "type": "{kind}",
                "reason": "REASON_FOR_REQUEST_OUTCOME",
                "join_request_id": "MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw",
                "wa_id": "16505551234"
              }}"#
            ),
        );
        let e = events(&body);
        assert_eq!(e.len(), 1);
        match (&e[0], expect_created) {
            (
                ProviderEvent::JoinRequestCreated {
                    join_request_id, phone, ..
                },
                true,
            )
            | (
                ProviderEvent::JoinRequestRevoked {
                    join_request_id, phone, ..
                },
                false,
            ) => {
                assert_eq!(join_request_id, "MTY0NjcwNDM1OTU6MTIwMzYzNDA0Njk0MjMzODIw");
                assert_eq!(phone, "16505551234");
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
    // An approved request: the timestamp unquoted, `input` beside `wa_id`, in bulk.
    let approved = envelope(
        "group_participants_update",
        &format!(
            r#"{{
                "timestamp": 1755548877,
                "group_id": "{GROUP}",
                "type": "group_participants_add",
                "reason": "invite_link",
                "added_participants": [
                  {{ "input": "+16505551234", "wa_id": "16505551234" }},
                  {{ "input": "+16505550000", "wa_id": "16505550000" }}
                ]
              }}"#
        ),
    );
    let e = events(&approved);
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(
        |e| matches!(e, ProviderEvent::ParticipantJoined { reason: Some(r), .. } if r == "join_request_approved")
    ));
}

#[test]
fn removals_by_the_business_and_participants_leaving() {
    // The business removed two; Meta's sample puts `initiated_by` outside the object (left
    // out here): its request ID says the business asked.
    let removed = envelope(
        "group_participants_update",
        &format!(
            r#"{{
                    "timestamp": "1755548877",
                    "group_id": "{GROUP}",
                    "type": "group_participants_remove",
                    "request_id": "REQ_RM",
                    "removed_participants": [
                        {{ "input": "+17865347866" }},
                        {{ "input": "+7669992245" }},
                    ]
                 }}"#
        ),
    );
    let e = events(&removed);
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(matches!(&e[0], ProviderEvent::ParticipantRemoved { phone, .. } if phone == "+17865347866"));
    match &e[2] {
        ProviderEvent::OperationSucceeded {
            request_id, results, ..
        } => {
            assert_eq!(request_id, "REQ_RM");
            assert_eq!(
                results.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
                ["17865347866", "7669992245"]
            );
            assert!(results.iter().all(|r| r.status == ItemStatus::Removed));
        }
        other => panic!("{other:?}"),
    }
    // Partly failed: one removed, one not a member.
    let partial = envelope(
        "group_participants_update",
        &format!(
            r#"{{
                    "timestamp": "1755548877",
                    "group_id": "{GROUP}",
                    "type": "group_participants_remove",
                    "request_id": "REQ_RM2",
                    "initiated_by": "business",
                    "removed_participants": [ {{ "input": "+17865347866" }} ],
                    "failed_participants": [
                      {{
                        "input": "+7669992245",
                        "errors": [ {{ "code": 131212, "message": "Participant is not a part of the group.", "title": "t", "error_data": {{ "details": "d" }} }} ]
                      }}
                    ],
                    "errors": [ {{ "code": 131201, "message": "Failed to remove some participants from the group", "title": "Not All Participants Remove Succeeded", "error_data": {{ "details": "d" }} }} ]
                 }}"#
        ),
    );
    let e = events(&partial);
    match e.last().unwrap() {
        ProviderEvent::OperationSucceeded { results, .. } => {
            assert_eq!(results[0].status, ItemStatus::Removed);
            assert_eq!(results[1].status, ItemStatus::NotAMember);
            assert_eq!(results[1].key, "7669992245");
        }
        other => panic!("{other:?}"),
    }
    // Everyone failed with an error for the whole request: the operation failed.
    let failed = envelope(
        "group_participants_update",
        &format!(
            r#"{{
                    "timestamp": "1755548877", "group_id": "{GROUP}", "type": "group_participants_remove",
                    "request_id": "REQ_RM3",
                    "errors": [ {{ "code": 131207, "message": "Group suspended" }} ]
                 }}"#
        ),
    );
    assert!(matches!(&events(&failed)[..], [ProviderEvent::OperationFailed { code, .. }] if code == "131207"));
    // A participant left: no request ID, and Meta's `initiated_by` outside the object.
    let left = envelope(
        "group_participants_update",
        &format!(
            r#"{{
                    "timestamp": "1755548877",
                    "group_id": "{GROUP}",
                    "type": "group_participants_remove",
                    "removed_participants": [
                      {{
                        "wa_id": "16505551234",
                      }}
                    ]
                 }}"#
        ),
    );
    assert_eq!(
        events(&left),
        vec![ProviderEvent::ParticipantLeft {
            wa_group_id: GROUP.into(),
            phone: "16505551234".into(),
            at: Timestamp(1_755_548_877_000),
        }]
    );
}

#[test]
fn settings_updates_per_field() {
    let ok = envelope(
        "group_settings_update",
        &format!(
            r#"{{
                "timestamp": "1755548877",
                "group_id": "{GROUP}",
                "type": "group_settings_update",
                "request_id": "REQ_SET",
                "profile_picture": {{
                  "mime_type": "image/jpeg",
                  "update_successful": true,
                  "sha256": "PHOTO_HASH",
                }},
                "group_subject": {{
                  "text": "Test Subject",
                  "update_successful": true,
                }},
                "group_description": {{
                  "text": "Test Description",
                  "update_successful": true,
                }}
              }}"#
        ),
    );
    let e = events(&ok);
    match &e[0] {
        ProviderEvent::SettingsUpdated { change, .. } => {
            assert_eq!(change.subject.as_deref(), Some("Test Subject"));
            assert_eq!(change.description.as_deref(), Some("Test Description"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&e[1], ProviderEvent::OperationSucceeded { request_id, .. } if request_id == "REQ_SET"));
    // Partly failed: the subject changed, the description did not: the change that happened
    // is applied, and the operation fails with the description's error.
    let partial = envelope(
        "group_settings_update",
        &format!(
            r#"{{
                "timestamp": "1755548877", "group_id": "{GROUP}", "type": "group_settings_update", "request_id": "REQ_SET2",
                "group_subject": {{ "text": "Test Subject", "update_successful": true }},
                "group_description": {{
                  "text": "Test Description", "update_successful": false,
                  "errors": [ {{ "code": 131209, "message": "bad", "title": "t", "error_data": {{ "details": "d" }} }} ]
                }},
                "errors": [ {{ "code": 131209, "message": "bad" }} ]
              }}"#
        ),
    );
    let e = events(&partial);
    assert!(
        matches!(&e[0], ProviderEvent::SettingsUpdated { change, .. } if change.subject.is_some() && change.description.is_none())
    );
    assert!(matches!(&e[1], ProviderEvent::OperationFailed { code, .. } if code == "131209"));
}

#[test]
fn suspensions_messages_and_what_is_not_known() {
    for (kind, suspended) in [("group_suspend", true), ("group_suspend_cleared", false)] {
        let body = envelope(
            "group_status_update",
            &format!(r#"{{ "timestamp": "1755548877", "type": "{kind}", "group_id": "{GROUP}" }}"#),
        );
        let e = events(&body);
        assert_eq!(e.len(), 1);
        assert_eq!(matches!(e[0], ProviderEvent::GroupSuspended { .. }), suspended);
        assert_eq!(matches!(e[0], ProviderEvent::GroupSuspensionCleared { .. }), !suspended);
    }
    // Group messages and statuses are counted, not reports.
    let status = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
        "statuses":[{"id":"wamid.X","recipient_id":"GROUP_ID","recipient_type":"group","status":"sent","timestamp":"1755548877",}]},
        "field":"messages"}]}]}"#;
    let b = read(status);
    assert!(b.reports.is_empty());
    assert_eq!(b.messages, 1);
    // A type or a field wagroups does not know: kept as unrecognised reports, counted.
    let new_type = envelope(
        "group_participants_update",
        &format!(r#"{{ "timestamp": "1", "group_id": "{GROUP}", "type": "group_admin_promote" }}"#),
    );
    let b = read(&new_type);
    assert_eq!(b.unrecognised, 1);
    assert!(matches!(&b.reports[0].event, ProviderEvent::Unrecognised { correlation, .. } if correlation == GROUP));
    let new_field = envelope("group_something_new", r#"{ "type": "x" }"#);
    let b = read(&new_field);
    assert_eq!(b.unrecognised, 1);
    assert!(matches!(&b.reports[0].event, ProviderEvent::Unrecognised { .. }));
}

#[test]
fn the_openapi_documents_names_are_read_too() {
    let body = envelope(
        "group_participant_update",
        &format!(
            r#"{{ "timestamp": 1755548877, "group_id": "{GROUP}", "type": "group_remove_participants",
                  "request_id": "R", "initiated_by": "business", "removed_participants": [ {{ "input": "16505551234" }} ] }}"#
        ),
    );
    assert!(matches!(&events(&body)[0], ProviderEvent::ParticipantRemoved { .. }));
}

#[test]
fn batches_of_entries_changes_and_groups_keep_their_order_and_stable_keys() {
    let g = |t: &str, phone: &str| {
        format!(
            r#"{{ "timestamp": "1755548877", "group_id": "{GROUP}", "type": "{t}", "reason": "invite_link",
                  "added_participants": [ {{ "wa_id": "{phone}" }} ], "removed_participants": [ {{ "wa_id": "{phone}" }} ] }}"#
        )
    };
    let change = |groups: &str, pnid: &str| {
        format!(
            r#"{{ "value": {{ "messaging_product": "whatsapp", "metadata": {{ "display_phone_number": "1", "phone_number_id": "{pnid}" }},
                 "groups": [{groups}] }}, "field": "group_participants_update" }}"#
        )
    };
    let body = format!(
        r#"{{ "object": "whatsapp_business_account", "entry": [
            {{ "id": "W1", "changes": [ {}, {} ] }},
            {{ "id": "W2", "changes": [ {} ] }} ] }}"#,
        change(
            &format!(
                "{},{}",
                g("group_participants_add", "111111111"),
                g("group_participants_remove", "111111111")
            ),
            "P1"
        ),
        change(&g("group_participants_add", "222222222"), "P1"),
        change(&g("group_participants_add", "333333333"), "P2"),
    );
    let v = parse_body(body.as_bytes()).unwrap();
    assert_eq!(phone_number_ids(&v), ["P1", "P2"]);
    let b = translate(&v, NOW);
    let seen: Vec<(&str, &str)> = b
        .reports
        .iter()
        .map(|r| {
            (
                r.phone_number_id.as_str(),
                match &r.event {
                    ProviderEvent::ParticipantJoined { phone, .. } => phone.as_str(),
                    ProviderEvent::ParticipantLeft { phone, .. } => phone.as_str(),
                    other => panic!("{other:?}"),
                },
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("P1", "111111111"),
            ("P1", "111111111"),
            ("P1", "222222222"),
            ("P2", "333333333")
        ]
    );
    let keys: Vec<&str> = b.reports.iter().map(|r| r.dedup_key.as_str()).collect();
    let mut unique = keys.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "every report its own key");
    // Delivered again (even re-batched, keys in another order): the same keys.
    let alone = envelope("group_participants_update", &g("group_participants_add", "222222222"))
        .replace("106540352242922", "P1");
    let again = read(&alone);
    assert_eq!(again.reports[0].dedup_key, b.reports[2].dedup_key);
}

#[test]
fn the_signature_is_checked_on_the_bytes_meta_sent() {
    // Meta escapes non-ASCII as \uXXXX in what it signs: re-serialising would change the bytes.
    let raw = envelope(
        "group_lifecycle_update",
        &format!(
            r#"{{ "timestamp": "1", "group_id": "{GROUP}", "type": "group_create", "request_id": "R",
                 "subject": "Caf\u00e9 \ud83d\ude00", "invite_link": "https://chat.whatsapp.com/x" }}"#
        ),
    );
    let header = sign("app-secret", raw.as_bytes());
    assert!(header.starts_with("sha256=") && header.len() == 7 + 64);
    assert!(signature_matches("app-secret", raw.as_bytes(), &header));
    assert!(signature_matches(
        "app-secret",
        raw.as_bytes(),
        &header.to_uppercase().replace("SHA256=", "sha256=")
    ));
    assert!(!signature_matches("other-secret", raw.as_bytes(), &header));
    assert!(!signature_matches("app-secret", raw.as_bytes(), "sha256=00"));
    assert!(!signature_matches("app-secret", raw.as_bytes(), ""));
    assert!(!signature_matches(
        "app-secret",
        raw.as_bytes(),
        &header.replace("sha256=", "sha1=")
    ));
    let reserialised = serde_json::to_vec(&parse_body(raw.as_bytes()).unwrap()).unwrap();
    assert!(!signature_matches("app-secret", &reserialised, &header));
}
