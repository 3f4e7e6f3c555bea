//! The request bodies the handlers read, as the OpenAPI document describes them. Handlers
//! read fields one by one (so each error names its field), and the limits here are the
//! core's: a body the document allows is one the handler accepts (Schemathesis sends them).

use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        RefOr,
        schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type},
    },
};
use wagroups_core::{
    event::EventType,
    model::{AddPrivacy, JoinApprovalMode},
    validate::{DESCRIPTION_MAX, GROUP_ID_MAX, SUBJECT_MAX},
    webhook::WebhookFormat,
};

/// The most items one request may name (participants, join requests).
const ITEMS_MAX: usize = wagroups_core::participants::ITEMS_MAX;

/// A phone as a client may give it.
pub struct PhoneInput;
impl PartialSchema for PhoneInput {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("+91 99999 99999, 919999999999, …@c.us or …@s.whatsapp.net"))
            .into()
    }
}
impl ToSchema for PhoneInput {}

fn subject() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(SUBJECT_MAX))
        .pattern(Some("^[^\u{0}-\u{1f}\u{7f}-\u{9f}]+$"))
        .description(Some("Trimmed; no control characters"))
        .into()
}

fn description() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(DESCRIPTION_MAX))
        .pattern(Some("^[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{7f}-\u{9f}]*$"))
        .description(Some("Line breaks and tabs allowed, no other control characters"))
        .into()
}

fn client_group_id() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(GROUP_ID_MAX))
        .pattern(Some("^[A-Za-z0-9_.-]+$"))
        .description(Some("Your own ID for the group (minted, `grp_…`, when omitted)"))
        .into()
}

fn phones(min: usize) -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(PhoneInput::schema())
        .min_items(Some(min))
        .max_items(Some(ITEMS_MAX))
        .into()
}

fn phones_at_least_one() -> RefOr<Schema> {
    phones(1)
}

fn phones_any() -> RefOr<Schema> {
    phones(0)
}

fn join_request_ids() -> RefOr<Schema> {
    ArrayBuilder::new()
        .items(ObjectBuilder::new().schema_type(Type::String))
        .min_items(Some(1))
        .max_items(Some(ITEMS_MAX))
        .into()
}

fn url() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::Custom("uri".into())))
        .max_length(Some(wagroups_core::webhook::URL_MAX))
        .into()
}

fn endpoint_description() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(wagroups_core::webhook::DESCRIPTION_MAX))
        .into()
}

fn event_types() -> RefOr<Schema> {
    ArrayBuilder::new().items(EventType::schema()).into()
}

/// Create a group (the native API and DoubleTick's).
#[derive(ToSchema)]
#[schema(as = CreateGroup)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct CreateGroup {
    /// A business number of your organisation.
    #[schema(examples("15550100001"))]
    waba_number: String,
    #[schema(schema_with = subject)]
    subject: String,
    #[schema(schema_with = description)]
    description: Option<String>,
    join_approval_mode: Option<JoinApprovalMode>,
    #[schema(schema_with = client_group_id)]
    group_id: Option<String>,
    /// Added at creation (invited on invite-only providers); the native answer carries `results`.
    #[schema(schema_with = phones_any)]
    participants: Option<Vec<String>>,
    /// Invite, by link, whoever cannot be added directly (default `true`).
    #[schema(default = true)]
    invite_fallback: Option<bool>,
}

/// Change a group: only the fields given change (`GROUP_UPDATED`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct UpdateGroup {
    #[schema(schema_with = subject)]
    subject: Option<String>,
    #[schema(schema_with = description)]
    description: Option<String>,
    join_approval_mode: Option<JoinApprovalMode>,
    settings: Option<SettingsPatch>,
}

/// Linked-device profile only (422 on Meta's Cloud API).
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SettingsPatch {
    announcement_only: Option<bool>,
    locked: Option<bool>,
}

/// Participants to add.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct AddParticipants {
    #[schema(schema_with = phones_at_least_one)]
    participants: Vec<String>,
    /// Invite, by link, whoever cannot be added directly (default `true`).
    #[schema(default = true)]
    invite_fallback: Option<bool>,
}

/// Participants to remove, promote or demote.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Participants {
    #[schema(schema_with = phones_at_least_one)]
    participants: Vec<String>,
}

/// Join requests to approve or reject.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequestIds {
    #[schema(schema_with = join_request_ids)]
    join_request_ids: Vec<String>,
}

/// A webhook endpoint to create.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    #[schema(schema_with = url)]
    url: String,
    /// Omitted means all.
    #[schema(schema_with = event_types)]
    event_types: Option<Vec<String>>,
    /// Omitted means all.
    waba_numbers: Option<Vec<String>>,
    /// `standard` (default) or `meta` (Meta's envelope, signed `X-Hub-Signature-256`).
    format: Option<WebhookFormat>,
    #[schema(schema_with = endpoint_description)]
    description: Option<String>,
    /// `meta` endpoints (required): the verify token of Meta's handshake, which wagroups makes
    /// before saving the endpoint (`GET ?hub.mode=subscribe&hub.verify_token&hub.challenge`).
    #[schema(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    verify_token: Option<String>,
    /// `meta` endpoints: the app secret that signs deliveries (generated when absent).
    #[schema(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    app_secret: Option<String>,
}

/// A change to a webhook endpoint: only the fields given change; `null` clears a filter.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    #[schema(schema_with = url)]
    url: Option<String>,
    #[schema(schema_with = event_types)]
    event_types: Option<Option<Vec<String>>>,
    waba_numbers: Option<Option<Vec<String>>>,
    #[schema(schema_with = endpoint_description)]
    description: Option<Option<String>>,
    /// Cannot change between `standard` and `meta`.
    format: Option<WebhookFormat>,
    disabled: Option<bool>,
    /// `meta` endpoints: a new verify token (the handshake is made again, as for a new URL).
    #[schema(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    verify_token: Option<String>,
}

/// Queue again the failed and dead deliveries created since a time.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Recover {
    since: wagroups_core::time::Timestamp,
}

/// A simulated user taps an invite link.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SandboxJoin {
    phone: PhoneInput,
    invite_link: String,
}

/// A simulated user and one of your groups.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SandboxMember {
    phone: PhoneInput,
    group_id: String,
}

/// How a simulated user behaves; only the fields given change.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SandboxUserPatch {
    #[serde(rename = "onWhatsApp")]
    on_whatsapp: Option<bool>,
    add_privacy: Option<AddPrivacy>,
    /// Business numbers that have the user as a contact.
    contact_of: Option<Vec<String>>,
}

/// The refusal WhatsApp gives the group's next write.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefuseNextWrite {
    #[schema(min_length = 1, max_length = 64)]
    code: Option<String>,
    #[schema(min_length = 1, max_length = 512)]
    message: Option<String>,
}
