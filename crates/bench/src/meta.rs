//! The Meta path: a cloud-api number served by a local fake of the Graph API that answers a
//! create at once and confirms it by a signed `group_create` webhook, as Meta does.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Json, Router, extract::State, http::Uri, routing::post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const APP_SECRET: &str = "bench-app-secret";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const NUMBER: &str = "15550200001";

/// `sha256=<hex>` of `body` with the app secret.
pub fn sign(body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(APP_SECRET.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A webhook of Meta's with these `groups[]`.
pub fn webhook(field: &str, groups: Vec<Value>) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{
            "value": { "messaging_product": "whatsapp",
                       "metadata": { "display_phone_number": NUMBER, "phone_number_id": PHONE_NUMBER_ID },
                       "groups": groups },
            "field": field }] }]
    })
    .to_string()
}

struct Inner {
    next: AtomicU64,
    tx: mpsc::UnboundedSender<String>,
}

pub struct FakeGraph {
    pub addr: SocketAddr,
    target: Arc<Mutex<Option<String>>>,
}

impl FakeGraph {
    /// Starts the fake and its webhook senders (8, reusing connections).
    pub async fn start() -> anyhow::Result<FakeGraph> {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let target: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let http = reqwest::Client::new();
        for _ in 0..8 {
            let (rx, http, target) = (rx.clone(), http.clone(), target.clone());
            tokio::spawn(async move {
                loop {
                    let Some(body) = rx.lock().await.recv().await else {
                        return;
                    };
                    let sig = sign(body.as_bytes());
                    loop {
                        let url = target.lock().map(|t| t.clone()).ok().flatten();
                        let Some(url) = url else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let r = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .header("x-hub-signature-256", &sig)
                            .body(body.clone())
                            .send()
                            .await;
                        if r.is_ok_and(|r| r.status().is_success()) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            });
        }
        let inner = Arc::new(Inner {
            next: AtomicU64::new(0),
            tx,
        });
        let app = Router::new()
            .route("/{version}/{pnid}/groups", post(create))
            .fallback(|uri: Uri| async move { (axum::http::StatusCode::NOT_FOUND, format!("no fake for {uri}")) })
            .with_state(inner);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FakeGraph { addr, target })
    }

    pub fn send_webhooks_to(&self, url: String) {
        if let Ok(mut t) = self.target.lock() {
            *t = Some(url);
        }
    }
}

async fn create(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Json<Value> {
    let n = inner.next.fetch_add(1, Ordering::Relaxed);
    let request_id = format!("R{n:010}");
    let group = json!({
        "timestamp": "1755548877",
        "group_id": format!("Y2FwaV9ncm91cDpi{n:012}"),
        "type": "group_create",
        "request_id": request_id,
        "subject": body["subject"],
        "invite_link": format!("https://chat.whatsapp.com/B{n:010}"),
        "join_approval_mode": "auto_approve",
    });
    let _ = inner.tx.send(webhook("group_lifecycle_update", vec![group]));
    Json(json!({ "messaging_product": "whatsapp", "request_id": request_id }))
}
