//! Wawp's group calls in the document (seed `002`; the shapes Wawp's pages do not show are
//! wagroups' own, said so in the README).
#![allow(dead_code)]

use std::collections::BTreeMap;

use utoipa::{
    IntoResponses, ToSchema,
    openapi::{RefOr, response::Response, schema::Ref},
};

#[derive(ToSchema)]
pub struct ParticipantIn {
    /// `<digits>@c.us`
    id: String,
}

/// Wawp's create body (each field may be in the query string instead; `participants` there
/// as JSON text).
#[derive(ToSchema)]
pub struct CreateGroup {
    /// The number's digits or its instance ID.
    instance_id: Option<String>,
    /// A wagroups API key.
    access_token: Option<String>,
    #[schema(min_length = 1, max_length = 128, pattern = "\\S")]
    name: String,
    #[schema(max_length = 2048)]
    description: Option<String>,
    #[schema(max_items = 256)]
    participants: Option<Vec<ParticipantIn>>,
}

/// `instance_id` and `access_token`, in the body (or the query string).
#[derive(ToSchema)]
pub struct Credentials {
    instance_id: Option<String>,
    access_token: Option<String>,
}

#[derive(ToSchema)]
pub struct Member {
    /// `<digits>@c.us`
    id: String,
    #[schema(rename = "isAdmin")]
    is_admin: bool,
    #[schema(rename = "isSuperAdmin")]
    is_super_admin: bool,
}

/// The outcome for one participant asked for: `added`, `invited` (sent the invite link 1:1:
/// their privacy forbids adding them, or the number is invite-only), `invite_required` (to
/// send the `inviteLink` yourself), `not_on_whatsapp`, `invalid`…
#[derive(ToSchema)]
pub struct Outcome {
    id: String,
    status: String,
    #[schema(rename = "inviteLink")]
    invite_link: Option<String>,
    message: Option<String>,
}

/// A group; `results` on a create only.
#[derive(ToSchema)]
pub struct GroupOut {
    /// `…@g.us`: store it, it is the group's permanent ID.
    id: String,
    name: String,
    description: String,
    /// The business number, `<digits>@c.us`.
    owner: String,
    #[schema(rename = "inviteLink")]
    invite_link: Option<String>,
    participants: Option<Vec<Member>>,
    #[schema(rename = "participantsCount")]
    participants_count: Option<i64>,
    #[schema(rename = "createdAt")]
    created_at: String,
    results: Option<Vec<Outcome>>,
}

#[derive(ToSchema)]
pub struct InviteCode {
    #[schema(rename = "inviteCode")]
    invite_code: String,
    #[schema(rename = "inviteLink")]
    invite_link: String,
}

/// `{"code", "message"}`
#[derive(ToSchema)]
pub struct WawpError {
    /// `invalid_parameter` (400), `invalid_access_token` (401), `forbidden`, `not_found`,
    /// `conflict`, `unprocessable`, `unavailable`, `internal_error`.
    code: String,
    message: String,
}

pub struct WawpErrors;

impl IntoResponses for WawpErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [400u16, 401, 403, 404, 408, 409, 413, 422, 503]
            .into_iter()
            .map(|c| (c.to_string(), RefOr::Ref(Ref::from_response_name("WawpError"))))
            .collect()
    }
}
