//! The sandbox: acts as WhatsApp users on the simulated network, for the groups of the
//! caller's organisation.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    routing::{post, put},
};
use wagroups_core::{
    model::{AddPrivacy, ProviderKind},
    phone::Phone,
    provider::{Provider, ProviderEvent},
    store::sim::SimUser,
};
use wagroups_providers::simulated::{SandboxError, invite_code};

use crate::{
    AppState, Routes,
    error::{ApiError, DialectError, Native},
    extract::{Auth, JsonObject, Path},
    render::{Refusal, RefusalSet, SandboxAction, SandboxOutcome, SandboxUser, Suspension},
};

type Result<T> = std::result::Result<T, DialectError<Native>>;

/// The sandbox's operations.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    join,
    cancel_request,
    leave,
    put_user,
    get_user,
    suspend,
    unsuspend,
    refuse_next_write
))]
pub struct Doc;

pub fn routes() -> Routes {
    vec![
        ("/v1/sandbox/join", post(join)),
        ("/v1/sandbox/leave", post(leave)),
        ("/v1/sandbox/cancel-request", post(cancel_request)),
        ("/v1/sandbox/users/{phone}", put(put_user).get(get_user)),
        ("/v1/sandbox/groups/{groupId}/suspend", post(suspend)),
        ("/v1/sandbox/groups/{groupId}/unsuspend", post(unsuspend)),
        (
            "/v1/sandbox/groups/{groupId}/refuse-next-write",
            post(refuse_next_write),
        ),
    ]
}

fn sandbox_error(e: SandboxError) -> ApiError {
    match e {
        SandboxError::NotFound(what) => ApiError::not_found(&what),
        SandboxError::Refused(r) if r.code == "not_found" => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", r.message)
        }
        SandboxError::Refused(r) => ApiError::new(StatusCode::CONFLICT, &r.code, r.message),
        SandboxError::Store(s) => {
            tracing::error!(error = %s, "simulated network store failure");
            ApiError::internal()
        }
    }
}

/// Waits until the gateway has applied what the simulated network reported.
async fn settle(state: &AppState) -> Result<()> {
    Provider::flush(state.sim.as_ref(), state.service.as_ref()).await;
    Ok(())
}

fn phone_field(f: &crate::extract::Fields) -> std::result::Result<Phone, ApiError> {
    let raw = f
        .digits("phone")?
        .ok_or_else(|| ApiError::invalid("phone", "is required"))?;
    Phone::parse("phone", &raw).map_err(|v| ApiError::invalid(&v.field, v.message))
}

/// The WhatsApp group behind one of the caller's groups on a simulated number.
async fn simulated_group(state: &AppState, key: &wagroups_core::model::ApiKey, group_id: &str) -> Result<String> {
    let (group, _) = state.service.get_group(key, group_id).await?;
    let number = state
        .service
        .store()
        .get_number(group.number_id)
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    if number.is_none_or(|n| n.provider != ProviderKind::Simulated) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_simulated",
            "the sandbox acts only on groups of simulated numbers",
        )
        .into());
    }
    group.wa_group_id.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            wagroups_core::error::code::GROUP_NOT_ACTIVE,
            format!("group {group_id:?} is {}, not active", group.status),
        )
        .into()
    })
}

/// `{"phone", "groupId"}`: the user withdraws their pending join request.
#[utoipa::path(post, path = "/v1/sandbox/cancel-request", tag = "sandbox", operation_id = "v1.sandbox.cancelRequest",
    summary = "A simulated user withdraws their join request",
    request_body = crate::apidoc::requests::SandboxMember,
    responses((status = 200, description = "The request was withdrawn (GROUP_JOIN_REQUEST_REVOKED)",
        body = crate::render::SandboxAction), crate::apidoc::SandboxActionErrors))]
async fn cancel_request(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<SandboxAction>> {
    let phone = phone_field(&f)?;
    let group_id = f.required("groupId")?;
    let jid = simulated_group(&state, &key, &group_id).await?;
    state
        .sim
        .cancel_request(phone.as_str(), &jid)
        .await
        .map_err(sandbox_error)?;
    settle(&state).await?;
    Ok(Json(SandboxAction {
        result: SandboxOutcome::JoinRequestRevoked,
        phone,
        group_id: Some(group_id.into()),
        join_request_id: None,
    }))
}

async fn set_suspension(
    state: AppState,
    key: wagroups_core::model::ApiKey,
    group_id: String,
    suspended: bool,
) -> Result<Json<Suspension>> {
    let jid = simulated_group(&state, &key, &group_id).await?;
    state.sim.suspend(&jid, suspended).await.map_err(sandbox_error)?;
    settle(&state).await?;
    Ok(Json(Suspension {
        group_id: group_id.into(),
        suspended,
    }))
}

/// WhatsApp suspends the group.
#[utoipa::path(post, path = "/v1/sandbox/groups/{groupId}/suspend", tag = "sandbox", operation_id = "v1.sandbox.suspend",
    params(crate::apidoc::params::GroupPath),
    responses((status = 200, description = "Suspended (GROUP_SUSPENDED)", body = crate::render::Suspension), crate::apidoc::SuspensionErrors))]
