//! Typed, prefixed identifiers (`org_…`, `key_…`, `evt_…`) and secrets.
//!
//! Each kind of identifier is its own type, with its prefix named once here, so an endpoint ID
//! cannot be passed where an organisation's is wanted. They serialize as their plain text and
//! dereference to `str` for reading; a store builds them back from the text it kept
//! ([`From<String>`]), and the HTTP layer checks a client's with `parse` (right prefix, sane
//! length), so a malformed one is simply not found.

use rand::Rng;
use sha2::{Digest, Sha256};

/// A new identifier with the given prefix: the prefix, `_`, and a time-ordered UUIDv7 in hex.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

macro_rules! typed_id {
    ($(#[$m:meta])* $name:ident $(= $prefix:literal)?) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The text, as stored and shown.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_string(self) -> String {
                self.0
            }
        }

        $(
        impl $name {
            /// What every identifier of this kind begins with, before the `_`.
            pub const PREFIX: &'static str = $prefix;

            /// A new, unique, time-ordered identifier.
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                $name(new_id($prefix))
            }

            /// A client's text, if it can be an identifier of this kind (its prefix and `_`, then at
            /// most 64 ASCII letters and digits).
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?.strip_prefix('_')?;
                (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .then(|| $name(s.to_owned()))
            }
        }
        )?

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }

        $(
        /// The JSON form in the OpenAPI document: a string beginning with the prefix.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::schema::text(None, Some(concat!("^", $prefix, "_[A-Za-z0-9]{1,64}$")), None)
            }
        }
        impl utoipa::ToSchema for $name {}
        )?
    };
}

typed_id!(
    /// An organisation (tenant): `org_…`.
    OrgId = "org"
);
typed_id!(
    /// An API key's public identifier (not its secret): `key_…`.
    ApiKeyId = "key"
);
typed_id!(
    /// A webhook endpoint: `ep_…`.
    EndpointId = "ep"
);
typed_id!(
    /// An event, and the `webhook-id` of every delivery of it: `evt_…`.
    EventId = "evt"
);
typed_id!(
    /// A command to the provider (also the idempotency key it is sent with): `cmd_…`.
    CommandId = "cmd"
);
typed_id!(
    /// A write WhatsApp confirms later: `op_…`.
    OperationId = "op"
);
typed_id!(
    /// A group's identifier in the client's hands: one wagroups minted (`grp_…`, see
    /// [`GroupId::new`]) or one the client chose when it created the group, so any text
    /// `validate::group_id` accepts.
    GroupId
);

/// A client's group ID or a minted one: the rule of `validate::group_id`.
impl utoipa::PartialSchema for GroupId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::schema::text(
            Some("Your group ID (given at creation, or minted: `grp_…`)"),
            Some("^[A-Za-z0-9_.-]+$"),
            Some(crate::validate::GROUP_ID_MAX),
        )
    }
}
impl utoipa::ToSchema for GroupId {}

impl GroupId {
    /// A new `grp_…` identifier, for a group created without one.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        GroupId(new_id("grp"))
    }
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

/// A group's ID in Meta's Graph dialect: opaque, stable and URL-safe. A group on Meta's Cloud
/// API keeps Meta's own ID (what a Meta client already has); one on a WhatsApp JID (the
/// simulated network) gets an ID of Meta's form, `capi_group:<business number>:<JID user>` in
/// base64url.
pub fn graph_group_id(waba_number: &str, wa_group_id: &str) -> String {
    use base64::Engine as _;
    match wa_group_id.strip_suffix("@g.us") {
        Some(user) => {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("capi_group:{waba_number}:{user}"))
        }
        None => wa_group_id.to_string(),
    }
}

/// The (business number, WhatsApp group ID) a Graph group ID of ours names, when it is one of
/// the IDs [`graph_group_id`] makes for JID groups; `None` for anything else (Meta's IDs are
/// kept as they are).
pub fn graph_group_jid(graph_id: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(graph_id).ok()?;
    let text = String::from_utf8(text).ok()?;
    let rest = text.strip_prefix("capi_group:")?;
    let (waba, user) = rest.split_once(':')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    (digits(waba) && digits(user)).then(|| (waba.to_string(), format!("{user}@g.us")))
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
    fn typed_ids_carry_their_prefix() {
        let e = EndpointId::new();
        assert!(e.starts_with("ep_") && e.len() == 35, "{e}");
        assert_eq!(EndpointId::parse(&e), Some(e.clone()));
        assert_eq!(EndpointId::PREFIX, "ep");
        assert_eq!(EndpointId::parse("org_0190"), None);
        assert_eq!(EndpointId::parse("ep_"), None);
        assert_eq!(EndpointId::parse("ep"), None);
        assert_eq!(EndpointId::parse("ep_a/b"), None);
        assert_eq!(EndpointId::parse(&format!("ep_{}", "a".repeat(65))), None);
        assert!(OrgId::new().starts_with("org_") && GroupId::new().starts_with("grp_"));
        // Serialized as the bare text.
        let id = OperationId::from("op_1");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"op_1\"");
        assert_eq!(format!("{id:?} {id}"), "\"op_1\" op_1");
    }

    #[test]
    fn graph_group_ids_are_metas_or_of_metas_form() {
        let id = graph_group_id("15550100001", "120363000000000001@g.us");
        assert!(
            id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert_eq!(
            graph_group_jid(&id),
            Some(("15550100001".into(), "120363000000000001@g.us".into()))
        );
        // Meta's IDs are kept, and are not taken for ours.
        let meta = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";
        assert_eq!(graph_group_id("17055550139", meta), meta);
        assert_eq!(graph_group_jid(meta), None);
        assert_eq!(graph_group_jid("grp_1"), None);
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
