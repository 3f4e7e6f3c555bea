//! Meta's Graph dialect: the Cloud API Groups endpoints, served under `/graph/{version}` on
//! any provider, so a client written for Meta runs against wagroups by changing its base URL.
//! A thin adapter: Meta's request shapes in, the core's use cases, Meta's answers and errors
//! out (`graph_error`), checked against Meta's OpenAPI document by the contract tests.

use axum::{
    Json,
    extract::{FromRequest, FromRequestParts, Request, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Map, Value, json};
use wagroups_core::{
    ids::graph_group_id,
    model::{ApiKey, Group, GroupStatus, ItemStatus, Participant, ParticipantState},
    ops::{GroupPatch, WriteOptions, Written},
    phone::Phone,
    service::CreateGroupRequest,
};

use crate::{
    AppState, Routes,
    error::{ApiError, Dialect, DialectError},
    extract::{Fields, Params, read_body},
    json,
};

type Result<T> = std::result::Result<T, DialectError<Graph>>;

/// Most participants one removal (or addition) names, as Meta allows.
const PARTICIPANTS_MAX: usize = 8;

/// Meta's Graph API errors: `{"error": {"message": "(#CODE) Title", "type", "code",
/// "error_data": {"messaging_product", "details"}, "fbtrace_id"}}`, with Meta's codes and
/// HTTP statuses. A numeric `ApiError::code` is a Meta code already (the handlers' own, or
/// Meta's passed through by the cloud-api provider); the others are mapped.
pub struct Graph;

impl Dialect for Graph {
    fn body(e: &ApiError) -> Value {
        let (_, code, title) = graph_error(e);
        json!({ "error": {
            "message": format!("(#{code}) {title}"),
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": e.message },
            "fbtrace_id": format!("A{}", wagroups_core::ids::random_alnum(22)),
        }})
    }

    fn field_name(core: &str) -> Option<&'static str> {
        match core {
            "joinApprovalMode" => Some("join_approval_mode"),
            "wabaNumber" => Some("phone_number_id"),
            "joinRequestIds" => Some("join_requests"),
            _ => None,
        }
    }

    fn render(e: ApiError) -> Response {
        let e = e.renamed(Self::field_name);
        let (status, _, _) = graph_error(&e);
        (status, Json(Self::body(&e))).into_response()
    }
}

/// Meta's title of a code, and the HTTP status Meta answers it with.
fn meta_code(code: i64) -> (StatusCode, &'static str) {
    match code {
        1 => (StatusCode::INTERNAL_SERVER_ERROR, "An unknown error occurred"),
        2 => (StatusCode::SERVICE_UNAVAILABLE, "Service temporarily unavailable"),
        4 => (StatusCode::TOO_MANY_REQUESTS, "Application request limit reached"),
        10 => (
            StatusCode::FORBIDDEN,
            "Application does not have permission for this action",
        ),
        100 => (StatusCode::BAD_REQUEST, "Invalid parameter"),
        104 => (
            StatusCode::UNAUTHORIZED,
            "An access token is required to request this resource",
        ),
        190 => (StatusCode::UNAUTHORIZED, "Invalid OAuth access token"),
        200 => (StatusCode::FORBIDDEN, "Permissions error"),
        131041 => (StatusCode::BAD_REQUEST, "Group unknown"),
        131059 => (StatusCode::BAD_REQUEST, "Invalid cursor"),
        131201 => (StatusCode::PARTIAL_CONTENT, "Request partially succeeded"),
        131202 => (StatusCode::BAD_REQUEST, "Duplicate participant"),
        131203 => (StatusCode::BAD_REQUEST, "Unable to add participant to group"),
        131204 => (StatusCode::BAD_REQUEST, "Participant overlimit"),
        131207 => (StatusCode::FORBIDDEN, "Group suspended"),
        131208 => (StatusCode::TOO_MANY_REQUESTS, "Group Rate Limit Hit"),
        131211 => (StatusCode::BAD_REQUEST, "Group create limit reached"),
        131212 => (StatusCode::BAD_REQUEST, "Participant is not a part of the group."),
        131213 => (StatusCode::BAD_REQUEST, "Group join request does not exist."),
        131214 => (StatusCode::BAD_REQUEST, "Group creation is temporarily disabled"),
        131215 => (
            StatusCode::BAD_REQUEST,
            "This phone number is not eligible to access Groups APIs",
        ),
        _ => (StatusCode::BAD_REQUEST, "Request failed"),
    }
}