async fn suspend(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<Suspension>> {
    set_suspension(state, key, group_id, true).await
}

/// WhatsApp lifts the group's suspension.
#[utoipa::path(post, path = "/v1/sandbox/groups/{groupId}/unsuspend", tag = "sandbox",
    operation_id = "v1.sandbox.unsuspend",
    params(crate::apidoc::params::GroupPath),
    responses((status = 200, description = "Cleared (GROUP_SUSPENSION_CLEARED)", body = crate::render::Suspension),
        crate::apidoc::SuspensionErrors))]
async fn unsuspend(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
) -> Result<Json<Suspension>> {
    set_suspension(state, key, group_id, false).await
}

/// The caller's organisation's numbers: a simulated user's contacts are shown and changed
/// only among them.
async fn own_numbers(state: &AppState, key: &wagroups_core::model::ApiKey) -> Result<Vec<String>> {
    Ok(state
        .service
        .store()
        .list_numbers(Some(&key.org_id))
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?
        .into_iter()
        .map(|n| n.waba_number)
        .collect())
}

fn render_user(u: &SimUser, own: &[String]) -> SandboxUser {
    SandboxUser {
        phone: u.phone.clone(),
        on_whatsapp: u.on_whatsapp,
        add_privacy: u.add_privacy,
        contact_of: u.contact_of.iter().filter(|n| own.contains(n)).cloned().collect(),
    }
}

/// `{"onWhatsApp", "addPrivacy", "contactOf"}`: configures a simulated user (fields left out
/// keep their value; `contactOf` lists the caller's numbers that have the user as a contact).
#[utoipa::path(put, path = "/v1/sandbox/users/{phone}", tag = "sandbox", operation_id = "v1.sandbox.users.put",
    params(crate::apidoc::params::PhonePath),
    request_body = crate::apidoc::requests::SandboxUserPatch,
    responses((status = 200, description = "The user", body = crate::render::SandboxUser), crate::apidoc::SandboxUserPutErrors))]
async fn put_user(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(phone, ..): Path<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<SandboxUser>> {
    let phone = Phone::parse("phone", &phone).map_err(|v| ApiError::invalid(&v.field, v.message))?;
    let own = own_numbers(&state, &key).await?;
    let mut user = state
        .sim
        .user(&key.org_id, phone.as_str())
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    if let Some(b) = f.boolean("onWhatsApp")? {
        user.on_whatsapp = b;
    }
    if let Some(p) = f.string("addPrivacy")? {
        user.add_privacy = AddPrivacy::validate("addPrivacy", &p)?;
    }
    // The caller's users hold the caller's numbers only (one configured before users were
    // kept per organisation may name others).
    user.contact_of.retain(|n| own.contains(n));
    if let Some(list) = f.items("contactOf")? {
        let mut out: Vec<String> = Vec::with_capacity(list.len());
        for (i, n) in list.iter().enumerate() {
            let field = format!("contactOf[{i}]");
            let digits =
                wagroups_core::validate::waba_number(&field, n).map_err(|v| ApiError::invalid(&v.field, v.message))?;
            if !own.contains(&digits) {
                return Err(ApiError::invalid(
                    &field,
                    format!("no number {digits} is registered in this organisation"),
                )
                .into());
            }
            out.push(digits);
        }
        user.contact_of = out;
    }
    state
        .sim
        .put_user(&key.org_id, user.clone())
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    Ok(Json(render_user(&user, &own)))
}

#[utoipa::path(get, path = "/v1/sandbox/users/{phone}", tag = "sandbox", operation_id = "v1.sandbox.users.get",
    params(crate::apidoc::params::PhonePath),
    responses((status = 200, description = "The user (unconfigured users are on WhatsApp and addable by anyone)",
        body = crate::render::SandboxUser), crate::apidoc::SandboxUserGetErrors))]
async fn get_user(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(phone, ..): Path<Native>,
) -> Result<Json<SandboxUser>> {
    let phone = Phone::parse("phone", &phone).map_err(|v| ApiError::invalid(&v.field, v.message))?;
    let user = state
        .sim
        .user(&key.org_id, phone.as_str())
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    let own = own_numbers(&state, &key).await?;
    Ok(Json(render_user(&user, &own)))
}

/// `{"phone", "inviteLink"}`: the user taps the invite link.
#[utoipa::path(post, path = "/v1/sandbox/join", tag = "sandbox", operation_id = "v1.sandbox.join",
    summary = "A simulated user taps an invite link",
    request_body = crate::apidoc::requests::SandboxJoin,
    responses((status = 200, description = "Joined, or a join request was filed", body = crate::render::SandboxAction),
        crate::apidoc::SandboxActionErrors))]
