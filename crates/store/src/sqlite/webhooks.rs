//! Webhook endpoints and the delivery queue.

use super::*;

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_endpoint(&self, e: NewEndpoint, now: Timestamp) -> Result<Endpoint, StoreError> {
        self.db
            .write(move |c| {
                one(
                c,
                &format!(
                    "INSERT INTO webhook_endpoints (id, org_id, url, description, event_types, waba_numbers, secret, \
                     created_at, updated_at, format, verify_token) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10) \
                     RETURNING {ENDPOINT_COLS}"
                ),
                params![
                    e.id.as_str(),
                    e.org_id.as_str(),
                    e.url,
                    e.description,
                    to_json_list(&e.event_types),
                    to_json_list(&e.waba_numbers),
                    e.secret.as_stored(),
                    now.millis(),
                    e.format.as_str(),
                    e.verify_token.as_ref().map(|t| t.as_stored())
                ],
                endpoint_row,
            )?
            .ok_or_else(|| StoreError::Database("the new endpoint was not returned".into()))
            })
            .await
    }

    async fn list_endpoints(&self, org_id: &OrgId) -> Result<Vec<Endpoint>, StoreError> {
        let org = org_id.to_string();
        self.db.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = ?1 AND deleted_at IS NULL ORDER BY created_at, id"
                ),
                params![org],
                endpoint_row,
            )
        })
        .await
    }

    async fn get_endpoint(&self, org_id: &OrgId, id: &EndpointId) -> Result<Option<Endpoint>, StoreError> {
        let (org, id) = (org_id.to_string(), id.to_string());
        self.db.lookup(move |c| {
            one(
                c,
                &format!(
                    "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = ?1 AND id = ?2 AND deleted_at IS NULL"
                ),
                params![org, id],
                endpoint_row,
            )
        })
    }

    async fn update_endpoint(
        &self,
        org_id: &OrgId,
        id: &EndpointId,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let (org, id) = (org_id.to_string(), id.to_string());
        self.db.write(move |c| {
            let Some(mut ep) = one(
                c,
                &format!(
                    "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = ?1 AND id = ?2 AND deleted_at IS NULL"
                ),
                params![org, id],
                endpoint_row,
            )?
            else {
                return Ok(None);
            };
            patch.apply(&mut ep);
            one(
                c,
                &format!(
                    "UPDATE webhook_endpoints SET url = ?1, description = ?2, event_types = ?3, waba_numbers = ?4, \
                     disabled = ?5, disabled_reason = ?6, updated_at = ?7, format = ?9, verify_token = ?10 \
                     WHERE id = ?8 RETURNING {ENDPOINT_COLS}"
                ),
                params![
                    ep.url,
                    ep.description,
                    to_json_list(&ep.event_types),
                    to_json_list(&ep.waba_numbers),
                    ep.disabled,
                    ep.disabled_reason,
                    now.millis(),
                    id,
                    ep.format.as_str(),
                    ep.verify_token.as_ref().map(|t| t.as_stored())
                ],
                endpoint_row,
            )
        })
        .await
    }

    async fn delete_endpoint(&self, org_id: &OrgId, id: &EndpointId, now: Timestamp) -> Result<bool, StoreError> {
        let (org, id) = (org_id.to_string(), id.to_string());
        self.db
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE webhook_endpoints SET deleted_at = ?1, disabled = 1, updated_at = ?1 \
                 WHERE org_id = ?2 AND id = ?3 AND deleted_at IS NULL",
                    params![now.millis(), org, id],
                )?;
                if n == 0 {
                    return Ok(false);
                }
                exec(
                    c,
                    "UPDATE deliveries SET status = 'dead', updated_at = ?1 \
                 WHERE endpoint_id = ?2 AND status IN ('pending', 'failed')",
                    params![now.millis(), id],
                )?;
                Ok(true)
            })
            .await
    }

    async fn rotate_endpoint_secret(
        &self,
        org_id: &OrgId,
        id: &EndpointId,
        secret: &Sealed,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let (org, id, secret) = (org_id.to_string(), id.to_string(), secret.as_stored().to_string());
        self.db.write(move |c| {
            one(
                c,
                &format!(
                    "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = ?1, secret = ?2, \
                     updated_at = ?3 WHERE org_id = ?4 AND id = ?5 AND deleted_at IS NULL RETURNING {ENDPOINT_COLS}"
                ),
                params![previous_until.millis(), secret, now.millis(), org, id],
                endpoint_row,
            )
        })
        .await
    }

    async fn active_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.db.read(move |c| {
            all(
                c,
                &format!(
                    "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE deleted_at IS NULL AND disabled = 0 ORDER BY id"
                ),
                [],
                endpoint_row,
            )
        })
        .await
    }

    async fn all_endpoints(&self) -> Result<Vec<Endpoint>, StoreError> {
        self.db
            .read(move |c| {
                all(
                    c,
                    &format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints ORDER BY id"),
                    [],
                    endpoint_row,
                )
            })
            .await
    }

    async fn reseal_endpoint_secrets(
        &self,
        id: &EndpointId,
        was: (&Sealed, Option<&Sealed>),
        new: (&Sealed, Option<&Sealed>),
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        let text = |s: &Sealed| s.as_stored().to_string();
        let (was, new) = ((text(was.0), was.1.map(text)), (text(new.0), new.1.map(text)));
        self.db
            .write(move |c| {
                // The old values' bytes are overwritten, not left in the page's free space.
                c.pragma_update(None, "secure_delete", true).map_err(db)?;
                let changed = c
                    .prepare_cached(
                        "UPDATE webhook_endpoints SET secret = ?1, previous_secret = ?2 \
                         WHERE id = ?3 AND secret = ?4 AND previous_secret IS ?5",
                    )
                    .and_then(|mut st| st.execute(params![new.0, new.1, id, was.0, was.1]))
                    .map_err(db);
                c.pragma_update(None, "secure_delete", false).map_err(db)?;
                Ok(changed? == 1)
            })
            .await
    }

    async fn last_delivery_id(&self) -> Result<i64, StoreError> {
        self.db.lookup(|c| {
            one(c, "SELECT COALESCE(MAX(id), 0) AS id FROM deliveries", [], |r| {
                get(r, "id")
            })
            .map(Option::unwrap_or_default)
        })
    }

    async fn open_deliveries(
        &self,
        endpoint_id: Option<&EndpointId>,
        after: i64,
        upto: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OpenDelivery>, StoreError> {
        let endpoint_id = endpoint_id.cloned();
        self.db.lookup(move |c| {
            // By position: both statements below select these columns in this order.
            let map = |r: &Row| {
                Ok(OpenDelivery {
                    id: at(r, 0)?,
                    endpoint_id: id_at(r, 1)?,
                    group_row_id: at(r, 2)?,
                    attempts: at(r, 3)?,
                    next_attempt_at: at::<Option<i64>>(r, 4)?.map(Timestamp).unwrap_or_default(),
                    event_id: id_at(r, 5)?,
                    payload: at(r, 6)?,
                })
            };
            let upto = upto.unwrap_or(i64::MAX);
            match endpoint_id {
                // One endpoint's backlog: the open-deliveries index, in ID order.
                Some(ep) => all(
                    c,
                    "SELECT d.id, d.endpoint_id, d.group_row_id, d.attempts, d.next_attempt_at, ev.event_id, ev.payload \
                     FROM deliveries d INDEXED BY deliveries_open JOIN events ev ON ev.id = d.event_row_id \
                     WHERE d.endpoint_id = ?1 AND d.status IN ('pending', 'failed') AND d.id > ?2 AND d.id <= ?3 \
                     ORDER BY d.id LIMIT ?4",
                    params![ep.as_str(), after, upto, limit],
                    map,
                ),
                // The tail of the queue: the rowid range after the last one seen.
                None => all(
                    c,
                    "SELECT d.id, d.endpoint_id, d.group_row_id, d.attempts, d.next_attempt_at, ev.event_id, ev.payload \
                     FROM deliveries d JOIN events ev ON ev.id = d.event_row_id \
                     WHERE d.id > ?1 AND d.id <= ?2 AND d.status IN ('pending', 'failed') ORDER BY d.id LIMIT ?3",
                    params![after, upto, limit],
                    map,
                ),
            }
        })
    }

    async fn record_attempts(&self, records: &[(i64, AttemptRecord)]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.db.write(move |c| {
            // Per delivery, two statements on its row by rowid (no statement journal): the
            // attempt before, if any, moves to the history; this one takes its place. A
            // delivery closed meanwhile (its endpoint deleted) keeps no late attempt.
            let mut archive = c.prepare_cached(ARCHIVE_LATEST_ATTEMPT).map_err(db)?;
            let mut update = c
                .prepare_cached(
                    "UPDATE deliveries SET status = ?2, attempts = attempts + 1, next_attempt_at = ?3, updated_at = ?4, \
                     last_attempted_at = ?4, last_status_code = ?5, last_latency_ms = ?6, last_error = ?7 \
                     WHERE id = ?1 AND status IN ('pending', 'failed')",
                )
                .map_err(db)?;
            for (id, rec) in &records {
                let (status, next) = match &rec.next {
                    AttemptNext::Succeeded => (DeliveryStatus::Succeeded, None),
                    AttemptNext::RetryAt(t) => (DeliveryStatus::Failed, Some(t.millis())),
                    AttemptNext::Dead | AttemptNext::DeadAndDisable(_) => (DeliveryStatus::Dead, None),
                };
                if let AttemptNext::DeadAndDisable(reason) = &rec.next {
                    exec(
                        c,
                        "UPDATE webhook_endpoints SET disabled = 1, disabled_reason = ?1, updated_at = ?2 \
                         WHERE id = (SELECT endpoint_id FROM deliveries WHERE id = ?3 AND status IN ('pending', 'failed'))",
                        params![reason, rec.attempted_at.millis(), id],
                    )?;
                }
                archive.execute(params![id]).map_err(db)?;
                update
                    .execute(params![
                        id,
                        status.as_str(),
                        next,
                        rec.attempted_at.millis(),
                        rec.status_code,
                        rec.latency_ms,
                        rec.error
                    ])
                    .map_err(db)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_deliveries(
        &self,
        org_id: &OrgId,
        endpoint_id: &EndpointId,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let (org, ep) = (org_id.to_string(), endpoint_id.to_string());
        self.db.read(move |c| {
            let rows = all(
                c,
                "SELECT d.id, d.status, d.sequence, d.next_attempt_at, d.created_at, d.updated_at, ev.event_id, \
                 ev.event_type, g.group_id, d.last_attempted_at, d.last_status_code, d.last_latency_ms, d.last_error \
                 FROM deliveries d JOIN events ev ON ev.id = d.event_row_id \
                 JOIN groups g ON g.id = d.group_row_id \
                 WHERE d.org_id = ?1 AND d.endpoint_id = ?2 AND (?3 IS NULL OR d.status = ?3) AND (?4 IS NULL OR d.id < ?4) \
                 ORDER BY d.id DESC LIMIT ?5",
                params![org, ep, status.map(|s| s.as_str()), before, limit],
                |r| {
                    let status = parse(r, "status", DeliveryStatus::parse)?;
                    let next_attempt_at = opt_ts(r, "next_attempt_at")?;
                    // The latest attempt, kept on the delivery's row.
                    let latest = opt_ts(r, "last_attempted_at")?.map(|at| {
                        Ok::<_, StoreError>(AttemptView {
                            attempted_at: at,
                            status_code: get::<Option<i64>>(r, "last_status_code")?.map(|c| c as u16),
                            latency_ms: get::<Option<i64>>(r, "last_latency_ms")?.unwrap_or(0),
                            error: get(r, "last_error")?,
                            next_attempt_at: next_attempt_at.filter(|_| status == DeliveryStatus::Failed),
                        })
                    });
                    Ok((
                        DeliveryView {
                            id: get(r, "id")?,
                            event_id: id(r, "event_id")?,
                            event_type: get(r, "event_type")?,
                            group_id: id(r, "group_id")?,
                            sequence: get(r, "sequence")?,
                            status,
                            next_attempt_at,
                            created_at: ts(r, "created_at")?,
                            updated_at: ts(r, "updated_at")?,
                            attempts: Vec::new(),
                        },
                        latest.transpose()?,
                    ))
                },
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for (mut d, latest) in rows {
                d.attempts = all(
                    c,
                    "SELECT attempted_at, status_code, latency_ms, error, next_attempt_at FROM delivery_attempts \
                     WHERE delivery_id = ?1 ORDER BY id",
                    params![d.id],
                    |a| {
                        Ok(AttemptView {
                            attempted_at: ts(a, "attempted_at")?,
                            status_code: get::<Option<i64>>(a, "status_code")?.map(|c| c as u16),
                            latency_ms: get(a, "latency_ms")?,
                            error: get(a, "error")?,
                            next_attempt_at: opt_ts(a, "next_attempt_at")?,
                        })
                    },
                )?;
                d.attempts.extend(latest);
                out.push(d);
            }
            Ok(out)
        })
        .await
    }

    async fn recover_deliveries(
        &self,
        org_id: &OrgId,
        endpoint_id: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let (org, ep) = (org_id.to_string(), endpoint_id.to_string());
        self.db
            .write(move |c| {
                let which = "org_id = ?2 AND endpoint_id = ?3 AND status IN ('failed', 'dead') AND created_at >= ?4";
                exec(
                    c,
                    &format!("{ARCHIVE_LATEST_ATTEMPTS} {which}"),
                    params![now.millis(), org, ep, since.millis()],
                )?;
                Ok(exec(
                    c,
                    &format!("UPDATE deliveries SET {REQUEUE} WHERE {which}"),
                    params![now.millis(), org, ep, since.millis()],
                )? as u64)
            })
            .await
    }

    async fn redeliver_event(
        &self,
        org_id: &OrgId,
        event_id: &EventId,
        now: Timestamp,
    ) -> Result<Option<u64>, StoreError> {
        let (org, event_id) = (org_id.to_string(), event_id.to_string());
        self.db
            .write(move |c| {
                let Some((event_row, group_row, sequence, event_type, waba, payload)) = one(
                    c,
                    "SELECT ev.id, ev.group_id, ev.sequence, ev.event_type, n.waba_number, ev.payload FROM events ev \
                 JOIN groups g ON g.id = ev.group_id JOIN numbers n ON n.id = g.number_id \
                 WHERE ev.org_id = ?1 AND ev.event_id = ?2",
                    params![org, event_id],
                    |r| {
                        Ok((
                            get::<i64>(r, "id")?,
                            get::<i64>(r, "group_id")?,
                            get::<i64>(r, "sequence")?,
                            get::<String>(r, "event_type")?,
                            get::<String>(r, "waba_number")?,
                            get::<String>(r, "payload")?,
                        ))
                    },
                )?
                else {
                    return Ok(None);
                };
                let payload: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
                for endpoint_id in plan::redelivery(&event_type, &waba, &payload, &subscriptions(c, &org)?) {
                    insert_delivery(c, &endpoint_id, event_row, &org, group_row, sequence, now)?;
                }
                let which = "event_row_id = ?2 AND endpoint_id IN \
                 (SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL AND disabled = 0)";
                exec(
                    c,
                    &format!("{ARCHIVE_LATEST_ATTEMPTS} {which}"),
                    params![now.millis(), event_row],
                )?;
                let n = exec(
                    c,
                    &format!("UPDATE deliveries SET {REQUEUE} WHERE {which}"),
                    params![now.millis(), event_row],
                )?;
                Ok(Some(n as u64))
            })
            .await
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError> {
        self.db
            .read(|c| {
                one(
                c,
                "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM deliveries WHERE status IN ('pending', 'failed')",
                [],
                |r| {
                    Ok(DeliveryStats {
                        open: get(r, "n")?,
                        oldest_open_at: opt_ts(r, "oldest")?,
                    })
                },
            )
            .map(Option::unwrap_or_default)
            })
            .await
    }
}
