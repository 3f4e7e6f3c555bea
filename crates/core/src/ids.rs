//! Typed, prefixed identifiers (`org_…`, `key_…`, `evt_…`) and secrets.

use rand::Rng;
use sha2::{Digest, Sha256};

/// A new identifier with the given prefix: the prefix, `_`, and a time-ordered UUIDv7 in hex.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random string of `len` ASCII letters and digits.
pub fn random_alnum(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect()
}

/// A random string of `len` decimal digits.
pub fn random_digits(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

/// A new API key secret: `wag_` followed by 43 characters (32 random bytes, base64url).
pub fn new_api_key_secret() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    format!("wag_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of an API key: hex SHA-256 of the secret. Keys are 256-bit random values,
/// so a fast hash is the right tool (no password-hashing work per request).
pub fn hash_api_key(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_unique() {
        let a = new_id("evt");
        let b = new_id("evt");
        assert!(a.starts_with("evt_") && a.len() == 36);
        assert_ne!(a, b);
    }

    #[test]
    fn api_keys_hash_stably() {
        let k = new_api_key_secret();
        assert!(k.starts_with("wag_") && k.len() == 47, "{k}");
        assert_eq!(hash_api_key(&k), hash_api_key(&k));
        assert_ne!(hash_api_key(&k), hash_api_key(&new_api_key_secret()));
        // Lowercase hex SHA-256, as stored by every version (a known vector).
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(random_alnum(22).len(), 22);
        assert!(random_digits(12).chars().all(|c| c.is_ascii_digit()));
    }
}
