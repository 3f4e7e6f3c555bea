//! Wawp's group calls (seed `002`), under `/wawp/v2`: `instance_id` names the number (its
//! digits or its alias) and `access_token` is a wagroups API key, each in the query string or
//! the JSON body as Wawp's documentation shows both. A create waits for WhatsApp's
//! confirmation and answers the `@g.us` ID with the outcome for each participant. A thin
//! adapter over the group service.

use axum::{
    Json,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Map, Value, json};
use wagroups_core::{
    model::{ApiKey, Group, Participant, ParticipantRole, ParticipantState},
    service::CreateGroupRequest,
};

use crate::{
    AppState, Routes,
    error::{ApiError, Dialect, DialectError},
    extract::{Fields, Params, Path, read_body},
    json,
};

type Result<T> = std::result::Result<T, DialectError<Wawp>>;

/// Groups a list answers when `limit` is not given.
const LIST_DEFAULT: &str = "50";

/// Wawp's errors: `{"code", "message"}` with the status (400 a parameter in the wrong format,
/// naming it; 401 a missing or invalid access token; never 500 for bad input).
pub struct Wawp;

impl Dialect for Wawp {
    fn field_name(core: &str) -> Option<&'static str> {
        match core {
            "subject" => Some("name"),
            "wabaNumber" => Some("instance_id"),
            _ => None,
        }
    }

    fn body(e: &ApiError) -> Value {
        let code = match e.status.as_u16() {
            400 => "invalid_parameter",
            401 => "invalid_access_token",
            403 => "forbidden",
            404 => "not_found",
            409 => "conflict",
            422 => "unprocessable",
            503 => "unavailable",
            s if s < 500 => "bad_request",
            _ => "internal_error",
        };
        json!({ "code": code, "message": e.message })
    }
}

/// Wawp's operations.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, info, participants, invite_code, revoke_invite_code),
    components(schemas(
        crate::apidoc::wawp::CreateGroup,
        crate::apidoc::wawp::ParticipantIn,
        crate::apidoc::wawp::GroupOut,
        crate::apidoc::wawp::Member,
        crate::apidoc::wawp::Outcome,
        crate::apidoc::wawp::InviteCode,
        crate::apidoc::wawp::Credentials,
        crate::apidoc::wawp::WawpError
    ))
)]
pub struct Doc;

pub fn routes() -> Routes {
    vec![
        ("/wawp/v2/groups", get(list).post(create)),
        ("/wawp/v2/groups/{id}", get(info)),
        ("/wawp/v2/groups/{id}/participants", get(participants)),
        ("/wawp/v2/groups/{id}/invite-code", get(invite_code)),
        ("/wawp/v2/groups/{id}/invite-code/revoke", post(revoke_invite_code)),
    ]
}

/// A Wawp call's parameters: the query string's, and the JSON body's (the body wins). No
/// body, or an empty one, is none.
pub struct WawpParams(Map<String, Value>);

impl FromRequest<AppState> for WawpParams {
    type Rejection = DialectError<Wawp>;

    async fn from_request(req: Request, _state: &AppState) -> Result<Self> {
        let query = Params::parse(req.uri().query().unwrap_or("")).map_err(DialectError::new)?;
        let mut out: Map<String, Value> = query
            .into_pairs()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let bytes = read_body(req).await.map_err(DialectError::new)?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            match json::parse_strict(&bytes) {
                Ok(Value::Object(body)) => out.extend(body),
                Ok(_) => return Err(DialectError::new(ApiError::invalid("body", "must be a JSON object"))),
                Err(json::StrictError::Duplicate(path)) => {
                    return Err(DialectError::new(ApiError::invalid(
                        &path,
                        "appears more than once (each key may be given once)",
                    )));
                }
                Err(json::StrictError::Syntax(e)) => {
                    return Err(DialectError::new(ApiError::invalid(
                        "body",
                        format!("is not valid JSON: {e}"),
                    )));
                }
            }
        }
        Ok(WawpParams(out))
    }
}

impl WawpParams {
    fn fields(&self) -> Fields {
        Fields(self.0.clone())
    }
}

/// The caller's key (`access_token`, or `Authorization: Bearer` as Wawp's SDK sends it) and
/// the number its `instance_id` names.
async fn caller(state: &AppState, headers: &HeaderMap, p: &WawpParams) -> Result<(ApiKey, String)> {
    let f = p.fields();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| match v.trim().split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim().to_string(),
            _ => v.trim().to_string(),
        });
    let token = f
        .string("access_token")
        .map_err(DialectError::new)?
        .or(bearer)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(DialectError::new(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "access_token is missing (a wagroups API key, in the query string or the body)",
        )));
    }
    let key = state.service.authenticate(&token).await.map_err(|e| match e {
        wagroups_core::service::ServiceError::Unauthorized => DialectError::new(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "access_token is not a live wagroups API key",
        )),
        other => DialectError::from(other),
    })?;
    let instance = f.digits("instance_id").map_err(DialectError::new)?.ok_or_else(|| {
        DialectError::new(ApiError::invalid(
            "instance_id",
            "is required (the number's digits or its instance ID)",
        ))
    })?;
    let number = state.service.number_by_instance(&key, "instance_id", &instance).await?;
    Ok((key, number.waba_number))
}

