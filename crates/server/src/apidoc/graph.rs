//! Meta's Graph dialect in the document: its parameters, request bodies and answers, in
//! Meta's shapes (snake_case; Meta's own OpenAPI document in `specs/meta/` is the reference
//! the contract tests hold the answers to).
#![allow(dead_code)]

use std::collections::BTreeMap;

use utoipa::{
    IntoParams, IntoResponses, ToSchema,
    openapi::{RefOr, response::Response, schema::Ref},
};
use wagroups_core::{
    model::JoinApprovalMode,
    service::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX},
    validate::{DESCRIPTION_MAX, SUBJECT_MAX},
};

/// A number in the path: its phone number ID (`GET /v1/numbers`).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GraphNumberPath {
    /// Meta's API version, `vNN.N` (any accepted).
    #[param(example = "v23.0")]
    version: String,
    /// The number's phone number ID.
    id: String,
}

/// A group in the path: its Graph group ID (`graphGroupId` in the native API).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GraphGroupPath {
    /// Meta's API version, `vNN.N` (any accepted).
    #[param(example = "v23.0")]
    version: String,
    /// The group's Graph ID (`graphGroupId`).
    id: String,
}

/// Meta's paging of active groups.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphListQuery {
    /// Groups per page.
    #[param(minimum = 1, maximum = 1024, default = 25)]
    limit: Option<i64>,
    /// `paging.cursors.after` of the page before (older groups follow).
    after: Option<String>,
    /// `paging.cursors.before` of the page after (the newer groups before it).
    before: Option<String>,
    /// The API key, when not sent as `Authorization: Bearer`.
    access_token: Option<String>,
}

const _: () = assert!(LIST_LIMIT_MAX == 1024 && LIST_LIMIT_DEFAULT == 25);

/// The fields to answer.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphFieldsQuery {
    /// Comma-separated: subject, description, participants, join_approval_mode, suspended,
    /// creation_timestamp, total_participant_count.
    fields: Option<String>,
    /// The API key, when not sent as `Authorization: Bearer`.
    access_token: Option<String>,
}

/// Meta's create-group body.
#[derive(ToSchema)]
pub struct GraphCreateGroup {
    #[schema(pattern = "^whatsapp$")]
    messaging_product: String,
    /// Whitespace is trimmed; 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128, pattern = "\\S")]
    subject: String,
    #[schema(max_length = 2048)]
    description: Option<String>,
    join_approval_mode: Option<JoinApprovalMode>,
}

const _: () = assert!(SUBJECT_MAX == 128 && DESCRIPTION_MAX == 2048);

/// Meta's update-settings body: the fields to change (at least one). Pictures are refused.
#[derive(ToSchema)]
pub struct GraphUpdateGroup {
    #[schema(pattern = "^whatsapp$")]
    messaging_product: String,
    #[schema(min_length = 1, max_length = 128, pattern = "\\S")]
    subject: Option<String>,
    #[schema(max_length = 2048)]
    description: Option<String>,
}

/// `{"messaging_product": "whatsapp"}`.
#[derive(ToSchema)]
pub struct GraphMessagingProduct {
    #[schema(pattern = "^whatsapp$")]
    messaging_product: String,
}

/// Join request IDs to approve or reject.
#[derive(ToSchema)]
pub struct GraphJoinRequests {
    #[schema(pattern = "^whatsapp$")]
    messaging_product: String,
    #[schema(min_items = 1, max_items = 256)]
    join_requests: Vec<String>,
}

/// One user, by phone number or WhatsApp ID.
#[derive(ToSchema)]
pub struct GraphUser {
    #[schema(example = "+16505551234")]
    user: String,
}

/// 1 to 8 users, none twice.
#[derive(ToSchema)]
pub struct GraphParticipants {
    #[schema(pattern = "^whatsapp$")]
    messaging_product: String,
    #[schema(min_items = 1, max_items = 8)]
    participants: Vec<GraphUser>,
}

/// A create's answer.
#[derive(ToSchema)]
pub struct RequestId {
    messaging_product: String,
    /// The `request_id` the group's `group_create` webhook carries.
    request_id: String,
}

/// One active group.
#[derive(ToSchema)]
pub struct GroupSummary {
    id: String,
    subject: String,
    /// Unix seconds, as a string (Meta's type).
    created_at: String,
}

