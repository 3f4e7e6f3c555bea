//! A cloud-api number's configuration: what the provider needs to call Meta for it and to
//! verify Meta's webhooks about it. Kept in the number's `provider_config`; its three
//! secrets are sealed with the deployment's key, for this number and field only.

use serde::{Deserialize, Serialize};
use wagroups_core::{
    model::{Number, ProviderKind},
    secret::{Sealed, Secret, SecretError, SecretKey},
};

pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_API_VERSION: &str = "v23.0";

/// The configuration as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudConfig {
    /// Meta's ID of the business phone number (also the number's `provider_ref`).
    pub phone_number_id: String,
    /// The WhatsApp Business Account, when given (`wabaId`: the one key of the configuration
    /// the gateway reads, see `Number::provider_config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    pub graph_url: String,
    pub api_version: String,
    /// Meta's "group invite link" utility template, to send a participant the link 1:1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_template_language: Option<String>,
    pub sealed: SealedCredentials,
}

/// The number's credentials, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedCredentials {
    pub access_token: Sealed,
    pub app_secret: Sealed,
    pub verify_token: Sealed,
}

/// The number's credentials, opened (each prints as `[redacted]`).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
}

/// Which credential: the purpose each is sealed for.
#[derive(Debug, Clone, Copy)]
pub enum Credential {
    AccessToken,
    AppSecret,
    VerifyToken,
}

impl Credential {
    fn purpose(self, waba_number: &str) -> String {
        let field = match self {
            Credential::AccessToken => "access token",
            Credential::AppSecret => "app secret",
            Credential::VerifyToken => "verify token",
        };
        format!("cloud-api {field} of {waba_number}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("number {0} is not a cloud-api number")]
    NotCloud(String),
    #[error("number {number}'s cloud-api configuration does not read: {reason}")]
    Unreadable { number: String, reason: String },
    #[error("number {number}'s {credential} does not open: {reason}")]
    Sealed {
        number: String,
        credential: &'static str,
        reason: SecretError,
    },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

/// Everything `numbers add --provider cloud-api` is given, secrets in the clear.
#[derive(Debug, Clone)]
pub struct CloudSetup {
    pub phone_number_id: String,
    pub waba_id: Option<String>,
    pub graph_url: Option<String>,
    pub api_version: Option<String>,
    pub invite_template: Option<String>,
    pub invite_template_language: Option<String>,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
}

/// What `numbers update` may change; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct CloudChange {
    pub waba_id: Option<String>,
    pub graph_url: Option<String>,
    pub api_version: Option<String>,
    pub invite_template: Option<String>,
    pub invite_template_language: Option<String>,
    pub access_token: Option<Secret>,
    pub app_secret: Option<Secret>,
    pub verify_token: Option<Secret>,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.into(),
    }
}

fn check_graph_url(url: &str) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| invalid("graph-url", format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(invalid("graph-url", "must be an http(s) URL with a host"));
    }
    Ok(url.trim().trim_end_matches('/').to_string())
}

fn check_version(v: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    let ok = v
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if !ok {
        return Err(invalid("api-version", format!("must look like v23.0, got {v:?}")));
    }
    Ok(v.to_string())
}

fn check_id(field: &'static str, id: &str) -> Result<String, ConfigError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|c| c.is_ascii_digit()) {
        return Err(invalid(field, format!("must be Meta's numeric ID, got {id:?}")));
    }
    Ok(id.to_string())
}

fn check_secret(field: &'static str, s: &Secret) -> Result<(), ConfigError> {
    let v = s.expose();
    if v.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if v.len() > 4096 || v.chars().any(char::is_control) {
        return Err(invalid(field, "must be one line of at most 4096 characters"));
    }
    Ok(())
}

