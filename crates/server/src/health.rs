//! Liveness and readiness.

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde_json::{Value, json};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process answers.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.service.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
            )
        }
    }
}

pub fn metrics_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus metrics: delivery outcomes and attempt latency (recorded by the worker), and
/// the delivery queue's depth and the age of its oldest open delivery (read now).
async fn metrics(State(state): State<AppState>) -> (StatusCode, String) {
    let Some(handle) = &state.metrics else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed\n".into(),
        );
    };
    match state.service.store().delivery_stats().await {
        Ok(stats) => {
            metrics::gauge!("wagroups_webhook_queue_depth").set(stats.open as f64);
            let age = stats
                .oldest_open_at
                .map(|t| (wagroups_core::time::Timestamp::now().millis() - t.millis()).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            metrics::gauge!("wagroups_webhook_oldest_pending_age_seconds").set(age);
        }
        Err(e) => tracing::warn!(error = %e, "reading delivery queue figures failed"),
    }
    (StatusCode::OK, handle.render())
}
