//! Idempotency keys (Stripe's semantics): a POST sent again with the same `Idempotency-Key`
//! and the same request within [`IDEMPOTENCY_TTL_MS`] gets the first answer again, without
//! anything done twice; the same key with another request is refused; while the first is
//! still being answered, the second waits its turn (refused, to be sent again). Keys are the
//! organisation's, and durable.

use sha2::{Digest, Sha256};

use crate::ValidationError;

/// How long a key's answer is kept.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;
/// The longest key accepted.
pub const KEY_MAX: usize = 255;

/// An answer as kept for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What a request with a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key is new (or expired): the request runs, and its answer is kept.
    Proceed,
    /// The first request with the key is still being answered.
    InFlight,
    /// The key was used with another request.
    Mismatch,
    /// The first answer, to give again.
    Replay(Replay),
}

/// Checks a client's key: 1 to 255 visible ASCII characters.
pub fn validate_key(raw: &str) -> Result<&str, ValidationError> {
    let k = raw.trim();
    if k.is_empty() || k.len() > KEY_MAX || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::new(
            "Idempotency-Key",
            format!("must be 1 to {KEY_MAX} visible ASCII characters"),
        ));
    }
    Ok(k)
}

/// What identifies a request for its key: method, path, query and body (hex SHA-256).
pub fn fingerprint(method: &str, path: &str, query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        method.as_bytes(),
        b"\n",
        path.as_bytes(),
        b"\n",
        query.as_bytes(),
        b"\n",
    ] {
        h.update(part);
    }
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_fingerprints() {
        assert_eq!(validate_key(" k-1 ").ok(), Some("k-1"));
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"x".repeat(256)).is_err());
        let a = fingerprint("POST", "/v1/groups", "", b"{}");
        assert_eq!(a, fingerprint("POST", "/v1/groups", "", b"{}"));
        assert_ne!(a, fingerprint("POST", "/v1/groups", "", b"{ }"));
        assert_ne!(a, fingerprint("POST", "/v1/groups", "x=1", b"{}"));
    }
}
