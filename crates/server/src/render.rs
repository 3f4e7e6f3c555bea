//! JSON shapes of the native API: each answer is one of these types, and the OpenAPI
//! document's schema of it is derived from the same type, so the two cannot differ.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use wagroups_core::{
    ids::{EndpointId, EventId, GroupId, OperationId},
    model::{
        self, AddPrivacy, GroupStatus, ItemResult, JoinApprovalMode, OperationKind, OperationStatus, ParticipantRole,
        ParticipantState,
    },
    ops,
    phone::Phone,
    provider::ItemStatus,
    time::Timestamp,
    webhook::{self, DeliveryStatus, WebhookFormat},
    webhook_service::WithSecret,
};

/// A group.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    group_id: GroupId,
    /// The business number that owns the group.
    waba_number: String,
    status: GroupStatus,
    subject: String,
    description: String,
    join_approval_mode: JoinApprovalMode,
    /// The WhatsApp group JID (…@g.us) once known.
    wa_group_id: Option<String>,
    /// The group's ID in Meta's Graph dialect (`/graph/…/{graphGroupId}`), once WhatsApp has
    /// created it: Meta's own group ID on a cloud-api number.
    graph_group_id: Option<String>,
    invite_link: Option<String>,
    /// Members besides the business number.
    participant_count: i64,
    settings: Settings,
    suspended: bool,
    /// Why WhatsApp refused to create it (failed groups only).
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    /// With its participants (omitted in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    participants: Option<Vec<Participant>>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// A business number of the organisation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Number {
    waba_number: String,
    /// `simulated` or `cloud-api`.
    provider: String,
    /// `cloud` or `linked_device` semantics.
    profile: String,
    /// The number's phone number ID, by which Meta's Graph dialect addresses it (Meta's own
    /// on a cloud-api number).
    phone_number_id: Option<String>,
    /// `ok`, `credentials_invalid`, `not_eligible` or `rate_limited`.
    health: String,
    /// When a `rate_limited` pause ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    health_until: Option<Timestamp>,
    disabled: bool,
    created_at: Timestamp,
}

pub fn number(n: &model::Number) -> Number {
    Number {
        waba_number: n.waba_number.clone(),
        provider: n.provider.to_string(),
        profile: n.profile.to_string(),
        phone_number_id: n.provider_ref.clone(),
        health: n.health.status.to_string(),
        health_until: n.health.until,
        disabled: n.disabled,
        created_at: n.created_at,
    }
}

/// The organisation's numbers (those the key may use).
#[derive(Serialize, ToSchema)]
pub struct NumberList {
    pub data: Vec<Number>,
}

/// Linked-device settings (always `false` on Meta's Cloud API).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    announcement_only: bool,
    locked: bool,
}

/// A group as the create call answers it: with WhatsApp's answer about each participant
/// asked for, or `null` when it did not come in time (the events follow either way).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedGroup {
    #[serde(flatten)]
    group: Group,
    /// On a create with participants only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<ParticipantResult>>)]
    results: Option<Option<Vec<ParticipantResult>>>,
}

/// A group; `participants` only when given.
pub fn group(g: &model::Group, participants: Option<&[model::Participant]>) -> Group {
    Group {
        group_id: g.group_id.clone(),
        waba_number: g.waba_number.clone(),
        status: g.status,
        subject: g.subject.clone(),
        description: g.description.clone(),
        join_approval_mode: g.join_approval_mode,
        wa_group_id: g.wa_group_id.clone(),
        graph_group_id: g
            .wa_group_id
            .as_deref()
            .map(|wa| wagroups_core::ids::graph_group_id(&g.waba_number, wa)),
        invite_link: g.invite_link.clone(),
        participant_count: g.participant_count,
        settings: Settings {
            announcement_only: g.announcement_only,
            locked: g.locked,
        },
        suspended: g.suspended,
        failure_reason: g.failure_reason.clone(),
        participants: participants.map(|ps| ps.iter().map(participant).collect()),
        created_at: g.created_at,
        updated_at: g.updated_at,
    }
}

