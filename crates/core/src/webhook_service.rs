//! Use cases for webhook endpoints, deliveries, recovery and the organisation's event log.
//! They need the store and nothing of WhatsApp, so the CLI uses them directly.

use std::sync::Arc;

use crate::{
    DomainError, ValidationError,
    event::{EventType, StoredEvent},
    ids::{EndpointId, EventId},
    model::{ApiKey, Group, Number, Participant},
    secret::{KeySlot, Sealed, Secret, SecretError, SecretKey},
    service::{
        DeliverySignal, DeliveryWake, EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, ServiceError, Signals, parse_limit,
    },
    store::{EndpointPatch, EventFilter, NewEndpoint, Store},
    tenancy,
    time::Timestamp,
    webhook::{self, DeliveryStatus, DeliveryView, Endpoint, ROTATION_OVERLAP_MS},
};

/// A stored secret that does not open: the key is not the one it was sealed with.
fn stored_secret_error(id: &EndpointId, e: SecretError) -> ServiceError {
    ServiceError::Store(crate::store::StoreError::Corrupt(format!(
        "the signing secret of webhook endpoint {id} does not open: {e}"
    )))
}

/// Meta's subscription handshake with a URL: `GET url?hub.mode=subscribe&hub.verify_token=…
/// &hub.challenge=…`, which passes when the URL answers `200` with the challenge as its body.
#[async_trait::async_trait]
pub trait SubscriptionCheck: Send + Sync {
    /// `Err` says what came back instead.
    async fn check(&self, url: &str, verify_token: &Secret) -> Result<(), String>;
}

/// Refuses the fields only a `meta` endpoint has.
fn only_meta(verify_token: &Option<Secret>, app_secret: &Option<Secret>) -> Result<(), ValidationError> {
    for (field, given) in [
        ("verifyToken", verify_token.is_some()),
        ("appSecret", app_secret.is_some()),
    ] {
        if given {
            return Err(ValidationError::new(field, "is for endpoints of format meta"));
        }
    }
    Ok(())
}

/// The webhook use cases.
pub struct Webhooks {
    store: Arc<dyn Store>,
    deliveries: DeliveryWake,
    /// Seals the endpoints' signing secrets.
    keys: Arc<KeySlot>,
    /// Makes Meta's handshake with a `meta` endpoint (none: such endpoints cannot be made).
    handshake: Option<Arc<dyn SubscriptionCheck>>,
}

/// An endpoint and its signing secret, in the one answer that shows it (creation, rotation).
#[derive(Debug, Clone)]
pub struct WithSecret {
    pub endpoint: Endpoint,
    pub secret: Secret,
}

/// Endpoint fields as a dialect read them (unvalidated).
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: Option<String>,
    /// `Some(None)`: explicitly all.
    pub event_types: Option<Option<Vec<String>>>,
    pub waba_numbers: Option<Option<Vec<String>>>,
    pub description: Option<Option<String>>,
    /// `standard` (the default) or `meta`.
    pub format: Option<String>,
    pub disabled: Option<bool>,
    /// A `meta` endpoint's verify token (required for one).
    pub verify_token: Option<Secret>,
    /// A `meta` endpoint's app secret (generated when absent).
    pub app_secret: Option<Secret>,
}

pub const DELIVERIES_LIMIT_MAX: i64 = 250;
pub const DELIVERIES_LIMIT_DEFAULT: i64 = 50;

impl Webhooks {
    /// Tells the delivery dispatcher through `signals` when endpoints or the queue change.
    /// Seals the endpoints' secrets with the key in `keys`.
    pub fn new(store: Arc<dyn Store>, signals: &Signals, keys: Arc<KeySlot>) -> Webhooks {
        Webhooks {
            store,
            deliveries: signals.deliveries.clone(),
            keys,
            handshake: None,
        }
    }

