//! The events, as the event log and the webhooks carry them: `EventBase` (what every event
//! has) and one schema per event type, named and built here from the core's event
//! vocabulary, so an event type without a schema does not compile. The payloads themselves
//! are rendered by `wagroups_core::event::Event::payload`; a test checks each event type's
//! payload against its schema's properties.

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Components, RefOr,
        schema::{AllOfBuilder, Discriminator, ObjectBuilder, OneOfBuilder, Ref, Schema, Type},
    },
};
use wagroups_core::{
    event::EventType,
    ids::{EventId, GroupId, OperationId, OrgId},
    model::{JoinReason, OperationKind},
    phone::Phone,
    time::Timestamp,
};

/// The type of a field particular to one event.
#[derive(Clone, Copy)]
enum Field {
    Text,
    NullableText,
    Time,
    Phone,
    JoinReason,
    Operation,
    OperationId,
    /// `{code, message}`
    Error,
    /// The names of the fields that changed.
    ChangedFields,
    /// Field name → value.
    Values(&'static str),
    /// `reconciled`, on an event reconciliation appended.
    Reconciled,
}

impl Field {
    fn schema(self) -> RefOr<Schema> {
        let text = || ObjectBuilder::new().schema_type(Type::String);
        match self {
            Field::Text => text().into(),
            Field::NullableText => ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                    Type::String,
                    Type::Null,
                ]))
                .into(),
            Field::Time => Timestamp::schema(),
            Field::Phone => Phone::schema(),
            Field::JoinReason => JoinReason::schema(),
            Field::Operation => OperationKind::schema(),
            Field::OperationId => OperationId::schema(),
            Field::Error => ObjectBuilder::new()
                .property("code", text())
                .property("message", text())
                .required("code")
                .into(),
            Field::ChangedFields => utoipa::openapi::schema::ArrayBuilder::new()
                .items(text().enum_values(Some([
                    "subject",
                    "description",
                    "announcementOnly",
                    "locked",
                    "joinApprovalMode",
                ])))
                .into(),
            Field::Values(what) => ObjectBuilder::new().description(Some(what)).into(),
            Field::Reconciled => text()
                .enum_values(Some(["reconciled"]))
                .description(Some(
                    "Present when reconciliation with WhatsApp's list found the change (its webhook from \
                     WhatsApp never came)",
                ))
                .into(),
        }
    }
}