/// The status, Meta code and title an error is answered with.
fn graph_error(e: &ApiError) -> (StatusCode, i64, &'static str) {
    let code = match e.code.parse::<i64>() {
        Ok(c) => c,
        Err(_) => match (e.status, e.code.as_str()) {
            (_, "unauthorized") => 190,
            (_, "forbidden") => 200,
            (_, "group_suspended") => 131207,
            (_, "group_deleted" | "group_not_active") => 131041,
            (_, "group_full") => 131204,
            (_, "invalid_cursor") => 131059,
            (StatusCode::SERVICE_UNAVAILABLE, _) => 2,
            (StatusCode::TOO_MANY_REQUESTS, _) => 4,
            (s, _) if s.is_server_error() => 1,
            _ => 100,
        },
    };
    let (status, title) = meta_code(code);
    // HTTP's own refusals keep their status (Meta's code says the rest).
    match e.status {
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE => {
            (e.status, code, title)
        }
        _ => (status, code, title),
    }
}

fn err(code: i64, message: impl Into<String>) -> DialectError<Graph> {
    DialectError::new(ApiError::new(meta_code(code).0, &code.to_string(), message))
}

fn invalid(field: &str, message: impl Into<String>) -> DialectError<Graph> {
    DialectError::new(ApiError::invalid(field, message))
}

/// The dialect's operations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create,
        list,
        info,
        update,
        delete,
        get_invite_link,
        reset_invite_link,
        delete_invite_link,
        list_join_requests,
        approve_join_requests,
        reject_join_requests,
        add_participants,
        remove_participants
    ),
    components(schemas(
        crate::apidoc::graph::GraphCreateGroup,
        crate::apidoc::graph::GraphUpdateGroup,
        crate::apidoc::graph::GraphMessagingProduct,
        crate::apidoc::graph::GraphJoinRequests,
        crate::apidoc::graph::GraphParticipants,
        crate::apidoc::graph::GraphUser,
        crate::apidoc::graph::RequestId,
        crate::apidoc::graph::GroupList,
        crate::apidoc::graph::GroupListData,
        crate::apidoc::graph::GroupSummary,
        crate::apidoc::graph::Paging,
        crate::apidoc::graph::Cursors,
        crate::apidoc::graph::GroupInfo,
        crate::apidoc::graph::WaId,
        crate::apidoc::graph::Success,
        crate::apidoc::graph::InviteLink,
        crate::apidoc::graph::LinkDeleted,
        crate::apidoc::graph::JoinRequestList,
        crate::apidoc::graph::JoinRequest,
        crate::apidoc::graph::JoinRequestsResolved,
        crate::apidoc::graph::FailedJoinRequest,
        crate::apidoc::graph::ItemError,
        crate::apidoc::graph::ErrorDetails,
        crate::apidoc::graph::ParticipantsPartial,
        crate::apidoc::graph::Input,
        crate::apidoc::graph::FailedParticipant,
        crate::apidoc::graph::GraphError,
        crate::apidoc::graph::GraphErrorObject,
        crate::apidoc::graph::GraphErrorData,
    ))
)]
pub struct Doc;

pub fn routes() -> Routes {
    vec![
        ("/graph/{version}/{id}/groups", get(list).post(create)),
        ("/graph/{version}/{id}", get(info).post(update).delete(delete)),
        (
            "/graph/{version}/{id}/invite_link",
            get(get_invite_link).post(reset_invite_link).delete(delete_invite_link),
        ),
        (
            "/graph/{version}/{id}/join_requests",
            get(list_join_requests)
                .post(approve_join_requests)
                .delete(reject_join_requests),
        ),
        (
            "/graph/{version}/{id}/participants",
            axum::routing::post(add_participants).delete(remove_participants),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Extractors

/// The caller's API key, as Meta takes its access token: `Authorization: Bearer <token>` or
/// an `access_token` query parameter. None: `104`; not a live key: `190`.
pub struct GraphAuth(pub ApiKey, pub Params);

impl FromRequestParts<AppState> for GraphAuth {
    type Rejection = DialectError<Graph>;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let query = Params::parse(parts.uri.query().unwrap_or("")).map_err(DialectError::new)?;
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty());
        let scheme = |s: &str| s.eq_ignore_ascii_case("bearer") || s.eq_ignore_ascii_case("oauth");
        let token = match header {
            Some(h) if scheme(h) => String::new(),
            Some(h) => match h.split_once(' ') {
                Some((s, rest)) if scheme(s) => rest.trim().to_string(),
                _ => h.to_string(),
            },
            None => query.get("access_token").unwrap_or("").to_string(),
        };
        if token.is_empty() {
            return Err(err(
                104,
                "send the wagroups API key as Authorization: Bearer <key> or as the access_token parameter",
            ));
        }
        let key = state.service.authenticate(&token).await.map_err(|e| match e {
            wagroups_core::service::ServiceError::Unauthorized => {
                err(190, "the access token is not a live wagroups API key")
            }
            other => DialectError::from(other),
        })?;
        Ok(GraphAuth(key, query))
    }
}

/// The route's `{version}` (Meta's `vNN.N`; any accepted) and `{id}` (a phone number ID or
/// a group ID).
pub struct GraphPath {
    pub id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for GraphPath {
    type Rejection = DialectError<Graph>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let axum::extract::Path((version, id)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|_| invalid("path", "is not valid UTF-8 once percent-decoded"))?;
        let ok = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| {
                !major.is_empty()
                    && !minor.is_empty()
                    && major.bytes().all(|b| b.is_ascii_digit())
                    && minor.bytes().all(|b| b.is_ascii_digit())
            });
        if !ok {
            return Err(invalid(
                "version",
                format!("unknown API version {version:?} (Meta's form: v23.0)"),
            ));
        }
        Ok(GraphPath { id })
    }
}

