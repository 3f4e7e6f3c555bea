//! Webhook endpoints and delivery rules: which events an endpoint receives, which targets are
//! refused (SSRF), the retry schedule, and the records the store keeps.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use base64::Engine as _;
use rand::Rng;

use crate::ids::{EndpointId, EventId, GroupId, OrgId};
use crate::secret::{Sealed, Secret, SecretError, SecretKey};
use crate::{ValidationError, enums::string_enum, event::EventType, time::Timestamp};

pub const URL_MAX: usize = 2048;
pub const DESCRIPTION_MAX: usize = 512;
/// For how long the previous secret still signs after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 60 * 60 * 1000;

string_enum!(
    /// How an endpoint receives its events: the body and the headers (signature scheme) of
    /// each delivery, rendered from the stored event when it is sent.
    #[derive(Default)]
    WebhookFormat {
        /// [Standard Webhooks](https://www.standardwebhooks.com): the event as the event log
        /// has it, signed in `webhook-signature`.
        #[default]
        Standard = "standard",
        /// Meta's webhooks: Meta's envelope and group shapes (`group_lifecycle_update`,
        /// `group_participants_update`, `group_settings_update`, `group_status_update`),
        /// signed in `X-Hub-Signature-256` with the endpoint's app secret, as Meta signs.
        Meta = "meta",
        /// DoubleTick's "WhatsApp group webhooks": the events its pages document (creation,
        /// joins, leaves, removals) with DoubleTick's `event` field and common fields (`event`,
        /// `orgId`, `integrationId`, `groupId`), signed as `standard`.
        Doubletick = "doubletick",
    }
);