/// The create call's answer; `results` is `None` when none were asked for.
pub fn created_group(group: Group, results: Option<Option<&[ops::ParticipantResult]>>) -> CreatedGroup {
    CreatedGroup {
        group,
        results: results.map(|r| r.map(|r| r.iter().map(participant_result).collect())),
    }
}

/// A page of groups, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupPage {
    pub data: Vec<Group>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A member of a group, or someone invited, who left or was removed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    phone: Phone,
    /// The WhatsApp user JID (…@s.whatsapp.net).
    jid: String,
    role: ParticipantRole,
    state: ParticipantState,
    /// The business number that created the group.
    is_business: bool,
    joined_at: Option<Timestamp>,
}

pub fn participant(p: &model::Participant) -> Participant {
    Participant {
        jid: p.phone.jid(),
        phone: p.phone.clone(),
        role: p.role,
        state: p.state,
        is_business: p.is_business,
        joined_at: p.joined_at,
    }
}

/// A group's participants.
#[derive(Serialize, ToSchema)]
pub struct ParticipantList {
    pub data: Vec<Participant>,
}

/// WhatsApp's answer about one participant asked for.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantResult {
    /// The input as given.
    participant: String,
    /// The phone it names, when it is one.
    phone: Option<String>,
    status: ItemStatus,
    /// The link the participant was invited with (`invited`).
    #[serde(skip_serializing_if = "Option::is_none")]
    invite_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

pub fn participant_result(r: &ops::ParticipantResult) -> ParticipantResult {
    ParticipantResult {
        participant: r.participant.clone(),
        phone: r.phone.clone(),
        status: r.status,
        invite_link: r.invite_link.clone(),
        message: r.message.clone(),
    }
}

/// One result per participant asked for.
#[derive(Serialize, ToSchema)]
pub struct ParticipantResults {
    results: Vec<ParticipantResult>,
}

/// One result per join request asked for.
#[derive(Serialize, ToSchema)]
pub struct JoinRequestResults {
    results: Vec<JoinRequestResult>,
}

/// Per-item results: `200` when every item succeeded, `207` when some did not.
fn per_item(statuses: impl IntoIterator<Item = ItemStatus>, body: impl Serialize) -> Response {
    let status = if statuses.into_iter().all(ItemStatus::is_success) {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    (status, Json(body)).into_response()
}

pub fn participant_results(results: &[ops::ParticipantResult]) -> Response {
    per_item(
        results.iter().map(|r| r.status),
        ParticipantResults {
            results: results.iter().map(participant_result).collect(),
        },
    )
}

/// WhatsApp's answer about one join request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequestResult {
    join_request_id: String,
    phone: Option<String>,
    status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

pub fn join_request_results(results: &[ops::JoinRequestResult]) -> Response {
    let items = results
        .iter()
        .map(|r| JoinRequestResult {
            join_request_id: r.join_request_id.clone(),
            phone: r.phone.clone(),
            status: r.status,
            message: r.message.clone(),
        })
        .collect();
    per_item(results.iter().map(|r| r.status), JoinRequestResults { results: items })
}

/// A pending request to join an `approval_required` group.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    join_request_id: String,
    phone: Phone,
    created_at: Timestamp,
}

/// A group's pending join requests.
#[derive(Serialize, ToSchema)]
pub struct JoinRequestList {
    data: Vec<JoinRequest>,
}

pub fn join_requests(requests: &[model::JoinRequest]) -> JoinRequestList {
    JoinRequestList {
        data: requests
            .iter()
            .map(|r| JoinRequest {
                join_request_id: r.join_request_id.clone(),
                phone: r.phone.clone(),
                created_at: r.created_at,
            })
            .collect(),
    }
}

