//! The OpenAPI 3.1 document, generated from the handlers (`#[utoipa::path]` beside each,
//! collected by each module's `Doc`) and from the types they answer with, served at
//! `/openapi.json` and `/openapi.yaml` and rendered at `/docs`.

pub mod events;
pub mod graph;
pub mod params;
pub mod requests;
pub mod wawp;
pub mod wuts;

use std::{collections::BTreeMap, sync::LazyLock};

use serde::Serialize;
use utoipa::{
    IntoResponses, Modify, OpenApi, PartialSchema, ToResponse, ToSchema,
    openapi::{
        self, ContentBuilder, HttpMethod, PathItem, PathsBuilder, RefOr, ResponseBuilder,
        path::OperationBuilder,
        request_body::RequestBodyBuilder,
        response::Response,
        schema::Ref,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use wagroups_core::event::EventType;

/// The native API's error answer.
#[derive(Serialize, ToSchema)]
#[schema(as = ErrorBody)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong: a stable `code`, a message for people and, for bad input, the field.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    code: String,
    message: String,
    /// The field at fault (`participants[2]`, `settings.locked`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
}

/// DoubleTick's error answer.
#[derive(Serialize, ToSchema)]
pub struct DoubleTickErrorBody {
    /// Always `false`.
    success: bool,
    message: String,
}

/// Declares a set of error answers (status codes, all of one response component).
macro_rules! error_set {
    ($(#[$m:meta])* $name:ident = $response:literal: $($code:literal),+) => {
        $(#[$m])*
        pub struct $name;
        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$($code),+]
                    .into_iter()
                    .map(|c: u16| (c.to_string(), RefOr::Ref(Ref::from_response_name($response))))
                    .collect()
            }
        }
    };
}

/// Declares a shared response: a component under `responses`, referred to by name.
macro_rules! shared_response {
    ($(#[$m:meta])* $name:ident = $component:literal, $description:expr, $schema:expr) => {
        $(#[$m])*
        pub struct $name;
        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                ($component, RefOr::T(json_response($description, $schema)))
            }
        }
    };
}

shared_response!(
    /// The native API's error answer.
    ErrorResponse = "Error", "An error naming the field and the rule", ErrorBody::schema()
);
shared_response!(
    /// DoubleTick's error answer.
    DoubleTickErrorResponse = "DoubleTickError", "DoubleTick's error shape", DoubleTickErrorBody::schema()
);
shared_response!(
    /// Meta's Graph error answer.
    GraphErrorResponse = "GraphError", "A Graph API error, as Meta answers it", graph::GraphError::schema()
);
shared_response!(
    /// Wawp's error answer.
    WawpErrorResponse = "WawpError", "Wawp's error shape", wawp::WawpError::schema()
);
shared_response!(
    /// WUTS's error answer.
    WutsErrorResponse = "WutsError", "WUTS's error shape", wuts::WutsError::schema()
);
shared_response!(
    /// A write WhatsApp has accepted and not yet confirmed.
    Pending = "Pending", PENDING, RefOr::Ref(Ref::from_schema_name("Operation"))
);

error_set!(
    /// A read of the organisation's collection.
    ListErrors = "Error": 400, 401, 403
);
error_set!(
    /// A read of one thing the path names.
    ReadErrors = "Error": 400, 401, 403, 404
);
error_set!(
    /// Creating a group.
    CreateGroupErrors = "Error": 400, 401, 403, 408, 409, 413, 422, 503
);
error_set!(
    /// A write to a group with a body.
    GroupWriteErrors = "Error": 400, 401, 403, 404, 408, 409, 413, 422, 503
);
error_set!(
    /// A write to a group without a body.
    GroupActionErrors = "Error": 400, 401, 403, 404, 409, 422, 503
);
error_set!(
    /// Only the key can be wrong.
    KeyErrors = "Error": 401
);
error_set!(
    /// A read or action on one of the organisation's own records.
    LookupErrors = "Error": 400, 401, 404
);
error_set!(
    /// Creating a webhook endpoint.
    EndpointCreateErrors = "Error": 400, 401, 403, 408, 413
);
error_set!(
    /// Changing a webhook endpoint.
    EndpointPatchErrors = "Error": 400, 401, 403, 404, 408, 413
);
error_set!(
    /// An action with a body on one of the organisation's own records.
    LookupBodyErrors = "Error": 400, 401, 404, 408, 413
);
error_set!(
    /// A simulated user acting on a group.
    SandboxActionErrors = "Error": 400, 401, 403, 404, 408, 409, 413, 422
);
error_set!(
    /// Configuring a simulated user.
    SandboxUserPutErrors = "Error": 400, 401, 408, 413
);
error_set!(
    /// Reading a simulated user.
    SandboxUserGetErrors = "Error": 400, 401
);
error_set!(
    /// Suspending a group or clearing its suspension.
    SuspensionErrors = "Error": 400, 401, 403, 404, 409, 422
);
error_set!(
    /// DoubleTick's create.
    DoubleTickErrors = "DoubleTickError": 400, 401, 403, 408, 409, 413, 422, 503
);