    /// Makes Meta's handshake with `meta` endpoints through `h`.
    pub fn with_handshake(mut self, h: Arc<dyn SubscriptionCheck>) -> Webhooks {
        self.handshake = Some(h);
        self
    }

    /// Meta's handshake with `url`; a refusal names the URL and what came back.
    async fn handshake(&self, url: &str, verify_token: &Secret) -> Result<(), ServiceError> {
        let h = self.handshake.as_ref().ok_or_else(|| DomainError::Unavailable {
            message: "this process cannot make Meta's subscription handshake: create meta endpoints through the server"
                .into(),
        })?;
        h.check(url, verify_token).await.map_err(|why| {
            ValidationError::new(
                "url",
                format!("{url} did not pass Meta's subscription handshake (GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…, answered 200 with the challenge): {why}"),
            )
            .into()
        })
    }

    fn key(&self) -> Result<SecretKey, ServiceError> {
        self.keys.get().ok_or_else(|| {
            ServiceError::Store(crate::store::StoreError::Database(
                "the secret key is not loaded: webhook secrets cannot be sealed".into(),
            ))
        })
    }

    /// Seals the secrets stored in plaintext before secrets were sealed (at start, once the
    /// key is loaded); how many endpoints were sealed.
    pub async fn seal_plaintext_secrets(&self) -> Result<usize, ServiceError> {
        let key = self.key()?;
        let mut sealed = 0;
        for e in self.store().all_endpoints().await? {
            let plain = |s: &Sealed| !webhook::is_sealed(s);
            if !plain(&e.secret) && !e.previous_secret.as_ref().is_some_and(plain) {
                continue;
            }
            // A plaintext value sealed; a sealed one kept as it is.
            let seal = |s: &Sealed| -> Result<Sealed, ServiceError> {
                if !plain(s) {
                    return Ok(s.clone());
                }
                let open = webhook::open_secret(&key, &e.id, s).map_err(|err| stored_secret_error(&e.id, err))?;
                Ok(webhook::seal_secret(&key, &e.id, &open))
            };
            let secret = seal(&e.secret)?;
            let previous = e.previous_secret.as_ref().map(seal).transpose()?;
            if self
                .store()
                .reseal_endpoint_secrets(
                    &e.id,
                    (&e.secret, e.previous_secret.as_ref()),
                    (&secret, previous.as_ref()),
                )
                .await?
            {
                sealed += 1;
            }
        }
        if sealed > 0 {
            self.deliveries_changed();
        }
        Ok(sealed)
    }

    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    fn deliveries_changed(&self) {
        (self.deliveries)(DeliverySignal::Changed);
    }

    async fn number_for(&self, key: &ApiKey, field: &str, waba_number: &str) -> Result<Number, ServiceError> {
        tenancy::number_for(self.store(), key, field, waba_number).await
    }

    async fn allowed_number_ids(&self, key: &ApiKey) -> Result<Option<Vec<i64>>, ServiceError> {
        tenancy::allowed_number_ids(self.store(), key).await
    }

    async fn get_group(&self, key: &ApiKey, group_id: &str) -> Result<(Group, Vec<Participant>), ServiceError> {
        tenancy::group_of(self.store(), key, group_id).await
    }

    async fn numbers_filter(
        &self,
        key: &ApiKey,
        raw: Option<Vec<String>>,
    ) -> Result<Option<Vec<String>>, ServiceError> {
        match raw {
            None => Ok(key.numbers.clone()),
            Some(list) => {
                if list.is_empty() {
                    return Err(
                        ValidationError::new("wabaNumbers", "must list at least one number (omit it for all)").into(),
                    );
                }
                let mut out = Vec::with_capacity(list.len());
                for (i, n) in list.iter().enumerate() {
                    let number = self.number_for(key, &format!("wabaNumbers[{i}]"), n).await?;
                    if !out.contains(&number.waba_number) {
                        out.push(number.waba_number);
                    }
                }
                Ok(Some(out))
            }
        }
    }