/// A customer's webhook endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub org_id: OrgId,
    pub url: String,
    pub description: Option<String>,
    /// Event types delivered; `None` means all.
    pub event_types: Option<Vec<String>>,
    /// Business numbers whose events are delivered; `None` means all.
    pub waba_numbers: Option<Vec<String>>,
    pub format: WebhookFormat,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    /// The signing secret, sealed with the deployment's key ([`open_secret`]).
    pub secret: Sealed,
    /// The secret before the last rotation, sealed, while it still signs.
    pub previous_secret: Option<Sealed>,
    pub previous_secret_until: Option<Timestamp>,
    /// A `meta` endpoint's verify token (Meta's subscription handshake), sealed.
    pub verify_token: Option<Sealed>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The secrets are never printed, not even in logs of a `Debug` dump.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("url", &self.url)
            .field("description", &self.description)
            .field("event_types", &self.event_types)
            .field("waba_numbers", &self.waba_numbers)
            .field("format", &self.format)
            .field("disabled", &self.disabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("secret", &"[redacted]")
            .field("previous_secret", &self.previous_secret.as_ref().map(|_| "[redacted]"))
            .field("previous_secret_until", &self.previous_secret_until)
            .field("verify_token", &self.verify_token.as_ref().map(|_| "[redacted]"))
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Whether an endpoint with these filters receives an event.
pub fn matches(event_types: Option<&[String]>, waba_numbers: Option<&[String]>, event_type: &str, waba: &str) -> bool {
    event_types.is_none_or(|t| t.iter().any(|x| x == event_type))
        && waba_numbers.is_none_or(|n| n.iter().any(|x| x == waba))
}

/// A new signing secret: `whsec_` and base64 of 32 random bytes (Standard Webhooks).
pub fn new_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    Secret::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

/// What an endpoint's secret is sealed for: that endpoint only (a sealed value copied to
/// another endpoint's row does not open).
fn secret_purpose(endpoint: &EndpointId) -> String {
    format!("webhook endpoint secret {endpoint}")
}

/// An endpoint's signing secret, sealed for it with the deployment's key.
pub fn seal_secret(key: &SecretKey, endpoint: &EndpointId, secret: &Secret) -> Sealed {
    key.seal(&secret_purpose(endpoint), secret.expose())
}

/// An endpoint's signing secret, opened. A secret stored before secrets were sealed (a
/// `whsec_` value) reads as it is, until [`is_sealed`] finds it and it is sealed.
pub fn open_secret(key: &SecretKey, endpoint: &EndpointId, stored: &Sealed) -> Result<Secret, SecretError> {
    if !is_sealed(stored) {
        return Ok(Secret::new(stored.as_stored()));
    }
    key.open(&secret_purpose(endpoint), stored)
}

/// A `meta` endpoint's app secret when none is given: 32 hex digits, as Meta's app secrets.
pub fn new_app_secret() -> Secret {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Checks a token or secret a client chose (a `meta` endpoint's verify token or app secret):
/// 1 to 256 visible ASCII characters.
pub fn validate_token(field: &str, raw: &str) -> Result<Secret, ValidationError> {
    if raw.is_empty() || raw.len() > 256 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::new(
            field,
            "must be 1 to 256 visible ASCII characters (no spaces)",
        ));
    }
    Ok(Secret::new(raw))
}

/// A `meta` endpoint's verify token, sealed for it.
pub fn seal_verify_token(key: &SecretKey, endpoint: &EndpointId, token: &Secret) -> Sealed {
    key.seal(&format!("webhook endpoint verify token {endpoint}"), token.expose())
}

pub fn open_verify_token(key: &SecretKey, endpoint: &EndpointId, stored: &Sealed) -> Result<Secret, SecretError> {
    key.open(&format!("webhook endpoint verify token {endpoint}"), stored)
}

impl WebhookFormat {
    /// Whether an event is delivered in this format: Meta has no webhook for an invitation
    /// sent, a promotion, a reset link or a rejected join request, nor for settings of the
    /// linked-device profile; a failed write has one only for what Meta confirms by webhook.
    pub fn carries(self, event_type: &str, payload: &serde_json::Value) -> bool {
        match self {
            WebhookFormat::Standard => true,
            // The events DoubleTick's group webhook pages document.
            WebhookFormat::Doubletick => matches!(
                event_type,
                "GROUP_CREATED" | "GROUP_PARTICIPANT_JOINED" | "GROUP_PARTICIPANT_LEFT" | "GROUP_PARTICIPANT_REMOVED"
            ),
            WebhookFormat::Meta => match event_type {
                "GROUP_CREATED"
                | "GROUP_CREATE_FAILED"
                | "GROUP_DELETED"
                | "GROUP_SUSPENDED"
                | "GROUP_SUSPENSION_CLEARED"
                | "GROUP_PARTICIPANT_JOINED"
                | "GROUP_PARTICIPANT_LEFT"
                | "GROUP_PARTICIPANT_REMOVED"
                | "GROUP_JOIN_REQUEST_CREATED"
                | "GROUP_JOIN_REQUEST_REVOKED" => true,
                "GROUP_UPDATED" => payload["changes"]
                    .as_object()
                    .is_some_and(|c| c.contains_key("subject") || c.contains_key("description")),
                "GROUP_OPERATION_FAILED" => matches!(
                    payload["operation"].as_str(),
                    Some("update_settings" | "delete" | "remove_participants")
                ),
                _ => false,
            },
        }
    }
}

/// Whether a stored secret is sealed (not a plaintext `whsec_` one from before sealing).
pub fn is_sealed(stored: &Sealed) -> bool {
    !stored.as_stored().starts_with("whsec_")
}

/// Parses and checks an endpoint URL: `http` or `https`, with a host, at most 2048 characters.
/// With `allow_private` false, IP-literal hosts in private or reserved ranges are refused
/// (host names are checked on their resolved addresses, at registration and at delivery).
pub fn validate_url(field: &str, raw: &str, allow_private: bool) -> Result<url::Url, ValidationError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > URL_MAX {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {URL_MAX} characters"),
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| ValidationError::new(field, format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ValidationError::new(
            field,
            format!("must be http or https, got {}", url.scheme()),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::new(field, "must not carry credentials"));
    }
    let ip = match url.host() {
        None => return Err(ValidationError::new(field, "must have a host")),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(d)) => {
            if !allow_private && is_forbidden_name(d) {
                return Err(ValidationError::new(
                    field,
                    format!("targets {d}, a {}", forbidden_reason()),
                ));
            }
            None
        }
    };
    if let Some(ip) = ip
        && !allow_private
        && is_forbidden_ip(ip)
    {
        return Err(ValidationError::new(
            field,
            format!("targets {ip}, a {}", forbidden_reason()),
        ));
    }
    Ok(url)
}

/// Host names that always mean this machine, however they are spelled: `localhost` and
/// every name under it (RFC 6761), with or without the trailing dot of a fully qualified
/// name (`localhost.`), in any case.
pub fn is_forbidden_name(host: &str) -> bool {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name == "localhost.localdomain"
}

/// The words used when a target is refused.
pub fn forbidden_reason() -> &'static str {
    "loopback, private, link-local or metadata address (allowed only with --allow-private-webhook-targets)"
}

