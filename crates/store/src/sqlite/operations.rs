//! Writes WhatsApp confirms later.

use super::*;

const OPERATION_SELECT: &str = "SELECT o.id, o.org_id, o.group_id AS group_row_id, g.group_id, n.waba_number, o.kind, \
     o.status, o.results, o.error_code, o.error_message, o.created_at, o.updated_at FROM operations o \
     JOIN groups g ON g.id = o.group_id JOIN numbers n ON n.id = o.number_id";

fn operation_row(r: &Row) -> Result<Operation, StoreError> {
    let results: String = get(r, "results")?;
    Ok(Operation {
        id: id(r, "id")?,
        org_id: id(r, "org_id")?,
        group_row_id: get(r, "group_row_id")?,
        group_id: id(r, "group_id")?,
        waba_number: get(r, "waba_number")?,
        kind: parse(r, "kind", OperationKind::parse)?,
        status: parse(r, "status", OperationStatus::parse)?,
        results: serde_json::from_str(&results).map_err(|_| corrupt("results", &results))?,
        error_code: get(r, "error_code")?,
        error_message: get(r, "error_message")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

#[async_trait]
impl OperationStore for SqliteStore {
    async fn create_operation(&self, op: NewOperation, now: Timestamp) -> Result<Operation, StoreError> {
        let id = op.id.clone();
        let org = op.org_id.clone();
        self.db
            .write(move |c| {
                exec(
                    c,
                    "INSERT INTO operations (id, org_id, group_id, number_id, request_id, kind, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                    params![op.id.as_str(), op.org_id.as_str(), op.group_row_id, op.number_id, op.request_id, op.kind.as_str(), now.millis()],
                )?;
                one(
                    c,
                    &format!("{OPERATION_SELECT} WHERE o.id = ?1 AND o.org_id = ?2"),
                    params![id.as_str(), org.as_str()],
                    operation_row,
                )?
                .ok_or_else(|| StoreError::Database("the operation just written is gone".into()))
            })
            .await
    }

    async fn operation_accepted(&self, id: &OperationId, request_id: &str, now: Timestamp) -> Result<(), StoreError> {
        let (id, request_id) = (id.to_string(), request_id.to_string());
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE operations SET request_id = ?1, updated_at = ?2 WHERE id = ?3",
                    params![request_id, now.millis(), id],
                )
                .map(|_| ())
            })
            .await
    }

    async fn finish_operation(
        &self,
        id: &OperationId,
        succeeded: bool,
        results: &[ItemResult],
        error: Option<(&str, &str)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        let results = serde_json::to_string(results).map_err(|e| StoreError::Database(e.to_string()))?;
        let (code, message) = match error {
            Some((c, m)) => (Some(c.to_string()), Some(m.to_string())),
            None => (None, None),
        };
        self.db
            .write(move |c| {
                exec(
                    c,
                    "UPDATE operations SET status = ?1, results = ?2, error_code = ?3, error_message = ?4, \
                     updated_at = ?5 WHERE id = ?6 AND status = 'pending'",
                    params![
                        if succeeded { "succeeded" } else { "failed" },
                        results,
                        code,
                        message,
                        now.millis(),
                        id
                    ],
                )
                .map(|_| ())
            })
            .await
    }

    async fn stale_operations(&self, before: Timestamp, limit: i64) -> Result<Vec<(i64, String)>, StoreError> {
        self.db
            .read(move |c| {
                all(
                    c,
                    "SELECT number_id, request_id FROM operations WHERE status = 'pending' AND created_at < ?1 \
                     ORDER BY created_at LIMIT ?2",
                    params![before.millis(), limit],
                    |r| Ok((get(r, "number_id")?, get(r, "request_id")?)),
                )
            })
            .await
    }

    async fn get_operation(&self, org_id: &OrgId, id: &OperationId) -> Result<Option<Operation>, StoreError> {
        let (org, id) = (org_id.to_string(), id.to_string());
        self.db.lookup(move |c| {
            one(
                c,
                &format!("{OPERATION_SELECT} WHERE o.id = ?1 AND o.org_id = ?2"),
                params![id, org],
                operation_row,
            )
        })
    }
}