async fn join(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<SandboxAction>> {
    let phone = Phone::parse(
        "phone",
        &f.digits("phone")?
            .ok_or_else(|| ApiError::invalid("phone", "is required"))?,
    )
    .map_err(|v| ApiError::invalid(&v.field, v.message))?;
    let link = f.required("inviteLink")?;
    let code = invite_code(&link)
        .ok_or_else(|| ApiError::invalid("inviteLink", "must be https://chat.whatsapp.com/<code>"))?;
    let unknown = || ApiError::not_found("invite link (unknown, or reset)");
    let sim_group = state
        .sim
        .group_by_invite(code)
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?
        .ok_or_else(unknown)?;
    // The link must lead to a group of the caller's organisation, on a number it may use.
    let number = state
        .service
        .store()
        .find_number(&sim_group.waba_number)
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?
        .filter(|n| n.org_id == key.org_id && n.provider == ProviderKind::Simulated)
        .ok_or_else(unknown)?;
    state
        .service
        .number_for(&key, "inviteLink", &number.waba_number)
        .await?;
    let change = state
        .sim
        .join_via_link(phone.as_str(), code)
        .await
        .map_err(sandbox_error)?;
    settle(&state).await?;
    let group = state
        .service
        .store()
        .find_group_by_wa_id(number.id, &sim_group.jid)
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    let group_id = group.map(|g| g.group_id);
    let (result, join_request_id) = match change.reports.first() {
        Some(ProviderEvent::JoinRequestCreated { join_request_id, .. }) => {
            (SandboxOutcome::JoinRequestCreated, Some(join_request_id.clone()))
        }
        _ => (SandboxOutcome::Joined, None),
    };
    Ok(Json(SandboxAction {
        result,
        phone,
        group_id,
        join_request_id,
    }))
}

/// `{"phone", "groupId"}`: the user leaves the group.
#[utoipa::path(post, path = "/v1/sandbox/leave", tag = "sandbox", operation_id = "v1.sandbox.leave",
    summary = "A simulated user leaves a group",
    request_body = crate::apidoc::requests::SandboxMember,
    responses((status = 200, description = "Left", body = crate::render::SandboxAction), crate::apidoc::SandboxActionErrors))]
async fn leave(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<SandboxAction>> {
    let phone = Phone::parse(
        "phone",
        &f.digits("phone")?
            .ok_or_else(|| ApiError::invalid("phone", "is required"))?,
    )
    .map_err(|v| ApiError::invalid(&v.field, v.message))?;
    let group_id = f.required("groupId")?;
    let (group, _) = state.service.get_group(&key, &group_id).await?;
    let jid = group.wa_group_id.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            wagroups_core::error::code::GROUP_NOT_ACTIVE,
            format!("group {group_id:?} is {}, not active", group.status),
        )
    })?;
    state.sim.leave(phone.as_str(), &jid).await.map_err(sandbox_error)?;
    settle(&state).await?;
    Ok(Json(SandboxAction {
        result: SandboxOutcome::Left,
        phone,
        group_id: Some(group.group_id),
        join_request_id: None,
    }))
}

/// `{"code"?, "message"?}`: WhatsApp refuses the group's next write. On the cloud profile it
/// accepts the write first and refuses it in its confirmation, as Meta's Cloud API does
/// (`GROUP_OPERATION_FAILED`); on the linked-device profile it refuses at once.
#[utoipa::path(post, path = "/v1/sandbox/groups/{groupId}/refuse-next-write", tag = "sandbox",
    operation_id = "v1.sandbox.refuseNextWrite",
    summary = "WhatsApp refuses the group's next write (cloud profile: in its confirmation, GROUP_OPERATION_FAILED; linked-device: at once)",
    params(crate::apidoc::params::GroupPath),
    request_body = crate::apidoc::requests::RefuseNextWrite,
    responses((status = 200, description = "The next write is refused", body = crate::render::RefusalSet), crate::apidoc::SandboxActionErrors))]
async fn refuse_next_write(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    Path(group_id, ..): Path<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<RefusalSet>> {
    let code = f.string("code")?.unwrap_or_else(|| "refused".into());
    let message = f
        .string("message")?
        .unwrap_or_else(|| "WhatsApp refused the operation (sandbox)".into());
    for (field, v, max) in [("code", &code, 64), ("message", &message, 512)] {
        wagroups_core::validate::printable(field, v, false).map_err(|e| ApiError::invalid(&e.field, e.message))?;
        if v.is_empty() || v.chars().count() > max {
            return Err(ApiError::invalid(field, format!("must be 1 to {max} characters")).into());
        }
    }
    let jid = simulated_group(&state, &key, &group_id).await?;
    state
        .sim
        .refuse_next_write(&jid, &code, &message)
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    Ok(Json(RefusalSet {
        group_id: group_id.into(),
        refuse_next_write: Refusal { code, message },
    }))
}