/// A request body as Meta takes it: JSON, `application/x-www-form-urlencoded` or
/// `multipart/form-data` (the array fields of a form as JSON text, as Graph takes them). No body: no fields. A file part is kept as a field naming it, for
/// the operation to refuse.
pub struct GraphBody(pub Fields);

impl FromRequest<AppState> for GraphBody {
    type Rejection = DialectError<Graph>;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim().to_string();
        if mime == "multipart/form-data" {
            let mut form = axum::extract::Multipart::from_request(req, state)
                .await
                .map_err(|e| invalid("body", format!("is not a readable multipart form: {e}")))?;
            let mut fields = Map::new();
            loop {
                let part = match form.next_field().await {
                    Ok(Some(p)) => p,
                    Ok(None) => break,
                    Err(e) => return Err(invalid("body", format!("is not a readable multipart form: {e}"))),
                };
                let name = part.name().unwrap_or("").to_string();
                if part.file_name().is_some() {
                    fields.insert(name.clone(), json!({ "file": name }));
                    continue;
                }
                let text = part
                    .text()
                    .await
                    .map_err(|e| invalid(&name, format!("could not be read: {e}")))?;
                put_form_value(&mut fields, name, text)?;
            }
            return Ok(GraphBody(Fields(fields)));
        }
        let bytes = read_body(req).await.map_err(DialectError::new)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(GraphBody(Fields(Map::new())));
        }
        if mime == "application/x-www-form-urlencoded" {
            let text = std::str::from_utf8(&bytes).map_err(|_| invalid("body", "is not UTF-8"))?;
            let params = Params::parse(text).map_err(DialectError::new)?;
            let mut fields = Map::new();
            for (k, v) in params.into_pairs() {
                put_form_value(&mut fields, k, v)?;
            }
            return Ok(GraphBody(Fields(fields)));
        }
        if !(mime.is_empty()
            || mime == "application/json"
            || (mime.starts_with("application/") && mime.ends_with("+json")))
        {
            return Err(invalid(
                "Content-Type",
                format!(
                    "must be application/json, application/x-www-form-urlencoded or multipart/form-data, got {mime:?}"
                ),
            ));
        }
        match json::parse_strict(&bytes) {
            Ok(Value::Object(map)) => Ok(GraphBody(Fields(map))),
            Ok(_) => Err(invalid("body", "must be a JSON object")),
            Err(json::StrictError::Duplicate(path)) => {
                Err(invalid(&path, "appears more than once (each key may be given once)"))
            }
            Err(json::StrictError::Syntax(e)) => Err(invalid("body", format!("is not valid JSON: {e}"))),
        }
    }
}

/// The fields Graph takes as JSON text in a form (its arrays).
const JSON_FORM_FIELDS: [&str; 2] = ["participants", "join_requests"];

/// A form field: the array fields are JSON text, as Graph takes them; the others are text.
fn put_form_value(fields: &mut Map<String, Value>, name: String, text: String) -> Result<()> {
    if fields.contains_key(&name) {
        return Err(invalid(&name, "is given more than once"));
    }
    let value = if JSON_FORM_FIELDS.contains(&name.as_str()) {
        serde_json::from_str(&text).map_err(|e| invalid(&name, format!("is not valid JSON: {e}")))?
    } else {
        Value::String(text)
    };
    fields.insert(name, value);
    Ok(())
}

