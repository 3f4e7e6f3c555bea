//! Organisations, their business numbers and API keys.

use async_trait::async_trait;

use super::{NewApiKey, NewNumber, NewOrg, StoreError};
use crate::ids::{ApiKeyId, OrgId};
use crate::model::{ApiKey, Number, NumberHealth, Org, ProviderKind};
use crate::time::Timestamp;

#[async_trait]
pub trait TenancyStore: Send + Sync {
    /// `None` when the name is taken.
    async fn create_org(&self, org: NewOrg, now: Timestamp) -> Result<Option<Org>, StoreError>;
    async fn find_org(&self, name_or_id: &str) -> Result<Option<Org>, StoreError>;
    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError>;
    /// `None` when the number already exists (in any organisation).
    async fn add_number(&self, n: NewNumber, now: Timestamp) -> Result<Option<Number>, StoreError>;
    async fn set_number_disabled(&self, waba_number: &str, disabled: bool) -> Result<Option<Number>, StoreError>;
    async fn list_numbers(&self, org_id: Option<&OrgId>) -> Result<Vec<Number>, StoreError>;
    async fn find_number(&self, waba_number: &str) -> Result<Option<Number>, StoreError>;
    async fn get_number(&self, number_id: i64) -> Result<Option<Number>, StoreError>;
    /// The number of `provider` it knows as `provider_ref` (Meta's phone number ID).
    async fn find_number_by_ref(
        &self,
        provider: ProviderKind,
        provider_ref: &str,
    ) -> Result<Option<Number>, StoreError>;
    /// Replaces the number's provider configuration; `None` when there is no such number.
    async fn set_number_provider_config(
        &self,
        waba_number: &str,
        provider_config: &serde_json::Value,
    ) -> Result<Option<Number>, StoreError>;
    /// Sets (or clears) the number's alias; `Ok(None)`: no such number; `Err(Conflict)`-like
    /// `Ok(Some(false))`: another number has the alias.
    async fn set_number_instance_id(
        &self,
        waba_number: &str,
        instance_id: Option<&str>,
    ) -> Result<Option<bool>, StoreError>;
    async fn find_number_by_instance_id(&self, instance_id: &str) -> Result<Option<Number>, StoreError>;
    /// Records how the provider found the number.
    async fn set_number_health(&self, number_id: i64, health: &NumberHealth) -> Result<(), StoreError>;
    /// A deployment setting.
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Sets a deployment setting unless it is set; returns whether it was set now.
    async fn put_setting_if_absent(&self, name: &str, value: &str) -> Result<bool, StoreError>;
    async fn create_api_key(&self, k: NewApiKey, now: Timestamp) -> Result<ApiKey, StoreError>;
    async fn list_api_keys(&self, org_id: &OrgId) -> Result<Vec<ApiKey>, StoreError>;
    /// True when the key existed and was not revoked before.
    async fn revoke_api_key(&self, key_id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError>;
    /// The live (not revoked) key with this hash.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
}
