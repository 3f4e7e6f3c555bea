//! The command queue.

use super::*;

#[async_trait]
impl CommandStore for SqliteStore {
    async fn due_commands(&self, now: Timestamp, after: i64, limit: i64) -> Result<Vec<Command>, StoreError> {
        self.db.lookup(move |c| {
            all(
                c,
                "SELECT id, command_id, org_id, number_id, group_id, payload, attempts, request_id FROM commands \
                 WHERE status = 'pending' AND sending_at IS NULL AND id > ?1 AND not_before <= ?2 ORDER BY id LIMIT ?3",
                params![after, now.millis(), limit],
                |r| {
                    let payload: String = get(r, "payload")?;
                    Ok(Command {
                        id: get(r, "id")?,
                        command_id: id(r, "command_id")?,
                        org_id: id(r, "org_id")?,
                        number_id: get(r, "number_id")?,
                        group_row_id: get(r, "group_id")?,
                        payload: serde_json::from_str::<CommandPayload>(&payload)
                            .map_err(|_| corrupt("command payload", &payload))?,
                        // This submission is one more.
                        attempts: get::<i64>(r, "attempts")? + 1,
                        request_id: get(r, "request_id")?,
                    })
                },
            )
        })
    }

    async fn commands_submitted(&self, submitted: &[(i64, String)], now: Timestamp) -> Result<(), StoreError> {
        if submitted.is_empty() {
            return Ok(());
        }
        let rows = serde_json::Value::from(
            submitted
                .iter()
                .map(|(id, req)| serde_json::json!([id, req]))
                .collect::<Vec<_>>(),
        )
        .to_string();
        self.db.write(move |c| {
            // A command its confirmation already closed stays closed.
            exec(
                c,
                "UPDATE commands SET status = 'submitted', request_id = r.value ->> 1, attempts = attempts + 1, \
                 updated_at = ?2 FROM json_each(?1) r WHERE commands.id = r.value ->> 0 AND commands.status = 'pending'",
                params![rows, now.millis()],
            )
            .map(|_| ())
        })
        .await
    }

    async fn command_retry(&self, id: i64, error: &str, not_before: Timestamp) -> Result<(), StoreError> {
        let err = error.to_string();
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE commands SET not_before = ?1, attempts = attempts + 1, last_error = ?2, sending_at = NULL \
                 WHERE id = ?3 AND status = 'pending'",
                    params![not_before.millis(), err, id],
                )
                .map(|_| ())
            })
            .await
    }

    async fn command_sending(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE commands SET sending_at = ?1 WHERE id = ?2 AND status = 'pending'",
                    params![now.millis(), id],
                )
                .map(|_| ())
            })
            .await
    }

    async fn in_doubt_commands(&self, number_id: i64, before: Timestamp) -> Result<Vec<Command>, StoreError> {
        self.db
            .read(move |c| {
                all(
                    c,
                    "SELECT id, command_id, org_id, number_id, group_id, payload, attempts, request_id FROM commands \
                     WHERE number_id = ?1 AND status = 'pending' AND sending_at IS NOT NULL AND sending_at < ?2 \
                     ORDER BY id",
                    params![number_id, before.millis()],
                    |r| {
                        let payload: String = get(r, "payload")?;
                        Ok(Command {
                            id: get(r, "id")?,
                            command_id: id(r, "command_id")?,
                            org_id: id(r, "org_id")?,
                            number_id: get(r, "number_id")?,
                            group_row_id: get(r, "group_id")?,
                            payload: serde_json::from_str::<CommandPayload>(&payload)
                                .map_err(|_| corrupt("command payload", &payload))?,
                            attempts: get(r, "attempts")?,
                            request_id: get(r, "request_id")?,
                        })
                    },
                )
            })
            .await
    }

    async fn command_resend(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE commands SET sending_at = NULL, not_before = ?1 WHERE id = ?2 AND status = 'pending'",
                    params![now.millis(), id],
                )
                .map(|_| ())
            })
            .await
    }

    async fn resume_commands(&self, number_id: i64, now: Timestamp) -> Result<u64, StoreError> {
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE commands SET not_before = ?1 WHERE number_id = ?2 AND status = 'pending' AND not_before > ?1",
                    params![now.millis(), number_id],
                )
                .map(|n| n as u64)
            })
            .await
    }

    async fn command_defer(&self, id: i64, reason: &str, not_before: Timestamp) -> Result<(), StoreError> {
        let reason = reason.to_string();
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE commands SET not_before = ?1, last_error = ?2, sending_at = NULL WHERE id = ?3 AND status = 'pending'",
                    params![not_before.millis(), reason, id],
                )
                .map(|_| ())
            })
            .await
    }

    async fn command_outcome(
        &self,
        command_id: &CommandId,
    ) -> Result<Option<(CommandStatus, Option<String>)>, StoreError> {
        let id = command_id.to_string();
        self.db.lookup(move |c| {
            one(
                c,
                "SELECT status, result FROM commands WHERE command_id = ?1",
                params![id],
                |r| Ok((parse(r, "status", CommandStatus::parse)?, get(r, "result")?)),
            )
        })
    }

    async fn open_commands(&self) -> Result<i64, StoreError> {
        self.db
            .read(|c| {
                one(
                    c,
                    "SELECT COUNT(*) AS n FROM commands WHERE status IN ('pending', 'submitted')",
                    [],
                    |r| get(r, "n"),
                )
                .map(Option::unwrap_or_default)
            })
            .await
    }
}
