//! Idempotency keys.

use super::*;
use wagroups_core::idempotency::{Begin, Replay};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn begin_idempotent(
        &self,
        org_id: &OrgId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Begin, StoreError> {
        let (org, key, fp) = (org_id.to_string(), key.to_string(), fingerprint.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "DELETE FROM idempotency_keys WHERE org_id = ?1 AND key = ?2 AND expires_at <= ?3",
                    params![org, key, now.millis()],
                )?;
                let row = one(
                    c,
                    "SELECT fingerprint, state, status, content_type, body FROM idempotency_keys \
                     WHERE org_id = ?1 AND key = ?2",
                    params![org, key],
                    |r| {
                        Ok((
                            get::<String>(r, "fingerprint")?,
                            get::<String>(r, "state")?,
                            get::<Option<i64>>(r, "status")?,
                            get::<Option<String>>(r, "content_type")?,
                            get::<Option<Vec<u8>>>(r, "body")?,
                        ))
                    },
                )?;
                match row {
                    None => {
                        exec(
                            c,
                            "INSERT INTO idempotency_keys (org_id, key, fingerprint, state, created_at, expires_at) \
                             VALUES (?1, ?2, ?3, 'in_flight', ?4, ?5)",
                            params![org, key, fp, now.millis(), expires_at.millis()],
                        )?;
                        // Expired keys of every organisation go a few at a time.
                        exec(
                            c,
                            "DELETE FROM idempotency_keys WHERE (org_id, key) IN (SELECT org_id, key \
                             FROM idempotency_keys WHERE expires_at <= ?1 LIMIT 16)",
                            params![now.millis()],
                        )?;
                        Ok(Begin::Proceed)
                    }
                    Some((stored, _, _, _, _)) if stored != fp => Ok(Begin::Mismatch),
                    Some((_, state, status, ct, body)) => match (state.as_str(), status) {
                        ("done", Some(status)) => Ok(Begin::Replay(Replay {
                            status: u16::try_from(status).unwrap_or(500),
                            content_type: ct.unwrap_or_else(|| "application/json".into()),
                            body: body.unwrap_or_default(),
                        })),
                        _ => Ok(Begin::InFlight),
                    },
                }
            })
            .await
    }

    async fn finish_idempotent(&self, org_id: &OrgId, key: &str, reply: &Replay) -> Result<(), StoreError> {
        let (org, key, r) = (org_id.to_string(), key.to_string(), reply.clone());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE idempotency_keys SET state = 'done', status = ?3, content_type = ?4, body = ?5 \
                     WHERE org_id = ?1 AND key = ?2",
                    params![org, key, i64::from(r.status), r.content_type, r.body],
                )?;
                Ok(())
            })
            .await
    }

    async fn abandon_idempotent(&self, org_id: &OrgId, key: &str) -> Result<(), StoreError> {
        let (org, key) = (org_id.to_string(), key.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "DELETE FROM idempotency_keys WHERE org_id = ?1 AND key = ?2 AND state = 'in_flight'",
                    params![org, key],
                )?;
                Ok(())
            })
            .await
    }
}
