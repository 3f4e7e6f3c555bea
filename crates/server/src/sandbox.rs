//! The sandbox: acts as WhatsApp users on the simulated network, for the groups of the
//! caller's organisation.

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde_json::{Value, json};
use wagroups_core::{model::ProviderKind, phone::Phone, provider::ProviderEvent};
use wagroups_providers::simulated::{SandboxError, invite_code};

use crate::{
    AppState,
    error::{ApiError, DialectError, Native},
    extract::{Auth, JsonObject},
};

type Result<T> = std::result::Result<T, DialectError<Native>>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sandbox/join", post(join))
        .route("/v1/sandbox/leave", post(leave))
}

fn sandbox_error(e: SandboxError) -> ApiError {
    match e {
        SandboxError::NotFound(what) => ApiError::not_found(&what),
        SandboxError::Refused(r) => ApiError::new(StatusCode::CONFLICT, &r.code, r.message),
        SandboxError::Store(s) => {
            tracing::error!(error = %s, "simulated network store failure");
            ApiError::internal()
        }
    }
}

/// Waits until the gateway has applied what the simulated network reported.
async fn settle(state: &AppState) -> Result<()> {
    for _ in 0..100 {
        match state.sim.drain(state.service.as_ref()).await {
            Ok(true) => return Ok(()),
            Ok(false) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(e) => {
                tracing::error!(error = %e, "delivering simulated reports failed");
                return Err(ApiError::internal().into());
            }
        }
    }
    Ok(())
}

/// `{"phone", "inviteLink"}`: the user taps the invite link.
async fn join(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<Value>> {
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
        .find_number(&sim_group.group.waba_number)
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
        .find_group_by_wa_id(number.id, &sim_group.group.jid)
        .await
        .map_err(|e| ApiError::from(wagroups_core::service::ServiceError::Store(e)))?;
    let group_id = group.map(|g| g.group_id);
    let body = match change.reports.first() {
        Some(ProviderEvent::JoinRequestCreated { join_request_id, .. }) => json!({
            "result": "join_request_created",
            "phone": phone,
            "groupId": group_id,
            "joinRequestId": join_request_id,
        }),
        _ => json!({ "result": "joined", "phone": phone, "groupId": group_id }),
    };
    Ok(Json(body))
}

/// `{"phone", "groupId"}`: the user leaves the group.
async fn leave(
    State(state): State<AppState>,
    Auth(key, ..): Auth<Native>,
    JsonObject(f, ..): JsonObject<Native>,
) -> Result<Json<Value>> {
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
            "group_not_active",
            format!("group {group_id:?} is {}, not active", group.status),
        )
    })?;
    state.sim.leave(phone.as_str(), &jid).await.map_err(sandbox_error)?;
    settle(&state).await?;
    Ok(Json(
        json!({ "result": "left", "phone": phone, "groupId": group.group_id }),
    ))
}