#[derive(ToSchema)]
pub struct GroupListData {
    groups: Vec<GroupSummary>,
}

#[derive(ToSchema)]
pub struct Cursors {
    before: String,
    after: String,
}

/// Graph paging: cursors, and the URLs of the pages around.
#[derive(ToSchema)]
pub struct Paging {
    cursors: Cursors,
    next: Option<String>,
    previous: Option<String>,
}

/// A page of active groups.
#[derive(ToSchema)]
pub struct GroupList {
    data: GroupListData,
    paging: Option<Paging>,
}

#[derive(ToSchema)]
pub struct WaId {
    wa_id: String,
}

/// A group's info: `id` and `messaging_product`, and the fields asked for.
#[derive(ToSchema)]
pub struct GroupInfo {
    id: String,
    messaging_product: String,
    subject: Option<String>,
    description: Option<String>,
    participants: Option<Vec<WaId>>,
    join_approval_mode: Option<JoinApprovalMode>,
    suspended: Option<bool>,
    creation_timestamp: Option<i64>,
    /// Members besides the business.
    total_participant_count: Option<i64>,
}

/// `{"success": true}`.
#[derive(ToSchema)]
pub struct Success {
    success: bool,
}

#[derive(ToSchema)]
pub struct InviteLink {
    messaging_product: String,
    invite_link: String,
}

/// Meta's answer to deleting the link (`success` is the string `"true"`).
#[derive(ToSchema)]
pub struct LinkDeleted {
    messaging_product: String,
    success: String,
}

#[derive(ToSchema)]
pub struct JoinRequest {
    join_request_id: String,
    wa_id: String,
    creation_timestamp: i64,
}

#[derive(ToSchema)]
pub struct JoinRequestList {
    data: Vec<JoinRequest>,
    paging: Option<Paging>,
}

/// A per-item error, as Meta writes it.
#[derive(ToSchema)]
pub struct ItemError {
    code: i64,
    message: String,
    title: String,
    error_data: ErrorDetails,
}

#[derive(ToSchema)]
pub struct ErrorDetails {
    details: String,
}

#[derive(ToSchema)]
pub struct FailedJoinRequest {
    join_request_id: String,
    errors: Vec<ItemError>,
}

/// Approved (or rejected) join requests, and those that were not.
#[derive(ToSchema)]
pub struct JoinRequestsResolved {
    messaging_product: String,
    approved_join_requests: Option<Vec<String>>,
    rejected_join_requests: Option<Vec<String>>,
    failed_join_requests: Option<Vec<FailedJoinRequest>>,
    errors: Option<Vec<ItemError>>,
}

#[derive(ToSchema)]
pub struct Input {
    input: String,
}

#[derive(ToSchema)]
pub struct FailedParticipant {
    input: String,
    errors: Vec<ItemError>,
}

/// Some participants were changed, some not (`131201`).
#[derive(ToSchema)]
pub struct ParticipantsPartial {
    messaging_product: String,
    removed_participants: Option<Vec<Input>>,
    added_participants: Option<Vec<Input>>,
    failed_participants: Vec<FailedParticipant>,
    errors: Vec<ItemError>,
}

#[derive(ToSchema)]
pub struct GraphErrorData {
    messaging_product: String,
    /// What was wrong, naming the parameter and the limit.
    details: String,
}

#[derive(ToSchema)]
pub struct GraphErrorObject {
    /// `(#CODE) Title`.
    message: String,
    /// `OAuthException`.
    #[serde(rename = "type")]
    kind: String,
    /// Meta's code: 100 invalid parameter, 104/190 token, 200 permission, 4 rate limit,
    /// 131041 unknown group, 131059 invalid cursor, 131202 duplicate participant, 131204
    /// over the limit, 131207 suspended, 131211 group limit, 131212 not a participant,
    /// 131213 unknown join request.
    code: i64,
    error_data: GraphErrorData,
    fbtrace_id: String,
}

/// A Graph error.
#[derive(ToSchema)]
pub struct GraphError {
    error: GraphErrorObject,
}

/// The Graph dialect's error answers.
pub struct GraphErrors;

impl IntoResponses for GraphErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [400u16, 401, 403, 408, 413, 429, 500, 503]
            .into_iter()
            .map(|c| (c.to_string(), RefOr::Ref(Ref::from_response_name("GraphError"))))
            .collect()
    }
}
