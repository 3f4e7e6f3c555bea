//! The cloud provider's invites, against a local stand-in for Meta's send-message call: each
//! phone sent the template is `invited` and its effect recorded under its own key; a call Meta
//! does not answer is the phone's `invite_required` (the template may have gone out), and the
//! phones after it are not sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Json, Router, extract::State, routing::post};
use serde_json::{Value, json};
use wagroups_core::{
    error::ServiceError,
    model::{HealthStatus, ItemStatus, JoinApprovalMode, Number, NumberHealth, Profile, ProviderKind},
    provider::{Operated, Provider, ProviderEnvelope, ProviderEvent, ProviderEventSink, ProviderOp, Received},
    secret::{KeySlot, Secret, SecretKey},
    time::Timestamp,
};
use wagroups_providers::cloud::{CloudConfig, CloudProvider, CloudSetup, Graph};

const NUMBER: &str = "15550783881";
const GROUP: &str = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";

/// Answers each send after `delay`, except to `stall`, whose answer never comes.
#[derive(Clone, Default)]
struct Meta {
    sent: Arc<Mutex<Vec<String>>>,
    stall: Arc<Mutex<Option<String>>>,
    delay: Arc<Mutex<Duration>>,
    /// This recipient's send is answered with Meta's rate limit (131208, HTTP 429).
    limited: Arc<Mutex<Option<String>>>,
}

async fn send(State(meta): State<Meta>, Json(body): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let to = body["to"].as_str().unwrap_or("").to_string();
    meta.sent.lock().unwrap().push(to.clone());
    let delay = *meta.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    if meta.stall.lock().unwrap().as_deref() == Some(to.as_str()) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if meta.limited.lock().unwrap().as_deref() == Some(to.as_str()) {
        let error = json!({ "error": { "message": "(#131208) Rate limit hit", "type": "OAuthException",
                                       "code": 131208, "fbtrace_id": "A" } });
        return (axum::http::StatusCode::TOO_MANY_REQUESTS, Json(error)).into_response();
    }
    Json(
        json!({ "messaging_product": "whatsapp", "contacts": [{ "input": to, "wa_id": to }],
                 "messages": [{ "id": format!("wamid.{to}") }] }),
    )
    .into_response()
}

#[derive(Default)]
struct Sink(Mutex<Vec<ProviderEnvelope>>);

#[async_trait::async_trait]
impl ProviderEventSink for Sink {
    async fn deliver(&self, envelope: ProviderEnvelope) -> Result<Received, ServiceError> {
        let mut got = self.0.lock().unwrap();
        if got.iter().any(|e| e.dedup_key == envelope.dedup_key) {
            return Ok(Received::Duplicate);
        }
        got.push(envelope);
        Ok(Received::Applied)
    }
}

async fn setup(meta: &Meta) -> (CloudProvider, Number) {
    let app = Router::new()
        .route("/v23.0/{pnid}/messages", post(send))
        .with_state(meta.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = SecretKey::generate();
    let config = CloudConfig::new(
        NUMBER,
        CloudSetup {
            phone_number_id: "106540352242922".into(),
            waba_id: None,
            graph_url: Some(url),
            api_version: None,
            invite_template: Some("group_invite_link".into()),
            invite_template_language: Some("en_US".into()),
            access_token: Secret::new("EAAG-token"),
            app_secret: Secret::new("app-secret"),
            verify_token: Secret::new("verify"),
        },
        &key,
    )
    .unwrap();
    let number = Number {
        id: 1,
        org_id: "org_test".into(),
        waba_number: NUMBER.into(),
        provider: ProviderKind::CloudApi,
        profile: Profile::Cloud,
        disabled: false,
        default_join_approval_mode: JoinApprovalMode::AutoApprove,
        provider_config: serde_json::to_value(&config).unwrap(),
        provider_ref: Some("106540352242922".into()),
        instance_id: None,
        health: NumberHealth {
            status: HealthStatus::Ok,
            until: None,
            detail: None,
        },
        created_at: Timestamp(0),
    };
    let graph = Graph::with_timeout(Duration::from_millis(300)).unwrap();
    (CloudProvider::new(graph, Arc::new(KeySlot::with(Some(key)))), number)
}

/// Three phones invited in one write, the second of which Meta does not take.
async fn invite_three(meta: &Meta) -> Result<Operated, wagroups_core::provider::ProviderError> {
    let (provider, number) = setup(meta).await;
    provider
        .operate(
            &number,
            GROUP,
            &invite(&["16505550001", "16505550002", "16505550003"]),
            "op_1",
        )
        .await
}

/// The first phone invited, the other two to be sent the link by the business.
fn assert_sent_first_only(results: &[wagroups_core::model::ItemResult]) {
    let statuses: Vec<ItemStatus> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            ItemStatus::Invited,
            ItemStatus::InviteRequired,
            ItemStatus::InviteRequired
        ]
    );
}

