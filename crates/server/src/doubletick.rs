//! DoubleTick's public group API: `POST /whatsapp/wa-group/create`.

use axum::{Json, extract::State, routing::post};
use serde_json::{Value, json};

use crate::{
    AppState, Routes,
    error::{DialectError, DoubleTick},
    extract::{Auth, JsonObject},
    native::create_request,
};

pub fn routes() -> Routes {
    vec![("/whatsapp/wa-group/create", post(create))]
}

/// `200 {"success": true, "groupId"}`; the `GROUP_CREATED` event follows once WhatsApp
/// confirms.
async fn create(
    State(state): State<AppState>,
    Auth(key, ..): Auth<DoubleTick>,
    JsonObject(fields, ..): JsonObject<DoubleTick>,
) -> Result<Json<Value>, DialectError<DoubleTick>> {
    let req = create_request(&fields)?;
    let created = state.service.create_group(&key, req).await?;
    Ok(Json(json!({ "success": true, "groupId": created.group.group_id })))
}