/// The group's invite link (`null` until the group is on WhatsApp).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteLink {
    group_id: GroupId,
    invite_link: Option<String>,
}

pub fn invite_link(g: &model::Group) -> InviteLink {
    InviteLink {
        group_id: g.group_id.clone(),
        invite_link: g.invite_link.clone(),
    }
}

/// A write WhatsApp accepted and confirms later (Meta's Cloud API confirms every write by
/// webhook; so does the simulated cloud profile), or how it ended.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    operation_id: OperationId,
    group_id: GroupId,
    waba_number: String,
    operation: OperationKind,
    status: OperationStatus,
    /// The outcome per item (phone or join request ID), once succeeded.
    results: Vec<OperationItem>,
    /// Why WhatsApp refused it (failed only).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<OperationError>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// The outcome for one item of an operation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationItem {
    /// The phone (digits) or join request ID.
    key: String,
    status: ItemStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    invite_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// WhatsApp's reason for refusing a write.
#[derive(Serialize, ToSchema)]
pub struct OperationError {
    code: String,
    message: Option<String>,
}

fn operation_item(r: &ItemResult) -> OperationItem {
    OperationItem {
        key: r.key.clone(),
        status: r.status,
        invite_link: r.invite_link.clone(),
        message: r.message.clone(),
    }
}

pub fn operation(op: &model::Operation) -> Operation {
    Operation {
        operation_id: op.id.clone(),
        group_id: op.group_id.clone(),
        waba_number: op.waba_number.clone(),
        operation: op.kind,
        status: op.status,
        results: op.results.iter().map(operation_item).collect(),
        error: op.error_code.as_ref().map(|code| OperationError {
            code: code.clone(),
            message: op.error_message.clone(),
        }),
        created_at: op.created_at,
        updated_at: op.updated_at,
    }
}

/// `202` with the pending operation: WhatsApp accepted the write and has not confirmed it.
pub fn pending(op: &model::Operation) -> Response {
    (StatusCode::ACCEPTED, Json(operation(op))).into_response()
}

/// Events as the event log stores them (their schema is `Event`).
#[derive(Serialize, ToSchema)]
pub struct EventList {
    #[schema(value_type = Vec<crate::apidoc::events::Event>)]
    pub data: Vec<Box<RawValue>>,
}

/// The organisation's events in log order.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    #[schema(value_type = Vec<crate::apidoc::events::Event>)]
    pub data: Vec<Box<RawValue>>,
    /// The last event's ID: pass it as `after` for what follows.
    pub last_event_id: Option<EventId>,
}

/// How many deliveries were queued again.
#[derive(Serialize, ToSchema)]
pub struct Requeued {
    pub requeued: u64,
}

/// A webhook endpoint (its secret is never shown again after creation and rotation).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    id: EndpointId,
    url: String,
    description: Option<String>,
    /// The event types delivered; `null` means all.
    event_types: Option<Vec<String>>,
    /// The business numbers whose events are delivered; `null` means all.
    waba_numbers: Option<Vec<String>>,
    format: WebhookFormat,
    disabled: bool,
    /// Why it was disabled (by you, or by a `410 Gone` answer).
    disabled_reason: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

pub fn endpoint(e: &webhook::Endpoint) -> Endpoint {
    Endpoint {
        id: e.id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: e.event_types.clone(),
        waba_numbers: e.waba_numbers.clone(),
        format: e.format,
        disabled: e.disabled,
        disabled_reason: e.disabled_reason.clone(),
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

/// A new endpoint, with its signing secret: shown in this answer only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// A `standard` endpoint's `whsec_…`: verify each delivery's `webhook-signature` with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_")]
    secret: Option<String>,
    /// A `meta` endpoint's app secret: verify each delivery's `X-Hub-Signature-256` with it,
    /// as Meta's documentation says.
    #[serde(skip_serializing_if = "Option::is_none")]
    app_secret: Option<String>,
}

/// The secret in the field of its format.
fn secret_fields(e: &WithSecret) -> (Option<String>, Option<String>) {
    let s = e.secret.expose().to_string();
    match e.endpoint.format {
        WebhookFormat::Standard | WebhookFormat::Doubletick => (Some(s), None),
        WebhookFormat::Meta => (None, Some(s)),
    }
}

pub fn created_endpoint(e: &WithSecret) -> CreatedEndpoint {
    let (secret, app_secret) = secret_fields(e);
    CreatedEndpoint {
        endpoint: endpoint(&e.endpoint),
        secret,
        app_secret,
    }
}

/// The organisation's webhook endpoints.
#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<Endpoint>,
}

