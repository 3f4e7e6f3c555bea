//! Standard Webhooks v1 signatures: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
//! the key being the base64-decoded secret after its `whsec_` prefix.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A secret's HMAC key, decoded and keyed once: signing clones the keyed state.
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha256>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// `None` if the secret is malformed.
    pub fn new(secret: &str) -> Option<SigningKey> {
        let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).ok()?;
        Hmac::<Sha256>::new_from_slice(&key).ok().map(SigningKey)
    }

    /// `v1,` and the signature of one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let mut out = String::with_capacity(47);
        out.push_str("v1,");
        STANDARD.encode_string(mac.finalize().into_bytes(), &mut out);
        out
    }
}

/// A `meta` endpoint's app secret, keyed once: Meta's `X-Hub-Signature-256` is
/// `sha256=` and the lowercase hex HMAC-SHA256 of the exact body, keyed with the secret's
/// UTF-8 bytes.
#[derive(Clone)]
pub struct AppSecretKey(Hmac<Sha256>);

impl std::fmt::Debug for AppSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppSecretKey(..)")
    }
}

impl AppSecretKey {
    pub fn new(secret: &str) -> Option<AppSecretKey> {
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok().map(AppSecretKey)
    }

    /// The `X-Hub-Signature-256` value of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.0.clone();
        mac.update(body);
        let mut out = String::with_capacity(71);
        out.push_str("sha256=");
        for b in mac.finalize().into_bytes() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }
}

/// The `webhook-signature` header from keys made beforehand.
pub fn header_with<'a>(
    keys: impl IntoIterator<Item = &'a SigningKey>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut out = String::new();
    for k in keys {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&k.sign(msg_id, timestamp, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_test_vector() {
        let sig = SigningKey::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").map(|k| {
            k.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#,
            )
        });
        assert_eq!(sig.as_deref(), Some("v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="));
        assert!(
            SigningKey::new("whsec_not base64!").is_none(),
            "a malformed secret signs nothing"
        );
    }

    #[test]
    fn verifies_with_the_reference_library() {
        let secret = wagroups_core::webhook::new_secret().expose().to_string();
        let body = br#"{"eventType":"GROUP_CREATED"}"#;
        let ts = wagroups_core::time::Timestamp::now().millis() / 1000;
        let other = wagroups_core::webhook::new_secret().expose().to_string();
        let keys = [SigningKey::new(&other).unwrap(), SigningKey::new(&secret).unwrap()];
        let header = header_with(&keys, "evt_1", ts, body);
        // Either active secret verifies during a rotation.
        for s in [&secret, &other] {
            let wh = standardwebhooks::Webhook::new(s).unwrap();
            assert!(wh.verify(body, &http_headers(&header, ts)).is_ok());
            assert!(wh.verify(b"tampered", &http_headers(&header, ts)).is_err());
        }
        let wh = standardwebhooks::Webhook::new(&secret).unwrap();
        assert!(wh.verify(body, &http_headers("v1,AAAA", ts)).is_err());
    }

    /// The HMAC-SHA256 test vector of RFC 4231 (case 2), as Meta's header writes it.
    #[test]
    fn app_secret_signatures_are_metas() {
        let k = AppSecretKey::new("Jefe").unwrap();
        assert_eq!(
            k.sign(b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn http_headers(sig: &str, ts: i64) -> reqwest::header::HeaderMap {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("webhook-id", "evt_1".parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }
}