/// `messaging_product`, which Meta's writes require: `whatsapp`.
fn messaging_product(f: &Fields) -> Result<()> {
    match f.string("messaging_product").map_err(DialectError::new)? {
        Some(p) if p == "whatsapp" => Ok(()),
        Some(p) => Err(invalid("messaging_product", format!("must be \"whatsapp\", got {p:?}"))),
        None => Err(invalid("messaging_product", "is required (\"whatsapp\")")),
    }
}

// ---------------------------------------------------------------------------------------
// Lookups

/// The key's group with this Graph ID; anything else is Meta's `131041`.
async fn group(state: &AppState, key: &ApiKey, id: &str) -> Result<(Group, Vec<Participant>)> {
    let unknown = || {
        err(
            131041,
            format!("group {id:?} was not found, either because it does not exist or this key may not use it"),
        )
    };
    match state.service.group_by_graph_id(key, id).await {
        Ok((g, _)) if g.status == GroupStatus::Deleted => Err(unknown()),
        Ok(found) => Ok(found),
        Err(wagroups_core::service::ServiceError::Store(e)) => {
            Err(DialectError::from(wagroups_core::service::ServiceError::Store(e)))
        }
        Err(_) => Err(unknown()),
    }
}

/// The key's number with this phone number ID; an unknown one is a parameter error (100).
async fn number(state: &AppState, key: &ApiKey, id: &str) -> Result<wagroups_core::model::Number> {
    state
        .service
        .number_by_phone_number_id(key, id)
        .await
        .map_err(|e| match e {
            wagroups_core::service::ServiceError::Domain(wagroups_core::DomainError::NotFound { .. }) => invalid(
                "phone_number_id",
                format!("no number with phone number ID {id:?} is registered in this organisation"),
            ),
            other => DialectError::from(other),
        })
}

fn unix_seconds(t: wagroups_core::time::Timestamp) -> i64 {
    t.millis().div_euclid(1000)
}

/// The group's Graph ID (every group the dialect can address has one).
fn graph_id(g: &Group) -> String {
    graph_group_id(&g.waba_number, g.wa_group_id.as_deref().unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Groups

#[utoipa::path(post, path = "/graph/{version}/{id}/groups", tag = "graph", operation_id = "graph.groups.create",
    summary = "Meta's create group: answers its request ID; the group arrives by webhook (group_lifecycle_update)",
    params(crate::apidoc::graph::GraphNumberPath),
    request_body(content = crate::apidoc::graph::GraphCreateGroup, content_type = "application/json"),
    responses((status = 200, description = "Accepted", body = crate::apidoc::graph::RequestId), crate::apidoc::graph::GraphErrors))]
async fn create(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    let number = number(&state, &key, &path.id).await?;
    messaging_product(&f)?;
    let subject = f.string("subject").map_err(DialectError::new)?;
    if subject.is_none() {
        return Err(invalid("subject", "is required (1 to 128 characters)"));
    }
    let req = CreateGroupRequest {
        waba_number: Some(number.waba_number.clone()),
        subject,
        description: f.string("description").map_err(DialectError::new)?,
        join_approval_mode: f.string("join_approval_mode").map_err(DialectError::new)?,
        ..CreateGroupRequest::default()
    };
    let created = state.service.create_group(&key, req).await?;
    Ok(Json(json!({ "messaging_product": "whatsapp", "request_id": created.group.group_id })).into_response())
}

#[utoipa::path(get, path = "/graph/{version}/{id}/groups", tag = "graph", operation_id = "graph.groups.list",
    summary = "Meta's list of active groups, newest first, with Graph cursors",
    params(crate::apidoc::graph::GraphNumberPath, crate::apidoc::graph::GraphListQuery),
    responses((status = 200, description = "A page", body = crate::apidoc::graph::GroupList), crate::apidoc::graph::GraphErrors))]
