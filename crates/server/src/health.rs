//! Liveness and readiness.

use axum::{Json, extract::State, http::StatusCode, routing::get};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{AppState, Routes};

/// Health, metrics and this document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics, openapi_json, openapi_yaml))]
pub struct Doc;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Ok,
}

/// The process answers.
#[derive(Serialize, ToSchema)]
pub struct Live {
    status: Liveness,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Readiness {
    Ready,
    Unavailable,
}

/// Whether the database answers.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    status: Readiness,
    /// Why not (`unavailable` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

pub fn routes() -> Routes {
    vec![("/healthz", get(healthz)), ("/readyz", get(readyz))]
}

/// The process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "health.live", security(),
    responses((status = 200, description = "The process answers", body = Live)))]
async fn healthz() -> Json<Live> {
    Json(Live { status: Liveness::Ok })
}

/// The database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "health.ready", security(),
    responses(
        (status = 200, description = "The database answers", body = Ready),
        (status = 503, description = "It does not", body = Ready),
    ))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    match state.service.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Ready {
                status: Readiness::Ready,
                reason: None,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Ready {
                    status: Readiness::Unavailable,
                    reason: Some("database unreachable".into()),
                }),
            )
        }
    }
}

pub fn metrics_routes() -> Routes {
    vec![
        ("/metrics", get(metrics)),
        ("/openapi.yaml", get(openapi_yaml)),
        ("/openapi.json", get(openapi_json)),
    ]
}

/// This OpenAPI 3.1 document, as YAML (generated from the handlers: `crate::apidoc`).
#[utoipa::path(get, path = "/openapi.yaml", tag = "operations", operation_id = "openapi.yaml", security(),
    responses((status = 200, description = "This document as YAML", content_type = "application/yaml")))]
async fn openapi_yaml() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        crate::apidoc::YAML.as_str(),
    )
}

/// The same as JSON.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi.json", security(),
    responses((status = 200, description = "This document as JSON", body = Object)))]
async fn openapi_json() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::apidoc::JSON.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    fn doc() -> Value {
        serde_json::from_str(&crate::apidoc::JSON).unwrap()
    }

    /// A `null` anywhere is a YAML slip (`{ description: a, b }` makes a key `b: null`).
    #[test]
    fn the_openapi_document_has_no_stray_null_keys() {
        fn walk(v: &Value, path: &str, found: &mut Vec<String>) {
            match v {
                Value::Null => found.push(path.to_string()),
                Value::Object(m) => m.iter().for_each(|(k, v)| walk(v, &format!("{path}/{k}"), found)),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| walk(v, &format!("{path}/{i}"), found)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(&doc(), "", &mut found);
        assert!(found.is_empty(), "null values at {found:?}");
    }

    /// Every event type has a schema, reachable through the `Event` discriminator's mapping,
    /// and a `webhooks` entry.
    #[test]
    fn every_event_type_has_a_schema_and_a_discriminator_mapping() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let documented: Vec<&str> = schemas["EventType"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let all: Vec<&str> = wagroups_core::event::EventType::ALL
            .iter()
            .map(|t| t.as_str())
            .collect();
        assert_eq!(documented, all, "EventType enum vs the event vocabulary");
        let mapping = &schemas["Event"]["discriminator"]["mapping"];
        for t in all {
            let target = mapping[t]
                .as_str()
                .unwrap_or_else(|| panic!("{t} has no discriminator mapping"));
            let name = target.trim_start_matches("#/components/schemas/");
            let schema = &schemas[name];
            assert!(schema.is_object(), "{t} maps to {target}, which does not exist");
            let own: Vec<&Value> = schema["allOf"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|part| part["properties"]["eventType"].get("enum"))
                .collect();
            assert_eq!(own, [&serde_json::json!([t])], "{name}'s eventType");
            assert!(doc["webhooks"][t]["post"].is_object(), "webhook {t} is not documented");
        }
    }

    /// The error answers every operation can give are documented: 401 where a key is
    /// needed; 400 and 404 where the path names something; 400, 408 and 413 where a JSON
    /// body is read.
    #[test]
    fn every_operation_documents_the_errors_it_can_answer() {
        let doc = doc();
        let mut missing = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let responses = op["responses"].as_object().unwrap();
                let mut need = Vec::new();
                if op.get("security") != Some(&Value::Array(vec![])) {
                    need.push("401");
                }
                // Every phone is a simulated user: that path names nothing that can be missing.
                // Meta answers an unknown object with a 400 (its codes 100 and 131041).
                if path.contains('{') && !path.starts_with("/v1/sandbox/users/") && !path.starts_with("/graph/") {
                    need.extend(["400", "404"]);
                } else if path.contains('{') {
                    need.push("400");
                }
                if op.get("requestBody").is_some() {
                    need.extend(["400", "408", "413"]);
                }
                for code in need {
                    if !responses.contains_key(code) {
                        missing.push(format!("{method} {path} {code}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }

    /// The router and the document list the same paths.
    #[test]
    fn every_served_path_is_documented_and_every_documented_path_is_served() {
        let doc = doc();
        let documented: std::collections::BTreeSet<&str> =
            doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
        let served: std::collections::BTreeSet<&str> = crate::served_paths().into_iter().collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(undocumented.is_empty(), "served, not documented: {undocumented:?}");
        assert!(unserved.is_empty(), "documented, not served: {unserved:?}");
    }

    #[test]
    fn the_openapi_document_parses_and_documents_every_event_type() {
        let doc = doc();
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
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics", security(),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 503, description = "No metrics recorder in this process", content_type = "text/plain", body = String),
    ))]
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
    match state.service.store().inbox_stats().await {
        Ok(stats) => {
            metrics::gauge!("wagroups_provider_reports_held").set(stats.held as f64);
            metrics::gauge!("wagroups_provider_reports_dead").set(stats.dead as f64);
        }
        Err(e) => tracing::warn!(error = %e, "reading provider inbox figures failed"),
    }
    (StatusCode::OK, handle.render())
}