/// Loopback, private, link-local (cloud metadata lives there), shared, reserved, multicast
/// and unspecified addresses: never webhook targets unless explicitly allowed. An IPv6
/// address that carries an IPv4 one (IPv4-mapped and -translated, NAT64, 6to4, Teredo) is
/// judged by the IPv4 address it reaches; the deprecated IPv4-compatible and the local-use
/// NAT64 ranges are refused whole.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || s[..6] == [0; 6] // IPv4-compatible ::a.b.c.d (deprecated; ::1 and :: too)
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7 (includes fd00:ec2::254)
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 0x0001) // local-use NAT64 64:ff9b:1::/48
                || (s[0] == 0x0100 && s[1..4] == [0; 3]) // discard-only 100::/64
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
                || (s[0] & 0xfff0) == 0x3ff0 // documentation 3fff::/20
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0010) // ORCHID 2001:10::/28
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x0020) // ORCHIDv2 2001:20::/28
        }
    }
}

/// The IPv4 address an IPv6 address stands for, where it embeds one that traffic reaches.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        // IPv4-mapped ::ffff:a.b.c.d
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(v4(hi, lo)),
        // IPv4-translated ::ffff:0:a.b.c.d (SIIT)
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => Some(v4(hi, lo)),
        // NAT64 well-known prefix 64:ff9b::/96
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        // 6to4 2002:a.b.c.d::/48
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        // Teredo 2001:0::/32: the client's address, inverted, in the last 32 bits
        [0x2001, 0, _, _, _, _, hi, lo] => Some(v4(!hi, !lo)),
        _ => None,
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 192 && o[1] == 88 && o[2] == 99) // 6to4 relay anycast (deprecated)
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking
        || o[0] >= 240 // reserved
}