/// The schema's name and the fields of one event type: (name, type, required).
fn fields(t: EventType) -> (&'static str, &'static [(&'static str, Field, bool)]) {
    use Field::*;
    match t {
        EventType::GroupCreated => (
            "GroupCreated",
            &[
                ("inviteLink", Text, true),
                ("groupCreatedAt", Time, true),
                ("waGroupId", Text, true),
                ("description", Text, true),
                // `auto_approve` or `approval_required`.
                ("joinApprovalMode", Text, true),
            ],
        ),
        EventType::GroupCreateFailed => ("GroupCreateFailed", &[("error", Error, true)]),
        EventType::GroupUpdated => (
            "GroupUpdated",
            &[
                ("changedFields", ChangedFields, true),
                ("changes", Values("New value of each changed field"), true),
                ("previous", Values("Value before the change"), true),
                ("reason", Reconciled, false),
            ],
        ),
        EventType::GroupDeleted => (
            "GroupDeleted",
            &[("groupDeletedAt", Time, true), ("reason", Reconciled, false)],
        ),
        EventType::GroupSuspended => (
            "GroupSuspended",
            &[("groupSuspendedAt", Time, true), ("reason", Reconciled, false)],
        ),
        EventType::GroupSuspensionCleared => (
            "GroupSuspensionCleared",
            &[("suspensionClearedAt", Time, true), ("reason", Reconciled, false)],
        ),
        EventType::GroupInviteLinkReset => (
            "InviteLinkReset",
            &[("inviteLink", Text, true), ("inviteLinkResetAt", Time, true)],
        ),
        EventType::ParticipantJoined => (
            "ParticipantJoined",
            &[
                ("customerPhone", Phone, true),
                ("participantJoinedAt", Time, true),
                ("reason", JoinReason, true),
            ],
        ),
        EventType::ParticipantLeft => (
            "ParticipantLeft",
            &[
                ("customerPhone", Phone, true),
                ("participantLeftAt", Time, true),
                ("reason", Reconciled, false),
            ],
        ),
        EventType::ParticipantRemoved => (
            "ParticipantRemoved",
            &[("customerPhone", Phone, true), ("participantRemovedAt", Time, true)],
        ),
        EventType::ParticipantInvited => (
            "ParticipantInvited",
            &[
                ("customerPhone", Phone, true),
                ("inviteLink", NullableText, true),
                ("participantInvitedAt", Time, true),
            ],
        ),
        EventType::ParticipantPromoted => (
            "ParticipantPromoted",
            &[("customerPhone", Phone, true), ("participantPromotedAt", Time, true)],
        ),
        EventType::ParticipantDemoted => (
            "ParticipantDemoted",
            &[("customerPhone", Phone, true), ("participantDemotedAt", Time, true)],
        ),
        EventType::JoinRequestCreated => (
            "JoinRequestCreated",
            &[
                ("customerPhone", Phone, true),
                ("joinRequestId", Text, true),
                ("requestedAt", Time, true),
            ],
        ),
        EventType::JoinRequestRevoked => (
            "JoinRequestRevoked",
            &[
                ("customerPhone", Phone, true),
                ("joinRequestId", Text, true),
                ("revokedAt", Time, true),
            ],
        ),
        EventType::JoinRequestRejected => (
            "JoinRequestRejected",
            &[
                ("customerPhone", Phone, true),
                ("joinRequestId", Text, true),
                ("rejectedAt", Time, true),
            ],
        ),
        EventType::OperationFailed => (
            "OperationFailed",
            &[
                ("operationId", OperationId, true),
                ("operation", Operation, true),
                ("error", Error, true),
                ("operationFailedAt", Time, true),
            ],
        ),
    }
}

/// The schema name of an event type's payload.
pub fn schema_name(t: EventType) -> &'static str {
    fields(t).0
}

/// The properties particular to an event type, and which are required.
#[cfg(test)]
pub fn properties(t: EventType) -> Vec<(&'static str, bool)> {
    fields(t).1.iter().map(|(n, _, r)| (*n, *r)).collect()
}

/// What every event carries.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct EventBase {
    /// Equal to the `webhook-id` header of its deliveries.
    event_id: EventId,
    event_type: EventType,
    occurred_at: Timestamp,
    org_id: OrgId,
    waba_number: String,
    /// Your group ID.
    group_id: GroupId,
    /// Per group, gap-free, from 1.
    #[schema(minimum = 1)]
    sequence: i64,
    /// The group's subject after the change.
    group_name: String,
    /// The group's ID in Meta's Graph dialect, once WhatsApp created it.
    graph_group_id: Option<String>,
    /// The number's phone number ID (by which the Graph dialect addresses it).
    phone_number_id: Option<String>,
    /// The number's WhatsApp Business Account ID, when configured (`--waba-id`).
    waba_id: Option<String>,
}

/// Any event; `eventType` says which.
pub struct Event;

impl PartialSchema for Event {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new();
        let mut mapping = Vec::new();
        for t in EventType::ALL {
            let name = schema_name(*t);
            one_of = one_of.item(Ref::from_schema_name(name));
            mapping.push((t.as_str(), format!("#/components/schemas/{name}")));
        }
        one_of
            .discriminator(Some(Discriminator::with_mapping("eventType", mapping)))
            .into()
    }
}
impl ToSchema for Event {}

/// The schema of one event type: the base, its `eventType`, and its own fields.
fn event_schema(t: EventType) -> RefOr<Schema> {
    let mut own = ObjectBuilder::new().property(
        "eventType",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([t.as_str()])),
    );
    for (name, field, required) in fields(t).1 {
        own = own.property(*name, field.schema());
        if *required {
            own = own.required(*name);
        }
    }
    AllOfBuilder::new()
        .item(Ref::from_schema_name("EventBase"))
        .item(own)
        .into()
}

/// Adds every event type's schema (`EventBase` and `Event` are listed with the others).
pub fn add_schemas(c: &mut Components) {
    for t in EventType::ALL {
        c.schemas.insert(schema_name(*t).to_string(), event_schema(*t));
    }
}