    fn endpoint_visible(key: &ApiKey, ep: &Endpoint) -> bool {
        match (&key.numbers, &ep.waba_numbers) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(allowed), Some(list)) => list.iter().all(|n| allowed.contains(n)),
        }
    }

    pub async fn create_endpoint(
        &self,
        key: &ApiKey,
        input: EndpointInput,
        allow_private: bool,
    ) -> Result<WithSecret, ServiceError> {
        let signing = self.key()?;
        let url = input.url.ok_or_else(|| ValidationError::new("url", "is required"))?;
        let url = webhook::validate_url("url", &url, allow_private)?.to_string();
        let event_types = match input.event_types.flatten() {
            Some(t) => Some(webhook::validate_event_types("eventTypes", &t)?),
            None => None,
        };
        let waba_numbers = self.numbers_filter(key, input.waba_numbers.flatten()).await?;
        let description = input
            .description
            .flatten()
            .map(|d| webhook::validate_description("description", &d))
            .transpose()?;
        let format = match input.format.as_deref() {
            Some(f) => webhook::WebhookFormat::validate("format", f)?,
            None => webhook::WebhookFormat::default(),
        };
        let (secret, verify_token) = match format {
            webhook::WebhookFormat::Standard | webhook::WebhookFormat::Doubletick => {
                only_meta(&input.verify_token, &input.app_secret)?;
                (webhook::new_secret(), None)
            }
            webhook::WebhookFormat::Meta => {
                let token = input
                    .verify_token
                    .as_ref()
                    .ok_or_else(|| ValidationError::new("verifyToken", "is required for an endpoint of format meta"))?;
                let token = webhook::validate_token("verifyToken", token.expose())?;
                let secret = match input.app_secret.as_ref() {
                    Some(s) => webhook::validate_token("appSecret", s.expose())?,
                    None => webhook::new_app_secret(),
                };
                self.handshake(&url, &token).await?;
                (secret, Some(token))
            }
        };
        let id = EndpointId::new();
        let ep = self
            .store()
            .create_endpoint(
                NewEndpoint {
                    id: id.clone(),
                    org_id: key.org_id.clone(),
                    url,
                    description,
                    event_types,
                    waba_numbers,
                    format,
                    secret: webhook::seal_secret(&signing, &id, &secret),
                    verify_token: verify_token.map(|t| webhook::seal_verify_token(&signing, &id, &t)),
                },
                Timestamp::now(),
            )
            .await?;
        self.deliveries_changed();
        Ok(WithSecret { endpoint: ep, secret })
    }

    pub async fn list_endpoints(&self, key: &ApiKey) -> Result<Vec<Endpoint>, ServiceError> {
        let all = self.store().list_endpoints(&key.org_id).await?;
        Ok(all.into_iter().filter(|e| Self::endpoint_visible(key, e)).collect())
    }

    /// The endpoint a client names (text that is not an endpoint ID names none).
    pub async fn endpoint(&self, key: &ApiKey, id: &str) -> Result<Endpoint, ServiceError> {
        let not_found = || DomainError::not_found(format!("webhook endpoint {id:?}"));
        let id = EndpointId::parse(id).ok_or_else(not_found)?;
        self.store()
            .get_endpoint(&key.org_id, &id)
            .await?
            .filter(|e| Self::endpoint_visible(key, e))
            .ok_or_else(|| not_found().into())
    }

    pub async fn update_endpoint(
        &self,
        key: &ApiKey,
        id: &str,
        input: EndpointInput,
        allow_private: bool,
    ) -> Result<Endpoint, ServiceError> {
        let current = self.endpoint(key, id).await?;
        let id = current.id.clone();
        let mut patch = EndpointPatch::default();
        if let Some(url) = &input.url {
            patch.url = Some(webhook::validate_url("url", url, allow_private)?.to_string());
        }
        if let Some(t) = input.event_types {
            patch.event_types = Some(match t {
                Some(t) => Some(webhook::validate_event_types("eventTypes", &t)?),
                None => None,
            });
        }
        if let Some(n) = input.waba_numbers {
            patch.waba_numbers = Some(self.numbers_filter(key, n).await?);
        }
        if let Some(d) = input.description {
            patch.description = Some(
                d.map(|d| webhook::validate_description("description", &d))
                    .transpose()?,
            );
        }
        if let Some(f) = input.format.as_deref() {
            let f = webhook::WebhookFormat::validate("format", f)?;
            let meta = webhook::WebhookFormat::Meta;
            if f != current.format && (f == meta || current.format == meta) {
                return Err(ValidationError::new(
                    "format",
                    format!(
                        "cannot change from {} to {f} (their secrets differ): create a new endpoint",
                        current.format
                    ),
                )
                .into());
            }
            patch.format = Some(f);
        }
        if current.format != webhook::WebhookFormat::Meta {
            only_meta(&input.verify_token, &input.app_secret)?;
        }
        if input.app_secret.is_some() {
            return Err(ValidationError::new("appSecret", "is set at creation (rotate-secret makes a new one)").into());
        }
        let new_token = input
            .verify_token
            .as_ref()
            .map(|t| webhook::validate_token("verifyToken", t.expose()))
            .transpose()?;
        if current.format == webhook::WebhookFormat::Meta && (patch.url.is_some() || new_token.is_some()) {
            // Meta's handshake again, with what the endpoint will be.
            let signing = self.key()?;
            let token = match &new_token {
                Some(t) => t.clone(),
                None => {
                    let stored = current.verify_token.as_ref().ok_or_else(|| {
                        ValidationError::new("verifyToken", "is required for an endpoint of format meta")
                    })?;
                    webhook::open_verify_token(&signing, &id, stored).map_err(|e| stored_secret_error(&id, e))?
                }
            };
            let url = patch.url.clone().unwrap_or_else(|| current.url.clone());
            self.handshake(&url, &token).await?;
            patch.verify_token = new_token.map(|t| webhook::seal_verify_token(&signing, &id, &t));
        }
        patch.disabled = input.disabled;
        let ep = self
            .store()
            .update_endpoint(&key.org_id, &id, patch, Timestamp::now())
            .await?
            .ok_or_else(|| DomainError::not_found(format!("webhook endpoint {id:?}")))?;
        self.deliveries_changed();
        Ok(ep)
    }

    pub async fn delete_endpoint(&self, key: &ApiKey, id: &str) -> Result<(), ServiceError> {
        let id = self.endpoint(key, id).await?.id;
        self.store().delete_endpoint(&key.org_id, &id, Timestamp::now()).await?;
        self.deliveries_changed();
        Ok(())
    }

    /// A new secret; the previous one keeps signing for 24 hours.
    pub async fn rotate_endpoint_secret(&self, key: &ApiKey, id: &str) -> Result<WithSecret, ServiceError> {
        let signing = self.key()?;
        let current = self.endpoint(key, id).await?;
        let id = current.id;
        let now = Timestamp::now();
        let secret = match current.format {
            webhook::WebhookFormat::Standard | webhook::WebhookFormat::Doubletick => webhook::new_secret(),
            webhook::WebhookFormat::Meta => webhook::new_app_secret(),
        };
        let ep = self
            .store()
            .rotate_endpoint_secret(
                &key.org_id,
                &id,
                &webhook::seal_secret(&signing, &id, &secret),
                now.plus_millis(ROTATION_OVERLAP_MS),
                now,
            )
            .await?
            .ok_or_else(|| DomainError::not_found(format!("webhook endpoint {id:?}")))?;
        self.deliveries_changed();
        Ok(WithSecret { endpoint: ep, secret })
    }

    pub async fn deliveries(
        &self,
        key: &ApiKey,
        endpoint_id: &str,
        status: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<(Vec<DeliveryView>, Option<String>), ServiceError> {
        let endpoint_id = self.endpoint(key, endpoint_id).await?.id;
        let status = status
            .filter(|s| !s.is_empty())
            .map(|s| DeliveryStatus::validate("status", s))
            .transpose()?;
        let limit = parse_limit("limit", limit, DELIVERIES_LIMIT_DEFAULT, DELIVERIES_LIMIT_MAX)?;
        let before = cursor
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.strip_prefix("dlv_")
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| ValidationError::new("cursor", "is not a cursor returned by this API"))
            })
            .transpose()?;
        let mut rows = self
            .store()
            .list_deliveries(&key.org_id, &endpoint_id, status, before, limit + 1)
            .await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|d| format!("dlv_{}", d.id))
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Re-queues the endpoint's failed and dead deliveries since `since` (RFC 3339).
    pub async fn recover(&self, key: &ApiKey, endpoint_id: &str, since: Option<&str>) -> Result<u64, ServiceError> {
        let endpoint_id = self.endpoint(key, endpoint_id).await?.id;
        let since = since.ok_or_else(|| ValidationError::new("since", "is required (an RFC 3339 time)"))?;
        let since = Timestamp::parse_rfc3339(since)
            .ok_or_else(|| ValidationError::new("since", format!("must be an RFC 3339 time, got {since:?}")))?;
        let now = Timestamp::now();
        let n = self
            .store()
            .recover_deliveries(&key.org_id, &endpoint_id, since, now)
            .await?;
        self.deliveries_changed();
        Ok(n)
    }

    /// Sends one event again to its endpoints.
    pub async fn redeliver(&self, key: &ApiKey, event_id: &str) -> Result<u64, ServiceError> {
        let not_found = || ServiceError::from(DomainError::not_found(format!("event {event_id:?}")));
        let event_id = &EventId::parse(event_id).ok_or_else(not_found)?;
        if let Some(ids) = self.allowed_number_ids(key).await? {
            // A key limited to some numbers sees only their events.
            let position = self
                .store()
                .event_position(&key.org_id, event_id)
                .await?
                .ok_or_else(not_found)?;
            let filter = EventFilter {
                number_ids: Some(ids),
                ..EventFilter::default()
            };
            let visible = self.store().list_events(&key.org_id, &filter, position - 1, 1).await?;
            if visible.first().is_none_or(|(_, e)| e.event_id != *event_id) {
                return Err(not_found());
            }
        }
        let n = self
            .store()
            .redeliver_event(&key.org_id, event_id, Timestamp::now())
            .await?
            .ok_or_else(not_found)?;
        self.deliveries_changed();
        Ok(n)
    }

    /// The organisation's event log in order, after event `after` (an event ID).
    pub async fn org_events(
        &self,
        key: &ApiKey,
        group_id: Option<&str>,
        event_type: Option<&str>,
        after: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        let mut filter = EventFilter::default();
        if let Some(g) = group_id.filter(|g| !g.is_empty()) {
            filter.group_row_id = Some(self.get_group(key, g).await?.0.id);
        } else {
            filter.number_ids = self.allowed_number_ids(key).await?;
        }
        if let Some(t) = event_type.filter(|t| !t.is_empty()) {
            EventType::parse(t)
                .ok_or_else(|| ValidationError::new("eventType", format!("unknown event type {t:?}")))?;
            filter.event_type = Some(t.to_string());
        }
        let after = match after.filter(|a| !a.is_empty()) {
            None => 0,
            Some(a) => {
                let unknown = || ValidationError::new("after", format!("no event {a:?} in this organisation"));
                let a = EventId::parse(a).ok_or_else(unknown)?;
                self.store()
                    .event_position(&key.org_id, &a)
                    .await?
                    .ok_or_else(unknown)?
            }
        };
        let limit = parse_limit("limit", limit, EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX)?;
        Ok(self
            .store()
            .list_events(&key.org_id, &filter, after, limit)
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .collect())
    }
}
