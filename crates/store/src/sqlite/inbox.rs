//! The provider inbox: held and dead reports (applied ones are recorded by `mutate_group`).

use super::*;

const HELD_COLS: &str = "p.number_id, p.dedup_key, p.correlation, p.held_seq, p.report, p.attempts, p.received_at, \
     p.next_attempt_at, n.waba_number";

fn held_row(r: &Row) -> Result<HeldReport, StoreError> {
    let json: Option<String> = get(r, "report")?;
    Ok(HeldReport {
        report: ReportRef {
            number_id: get(r, "number_id")?,
            dedup_key: get(r, "dedup_key")?,
            correlation: get(r, "correlation")?,
            held_seq: get(r, "held_seq")?,
        },
        waba_number: get::<Option<String>>(r, "waba_number")?.unwrap_or_default(),
        event: json.and_then(|j| serde_json::from_str(&j).ok()),
        attempts: get(r, "attempts")?,
        received_at: ts(r, "received_at")?,
        next_attempt_at: opt_ts(r, "next_attempt_at")?.unwrap_or(Timestamp(0)),
    })
}

fn report_json(event: &ProviderEvent) -> Result<String, StoreError> {
    serde_json::to_string(event).map_err(|e| StoreError::Database(format!("report: {e}")))
}

#[async_trait]
impl InboxStore for SqliteStore {
    async fn hold_report(
        &self,
        report: &ReportRef,
        event: &ProviderEvent,
        error: &str,
        now: Timestamp,
        next_attempt_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let (r, json, error) = (report.clone(), report_json(event)?, error.to_string());
        self.db
            .write(move |c| {
                Ok(exec(
                    c,
                    "INSERT INTO provider_inbox (number_id, dedup_key, status, received_at, correlation, report, \
                     held_seq, attempts, next_attempt_at, error) \
                     VALUES (?1, ?2, 'held', ?3, ?4, ?5, \
                       (SELECT coalesce(max(held_seq), 0) + 1 FROM provider_inbox WHERE status = 'held'), 0, ?6, ?7) \
                     ON CONFLICT (number_id, dedup_key) DO NOTHING",
                    params![
                        r.number_id,
                        r.dedup_key,
                        now.millis(),
                        r.correlation,
                        json,
                        next_attempt_at.millis(),
                        error
                    ],
                )? == 1)
            })
            .await
    }

    async fn held_heads(&self, limit: i64, newest_first: bool) -> Result<Vec<HeldReport>, StoreError> {
        let order = if newest_first {
            "p.held_seq DESC"
        } else {
            "p.next_attempt_at, p.held_seq"
        };
        self.db
            .read(move |c| {
                all(
                    c,
                    &format!(
                        "SELECT {HELD_COLS} FROM provider_inbox p LEFT JOIN numbers n ON n.id = p.number_id \
                         WHERE p.status = 'held' AND p.held_seq = (SELECT min(h.held_seq) FROM provider_inbox h \
                           WHERE h.status = 'held' AND h.number_id = p.number_id AND h.correlation = p.correlation) \
                         ORDER BY {order} LIMIT ?1"
                    ),
                    params![limit],
                    held_row,
                )
            })
            .await
    }

    async fn mark_dead(&self, report: &ReportRef, error: &str) -> Result<(), StoreError> {
        let (r, error) = (report.clone(), error.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE provider_inbox SET status = 'dead', held_seq = NULL, next_attempt_at = NULL, error = ?1 \
                     WHERE number_id = ?2 AND dedup_key = ?3 AND status = 'held'",
                    params![error, r.number_id, r.dedup_key],
                )
                .map(|_| ())
            })
            .await
    }

    async fn mark_dead_held(&self, number_id: i64, correlation: &str, error: &str) -> Result<u64, StoreError> {
        let (correlation, error) = (correlation.to_string(), error.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE provider_inbox SET status = 'dead', held_seq = NULL, next_attempt_at = NULL, error = ?1 \
                     WHERE number_id = ?2 AND correlation = ?3 AND status = 'held'",
                    params![error, number_id, correlation],
                )
                .map(|n| n as u64)
            })
            .await
    }

    async fn retry_report(
        &self,
        report: &ReportRef,
        error: &str,
        next_attempt_at: Timestamp,
    ) -> Result<(), StoreError> {
        let (r, error) = (report.clone(), error.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE provider_inbox SET attempts = attempts + 1, next_attempt_at = ?1, error = ?2 \
                     WHERE number_id = ?3 AND dedup_key = ?4 AND status = 'held'",
                    params![next_attempt_at.millis(), error, r.number_id, r.dedup_key],
                )
                .map(|_| ())
            })
            .await
    }

    async fn give_up_report(
        &self,
        report: &ReportRef,
        event: &ProviderEvent,
        error: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (r, json, error) = (report.clone(), report_json(event)?, error.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO provider_inbox (number_id, dedup_key, status, received_at, correlation, report, error) \
                     VALUES (?1, ?2, 'dead', ?3, ?4, ?5, ?6) ON CONFLICT (number_id, dedup_key) DO UPDATE SET \
                     status = 'dead', held_seq = NULL, next_attempt_at = NULL, error = excluded.error \
                     WHERE provider_inbox.status <> 'applied'",
                    params![r.number_id, r.dedup_key, now.millis(), r.correlation, json, error],
                )
                .map(|_| ())
            })
            .await
    }

    async fn inbox_stats(&self) -> Result<InboxStats, StoreError> {
        self.db.lookup(move |c| {
            one(
                c,
                "SELECT (SELECT count(*) FROM provider_inbox WHERE status = 'held') AS held, \
                     (SELECT count(*) FROM provider_inbox WHERE status = 'dead') AS dead",
                [],
                |r| {
                    Ok(InboxStats {
                        held: get(r, "held")?,
                        dead: get(r, "dead")?,
                    })
                },
            )
            .map(Option::unwrap_or_default)
        })
    }
}
