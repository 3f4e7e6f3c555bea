//! Administration shared by the CLI and the first-start bootstrap: organisations,
//! numbers, API keys.

use crate::{
    DomainError, ValidationError, ids,
    model::{ApiKey, JoinApprovalMode, Number, Org, Profile, ProviderKind},
    service::ServiceError,
    store::{NewApiKey, NewNumber, NewOrg, Store},
    time::Timestamp,
    validate,
};

pub const BOOTSTRAP_ORG: &str = "default";
pub const BOOTSTRAP_NUMBER: &str = "15550100001";

pub async fn create_org(store: &dyn Store, name: &str) -> Result<Org, ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ValidationError::new("name", "must be 1 to 100 characters").into());
    }
    store
        .create_org(NewOrg::named(name), Timestamp::now())
        .await?
        .ok_or_else(|| DomainError::conflict("duplicate_org", format!("an organisation named {name:?} exists")).into())
}

pub async fn org(store: &dyn Store, name_or_id: &str) -> Result<Org, ServiceError> {
    store
        .find_org(name_or_id)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("organisation {name_or_id:?}")).into())
}

/// How a number is served: its provider, the semantics it has, and what the provider needs
/// (its configuration, secrets sealed, and the number's name at the provider).
pub struct NumberSetup {
    pub provider: ProviderKind,
    pub profile: Profile,
    pub provider_config: serde_json::Value,
    pub provider_ref: Option<String>,
}

impl NumberSetup {
    /// A number on the simulated network.
    pub fn simulated(profile: Profile) -> NumberSetup {
        NumberSetup {
            provider: ProviderKind::Simulated,
            profile,
            provider_config: serde_json::json!({}),
            provider_ref: None,
        }
    }
}

pub async fn add_number(
    store: &dyn Store,
    org_name: &str,
    waba_number: &str,
    setup: NumberSetup,
) -> Result<Number, ServiceError> {
    let org = org(store, org_name).await?;
    let digits = validate::waba_number("waba-number", waba_number)?;
    if setup.provider == ProviderKind::CloudApi && setup.profile != Profile::Cloud {
        return Err(DomainError::Invalid(crate::ValidationError::new(
            "profile",
            "a cloud-api number has the cloud profile",
        ))
        .into());
    }
    // A simulated number gets a phone number ID of its own, as Meta gives each of its numbers
    // one (Meta's Graph dialect addresses numbers by it).
    let provider_ref = match (&setup.provider_ref, setup.provider) {
        (None, ProviderKind::Simulated) => Some(simulated_phone_number_id()),
        (r, _) => r.clone(),
    };
    let added = store
        .add_number(
            NewNumber {
                org_id: org.id,
                waba_number: digits.clone(),
                provider: setup.provider,
                profile: setup.profile,
                default_join_approval_mode: JoinApprovalMode::AutoApprove,
                provider_config: setup.provider_config,
                provider_ref: provider_ref.clone(),
            },
            Timestamp::now(),
        )
        .await?;
    match added {
        Some(n) => Ok(n),
        None if store.find_number(&digits).await?.is_some() => {
            Err(DomainError::conflict("duplicate_number", format!("number {digits} is already registered")).into())
        }
        None => Err(DomainError::conflict(
            "duplicate_provider_ref",
            format!(
                "{} {} is already registered for another number",
                setup.provider,
                provider_ref.unwrap_or_default()
            ),
        )
        .into()),
    }
}

/// A phone number ID for a simulated number: 15 digits, as Meta's are.
pub fn simulated_phone_number_id() -> String {
    format!("9{}", crate::ids::random_digits(14))
}

/// Sets (or clears, with `None`) the alias by which a linked-device gateway's clients name
/// the number (Wawp's `instance_id`): 1 to 64 letters, digits, `_` or `-`, unique.
pub async fn set_instance_id(
    store: &dyn Store,
    waba_number: &str,
    instance_id: Option<&str>,
) -> Result<(), ServiceError> {
    let digits = validate::waba_number("waba-number", waba_number)?;
    if let Some(a) = instance_id {
        let ok =
            !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(crate::ValidationError::new("instance-id", "must be 1 to 64 letters, digits, _ or -").into());
        }
        // Digits name a number by its own digits: an alias of digits could hide another.
        if a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::ValidationError::new(
                "instance-id",
                "must not be digits only (digits already name a number by its own)",
            )
            .into());
        }
    }
    match store.set_number_instance_id(&digits, instance_id).await? {
        None => Err(DomainError::not_found(format!("number {digits}")).into()),
        Some(false) => Err(DomainError::conflict(
            "duplicate_instance_id",
            format!("instance ID {:?} is another number's", instance_id.unwrap_or_default()),
        )
        .into()),
        Some(true) => Ok(()),
    }
}

pub async fn set_number_disabled(store: &dyn Store, waba_number: &str, disabled: bool) -> Result<Number, ServiceError> {
    let digits = validate::waba_number("waba-number", waba_number)?;
    store
        .set_number_disabled(&digits, disabled)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("number {digits}")).into())
}

/// Creates a key and returns its record with the secret, which is not stored.
pub async fn create_key(
    store: &dyn Store,
    org_name: &str,
    numbers: Option<Vec<String>>,
    name: Option<String>,
) -> Result<(ApiKey, String), ServiceError> {
    let org = org(store, org_name).await?;
    let numbers = match numbers {
        None => None,
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for n in list {
                let digits = validate::waba_number("numbers", &n)?;
                match store.find_number(&digits).await? {
                    Some(num) if num.org_id == org.id => out.push(digits),
                    _ => {
                        return Err(ValidationError::new(
                            "numbers",
                            format!("number {digits} is not registered in organisation {}", org.name),
                        )
                        .into());
                    }
                }
            }
            Some(out)
        }
    };
    let secret = ids::new_api_key_secret();
    let key = store
        .create_api_key(
            NewApiKey {
                id: ids::ApiKeyId::new(),
                org_id: org.id,
                name,
                numbers,
                key_hash: ids::hash_api_key(&secret),
            },
            Timestamp::now(),
        )
        .await?;
    Ok((key, secret))
}

/// What the first start against an empty database created.
pub struct Bootstrap {
    pub org: Org,
    pub number: Number,
    pub key: ApiKey,
    pub secret: String,
}

/// On an empty database: the `default` organisation, the simulated number
/// `15550100001` (cloud profile) and an API key allowed on all numbers.
pub async fn bootstrap(store: &dyn Store) -> Result<Option<Bootstrap>, ServiceError> {
    if !store.list_orgs().await?.is_empty() {
        return Ok(None);
    }
    let org = create_org(store, BOOTSTRAP_ORG).await?;
    let number = add_number(store, &org.id, BOOTSTRAP_NUMBER, NumberSetup::simulated(Profile::Cloud)).await?;
    let (key, secret) = create_key(store, &org.id, None, Some("bootstrap".into())).await?;
    Ok(Some(Bootstrap {
        org,
        number,
        key,
        secret,
    }))
}
