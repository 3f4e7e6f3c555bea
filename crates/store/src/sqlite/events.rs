//! The organisation's event log.

use super::*;

#[async_trait]
impl EventLogStore for SqliteStore {
    async fn event_position(&self, org_id: &OrgId, event_id: &EventId) -> Result<Option<i64>, StoreError> {
        let (org, ev) = (org_id.to_string(), event_id.to_string());
        self.db.lookup(move |c| {
            one(
                c,
                "SELECT id FROM events WHERE org_id = ?1 AND event_id = ?2",
                params![org, ev],
                |r| get(r, "id"),
            )
        })
    }

    async fn list_events(
        &self,
        org_id: &OrgId,
        filter: &EventFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, StoredEvent)>, StoreError> {
        let org = org_id.to_string();
        let numbers = filter.number_ids.as_deref().map(ids_json);
        let group = filter.group_row_id;
        let event_type = filter.event_type.clone();
        self.db.read(move |c| {
            all(
                c,
                "SELECT ev.id, ev.event_id, ev.event_type, ev.sequence, ev.occurred_at, ev.payload FROM events ev \
                 WHERE ev.org_id = ?1 AND ev.id > ?2 AND (?3 IS NULL OR ev.group_id = ?3) AND (?4 IS NULL OR ev.event_type = ?4) \
                 AND (?5 IS NULL OR ev.group_id IN (SELECT g.id FROM groups g WHERE g.org_id = ?1 \
                      AND g.number_id IN (SELECT value FROM json_each(?5)))) \
                 ORDER BY ev.id LIMIT ?6",
                params![org, after, group, event_type, numbers, limit],
                |r| Ok((get(r, "id")?, stored_event_row(r)?)),
            )
        })
        .await
    }
}