impl CloudConfig {
    /// A new number's configuration, its secrets sealed for it.
    pub fn new(waba_number: &str, setup: CloudSetup, key: &SecretKey) -> Result<CloudConfig, ConfigError> {
        check_secret("access-token", &setup.access_token)?;
        check_secret("app-secret", &setup.app_secret)?;
        check_secret("verify-token", &setup.verify_token)?;
        let seal = |c: Credential, s: &Secret| key.seal(&c.purpose(waba_number), s.expose());
        CloudConfig {
            phone_number_id: check_id("phone-number-id", &setup.phone_number_id)?,
            waba_id: setup.waba_id.as_deref().map(|w| check_id("waba-id", w)).transpose()?,
            graph_url: check_graph_url(setup.graph_url.as_deref().unwrap_or(DEFAULT_GRAPH_URL))?,
            api_version: check_version(setup.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION))?,
            invite_template: setup
                .invite_template
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            invite_template_language: setup
                .invite_template_language
                .map(|t| t.trim().to_string())
                .filter(|l| !l.is_empty()),
            sealed: SealedCredentials {
                access_token: seal(Credential::AccessToken, &setup.access_token),
                app_secret: seal(Credential::AppSecret, &setup.app_secret),
                verify_token: seal(Credential::VerifyToken, &setup.verify_token),
            },
        }
        .checked_template()
    }

    /// Meta sends a template in one language: a template needs its language.
    fn checked_template(self) -> Result<CloudConfig, ConfigError> {
        if let Some(t) = &self.invite_template {
            if t.len() > 512
                || !t
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
            {
                return Err(invalid(
                    "invite-template",
                    format!("must be a template name (lowercase letters, digits and _, at most 512), got {t:?}"),
                ));
            }
            match &self.invite_template_language {
                None => {
                    return Err(invalid(
                        "invite-template-language",
                        "is required with invite-template (the template's language code, e.g. en_US)",
                    ));
                }
                Some(l) if l.len() > 16 || !l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') => {
                    return Err(invalid(
                        "invite-template-language",
                        format!("must be a language code such as en or en_US, got {l:?}"),
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(self)
    }

    /// The invite template and its language, when the number has one.
    pub fn invite_template(&self) -> Option<(&str, &str)> {
        Some((
            self.invite_template.as_deref()?,
            self.invite_template_language.as_deref()?,
        ))
    }

    /// The configuration of a cloud-api number.
    pub fn of(number: &Number) -> Result<CloudConfig, ConfigError> {
        if number.provider != ProviderKind::CloudApi {
            return Err(ConfigError::NotCloud(number.waba_number.clone()));
        }
        serde_json::from_value(number.provider_config.clone()).map_err(|e| ConfigError::Unreadable {
            number: number.waba_number.clone(),
            reason: e.to_string(),
        })
    }

    /// Applies a change (new secrets sealed for the number).
    pub fn change(
        mut self,
        waba_number: &str,
        change: CloudChange,
        key: &SecretKey,
    ) -> Result<CloudConfig, ConfigError> {
        if let Some(w) = change.waba_id {
            self.waba_id = Some(check_id("waba-id", &w)?);
        }
        if let Some(u) = change.graph_url {
            self.graph_url = check_graph_url(&u)?;
        }
        if let Some(v) = change.api_version {
            self.api_version = check_version(&v)?;
        }
        // The template is checked when it changes (an unrelated update, a new token say, goes
        // through whatever was stored before).
        let template_changed = change.invite_template.is_some() || change.invite_template_language.is_some();
        if let Some(t) = change.invite_template {
            self.invite_template = Some(t.trim().to_string()).filter(|t| !t.is_empty());
        }
        if let Some(l) = change.invite_template_language {
            self.invite_template_language = Some(l.trim().to_string()).filter(|l| !l.is_empty());
        }
        for (c, field, value, slot) in [
            (
                Credential::AccessToken,
                "access-token",
                change.access_token,
                &mut self.sealed.access_token,
            ),
            (
                Credential::AppSecret,
                "app-secret",
                change.app_secret,
                &mut self.sealed.app_secret,
            ),
            (
                Credential::VerifyToken,
                "verify-token",
                change.verify_token,
                &mut self.sealed.verify_token,
            ),
        ] {
            if let Some(s) = value {
                check_secret(field, &s)?;
                *slot = key.seal(&c.purpose(waba_number), s.expose());
            }
        }
        if template_changed {
            return self.checked_template();
        }
        Ok(self)
    }

    /// One credential, opened.
    pub fn open(&self, waba_number: &str, which: Credential, key: &SecretKey) -> Result<Secret, ConfigError> {
        let sealed = match which {
            Credential::AccessToken => &self.sealed.access_token,
            Credential::AppSecret => &self.sealed.app_secret,
            Credential::VerifyToken => &self.sealed.verify_token,
        };
        key.open(&which.purpose(waba_number), sealed)
            .map_err(|reason| ConfigError::Sealed {
                number: waba_number.to_string(),
                credential: match which {
                    Credential::AccessToken => "access token",
                    Credential::AppSecret => "app secret",
                    Credential::VerifyToken => "verify token",
                },
                reason,
            })
    }

    /// All three credentials, opened.
    pub fn credentials(&self, waba_number: &str, key: &SecretKey) -> Result<Credentials, ConfigError> {
        Ok(Credentials {
            access_token: self.open(waba_number, Credential::AccessToken, key)?,
            app_secret: self.open(waba_number, Credential::AppSecret, key)?,
            verify_token: self.open(waba_number, Credential::VerifyToken, key)?,
        })
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn setup() -> CloudSetup {
        CloudSetup {
            phone_number_id: "106540352242922".into(),
            waba_id: None,
            graph_url: None,
            api_version: None,
            invite_template: Some("group_invite_link".into()),
            invite_template_language: Some("en".into()),
            access_token: Secret::new("EAAG-access"),
            app_secret: Secret::new("app-secret-1"),
            verify_token: Secret::new("verify-1"),
        }
    }

    #[test]
    fn secrets_are_sealed_for_their_number_and_field_and_never_stored_in_the_clear() {
        let key = SecretKey::generate();
        let c = CloudConfig::new("15550100001", setup(), &key).unwrap();
        let stored = c.to_value().to_string();
        for secret in ["EAAG-access", "app-secret-1", "verify-1"] {
            assert!(!stored.contains(secret), "{secret} stored in the clear: {stored}");
        }
        assert!(!format!("{c:?}").contains("EAAG"));
        assert_eq!(c.graph_url, DEFAULT_GRAPH_URL);
        assert_eq!(c.api_version, DEFAULT_API_VERSION);
        let creds = c.credentials("15550100001", &key).unwrap();
        assert_eq!(creds.access_token.expose(), "EAAG-access");
        assert_eq!(creds.app_secret.expose(), "app-secret-1");
        assert!(!format!("{creds:?}").contains("app-secret-1"));
        // Moved to another number, or opened with another key: refused.
        assert!(c.open("15550100002", Credential::AccessToken, &key).is_err());
        assert!(
            c.open("15550100001", Credential::AccessToken, &SecretKey::generate())
                .is_err()
        );
        // Swapping sealed fields does not make one open as the other.
        let mut swapped = c.clone();
        swapped.sealed.app_secret = c.sealed.access_token.clone();
        assert!(swapped.open("15550100001", Credential::AppSecret, &key).is_err());
        // Round trip through the stored form.
        let back: CloudConfig = serde_json::from_value(c.to_value()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn bad_settings_name_their_flag() {
        let key = SecretKey::generate();
        let mut s = setup();
        s.phone_number_id = "abc".into();
        assert!(matches!(
            CloudConfig::new("1555", s, &key),
            Err(ConfigError::Invalid {
                field: "phone-number-id",
                ..
            })
        ));
        let mut s = setup();
        s.graph_url = Some("ftp://x".into());
        assert!(matches!(
            CloudConfig::new("1555", s, &key),
            Err(ConfigError::Invalid { field: "graph-url", .. })
        ));
        let mut s = setup();
        s.api_version = Some("23".into());
        assert!(matches!(
            CloudConfig::new("1555", s, &key),
            Err(ConfigError::Invalid {
                field: "api-version",
                ..
            })
        ));
        let mut s = setup();
        s.access_token = Secret::new("  ");
        assert!(matches!(
            CloudConfig::new("1555", s, &key),
            Err(ConfigError::Invalid {
                field: "access-token",
                ..
            })
        ));
    }

    #[test]
    fn an_update_reseals_only_what_it_names() {
        let key = SecretKey::generate();
        let c = CloudConfig::new("15550100001", setup(), &key).unwrap();
        let changed = c
            .clone()
            .change(
                "15550100001",
                CloudChange {
                    access_token: Some(Secret::new("EAAG-new")),
                    graph_url: Some("http://127.0.0.1:9/".into()),
                    ..Default::default()
                },
                &key,
            )
            .unwrap();
        assert_eq!(
            changed
                .open("15550100001", Credential::AccessToken, &key)
                .unwrap()
                .expose(),
            "EAAG-new"
        );
        assert_eq!(changed.sealed.app_secret, c.sealed.app_secret);
        assert_eq!(changed.graph_url, "http://127.0.0.1:9");
    }
}