/// A new signing secret; the previous one keeps signing until `previousSecretExpiresAt`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    /// A `standard` endpoint's new secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_")]
    secret: Option<String>,
    /// A `meta` endpoint's new app secret (it signs alone from now on: Meta's header carries
    /// one signature).
    #[serde(skip_serializing_if = "Option::is_none")]
    app_secret: Option<String>,
    previous_secret_expires_at: Option<Timestamp>,
}

pub fn rotated_secret(e: &WithSecret) -> RotatedSecret {
    let (secret, app_secret) = secret_fields(e);
    RotatedSecret {
        secret,
        app_secret,
        previous_secret_expires_at: match e.endpoint.format {
            WebhookFormat::Meta => None,
            _ => e.endpoint.previous_secret_until,
        },
    }
}

/// One attempt to deliver an event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    attempted_at: Timestamp,
    /// The endpoint's HTTP status (`null` when it did not answer).
    status_code: Option<u16>,
    latency_ms: i64,
    error: Option<String>,
    /// When it is tried again (`null` once it succeeded or died).
    next_attempt_at: Option<Timestamp>,
}

/// An event's delivery to one endpoint, with every attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `dlv_…`
    id: String,
    event_id: EventId,
    event_type: String,
    group_id: GroupId,
    sequence: i64,
    status: DeliveryStatus,
    next_attempt_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
    attempts: Vec<Attempt>,
}

pub fn delivery(d: &webhook::DeliveryView) -> Delivery {
    Delivery {
        id: format!("dlv_{}", d.id),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        group_id: d.group_id.clone(),
        sequence: d.sequence,
        status: d.status,
        next_attempt_at: d.next_attempt_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
        attempts: d
            .attempts
            .iter()
            .map(|a| Attempt {
                attempted_at: a.attempted_at,
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                error: a.error.clone(),
                next_attempt_at: a.next_attempt_at,
            })
            .collect(),
    }
}

/// An endpoint's deliveries, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryPage {
    pub data: Vec<Delivery>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A simulated WhatsApp user (unconfigured users are on WhatsApp and addable by anyone).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxUser {
    pub phone: String,
    #[serde(rename = "onWhatsApp")]
    pub on_whatsapp: bool,
    pub add_privacy: AddPrivacy,
    /// Your numbers that have the user as a contact.
    pub contact_of: Vec<String>,
}

/// What a simulated user's action did.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum SandboxOutcome {
    Joined,
    JoinRequestCreated,
    JoinRequestRevoked,
    Left,
}

/// A simulated user's action on a group.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxAction {
    pub result: SandboxOutcome,
    pub phone: Phone,
    /// Your group (`null` if the gateway has not recorded it yet).
    pub group_id: Option<GroupId>,
    /// The request filed (`join_request_created` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_request_id: Option<String>,
}

/// A group's suspension, as set.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    pub group_id: GroupId,
    pub suspended: bool,
}

/// The refusal the group's next write will get.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefusalSet {
    pub group_id: GroupId,
    pub refuse_next_write: Refusal,
}

#[derive(Serialize, ToSchema)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

/// DoubleTick's answer to a create.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoubleTickCreated {
    /// Always `true`.
    pub success: bool,
    pub group_id: GroupId,
}
