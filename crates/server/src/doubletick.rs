//! DoubleTick's public group API: `POST /whatsapp/wa-group/create`.

use axum::{Json, extract::State, routing::post};

use crate::{
    AppState, Routes,
    error::{DialectError, DoubleTick},
    extract::{Auth, JsonObject},
    native::create_request,
    render::DoubleTickCreated,
};

/// DoubleTick's operations.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create))]
pub struct Doc;

pub fn routes() -> Routes {
    vec![("/whatsapp/wa-group/create", post(create))]
}

/// `200 {"success": true, "groupId"}`; the `GROUP_CREATED` event follows once WhatsApp
/// confirms.
#[utoipa::path(post, path = "/whatsapp/wa-group/create", tag = "doubletick", operation_id = "doubletick.group.create",
    summary = "DoubleTick's create-group call",
    request_body = crate::apidoc::requests::CreateGroup,
    responses((status = 200, description = "Created", body = DoubleTickCreated), crate::apidoc::DoubleTickErrors))]
async fn create(
    State(state): State<AppState>,
    Auth(key, ..): Auth<DoubleTick>,
    JsonObject(fields, ..): JsonObject<DoubleTick>,
) -> Result<Json<DoubleTickCreated>, DialectError<DoubleTick>> {
    let req = create_request(&fields)?;
    let created = state.service.create_group(&key, req).await?;
    Ok(Json(DoubleTickCreated {
        success: true,
        group_id: created.group.group_id,
    }))
}