fn c_us(digits: &str) -> String {
    format!("{digits}@c.us")
}

/// A group as Wawp answers it.
fn group_out(g: &Group, participants: &[Participant]) -> Value {
    json!({
        "id": g.wa_group_id,
        "name": g.subject,
        "description": g.description,
        "owner": c_us(&g.waba_number),
        "inviteLink": g.invite_link,
        "participants": members(participants),
        "createdAt": g.created_at,
    })
}

fn members(participants: &[Participant]) -> Vec<Value> {
    participants
        .iter()
        .filter(|p| p.state == ParticipantState::Member)
        .map(|p| {
            json!({
                "id": c_us(p.phone.as_str()),
                "isAdmin": p.role != ParticipantRole::Member,
                "isSuperAdmin": p.role == ParticipantRole::Superadmin,
            })
        })
        .collect()
}

/// `participants`: `[{"id": "<digits>@c.us"}]` (or the JIDs themselves), as JSON or, in the
/// query string, as its JSON text.
fn participants_field(f: &Fields) -> std::result::Result<Vec<String>, ApiError> {
    let value = match f.0.get("participants") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => serde_json::from_str::<Value>(text)
            .map_err(|e| ApiError::invalid("participants", format!("is not a JSON array: {e}")))?,
        Some(v) => v.clone(),
    };
    let Value::Array(items) = value else {
        return Err(ApiError::invalid(
            "participants",
            "must be an array of {\"id\": \"<digits>@c.us\"}",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            Value::Object(o) => match o.get("id") {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(ApiError::invalid(
                    &format!("participants[{i}].id"),
                    "is required (\"<digits>@c.us\")",
                )),
            },
            _ => Err(ApiError::invalid(
                &format!("participants[{i}]"),
                "must be {\"id\": \"<digits>@c.us\"}",
            )),
        })
        .collect()
}

#[utoipa::path(post, path = "/wawp/v2/groups", tag = "wawp", operation_id = "wawp.groups.create",
    summary = "Wawp's create: the group with its participants, once WhatsApp confirmed it, with each one's outcome",
    params(("instance_id" = Option<String>, Query, description = "The number's digits or instance ID (or in the body)"),
        ("access_token" = Option<String>, Query, description = "A wagroups API key (or in the body)")),
    request_body = crate::apidoc::wawp::CreateGroup,
    responses((status = 201, description = "Created", body = crate::apidoc::wawp::GroupOut), crate::apidoc::wawp::WawpErrors))]
async fn create(State(state): State<AppState>, headers: HeaderMap, p: WawpParams) -> Result<Response> {
    let (key, waba) = caller(&state, &headers, &p).await?;
    let f = p.fields();
    let name = f
        .string("name")?
        .ok_or_else(|| ApiError::invalid("name", "is required (1 to 128 characters)"))?;
    let req = CreateGroupRequest {
        waba_number: Some(waba),
        subject: Some(name),
        description: f.string("description")?,
        participants: Some(participants_field(&f)?),
        // Whoever cannot be added is sent the link: never the silent failure.
        invite_fallback: Some(true),
        ..CreateGroupRequest::default()
    };
    let confirmed = state
        .service
        .create_confirmed(&key, req, wagroups_core::service::CREATION_WAIT)
        .await?;
    let mut body = group_out(&confirmed.group, &confirmed.participants);
    body["results"] = json!(
        confirmed
            .results
            .iter()
            .map(|r| {
                let mut v = json!({
                    "id": r.phone.as_deref().map(c_us).unwrap_or_else(|| r.participant.clone()),
                    "status": r.status.as_str(),
                });
                if let Some(link) = &r.invite_link {
                    v["inviteLink"] = json!(link);
                }
                if let Some(m) = &r.message {
                    v["message"] = json!(m);
                }
                v
            })
            .collect::<Vec<_>>()
    );
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/wawp/v2/groups", tag = "wawp", operation_id = "wawp.groups.list",
    summary = "The instance's groups, newest first",
    params(("instance_id" = String, Query, description = "The number's digits or instance ID"),
        ("access_token" = String, Query, description = "A wagroups API key"),
        ("limit" = Option<i64>, Query, description = "1 to 1024 (default 50)")),
    responses((status = 200, description = "The groups", body = Vec<crate::apidoc::wawp::GroupOut>), crate::apidoc::wawp::WawpErrors))]
