//! The WUTS gateway's calls in the document, in WUTS's shapes (seed `004`).
#![allow(dead_code)]

use std::collections::BTreeMap;

use utoipa::{
    IntoResponses, ToSchema,
    openapi::{RefOr, response::Response, schema::Ref},
};

/// Group options at creation.
#[derive(ToSchema)]
pub struct Options {
    /// Only admins send messages (linked-device providers).
    announcement: Option<bool>,
    /// Only admins edit the group's info (linked-device providers).
    locked: Option<bool>,
    /// New members need an admin's approval.
    join_approval: Option<bool>,
    /// Link to a community: refused (`CAPABILITY_MISSING`), no provider has communities.
    community: Option<bool>,
}

/// WUTS's create body.
#[derive(ToSchema)]
pub struct CreateGroup {
    #[schema(min_length = 1, max_length = 128, pattern = "\\S")]
    name: String,
    /// `<digits>@s.whatsapp.net` (or any phone form wagroups reads).
    #[schema(max_items = 256)]
    participants: Option<Vec<String>>,
    options: Option<Options>,
}

#[derive(ToSchema)]
pub struct Member {
    jid: String,
    phone_number: String,
    is_admin: bool,
    is_super_admin: bool,
}

#[derive(ToSchema)]
pub struct GroupOut {
    /// `…@g.us`
    jid: String,
    name: String,
    /// The business number.
    owner: String,
    created_at: String,
    is_announce: bool,
    is_locked: bool,
    join_approval: bool,
    /// Members, the business number included.
    members_count: i64,
    participants: Vec<Member>,
}

/// A participant asked for who is not a member: `invited` (sent the invite link 1:1, as
/// on invite-only numbers or when their privacy forbids adding them), `invite_required`,
/// `not_on_whatsapp`, `invalid`…
#[derive(ToSchema)]
pub struct NotAdded {
    jid: String,
    status: String,
    invite_link: Option<String>,
}

/// `{"success": true, "group"}`; `participants_not_added` only when someone asked for was not
/// added.
#[derive(ToSchema)]
pub struct Created {
    success: bool,
    group: GroupOut,
    participants_not_added: Option<Vec<NotAdded>>,
    /// Why the options asked for were not applied once the group existed (it is answered).
    settings_error: Option<String>,
}

#[derive(ToSchema)]
pub struct Invite {
    success: bool,
    jid: String,
    invite_link: String,
    invite_code: String,
}

/// `{"success": false, "error", "error_code", "timestamp"}`
#[derive(ToSchema)]
pub struct WutsError {
    success: bool,
    error: String,
    /// `VALIDATION_ERROR`, `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, `CONFLICT`,
    /// `CAPABILITY_MISSING`, `GROUP_CREATE_FAILED`, `GROUP_NOT_ACTIVE`, `GROUP_SUSPENDED`,
    /// `RATE_LIMITED`, `UNAVAILABLE`, `REQUEST_TIMEOUT`, `PAYLOAD_TOO_LARGE`, `INTERNAL_ERROR`.
    error_code: String,
    timestamp: String,
}

/// WUTS's error answers.
pub struct WutsErrors;

impl IntoResponses for WutsErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [400u16, 401, 403, 404, 408, 409, 413, 422, 503]
            .into_iter()
            .map(|c| (c.to_string(), RefOr::Ref(Ref::from_response_name("WutsError"))))
            .collect()
    }
}
