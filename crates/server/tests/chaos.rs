//! A provider whose confirmations come before their request IDs are recorded, and twice
//! each, drives the group-management scenarios to the same final state and event log as the
//! simulated network delivering in order, once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod app;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde_json::{Value, json};
use wagroups_core::{
    command::Command,
    inbox::Received,
    model::Number,
    provider::{
        Capabilities, Operated, Provider, ProviderEnvelope, ProviderError, ProviderEvent, ProviderEventSink,
        ProviderOp, Submitted,
    },
    service::ServiceError,
};
use wagroups_providers::simulated::SimNetwork;
use wagroups_server::Extras;

use crate::app::{TestApp, spawn_app, spawn_app_with};

/// The simulated network, answering under request IDs of its own (`req-…`, not the command
/// or operation ID) and only after a while: its confirmations reach the gateway first.
struct LateIds(Arc<SimNetwork>);

const LATE: Duration = Duration::from_millis(150);

#[async_trait]
impl Provider for LateIds {
    fn capabilities(&self, number: &Number) -> Capabilities {
        self.0.capabilities(number)
    }

    async fn submit(&self, number: &Number, command: &Command) -> Result<Submitted, ProviderError> {
        let s = self.0.submit(number, command).await?;
        tokio::time::sleep(LATE).await;
        Ok(Submitted {
            request_id: format!("req-{}", s.request_id),
        })
    }

    async fn operate(
        &self,
        number: &Number,
        wa_group_id: &str,
        op: &ProviderOp,
        operation_id: &str,
    ) -> Result<Operated, ProviderError> {
        match self.0.operate(number, wa_group_id, op, operation_id).await? {
            Operated::Accepted { request_id } => {
                tokio::time::sleep(LATE).await;
                Ok(Operated::Accepted {
                    request_id: format!("req-{request_id}"),
                })
            }
            done => Ok(done),
        }
    }

    async fn flush(&self, sink: &dyn ProviderEventSink) {
        self.0.flush(sink).await;
    }
}

/// Renames the request IDs in reports as [`LateIds`] answers them, and hands every report
/// to the inbox twice; counts what the inbox made of them.
struct Twice(Arc<dyn ProviderEventSink>, Arc<std::sync::Mutex<Vec<Received>>>);

#[async_trait]
impl ProviderEventSink for Twice {
    async fn deliver(&self, mut env: ProviderEnvelope) -> Result<Received, ServiceError> {
        match &mut env.event {
            ProviderEvent::GroupCreated { request_id, .. }
            | ProviderEvent::GroupCreateFailed { request_id, .. }
            | ProviderEvent::OperationSucceeded { request_id, .. }
            | ProviderEvent::OperationFailed { request_id, .. } => *request_id = format!("req-{request_id}"),
            _ => {}
        }
        let first = self.0.deliver(env.clone()).await?;
        let second = self.0.deliver(env).await?;
        if let Ok(mut seen) = self.1.lock() {
            seen.extend([first, second]);
        }
        Ok(first)
    }
}

fn chaos(seen: Arc<std::sync::Mutex<Vec<Received>>>) -> Extras {
    Extras {
        wrap_simulated: Some(Box::new(|sim| Arc::new(LateIds(sim)) as Arc<dyn Provider>)),
        wrap_reports: Some(Box::new(move |inbox| {
            Arc::new(Twice(inbox, seen.clone())) as Arc<dyn ProviderEventSink>
        })),
        ..Extras::default()
    }
}

async fn join(app: &TestApp, group: &Value, phone: &str) -> Value {
    let (st, b) = app
        .post(
            "/v1/sandbox/join",
            json!({ "phone": phone, "inviteLink": group["inviteLink"] }),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b
}

/// Creation, joins, a join request approved, a leave, a rename, a link reset, an invite, a
/// removal and a deletion; returns each group's log and final state, without IDs and times.
async fn scenario(app: &TestApp) -> Vec<(String, Vec<Value>, Value)> {
    let a = app.active_group("a", json!({})).await;
    let b = app
        .active_group("b", json!({ "joinApprovalMode": "approval_required" }))
        .await;
    let c = app.active_group("c", json!({ "description": "to be deleted" })).await;
    join(app, &a, "919000000001").await;
    join(app, &a, "919000000002").await;
    let req = join(app, &b, "919000000003").await;
    assert_eq!(req["result"], "join_request_created", "{req}");
    let (st, r) = app
        .post(
            "/v1/groups/b/join-requests/approve",
            json!({ "joinRequestIds": [req["joinRequestId"]] }),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = app
        .post("/v1/sandbox/leave", json!({ "phone": "919000000002", "groupId": "a" }))
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = app
        .send(
            reqwest::Method::PATCH,
            "/v1/groups/a",
            Some(json!({ "subject": "Renamed", "description": "now with a description" })),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = app.post("/v1/groups/a/invite-link/reset", json!({})).await;
    assert_eq!(st, 200, "{r}");
    let (st, r) = app
        .post("/v1/groups/b/participants", json!({ "participants": ["919000000004"] }))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["results"][0]["status"], "invited");
    let (st, r) = app
        .send(
            reqwest::Method::DELETE,
            "/v1/groups/a/participants",
            Some(json!({ "participants": ["919000000001"] })),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["results"][0]["status"], "removed");
    let (st, r) = app.send(reqwest::Method::DELETE, "/v1/groups/c", None).await;
    assert_eq!(st, 200, "{r}");
    let _ = c;
    let mut out = Vec::new();
    for id in ["a", "b", "c"] {
        let log: Vec<Value> = app
            .events(id)
            .await
            .into_iter()
            .map(|e| {
                json!({
                    "sequence": e["sequence"],
                    "eventType": e["eventType"],
                    "customerPhone": e["customerPhone"],
                    "reason": e["reason"],
                    "changes": e["changes"],
                })
            })
            .collect();
        let (_, g) = app.get(&format!("/v1/groups/{id}")).await;
        let mut participants: Vec<Value> = g["participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| json!({ "phone": p["phone"], "role": p["role"], "state": p["state"] }))
            .collect();
        participants.sort_by_key(|p| p["phone"].as_str().unwrap_or_default().to_string());
        let state = json!({
            "status": g["status"],
            "subject": g["subject"],
            "description": g["description"],
            "participantCount": g["participantCount"],
            "participants": participants,
        });
        out.push((id.to_string(), log, state));
    }
    out
}

#[tokio::test]
async fn early_and_repeated_confirmations_reach_the_state_and_log_in_order_ones_reach() {
    let plain = spawn_app().await;
    let expected = scenario(&plain).await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let late = spawn_app_with(chaos(seen.clone())).await;
    let got = scenario(&late).await;
    for ((id, want_log, want_state), (_, got_log, got_state)) in expected.iter().zip(&got) {
        assert_eq!(got_log, want_log, "group {id}'s event log");
        assert_eq!(got_state, want_state, "group {id}'s final state");
    }
    // The confirmations did come early (held: the three creations and the four writes), each
    // second delivery was a duplicate, and nothing is left over.
    let seen = seen.lock().unwrap().clone();
    let count = |r: Received| seen.iter().filter(|x| **x == r).count();
    assert!(count(Received::Held) >= 7, "{seen:?}");
    assert_eq!(count(Received::Duplicate), seen.len() / 2, "{seen:?}");
    assert_eq!(count(Received::Dead), 0);
    let stats = late.state.service.store().inbox_stats().await.unwrap();
    assert_eq!((stats.held, stats.dead), (0, 0));
    assert!(expected.iter().any(|(_, log, _)| log.len() >= 5), "{expected:?}");
}