async fn list(
    State(state): State<AppState>,
    GraphAuth(key, q): GraphAuth,
    path: GraphPath,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response> {
    let number = number(&state, &key, &path.id).await?;
    let page = state
        .service
        .active_groups_page(&number, q.get("limit"), q.get("after"), q.get("before"))
        .await
        .map_err(|e| {
            let api = ApiError::from(e);
            if api.field.as_deref() == Some("cursor") {
                err(
                    131059,
                    "the cursor has either expired or become corrupted: start pagination from the beginning again",
                )
            } else {
                DialectError::new(api)
            }
        })?;
    let groups: Vec<Value> = page
        .groups
        .iter()
        .map(|g| json!({ "id": graph_id(g), "subject": g.subject, "created_at": unix_seconds(g.created_at).to_string() }))
        .collect();
    let mut paging = Map::new();
    if let (Some(before), Some(after)) = (&page.before, &page.after) {
        paging.insert("cursors".into(), json!({ "before": before, "after": after }));
        let link = |cursor: (&str, &str)| page_url(&headers, &uri, &q, cursor);
        if page.older {
            paging.insert("next".into(), json!(link(("after", after))));
        }
        if page.newer {
            paging.insert("previous".into(), json!(link(("before", before))));
        }
    }
    let mut body = json!({ "data": { "groups": groups } });
    if !paging.is_empty() {
        body["paging"] = Value::Object(paging);
    }
    Ok(Json(body).into_response())
}

/// The URL of the page at `cursor`, as Meta's `paging.next`/`previous` give it: this
/// request's URL with the cursor in place of the old ones.
fn page_url(headers: &axum::http::HeaderMap, uri: &axum::http::Uri, q: &Params, cursor: (&str, &str)) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    // The key is not repeated in a link (a client sends it as it sent this request's).
    let mut query: Vec<String> = q
        .pairs()
        .filter(|(k, _)| !matches!(*k, "after" | "before" | "access_token"))
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    query.push(format!("{}={}", cursor.0, encode(cursor.1)));
    let scheme = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}{}?{}", uri.path(), query.join("&"))
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The fields `GET /{group-id}` can answer.
const INFO_FIELDS: [&str; 7] = [
    "subject",
    "description",
    "participants",
    "join_approval_mode",
    "suspended",
    "creation_timestamp",
    "total_participant_count",
];

#[utoipa::path(get, path = "/graph/{version}/{id}", tag = "graph", operation_id = "graph.groups.info",
    summary = "Meta's group info: only the fields asked for (none: id and messaging_product)",
    params(crate::apidoc::graph::GraphGroupPath, crate::apidoc::graph::GraphFieldsQuery),
    responses((status = 200, description = "The group", body = crate::apidoc::graph::GroupInfo), crate::apidoc::graph::GraphErrors))]
async fn info(State(state): State<AppState>, GraphAuth(key, q): GraphAuth, path: GraphPath) -> Result<Response> {
    let mut asked = Vec::new();
    for f in q
        .get("fields")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        if !INFO_FIELDS.contains(&f) {
            return Err(invalid(
                "fields",
                format!(
                    "tried accessing nonexisting field ({f}): the fields are {}",
                    INFO_FIELDS.join(", ")
                ),
            ));
        }
        asked.push(f);
    }
    let (g, participants) = group(&state, &key, &path.id).await?;
    let mut body = json!({ "messaging_product": "whatsapp", "id": graph_id(&g) });
    let members: Vec<&Participant> = participants
        .iter()
        .filter(|p| p.state == ParticipantState::Member && !p.is_business)
        .collect();
    for f in asked {
        body[f] = match f {
            "subject" => json!(g.subject),
            "description" => json!(g.description),
            "participants" => json!(members.iter().map(|p| json!({ "wa_id": p.phone })).collect::<Vec<_>>()),
            "join_approval_mode" => json!(g.join_approval_mode),
            "suspended" => json!(g.suspended),
            "creation_timestamp" => json!(unix_seconds(g.created_at)),
            _ => json!(members.len()),
        };
    }
    Ok(Json(body).into_response())
}

#[utoipa::path(post, path = "/graph/{version}/{id}", tag = "graph", operation_id = "graph.groups.update",
    summary = "Meta's update of subject and description (group_settings_update follows); pictures are refused",
    params(crate::apidoc::graph::GraphGroupPath),
    request_body(content = crate::apidoc::graph::GraphUpdateGroup, content_type = "application/json"),
    responses((status = 200, description = "Done", body = crate::apidoc::graph::Success), crate::apidoc::graph::GraphErrors))]
async fn update(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    for picture in ["profile_picture_file", "file"] {
        if f.0.contains_key(picture) {
            return Err(invalid(
                picture,
                "group pictures are not supported by wagroups: change the subject and description only",
            ));
        }
    }
    messaging_product(&f)?;
    let subject = f.string("subject").map_err(DialectError::new)?;
    let description = f.string("description").map_err(DialectError::new)?;
    if subject.is_none() && description.is_none() {
        return Err(invalid("subject", "or description is required (the fields to change)"));
    }
    let (g, _) = group(&state, &key, &path.id).await?;
    let patch = GroupPatch {
        subject,
        description,
        ..GroupPatch::default()
    };
    state
        .service
        .update_group(&key, &g.group_id, patch, WriteOptions::default())
        .await?;
    Ok(Json(json!({ "success": true })).into_response())
}

