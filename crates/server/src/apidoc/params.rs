//! Path, header and query parameters, each described once (limits are the core's).

use utoipa::{
    IntoParams,
    openapi::{
        RefOr,
        schema::{ObjectBuilder, Schema, Type},
    },
};
use wagroups_core::{
    event::EventType,
    model::GroupStatus,
    service::{EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX},
    webhook::DeliveryStatus,
    webhook_service::{DELIVERIES_LIMIT_DEFAULT, DELIVERIES_LIMIT_MAX},
};

fn limit(max: i64, default: i64) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(max))
        .default(Some(default.into()))
        .into()
}

fn list_limit() -> RefOr<Schema> {
    limit(LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT)
}
fn events_limit() -> RefOr<Schema> {
    limit(EVENTS_LIMIT_MAX, EVENTS_LIMIT_DEFAULT)
}
fn deliveries_limit() -> RefOr<Schema> {
    limit(DELIVERIES_LIMIT_MAX, DELIVERIES_LIMIT_DEFAULT)
}

fn group_id() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(wagroups_core::validate::GROUP_ID_MAX))
        .into()
}

/// A group in the path: your group ID.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct GroupPath {
    #[param(rename = "groupId", schema_with = group_id, required = true)]
    group_id: String,
}

/// A webhook endpoint in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EndpointPath {
    /// `ep_…`
    id: String,
}

/// An event in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct EventPath {
    /// `evt_…`
    #[param(rename = "eventId")]
    event_id: String,
}

/// An operation in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct OperationPath {
    /// `op_…`
    #[param(rename = "operationId")]
    operation_id: String,
}

/// A simulated user in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct PhonePath {
    /// Digits, `+` and spaces, or a JID.
    phone: String,
}

/// How to answer a write that WhatsApp confirms later.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct PreferHeader {
    /// `respond-async`: when the provider confirms writes later, answer at once with the
    /// pending operation (202) instead of waiting for the confirmation.
    #[param(rename = "Prefer")]
    prefer: Option<String>,
}

/// Filters and page of the group list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListGroupsQuery {
    #[param(rename = "wabaNumber")]
    waba_number: Option<String>,
    status: Option<GroupStatus>,
    #[param(schema_with = list_limit)]
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// A page of a group's event log.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GroupEventsQuery {
    /// A sequence number: the events after it.
    #[param(minimum = 0)]
    after: Option<i64>,
    #[param(schema_with = events_limit)]
    limit: Option<i64>,
}

/// Filters and page of the organisation's event log.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct EventsQuery {
    #[param(rename = "groupId")]
    group_id: Option<String>,
    #[param(rename = "eventType")]
    event_type: Option<EventType>,
    /// An eventId: the events after it.
    after: Option<String>,
    #[param(schema_with = events_limit)]
    limit: Option<i64>,
}

/// Filter and page of an endpoint's deliveries.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DeliveriesQuery {
    status: Option<DeliveryStatus>,
    #[param(schema_with = deliveries_limit)]
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}
