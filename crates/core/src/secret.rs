//! Secrets at rest (Meta access tokens, app secrets, verify tokens): sealed with the
//! deployment's key (XChaCha20-Poly1305, a random nonce per seal, the secret's purpose as
//! associated data so a sealed value cannot be moved to another field), opened only where
//! they are used, and never shown: [`Secret`] and [`SecretKey`] print as `[redacted]`.
//!
//! Loading the key (an environment variable or a key file) is I/O and lives with the
//! database (`wagroups_store::secret_key`); this module only seals and opens.

use base64::Engine as _;
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};

/// What sealed values begin with (the format's version).
const SEALED_PREFIX: &str = "v1.";
/// The setting holding a value sealed with the key, so a wrong key is caught at start.
pub const KEY_CHECK_SETTING: &str = "secret_key_check";
/// The purpose and text of that value.
pub const KEY_CHECK_PURPOSE: &str = "wagroups key check";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a secret key is 32 bytes in base64 (`openssl rand -base64 32`); this one {0}")]
    BadKey(&'static str),
    #[error("the secret key does not open this value: it was sealed with another key, or for another purpose")]
    WrongKey,
    #[error("not a sealed value")]
    NotSealed,
}

/// The deployment's key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> SecretKey {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        SecretKey(k)
    }

    /// A key as text: 32 bytes in base64 (standard or URL-safe, padded or not).
    pub fn from_text(text: &str) -> Result<SecretKey, SecretError> {
        let t = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
            .or_else(|_| B64.decode(t.trim_end_matches('=')))
            .map_err(|_| SecretError::BadKey("is not base64"))?;
        let k: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SecretError::BadKey("is not 32 bytes long"))?;
        Ok(SecretKey(k))
    }

    /// The key as text (standard base64), for a key file.
    pub fn to_text(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `plaintext` for `purpose` (for example `cloud-api access token`).
    pub fn seal(&self, purpose: &str, plaintext: &str) -> Sealed {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: purpose.as_bytes(),
        };
        // Encryption into a Vec cannot fail for inputs of this size.
        let ciphertext = self.cipher().encrypt(&XNonce::from(nonce), payload).unwrap_or_default();
        let mut out = Vec::with_capacity(24 + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Sealed(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    /// Opens a value sealed for `purpose` with this key.
    pub fn open(&self, purpose: &str, sealed: &Sealed) -> Result<Secret, SecretError> {
        let body = sealed.0.strip_prefix(SEALED_PREFIX).ok_or(SecretError::NotSealed)?;
        let bytes = B64.decode(body).map_err(|_| SecretError::NotSealed)?;
        if bytes.len() < 24 + 16 {
            return Err(SecretError::NotSealed);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| SecretError::NotSealed)?;
        let plain = self
            .cipher()
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.as_bytes(),
                },
            )
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map(Secret).map_err(|_| SecretError::WrongKey)
    }

    /// The value stored as [`KEY_CHECK_SETTING`].
    pub fn key_check(&self) -> Sealed {
        self.seal(KEY_CHECK_PURPOSE, KEY_CHECK_PURPOSE)
    }

    /// Whether this key sealed `check` (a [`KEY_CHECK_SETTING`] value).
    pub fn opens_key_check(&self, check: &Sealed) -> bool {
        self.open(KEY_CHECK_PURPOSE, check)
            .is_ok_and(|s| s.expose() == KEY_CHECK_PURPOSE)
    }
}

/// A sealed secret as stored (`v1.` and base64url of nonce and ciphertext).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    pub fn from_stored(s: String) -> Sealed {
        Sealed(s)
    }
    pub fn as_stored(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed([redacted])")
    }
}

/// An opened secret: used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that uses it (a header, an HMAC).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where the process keeps the key once it has it: filled at start, or later when a key is
/// made (the first cloud-api number added while the server runs).
#[derive(Default)]
pub struct KeySlot(std::sync::RwLock<Option<SecretKey>>);

impl std::fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySlot([redacted])")
    }
}

impl KeySlot {
    pub fn with(key: Option<SecretKey>) -> KeySlot {
        KeySlot(std::sync::RwLock::new(key))
    }
    pub fn get(&self) -> Option<SecretKey> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set(&self, key: SecretKey) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Some(key);
    }
    pub fn is_empty(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_and_purpose_only() {
        let k = SecretKey::generate();
        let s = k.seal("access token", "EAAG-token");
        assert!(s.as_stored().starts_with("v1."));
        assert!(!s.as_stored().contains("EAAG"));
        assert_eq!(k.open("access token", &s).unwrap().expose(), "EAAG-token");
        assert_eq!(k.open("app secret", &s), Err(SecretError::WrongKey), "another purpose");
        assert_eq!(
            SecretKey::generate().open("access token", &s),
            Err(SecretError::WrongKey),
            "another key"
        );
        assert_ne!(k.seal("access token", "EAAG-token"), s, "a fresh nonce each time");
        assert_eq!(
            k.open("access token", &Sealed::from_stored("plain".into())),
            Err(SecretError::NotSealed)
        );
        assert!(k.opens_key_check(&k.key_check()));
        assert!(!SecretKey::generate().opens_key_check(&k.key_check()));
    }

    #[test]
    fn keys_read_as_base64_of_32_bytes_and_never_print() {
        let k = SecretKey::generate();
        let back = SecretKey::from_text(&format!("  {}\n", k.to_text())).unwrap();
        assert_eq!(back.0, k.0);
        assert!(matches!(SecretKey::from_text("c2hvcnQ="), Err(SecretError::BadKey(_))));
        assert!(matches!(
            SecretKey::from_text("not base64!"),
            Err(SecretError::BadKey(_))
        ));
        assert_eq!(format!("{k:?}"), "SecretKey([redacted])");
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
        assert_eq!(format!("{:?}", k.seal("p", "hunter2")), "Sealed([redacted])");
    }
}