#[utoipa::path(delete, path = "/graph/{version}/{id}", tag = "graph", operation_id = "graph.groups.delete",
    summary = "Meta's delete: every participant is removed (group_delete follows)",
    params(crate::apidoc::graph::GraphGroupPath),
    responses((status = 200, description = "Done", body = crate::apidoc::graph::Success), crate::apidoc::graph::GraphErrors))]
async fn delete(State(state): State<AppState>, GraphAuth(key, _): GraphAuth, path: GraphPath) -> Result<Response> {
    let (g, _) = group(&state, &key, &path.id).await?;
    state
        .service
        .delete_group(&key, &g.group_id, WriteOptions::default())
        .await?;
    Ok(Json(json!({ "success": true })).into_response())
}

// ---------------------------------------------------------------------------------------
// Invite link

fn link_answer(g: &Group) -> Response {
    Json(json!({ "messaging_product": "whatsapp", "invite_link": g.invite_link.clone().unwrap_or_default() }))
        .into_response()
}

#[utoipa::path(get, path = "/graph/{version}/{id}/invite_link", tag = "graph", operation_id = "graph.inviteLink.get",
    params(crate::apidoc::graph::GraphGroupPath),
    responses((status = 200, description = "The link", body = crate::apidoc::graph::InviteLink), crate::apidoc::graph::GraphErrors))]
async fn get_invite_link(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
) -> Result<Response> {
    let (g, _) = group(&state, &key, &path.id).await?;
    Ok(link_answer(&g))
}

#[utoipa::path(post, path = "/graph/{version}/{id}/invite_link", tag = "graph", operation_id = "graph.inviteLink.reset",
    summary = "A new link; every earlier one stops working",
    params(crate::apidoc::graph::GraphGroupPath),
    request_body(content = crate::apidoc::graph::GraphMessagingProduct, content_type = "application/json"),
    responses((status = 200, description = "The new link", body = crate::apidoc::graph::InviteLink), crate::apidoc::graph::GraphErrors))]
async fn reset_invite_link(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    messaging_product(&f)?;
    let (g, _) = group(&state, &key, &path.id).await?;
    Ok(link_answer(
        &state.service.reset_invite_link_confirmed(&key, &g.group_id).await?,
    ))
}

#[utoipa::path(delete, path = "/graph/{version}/{id}/invite_link", tag = "graph", operation_id = "graph.inviteLink.delete",
    summary = "Meta's delete of the invite link: the link stops working (a new one replaces it)",
    params(crate::apidoc::graph::GraphGroupPath),
    request_body(content = crate::apidoc::graph::GraphMessagingProduct, content_type = "application/json"),
    responses((status = 200, description = "Done (`success` is the string \"true\", as Meta's document has it)", body = crate::apidoc::graph::LinkDeleted), crate::apidoc::graph::GraphErrors))]
async fn delete_invite_link(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    messaging_product(&f)?;
    let (g, _) = group(&state, &key, &path.id).await?;
    // Accepted is done: the old link is revoked (a retry would reset it again).
    state
        .service
        .reset_invite_link(&key, &g.group_id, WriteOptions::default())
        .await?;
    Ok(Json(json!({ "messaging_product": "whatsapp", "success": "true" })).into_response())
}

// ---------------------------------------------------------------------------------------
// Join requests

#[utoipa::path(get, path = "/graph/{version}/{id}/join_requests", tag = "graph", operation_id = "graph.joinRequests.list",
    params(crate::apidoc::graph::GraphGroupPath),
    responses((status = 200, description = "Open join requests", body = crate::apidoc::graph::JoinRequestList), crate::apidoc::graph::GraphErrors))]
async fn list_join_requests(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
) -> Result<Response> {
    let (g, _) = group(&state, &key, &path.id).await?;
    let requests = state.service.join_requests(&key, &g.group_id).await?;
    let data: Vec<Value> = requests
        .iter()
        .map(|r| json!({ "join_request_id": r.join_request_id, "wa_id": r.phone, "creation_timestamp": unix_seconds(r.created_at) }))
        .collect();
    let mut body = json!({ "data": data });
    if let (Some(first), Some(last)) = (requests.first(), requests.last()) {
        let c = |id: &str| base64_cursor(id);
        body["paging"] =
            json!({ "cursors": { "before": c(&first.join_request_id), "after": c(&last.join_request_id) } });
    }
    Ok(Json(body).into_response())
}

