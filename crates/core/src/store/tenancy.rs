//! Organisations, their business numbers and API keys.

use async_trait::async_trait;

use super::{NewApiKey, NewNumber, NewOrg, StoreError};
use crate::ids::{ApiKeyId, OrgId};
use crate::model::{ApiKey, Number, Org};
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
    async fn create_api_key(&self, k: NewApiKey, now: Timestamp) -> Result<ApiKey, StoreError>;
    async fn list_api_keys(&self, org_id: &OrgId) -> Result<Vec<ApiKey>, StoreError>;
    /// True when the key existed and was not revoked before.
    async fn revoke_api_key(&self, key_id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError>;
    /// The live (not revoked) key with this hash.
    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError>;
}