const DESCRIPTION: &str = "A self-hosted WhatsApp Groups API gateway. Create and manage WhatsApp groups; receive every lifecycle and membership change as a \
signed, per-group ordered webhook (see `webhooks`). Errors of the native API have the shape \
`{\"error\": {\"code\", \"message\", \"field\"}}`; DoubleTick's path answers `{\"success\": false, \"message\"}`.";

const DELIVERY: &str = "A signed event delivery (Standard Webhooks). Headers: `webhook-id` (the eventId, stable \
across retries), `webhook-timestamp` (Unix seconds of the attempt), `webhook-signature` (`v1,<base64 \
HMAC-SHA256>` of `{id}.{timestamp}.{body}`; two space-separated entries during a secret rotation). Any 2xx \
is success; 410 disables the endpoint; other answers are retried.";

const IDEMPOTENCY: &str = "Send the same key again with the same request within 24 hours to get \
the first answer again (with `Idempotent-Replayed: true`) without anything done twice; the key with another request is \
`422`, while the first is still being answered `409`. Keys are the organisation's.";

const PENDING: &str = "WhatsApp accepted the write and has not confirmed it yet (asked with `Prefer: \
respond-async`, or no confirmation within 10 s): follow it at GET /v1/operations/{operationId}";

#[derive(OpenApi)]
#[openapi(
    info(title = "wagroups", description = DESCRIPTION),
    servers((url = "http://127.0.0.1:8080")),
    security(("bearer" = [])),
    tags(
        (name = "groups"), (name = "sandbox"), (name = "webhooks"), (name = "events"),
        (name = "doubletick"), (name = "operations"), (name = "numbers"),
        (name = "wawp", description = "Wawp's group calls (base URL http://HOST:PORT/wawp/v2)"),
        (name = "wuts", description = "The WUTS gateway's group calls (base URL http://HOST:PORT/wuts)"),
        (name = "graph", description = "Meta's Cloud API Groups endpoints (base URL http://HOST:PORT/graph/v23.0), on any provider"),
        (name = "providers", description = "Where providers call in: Meta's webhooks"),
    ),
    components(schemas(
        ErrorBody, DoubleTickErrorBody, events::EventBase, events::Event, EventType,
        requests::CreateGroup, requests::PhoneInput, crate::render::Operation,
    ), responses(ErrorResponse, DoubleTickErrorResponse, GraphErrorResponse, WutsErrorResponse, WawpErrorResponse, Pending)),
    modifiers(&Extras),
)]
struct Base;

/// What the derive cannot say: the security scheme, the summary,
/// every event's schema and its `webhooks` entry.
struct Extras;

fn json_response(description: &str, schema: RefOr<openapi::schema::Schema>) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(schema)).build())
        .build()
}

impl Modify for Extras {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "bearer".into(),
            RefOr::T(SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`wag_…`). DoubleTick's path also accepts the bare key in Authorization.",
                    ))
                    .build(),
            )),
        );
        events::add_schemas(components);
        let mut hooks = PathsBuilder::new();
        for t in EventType::ALL {
            let op = OperationBuilder::new()
                .summary(Some(format!("{t}: delivered to every endpoint subscribed to it")))
                .description(Some(DELIVERY))
                .request_body(Some(
                    RequestBodyBuilder::new()
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(events::schema_name(*t))))
                                .build(),
                        )
                        .build(),
                ))
                .response("2XX", ResponseBuilder::new().description("Accepted").build());
            hooks = hooks.path(t.as_str(), PathItem::new(HttpMethod::Post, op));
        }
        doc.webhooks = Some(hooks.build());
    }
}