fn base64_cursor(id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// A per-item failure as Meta writes it in answers and webhooks.
fn item_error(code: i64, details: &str) -> Value {
    let (_, title) = meta_code(code);
    json!({ "code": code, "message": format!("(#{code}) {title}"), "title": title, "error_data": { "details": details } })
}

/// Meta's code for an item that did not succeed.
fn item_code(status: ItemStatus, adding: bool) -> i64 {
    match status {
        ItemStatus::NotFound => 131213,
        ItemStatus::NotAMember => 131212,
        ItemStatus::GroupFull => 131204,
        ItemStatus::Invalid => 100,
        _ if adding => 131203,
        _ => 131212,
    }
}

async fn resolve(state: AppState, key: ApiKey, path: GraphPath, f: Fields, approve: bool) -> Result<Response> {
    messaging_product(&f)?;
    let ids = f
        .items("join_requests")
        .map_err(DialectError::new)?
        .ok_or_else(|| invalid("join_requests", "is required (an array of join request IDs)"))?;
    if ids.is_empty() {
        return Err(invalid("join_requests", "must list at least one join request ID"));
    }
    let (g, _) = group(&state, &key, &path.id).await?;
    let results = match state
        .service
        .resolve_join_requests(&key, &g.group_id, &ids, approve, WriteOptions::default())
        .await?
    {
        Written::Done(r) => r,
        Written::Pending(_) => {
            return Ok(Json(json!({ "messaging_product": "whatsapp", (if approve { "approved_join_requests" } else { "rejected_join_requests" }): ids })).into_response());
        }
    };
    let (done, failed): (Vec<_>, Vec<_>) = results.iter().partition(|r| r.status.is_success());
    let key_name = if approve {
        "approved_join_requests"
    } else {
        "rejected_join_requests"
    };
    let mut body = json!({ "messaging_product": "whatsapp", key_name: done.iter().map(|r| r.join_request_id.clone()).collect::<Vec<_>>() });
    if failed.is_empty() {
        return Ok(Json(body).into_response());
    }
    let failures: Vec<Value> = failed
        .iter()
        .map(|r| {
            let code = item_code(r.status, approve);
            json!({ "join_request_id": r.join_request_id, "errors": [item_error(code, r.message.as_deref().unwrap_or(r.status.as_str()))] })
        })
        .collect();
    if done.is_empty() {
        let first = failed[0];
        return Err(err(
            item_code(first.status, approve),
            format!(
                "join request {:?}: {}",
                first.join_request_id,
                first.message.as_deref().unwrap_or(first.status.as_str())
            ),
        ));
    }
    body["failed_join_requests"] = json!(failures);
    body["errors"] = json!([item_error(131201, "Not all join requests could be resolved")]);
    Ok((StatusCode::PARTIAL_CONTENT, Json(body)).into_response())
}

#[utoipa::path(post, path = "/graph/{version}/{id}/join_requests", tag = "graph", operation_id = "graph.joinRequests.approve",
    params(crate::apidoc::graph::GraphGroupPath),
    request_body(content = crate::apidoc::graph::GraphJoinRequests, content_type = "application/json"),
    responses(
        (status = 200, description = "Approved", body = crate::apidoc::graph::JoinRequestsResolved),
        (status = 206, description = "Some could not be approved (131201)", body = crate::apidoc::graph::JoinRequestsResolved),
        crate::apidoc::graph::GraphErrors))]
async fn approve_join_requests(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    resolve(state, key, path, f, true).await
}

#[utoipa::path(delete, path = "/graph/{version}/{id}/join_requests", tag = "graph", operation_id = "graph.joinRequests.reject",
    params(crate::apidoc::graph::GraphGroupPath),
    request_body(content = crate::apidoc::graph::GraphJoinRequests, content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected", body = crate::apidoc::graph::JoinRequestsResolved),
        (status = 206, description = "Some could not be rejected (131201)", body = crate::apidoc::graph::JoinRequestsResolved),
        crate::apidoc::graph::GraphErrors))]
async fn reject_join_requests(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    resolve(state, key, path, f, false).await
}

// ---------------------------------------------------------------------------------------
// Participants