/// Validates event type filters: each a known event type, no duplicates.
pub fn validate_event_types(field: &str, types: &[String]) -> Result<Vec<String>, ValidationError> {
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        if EventType::parse(t).is_none() {
            return Err(ValidationError::new(
                format!("{field}[{i}]"),
                format!(
                    "unknown event type {t:?}; known: {}",
                    EventType::ALL.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    if out.is_empty() {
        return Err(ValidationError::new(
            field,
            "must list at least one event type (omit it for all)",
        ));
    }
    Ok(out)
}

pub fn validate_description(field: &str, raw: &str) -> Result<String, ValidationError> {
    crate::validate::printable(field, raw, true)?;
    crate::validate::at_most(field, raw, DESCRIPTION_MAX)
}

/// When to try a delivery again: the delays before attempt 1, 2, 3… The number of entries is
/// the number of attempts; after the last one fails the delivery is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    /// 0 s, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6 hours in all).
    fn default() -> Self {
        let m = 60;
        let h = 3600;
        RetrySchedule(
            [0, 5, 5 * m, 30 * m, 2 * h, 5 * h, 10 * h, 10 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }
}

impl RetrySchedule {
    /// Parses `0s,5s,5m,30m,2h` (units `ms`, `s`, `m`, `h`).
    pub fn parse(raw: &str) -> Result<RetrySchedule, String> {
        let delays = raw
            .split(',')
            .map(|part| parse_duration(part.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("the retry schedule needs at least one delay".into());
        }
        Ok(RetrySchedule(delays))
    }

    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// The delay before attempt `n` (1-based), ±20 % jitter; `None` once attempts run out.
    pub fn delay_before(&self, attempt: usize) -> Option<Duration> {
        let base = *self.0.get(attempt.checked_sub(1)?)?;
        Some(jitter(base))
    }
}

fn jitter(d: Duration) -> Duration {
    if d.is_zero() {
        return d;
    }
    let factor = rand::rng().random_range(0.8..=1.2);
    d.mul_f64(factor)
}

/// Parses `250ms`, `15s`, `5m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("{s:?} needs a unit (ms, s, m or h)"))?;
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?} has an unknown unit (use ms, s, m or h)")),
    }
}

string_enum!(
    /// The state of one (event, endpoint) delivery.
    DeliveryStatus {
        /// Not attempted yet (or re-queued).
        Pending = "pending",
        Succeeded = "succeeded",
        /// The last attempt failed; another is scheduled.
        Failed = "failed",
        /// Every attempt failed (or the endpoint answered 410): not retried unless recovered.
        Dead = "dead",
    }
);

/// An open delivery as the dispatcher loads it.
#[derive(Debug, Clone)]
pub struct OpenDelivery {
    pub id: i64,
    pub endpoint_id: EndpointId,
    /// Deliveries of one group to one endpoint go out one at a time, in ID order.
    pub group_row_id: i64,
    /// Attempts made so far.
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub event_id: EventId,
    pub payload: String,
}

/// What became of an attempt, and what follows.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempted_at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub next: AttemptNext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptNext {
    Succeeded,
    RetryAt(Timestamp),
    Dead,
    /// The endpoint answered 410 Gone: the delivery is dead and the endpoint disabled.
    DeadAndDisable(String),
}

/// One attempt as the deliveries API shows it.
#[derive(Debug, Clone)]
pub struct AttemptView {
    pub attempted_at: Timestamp,
    pub status_code: Option<u16>,
    pub latency_ms: i64,
    pub error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
}

/// A delivery as the deliveries API shows it.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub id: i64,
    pub event_id: EventId,
    pub event_type: String,
    pub group_id: GroupId,
    pub sequence: i64,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub attempts: Vec<AttemptView>,
}

/// Queue figures for metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeliveryStats {
    /// Deliveries not yet succeeded nor dead.
    pub open: i64,
    pub oldest_open_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            // The IPv6 spellings of loopback, private and metadata addresses.
            "::127.0.0.1",
            "::7f00:1",
            "::8.8.8.8",
            "::ffff:169.254.169.254",
            "::ffff:0:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::8.8.8.8",
            "64:ff9b:1:ffff::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:101::",
            "192.88.99.1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo, client 127.0.0.1
            "100::1",
            "2001:db8::1",
            "3fff::1",
        ] {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",  // NAT64 of 8.8.8.8: a public address
            "2002:808:808::1",   // 6to4 of 8.8.8.8
            "2a00:1450:4001::1", // a public IPv6 address
        ] {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls() {
        assert!(validate_url("url", "https://example.com/hook", false).is_ok());
        assert!(validate_url("url", "http://127.0.0.1:9000/", false).is_err());
        assert!(validate_url("url", "http://127.0.0.1:9000/", true).is_ok());
        assert!(validate_url("url", "http://[::1]/", false).is_err());
        assert!(validate_url("url", "ftp://example.com/", true).is_err());
        assert!(validate_url("url", "not a url", true).is_err());
        assert!(validate_url("url", "https://user:pw@example.com/", true).is_err());
        for url in [
            "http://localhost.:9000/",
            "http://LOCALHOST/",
            "http://a.b.localhost./x",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://127.1/",
        ] {
            assert!(validate_url("url", url, false).is_err(), "{url} accepted");
            assert!(
                validate_url("url", url, true).is_ok(),
                "{url} refused with private targets allowed"
            );
        }
        assert!(validate_url("url", "https://localhost.example.com/", false).is_ok());
    }

    #[test]
    fn schedules() {
        let s = RetrySchedule::parse("0s,1s,2s").unwrap();
        assert_eq!(s.attempts(), 3);
        assert_eq!(s.delay_before(1), Some(Duration::ZERO));
        let d = s.delay_before(2).unwrap();
        assert!(
            d >= Duration::from_millis(800) && d <= Duration::from_millis(1200),
            "{d:?}"
        );
        assert_eq!(s.delay_before(4), None);
        assert_eq!(RetrySchedule::default().attempts(), 8);
        assert!(RetrySchedule::parse("5x").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    }

    #[test]
    fn filters() {
        let t = vec!["GROUP_CREATED".to_string()];
        let n = vec!["15550100001".to_string()];
        assert!(matches(None, None, "GROUP_CREATED", "1"));
        assert!(matches(Some(&t), Some(&n), "GROUP_CREATED", "15550100001"));
        assert!(!matches(Some(&t), None, "GROUP_PARTICIPANT_JOINED", "1"));
        assert!(!matches(None, Some(&n), "GROUP_CREATED", "15550100002"));
        assert!(validate_event_types("eventTypes", &["NOPE".into()]).is_err());
        assert!(validate_event_types("eventTypes", &[]).is_err());
        let s = new_secret();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&s.expose()[6..])
                .map(|b| b.len()),
            Ok(32)
        );
    }

    #[test]
    fn an_endpoint_secret_is_sealed_for_that_endpoint_only() {
        let key = SecretKey::generate();
        let (a, b) = (EndpointId::new(), EndpointId::new());
        let secret = new_secret();
        let sealed = seal_secret(&key, &a, &secret);
        assert!(is_sealed(&sealed));
        assert!(!sealed.as_stored().contains(secret.expose()));
        assert_eq!(open_secret(&key, &a, &sealed).unwrap().expose(), secret.expose());
        assert!(open_secret(&key, &b, &sealed).is_err(), "copied to another endpoint");
        assert!(open_secret(&SecretKey::generate(), &a, &sealed).is_err(), "another key");
        // Stored before secrets were sealed: read as it is, and known for sealing.
        let legacy = Sealed::from_stored(secret.expose().to_string());
        assert!(!is_sealed(&legacy));
        assert_eq!(open_secret(&key, &a, &legacy).unwrap().expose(), secret.expose());
    }
}