/// The whole document: the base and every module's paths.
pub fn document() -> openapi::OpenApi {
    let mut doc = Base::openapi();
    for part in [
        crate::native::Doc::openapi(),
        crate::webhooks::Doc::openapi(),
        crate::sandbox::Doc::openapi(),
        crate::doubletick::Doc::openapi(),
        crate::health::Doc::openapi(),
        crate::docs::Doc::openapi(),
        crate::meta::Doc::openapi(),
        crate::graph::Doc::openapi(),
        crate::wuts::Doc::openapi(),
        crate::wawp::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    // Every POST that takes a key takes an Idempotency-Key (a server-wide layer).
    for (path, item) in doc.paths.paths.iter_mut() {
        if path.starts_with("/providers/") {
            continue;
        }
        if let Some(op) = item.post.as_mut() {
            let param = utoipa::openapi::path::ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .description(Some(IDEMPOTENCY))
                .schema(Some(
                    openapi::schema::ObjectBuilder::new()
                        .schema_type(openapi::schema::Type::String)
                        .min_length(Some(1))
                        .max_length(Some(wagroups_core::idempotency::KEY_MAX))
                        .pattern(Some("^[!-~]+$")),
                ))
                .build();
            op.parameters.get_or_insert_with(Vec::new).push(RefOr::T(param));
            // A key reused with another request (422) or still in flight (409), in the
            // dialect's error shape (Graph's answers those as its 400).
            let component = match path.split('/').nth(1) {
                Some("whatsapp") => Some("DoubleTickError"),
                Some("graph") => None,
                Some("wuts") => Some("WutsError"),
                Some("wawp") => Some("WawpError"),
                _ => Some("Error"),
            };
            if let Some(c) = component {
                for code in ["409", "422"] {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(c)));
                }
            }
        }
    }
    doc
}

/// The document as served, rendered once.
pub static JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(&document()).unwrap_or_else(|_| String::from("{}")));