/// `participants: [{"user": phone or WhatsApp ID}]`, 1 to 8, none twice (`131202`).
fn participants(f: &Fields) -> Result<Vec<String>> {
    let list = match f.0.get("participants") {
        None | Some(Value::Null) => {
            return Err(invalid(
                "participants",
                "is required (1 to 8 objects {\"user\": phone or WhatsApp ID})",
            ));
        }
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("participants", "must be an array of {\"user\": …} objects")),
    };
    if list.is_empty() || list.len() > PARTICIPANTS_MAX {
        return Err(invalid(
            "participants",
            format!("must list 1 to {PARTICIPANTS_MAX} participants, got {}", list.len()),
        ));
    }
    let mut users = Vec::with_capacity(list.len());
    let mut seen: Vec<String> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let user = match item.get("user") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(invalid(
                    &format!("participants[{i}].user"),
                    "is required (a phone number or WhatsApp ID)",
                ));
            }
        };
        let norm = Phone::parse("user", &user).map_or_else(|_| user.clone(), |p| p.as_str().to_string());
        if seen.contains(&norm) {
            return Err(err(
                131202,
                format!("participants[{i}].user: {user:?} is given more than once"),
            ));
        }
        seen.push(norm);
        users.push(user);
    }
    Ok(users)
}

fn participant_answer(written: Written<Vec<wagroups_core::ops::ParticipantResult>>, adding: bool) -> Result<Response> {
    let results = match written {
        Written::Done(r) => r,
        Written::Pending(_) => return Ok(Json(json!({ "success": true })).into_response()),
    };
    let (done, failed): (Vec<_>, Vec<_>) = results.iter().partition(|r| r.status.is_success());
    if failed.is_empty() {
        return Ok(Json(json!({ "success": true })).into_response());
    }
    if done.is_empty() {
        let first = failed[0];
        return Err(err(
            item_code(first.status, adding),
            format!(
                "{}: {}",
                first.participant,
                first.message.as_deref().unwrap_or(first.status.as_str())
            ),
        ));
    }
    let key = if adding {
        "added_participants"
    } else {
        "removed_participants"
    };
    let body = json!({
        "messaging_product": "whatsapp",
        key: done.iter().map(|r| json!({ "input": r.participant })).collect::<Vec<_>>(),
        "failed_participants": failed.iter().map(|r| json!({
            "input": r.participant,
            "errors": [item_error(item_code(r.status, adding), r.message.as_deref().unwrap_or(r.status.as_str()))],
        })).collect::<Vec<_>>(),
        "errors": [item_error(131201, "Not all participants could be changed")],
    });
    Ok((StatusCode::PARTIAL_CONTENT, Json(body)).into_response())
}

#[utoipa::path(delete, path = "/graph/{version}/{id}/participants", tag = "graph", operation_id = "graph.participants.remove",
    summary = "Meta's removal: 1 to 8 participants; a removed user cannot rejoin by the link",
    params(crate::apidoc::graph::GraphGroupPath),
    request_body(content = crate::apidoc::graph::GraphParticipants, content_type = "application/json"),
    responses(
        (status = 200, description = "Removed", body = crate::apidoc::graph::Success),
        (status = 206, description = "Some were not removed (131201)", body = crate::apidoc::graph::ParticipantsPartial),
        crate::apidoc::graph::GraphErrors))]
async fn remove_participants(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    participants_write(&state, &key, &path, &f, false).await
}

#[utoipa::path(post, path = "/graph/{version}/{id}/participants", tag = "graph", operation_id = "graph.participants.add",
    summary = "Meta's addition (in its OpenAPI document): each user is added, or invited where the provider only invites",
    params(crate::apidoc::graph::GraphGroupPath),
    request_body(content = crate::apidoc::graph::GraphParticipants, content_type = "application/json"),
    responses(
        (status = 200, description = "Added or invited", body = crate::apidoc::graph::Success),
        (status = 206, description = "Some were not (131201)", body = crate::apidoc::graph::ParticipantsPartial),
        crate::apidoc::graph::GraphErrors))]
async fn add_participants(
    State(state): State<AppState>,
    GraphAuth(key, _): GraphAuth,
    path: GraphPath,
    GraphBody(f): GraphBody,
) -> Result<Response> {
    participants_write(&state, &key, &path, &f, true).await
}

/// Adds (`adding`) or removes the users a body names.
async fn participants_write(
    state: &AppState,
    key: &ApiKey,
    path: &GraphPath,
    f: &Fields,
    adding: bool,
) -> Result<Response> {
    messaging_product(f)?;
    let users = participants(f)?;
    let (g, _) = group(state, key, &path.id).await?;
    let written = if adding {
        state
            .service
            .add_participants(key, &g.group_id, &users, true, WriteOptions::default())
            .await?
    } else {
        state
            .service
            .remove_participants(key, &g.group_id, &users, WriteOptions::default())
            .await?
    };
    participant_answer(written, adding)
}