fn invite(phones: &[&str]) -> ProviderOp {
    ProviderOp::Invite {
        phones: phones.iter().map(|p| p.to_string()).collect(),
    }
}

#[tokio::test]
async fn each_phone_sent_the_template_is_invited_and_recorded_under_its_own_key() {
    let meta = Meta::default();
    *meta.delay.lock().unwrap() = Duration::from_millis(40);
    let (provider, number) = setup(&meta).await;
    let provider = Arc::new(provider);
    let sink = Arc::new(Sink::default());
    // Other requests flush the provider's effects while the invites are being sent.
    let phones = ["16505550001", "16505550002", "16505550003"];
    let sending = {
        let (provider, number) = (provider.clone(), number.clone());
        tokio::spawn(async move { provider.operate(&number, GROUP, &invite(&phones), "op_1").await })
    };
    while !sending.is_finished() {
        provider.flush(sink.as_ref()).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let Operated::Done(results) = sending.await.unwrap().unwrap() else {
        panic!("invites are answered at once");
    };
    assert!(results.iter().all(|r| r.status == ItemStatus::Invited), "{results:?}");
    provider.flush(sink.as_ref()).await;
    let got = sink.0.lock().unwrap();
    let invited: Vec<&str> = got
        .iter()
        .map(|e| match &e.event {
            ProviderEvent::ParticipantInvited { phone, .. } => phone.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(invited, phones, "each invite recorded once, none taken for another");
    assert_eq!(meta.sent.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_template_meta_does_not_answer_is_invite_required_and_stops_the_rest() {
    let meta = Meta::default();
    *meta.stall.lock().unwrap() = Some("16505550002".into());
    let answer = invite_three(&meta).await;
    let Ok(Operated::Done(results)) = answer else {
        panic!("answered per phone, not left in doubt: {answer:?}");
    };
    assert_sent_first_only(&results);
    assert!(
        results[1]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("may have been sent"),
        "{results:?}"
    );
    assert_eq!(
        *meta.sent.lock().unwrap(),
        ["16505550001", "16505550002"],
        "nothing sent after the unanswered call"
    );
}

#[tokio::test]
async fn a_rate_limit_after_some_invites_answers_the_rest_and_pauses_the_number() {
    let meta = Meta::default();
    *meta.limited.lock().unwrap() = Some("16505550002".into());
    let answer = invite_three(&meta).await;
    let Ok(Operated::Partial { results, stopped_by }) = answer else {
        panic!("the invites sent are answered, with what stopped the rest: {answer:?}");
    };
    assert_sent_first_only(&results);
    let wagroups_core::provider::ProviderError::Paused { health, .. } = stopped_by else {
        panic!("{stopped_by:?}");
    };
    assert_eq!(health.status, HealthStatus::RateLimited);
    assert_eq!(*meta.sent.lock().unwrap(), ["16505550001", "16505550002"]);
}
