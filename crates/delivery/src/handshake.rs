//! Meta's subscription handshake with a `meta` endpoint, made before it is saved (and when
//! its URL or verify token changes), through the same guarded client as deliveries.

use std::time::Duration;

use wagroups_core::{secret::Secret, webhook_service::SubscriptionCheck};

/// How long the endpoint has to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most of its answer read (a challenge is a few digits).
const BODY_MAX: usize = 4096;

pub struct MetaHandshake {
    client: reqwest::Client,
    allow_private: bool,
}

impl MetaHandshake {
    /// `allow_private` as for deliveries.
    pub fn new(allow_private: bool) -> reqwest::Result<MetaHandshake> {
        Ok(MetaHandshake {
            client: crate::guard::client(allow_private, 1)?,
            allow_private,
        })
    }
}

#[async_trait::async_trait]
impl SubscriptionCheck for MetaHandshake {
    async fn check(&self, url: &str, verify_token: &Secret) -> Result<(), String> {
        let mut target = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        // Names are checked by the client's resolver; IP literals here, by the same rule.
        crate::guard::check_literal(&target, self.allow_private)?;
        let challenge = wagroups_core::ids::random_digits(10);
        target
            .query_pairs_mut()
            .append_pair("hub.mode", "subscribe")
            .append_pair("hub.verify_token", verify_token.expose())
            .append_pair("hub.challenge", &challenge);
        let resp = self
            .client
            .get(target)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("it could not be reached: {}", without_url(&e)))?;
        let status = resp.status();
        let mut resp = resp;
        let mut bytes = Vec::new();
        while bytes.len() < BODY_MAX {
            match resp.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return Err(format!("its answer could not be read: {}", without_url(&e))),
            }
        }
        bytes.truncate(BODY_MAX);
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let shown: String = body.chars().take(100).collect();
        if status != reqwest::StatusCode::OK {
            return Err(format!("it answered {} ({shown:?})", status.as_u16()));
        }
        if body.trim() != challenge {
            return Err(format!("it answered 200 with {shown:?}, not the challenge {challenge}"));
        }
        Ok(())
    }
}

/// A client error with its causes, without its URL (which carries the verify token).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = crate::worker::error_chain(e);
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "the URL");
    }
    s
}