/// The same, as YAML.
pub static YAML: LazyLock<String> = LazyLock::new(|| serde_norway::to_string(&document()).unwrap_or_default());

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use wagroups_core::{
        event::{Event, EventBody, EventType},
        model::{self, GroupStatus, JoinApprovalMode, JoinReason, OperationKind},
        phone::Phone,
        time::Timestamp,
    };

    use crate::error::{ApiError, Dialect, DoubleTick, Native};

    /// The committed `openapi/wagroups.yaml` is this document, so a change to the API shows
    /// in review. `WAGROUPS_BLESS=1 cargo test -p wagroups-server openapi` rewrites it.
    #[test]
    fn the_committed_openapi_yaml_is_the_generated_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/wagroups.yaml");
        if std::env::var_os("WAGROUPS_BLESS").is_some() {
            std::fs::write(path, super::YAML.as_str()).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == *super::YAML,
            "{path} differs from the generated document: run `WAGROUPS_BLESS=1 cargo test -p wagroups-server openapi` and review the diff"
        );
    }

    fn sample(t: EventType) -> EventBody {
        let phone = Phone::from_digits("919999999999");
        let at = Timestamp(1_700_000_000_000);
        match t {
            EventType::GroupCreated => EventBody::GroupCreated {
                wa_group_id: "1203@g.us".into(),
                invite_link: "https://chat.whatsapp.com/x".into(),
                created_at: at,
            },
            EventType::GroupCreateFailed => EventBody::GroupCreateFailed {
                code: "refused".into(),
                message: "no".into(),
            },
            EventType::GroupUpdated => {
                let mut changes = serde_json::Map::new();
                changes.insert("subject".into(), "New".into());
                let mut previous = serde_json::Map::new();
                previous.insert("subject".into(), "Old".into());
                EventBody::GroupUpdated { changes, previous }
            }
            EventType::GroupDeleted => EventBody::GroupDeleted { at },
            EventType::GroupSuspended => EventBody::GroupSuspended { at },
            EventType::GroupSuspensionCleared => EventBody::GroupSuspensionCleared { at },
            EventType::GroupInviteLinkReset => EventBody::InviteLinkReset {
                invite_link: "https://chat.whatsapp.com/y".into(),
                at,
            },
            EventType::ParticipantJoined => EventBody::ParticipantJoined {
                phone,
                reason: JoinReason::Added,
                at,
            },
            EventType::ParticipantLeft => EventBody::ParticipantLeft { phone, at },
            EventType::ParticipantRemoved => EventBody::ParticipantRemoved { phone, at },
            EventType::ParticipantInvited => EventBody::ParticipantInvited {
                phone,
                invite_link: None,
                at,
            },
            EventType::ParticipantPromoted => EventBody::ParticipantPromoted { phone, at },
            EventType::ParticipantDemoted => EventBody::ParticipantDemoted { phone, at },
            EventType::JoinRequestCreated => EventBody::JoinRequestCreated {
                phone,
                join_request_id: "jr_1".into(),
                at,
            },
            EventType::JoinRequestRevoked => EventBody::JoinRequestRevoked {
                phone,
                join_request_id: "jr_1".into(),
                at,
            },
            EventType::JoinRequestRejected => EventBody::JoinRequestRejected {
                phone,
                join_request_id: "jr_1".into(),
                at,
            },
            EventType::OperationFailed => EventBody::OperationFailed {
                operation_id: "op_1".into(),
                operation: OperationKind::RemoveParticipants,
                code: "refused".into(),
                message: "no".into(),
                at,
            },
        }
    }

    fn object_keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// Each event type's payload, as the core renders it, has exactly the properties its
    /// schema names (the base's and its own), and every required one.
    #[test]
    fn every_event_payload_has_the_properties_its_schema_documents() {
        let doc: Value = serde_json::from_str(&super::JSON).unwrap();
        let base = &doc["components"]["schemas"]["EventBase"];
        let base_props = object_keys(&base["properties"]);
        let group = model::Group {
            id: 1,
            org_id: "org_1".into(),
            number_id: 1,
            waba_number: "15550100001".into(),
            phone_number_id: Some("900000000000001".into()),
            waba_id: Some("102290129340398".into()),
            group_id: "vip".into(),
            status: GroupStatus::Active,
            subject: "VIP".into(),
            description: String::new(),
            join_approval_mode: JoinApprovalMode::AutoApprove,
            wa_group_id: Some("120363000000000001@g.us".into()),
            invite_link: None,
            participant_count: 1,
            announcement_only: false,
            locked: false,
            suspended: false,
            last_sequence: 1,
            failure_reason: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        for t in EventType::ALL {
            // Types reconciliation appends document an optional reason: rendered with it.
            let reconcilable = super::events::properties(*t).contains(&("reason", false));
            let event = Event {
                event_id: "evt_1".into(),
                sequence: 1,
                occurred_at: Timestamp(0),
                body: sample(*t),
                reconciled: reconcilable,
            };
            assert_eq!(event.event_type(), *t);
            let plain = object_keys(
                &Event {
                    reconciled: false,
                    ..event.clone()
                }
                .payload(&group),
            );
            let payload = event.payload(&group);
            let keys = object_keys(&payload);
            let schema = &doc["components"]["schemas"][super::events::schema_name(*t)];
            let own = &schema["allOf"][1];
            let mut documented = base_props.clone();
            documented.extend(object_keys(&own["properties"]));
            assert_eq!(keys, documented, "{t}: payload keys vs documented properties");
            let required = base["required"]
                .as_array()
                .into_iter()
                .chain(own["required"].as_array())
                .flatten()
                .filter_map(Value::as_str);
            for r in required {
                assert!(keys.contains(r), "{t}: required {r} missing from the payload");
            }
            let listed: Vec<(&str, bool)> = super::events::properties(*t);
            assert!(listed.iter().all(|(n, _)| keys.contains(*n)));
            assert!(plain.is_subset(&keys), "{t}: the payload without the reason");
        }
    }

    /// The error bodies have the documented properties.
    #[test]
    fn error_answers_have_the_documented_shape() {
        let doc: Value = serde_json::from_str(&super::JSON).unwrap();
        let schemas = &doc["components"]["schemas"];
        let e = ApiError::invalid("subject", "is too long");
        let native = Native::body(&e);
        assert_eq!(object_keys(&native), object_keys(&schemas["ErrorBody"]["properties"]));
        assert_eq!(
            object_keys(&native["error"]),
            object_keys(&schemas["ErrorDetail"]["properties"])
        );
        let dt = DoubleTick::body(&e);
        assert_eq!(
            object_keys(&dt),
            object_keys(&schemas["DoubleTickErrorBody"]["properties"])
        );
    }
}