async fn list(State(state): State<AppState>, headers: HeaderMap, p: WawpParams) -> Result<Response> {
    let (key, waba) = caller(&state, &headers, &p).await?;
    let f = p.fields();
    let limit = f.digits("limit")?.unwrap_or_else(|| LIST_DEFAULT.to_string());
    let page = state
        .service
        .list_groups(&key, Some(&waba), Some("active"), Some(&limit), None)
        .await?;
    let out: Vec<Value> = page
        .groups
        .iter()
        .map(|g| {
            let mut v = group_out(g, &[]);
            if let Some(o) = v.as_object_mut() {
                o.remove("participants");
                o.insert("participantsCount".into(), json!(g.participant_count + 1));
            }
            v
        })
        .collect();
    Ok(Json(out).into_response())
}

/// The key's group this `{id}` (its `@g.us` ID) names, on the instance's number.
async fn group(
    state: &AppState,
    headers: &HeaderMap,
    p: &WawpParams,
    id: &str,
) -> Result<(ApiKey, Group, Vec<Participant>)> {
    let (key, waba) = caller(state, headers, p).await?;
    let (g, participants) = state.service.group_by_wa_id(&key, id, Some(&waba)).await?;
    Ok((key, g, participants))
}

#[utoipa::path(get, path = "/wawp/v2/groups/{id}", tag = "wawp", operation_id = "wawp.groups.info",
    params(("id" = String, Path, description = "The group's `@g.us` ID"),
        ("instance_id" = String, Query, description = "The number's digits or instance ID"),
        ("access_token" = String, Query, description = "A wagroups API key")),
    responses((status = 200, description = "The group", body = crate::apidoc::wawp::GroupOut), crate::apidoc::wawp::WawpErrors))]
async fn info(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id, ..): Path<Wawp>,
    p: WawpParams,
) -> Result<Response> {
    let (_, g, participants) = group(&state, &headers, &p, &id).await?;
    Ok(Json(group_out(&g, &participants)).into_response())
}

#[utoipa::path(get, path = "/wawp/v2/groups/{id}/participants", tag = "wawp", operation_id = "wawp.groups.participants",
    params(("id" = String, Path, description = "The group's `@g.us` ID"),
        ("instance_id" = String, Query, description = "The number's digits or instance ID"),
        ("access_token" = String, Query, description = "A wagroups API key")),
    responses((status = 200, description = "Its members", body = Vec<crate::apidoc::wawp::Member>), crate::apidoc::wawp::WawpErrors))]
async fn participants(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id, ..): Path<Wawp>,
    p: WawpParams,
) -> Result<Response> {
    let (_, _, participants) = group(&state, &headers, &p, &id).await?;
    Ok(Json(members(&participants)).into_response())
}

fn code_answer(g: &Group) -> Result<Response> {
    let (Some(link), Some(code)) = (&g.invite_link, g.invite_code()) else {
        return Err(DialectError::new(ApiError::new(
            StatusCode::CONFLICT,
            "group_not_active",
            "the group has no invite link (it is not active)",
        )));
    };
    Ok(Json(json!({ "inviteCode": code, "inviteLink": link })).into_response())
}

#[utoipa::path(get, path = "/wawp/v2/groups/{id}/invite-code", tag = "wawp", operation_id = "wawp.groups.inviteCode",
    params(("id" = String, Path, description = "The group's `@g.us` ID"),
        ("instance_id" = String, Query, description = "The number's digits or instance ID"),
        ("access_token" = String, Query, description = "A wagroups API key")),
    responses((status = 200, description = "The invite code", body = crate::apidoc::wawp::InviteCode), crate::apidoc::wawp::WawpErrors))]
async fn invite_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id, ..): Path<Wawp>,
    p: WawpParams,
) -> Result<Response> {
    let (_, g, _) = group(&state, &headers, &p, &id).await?;
    code_answer(&g)
}

#[utoipa::path(post, path = "/wawp/v2/groups/{id}/invite-code/revoke", tag = "wawp", operation_id = "wawp.groups.inviteCode.revoke",
    summary = "A new invite code; the old link stops working",
    params(("id" = String, Path, description = "The group's `@g.us` ID")),
    request_body = crate::apidoc::wawp::Credentials,
    responses((status = 200, description = "The new code", body = crate::apidoc::wawp::InviteCode), crate::apidoc::wawp::WawpErrors))]
async fn revoke_invite_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id, ..): Path<Wawp>,
    p: WawpParams,
) -> Result<Response> {
    let (key, g, _) = group(&state, &headers, &p, &id).await?;
    code_answer(&state.service.reset_invite_link_confirmed(&key, &g.group_id).await?)
}
