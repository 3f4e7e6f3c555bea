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
    Router::new()
        .route("/metrics", get(metrics))
        .route("/openapi.yaml", get(openapi_yaml))
        .route("/openapi.json", get(openapi_json))
}

/// The OpenAPI 3.1 document: every path, and every event as a `webhooks` entry.
pub const OPENAPI_YAML: &str = include_str!("../openapi/wagroups.yaml");

async fn openapi_yaml() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    ([(axum::http::header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML)
}

async fn openapi_json() -> (StatusCode, Json<Value>) {
    static DOC: std::sync::OnceLock<Option<Value>> = std::sync::OnceLock::new();
    match DOC.get_or_init(|| serde_norway::from_str::<Value>(OPENAPI_YAML).ok()) {
        Some(doc) => (StatusCode::OK, Json(doc.clone())),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": { "code": "internal", "message": "the bundled OpenAPI document does not parse" } })),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_parses_and_documents_every_event_type() {
        let doc: serde_json::Value = serde_norway::from_str(super::OPENAPI_YAML).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: Vec<&str> = doc["components"]["schemas"]["EventType"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        for t in wagroups_core::event::EventType::ALL {
            assert!(
                documented.contains(&t.as_str()),
                "{} missing from EventType",
                t.as_str()
            );
        }
    }
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
