//! Organisations, numbers and API keys (keys and numbers served from the in-memory cache).

use super::*;

#[async_trait]
impl TenancyStore for SqliteStore {
    async fn create_org(&self, org: NewOrg, now: Timestamp) -> Result<Option<Org>, StoreError> {
        self.db.write(move |c| {
            one(
                c,
                &format!(
                    "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING RETURNING {ORG_COLS}"
                ),
                params![org.id.as_str(), org.name, now.millis()],
                org_row,
            )
        })
        .await
    }

    async fn find_org(&self, name_or_id: &str) -> Result<Option<Org>, StoreError> {
        let key = name_or_id.to_string();
        self.db.lookup(move |c| {
            one(
                c,
                &format!("SELECT {ORG_COLS} FROM orgs WHERE name = ?1 OR id = ?1"),
                params![key],
                org_row,
            )
        })
    }

    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        self.db
            .read(|c| {
                all(
                    c,
                    &format!("SELECT {ORG_COLS} FROM orgs ORDER BY created_at, id"),
                    [],
                    org_row,
                )
            })
            .await
    }

    async fn add_number(&self, n: NewNumber, now: Timestamp) -> Result<Option<Number>, StoreError> {
        self.db.write(move |c| {
            one(
                c,
                &format!(
                    "INSERT INTO numbers (org_id, waba_number, provider, profile, default_join_approval_mode, created_at, \
                     provider_config, provider_ref) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING \
                     RETURNING {NUMBER_COLS}"
                ),
                params![
                    n.org_id.as_str(),
                    n.waba_number,
                    n.provider.as_str(),
                    n.profile.as_str(),
                    n.default_join_approval_mode.as_str(),
                    now.millis(),
                    n.provider_config.to_string(),
                    n.provider_ref
                ],
                number_row,
            )
        })
        .await
    }

    async fn set_number_disabled(&self, waba_number: &str, disabled: bool) -> Result<Option<Number>, StoreError> {
        let w = waba_number.to_string();
        self.db
            .write(move |c| {
                one(
                    c,
                    &format!("UPDATE numbers SET disabled = ?1 WHERE waba_number = ?2 RETURNING {NUMBER_COLS}"),
                    params![disabled, w],
                    number_row,
                )
            })
            .await
    }

    async fn list_numbers(&self, org_id: Option<&OrgId>) -> Result<Vec<Number>, StoreError> {
        let org = org_id.map(OrgId::to_string);
        self.db
            .read(move |c| {
                all(
                    c,
                    &format!("SELECT {NUMBER_COLS} FROM numbers WHERE ?1 IS NULL OR org_id = ?1 ORDER BY id"),
                    params![org],
                    number_row,
                )
            })
            .await
    }

    async fn find_number(&self, waba_number: &str) -> Result<Option<Number>, StoreError> {
        self.cached(
            |a| a.numbers.get(waba_number),
            |c| {
                one(
                    c,
                    &format!("SELECT {NUMBER_COLS} FROM numbers WHERE waba_number = ?1"),
                    params![waba_number],
                    number_row,
                )
            },
            |a, n| {
                a.numbers.insert(n.waba_number.clone(), n);
            },
        )
    }

    async fn get_number(&self, number_id: i64) -> Result<Option<Number>, StoreError> {
        self.cached(
            |a| a.numbers_by_id.get(&number_id),
            |c| {
                one(
                    c,
                    &format!("SELECT {NUMBER_COLS} FROM numbers WHERE id = ?1"),
                    params![number_id],
                    number_row,
                )
            },
            |a, n| {
                a.numbers_by_id.insert(n.id, n);
            },
        )
    }

    async fn find_number_by_ref(
        &self,
        provider: ProviderKind,
        provider_ref: &str,
    ) -> Result<Option<Number>, StoreError> {
        let r = provider_ref.to_string();
        self.db.lookup(move |c| {
            one(
                c,
                &format!("SELECT {NUMBER_COLS} FROM numbers WHERE provider = ?1 AND provider_ref = ?2"),
                params![provider.as_str(), r],
                number_row,
            )
        })
    }

    async fn set_number_provider_config(
        &self,
        waba_number: &str,
        provider_config: &serde_json::Value,
    ) -> Result<Option<Number>, StoreError> {
        let (w, config) = (waba_number.to_string(), provider_config.to_string());
        self.db
            .write(move |c| {
                one(
                    c,
                    &format!("UPDATE numbers SET provider_config = ?1 WHERE waba_number = ?2 RETURNING {NUMBER_COLS}"),
                    params![config, w],
                    number_row,
                )
            })
            .await
    }

    async fn set_number_instance_id(
        &self,
        waba_number: &str,
        instance_id: Option<&str>,
    ) -> Result<Option<bool>, StoreError> {
        let (w, alias) = (waba_number.to_string(), instance_id.map(str::to_string));
        self.db
            .write(move |c| {
                let exists: Option<i64> = one(c, "SELECT id FROM numbers WHERE waba_number = ?1", params![w], |r| {
                    get(r, "id")
                })?;
                let Some(id) = exists else { return Ok(None) };
                if let Some(a) = &alias {
                    let taken: Option<i64> = one(
                        c,
                        "SELECT id FROM numbers WHERE instance_id = ?1 AND id != ?2",
                        params![a, id],
                        |r| get(r, "id"),
                    )?;
                    if taken.is_some() {
                        return Ok(Some(false));
                    }
                }
                exec(
                    c,
                    "UPDATE numbers SET instance_id = ?1 WHERE id = ?2",
                    params![alias, id],
                )?;
                Ok(Some(true))
            })
            .await
    }

    async fn find_number_by_instance_id(&self, instance_id: &str) -> Result<Option<Number>, StoreError> {
        let a = instance_id.to_string();
        self.db.lookup(move |c| {
            one(
                c,
                &format!("SELECT {NUMBER_COLS} FROM numbers WHERE instance_id = ?1"),
                params![a],
                number_row,
            )
        })
    }

    async fn set_number_health(&self, number_id: i64, health: &NumberHealth) -> Result<(), StoreError> {
        let h = health.clone();
        self.db
            .write(move |c| {
                // Unchanged health writes nothing (and leaves the key and number cache alone).
                exec(
                    c,
                    "UPDATE numbers SET health = ?1, health_until = ?2, health_detail = ?3 WHERE id = ?4 \
                     AND (health IS NOT ?1 OR health_until IS NOT ?2 OR health_detail IS NOT ?3)",
                    params![h.status.as_str(), h.until.map(|t| t.millis()), h.detail, number_id],
                )
                .map(|_| ())
            })
            .await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        let n = name.to_string();
        self.db
            .read(move |c| {
                one(c, "SELECT value FROM settings WHERE name = ?1", params![n], |r| {
                    get(r, "value")
                })
            })
            .await
    }

    async fn put_setting_if_absent(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        let (n, v) = (name.to_string(), value.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                    params![n, v],
                )
                .map(|n| n > 0)
            })
            .await
    }

    async fn create_api_key(&self, k: NewApiKey, now: Timestamp) -> Result<ApiKey, StoreError> {
        self.db.write(move |c| {
            one(
                c,
                &format!(
                    "INSERT INTO api_keys (id, org_id, name, key_hash, numbers, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     RETURNING {KEY_COLS}"
                ),
                params![k.id.as_str(), k.org_id.as_str(), k.name, k.key_hash, to_json_list(&k.numbers), now.millis()],
                key_row,
            )?
            .ok_or_else(|| StoreError::Database("the new key was not returned".into()))
        })
        .await
    }

    async fn list_api_keys(&self, org_id: &OrgId) -> Result<Vec<ApiKey>, StoreError> {
        let org = org_id.to_string();
        self.db
            .read(move |c| {
                all(
                    c,
                    &format!("SELECT {KEY_COLS} FROM api_keys WHERE org_id = ?1 ORDER BY created_at, id"),
                    params![org],
                    key_row,
                )
            })
            .await
    }

    async fn revoke_api_key(&self, key_id: &ApiKeyId, now: Timestamp) -> Result<bool, StoreError> {
        let id = key_id.to_string();
        self.db
            .write(move |c| {
                Ok(exec(
                    c,
                    "UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                    params![now.millis(), id],
                )? == 1)
            })
            .await
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.cached(
            |a| a.keys.get(key_hash),
            |c| {
                one(
                    c,
                    &format!("SELECT {KEY_COLS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL"),
                    params![key_hash],
                    key_row,
                )
            },
            |a, k| {
                a.keys.insert(key_hash.to_string(), k);
            },
        )
    }
}
