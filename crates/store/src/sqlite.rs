//! SQLite store: one file, WAL mode, one writer connection (SQLite allows one writer at a
//! time, so writes queue in-process instead of contending for the lock) and a pool of
//! readers. Every write is one `BEGIN IMMEDIATE` transaction.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    AssertSqlSafe, Row, Sqlite, SqliteConnection, SqlitePool, Transaction,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous},
};
use wagroups_core::{
    DomainError,
    command::{Command, CommandPayload},
    event::StoredEvent,
    group::{CommandClose, Decision, GroupState},
    ids::new_id,
    model::{
        ApiKey, Group, GroupStatus, JoinApprovalMode, JoinRequest, JoinRequestState, Number, Org, Participant,
        ParticipantRole, ParticipantState, Profile, ProviderKind,
    },
    phone::Phone,
    provider::ProviderEvent,
    store::{
        CreateGroupOutcome, EndpointPatch, EventFilter, GroupFilter, GroupTarget, MutateError, Mutation, NewApiKey,
        NewEndpoint, NewGroup, NewNumber, Rule, Store, StoreError,
        sim::{
            OutboxItem, SimChange, SimGroup, SimGroupState, SimJoinRequest, SimMember, SimRefusal, SimRule, SimStore,
            SimTarget, SimUser,
        },
    },
    time::Timestamp,
    webhook::{
        self, AttemptNext, AttemptRecord, AttemptView, DeliveryJob, DeliveryStats, DeliveryStatus, DeliveryView,
        Endpoint,
    },
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("unexpected {what} {value:?}"))
}

type Tx = Transaction<'static, Sqlite>;

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or
    /// `sqlite::memory:` is not supported: readers and the writer must share a file) and
    /// applies the embedded migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(db)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL never corrupts and survives process crashes (SIGKILL);
            // only an OS crash or power loss may drop the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-16000");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(db)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.read_only(true))
            .await
            .map_err(db)?;
        Ok(SqliteStore { writer, reader })
    }

    async fn begin(&self) -> Result<Tx, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(db)
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

// ---------------------------------------------------------------------------------------
// Row mapping

fn ts(row: &SqliteRow, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp(row.try_get::<i64, _>(col).map_err(db)?))
}

fn opt_ts(row: &SqliteRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col).map_err(db)?.map(Timestamp))
}

fn text(row: &SqliteRow, col: &str) -> Result<String, StoreError> {
    row.try_get::<String, _>(col).map_err(db)
}

fn parse<T>(row: &SqliteRow, col: &str, f: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    let s = text(row, col)?;
    f(&s).ok_or_else(|| corrupt(col, &s))
}

fn org_row(row: &SqliteRow) -> Result<Org, StoreError> {
    Ok(Org {
        id: text(row, "id")?,
        name: text(row, "name")?,
        created_at: ts(row, "created_at")?,
    })
}

const NUMBER_COLS: &str =
    "id, org_id, waba_number, provider, profile, disabled, default_join_approval_mode, created_at";

fn number_row(row: &SqliteRow) -> Result<Number, StoreError> {
    Ok(Number {
        id: row.try_get("id").map_err(db)?,
        org_id: text(row, "org_id")?,
        waba_number: text(row, "waba_number")?,
        provider: parse(row, "provider", ProviderKind::parse)?,
        profile: parse(row, "profile", Profile::parse)?,
        disabled: row.try_get::<bool, _>("disabled").map_err(db)?,
        default_join_approval_mode: parse(row, "default_join_approval_mode", JoinApprovalMode::parse)?,
        created_at: ts(row, "created_at")?,
    })
}

const KEY_COLS: &str = "id, org_id, name, numbers, created_at, revoked_at";

fn key_row(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    let numbers: Option<String> = row.try_get("numbers").map_err(db)?;
    let numbers = numbers
        .map(|s| serde_json::from_str::<Vec<String>>(&s).map_err(|_| corrupt("api_keys.numbers", &s)))
        .transpose()?;
    Ok(ApiKey {
        id: text(row, "id")?,
        org_id: text(row, "org_id")?,
        name: row.try_get("name").map_err(db)?,
        numbers,
        created_at: ts(row, "created_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

const GROUP_SELECT: &str = "SELECT g.id, g.org_id, g.number_id, n.waba_number, g.group_id, g.status, g.subject, \
     g.description, g.join_approval_mode, g.wa_group_id, g.invite_link, g.participant_count, g.last_sequence, \
     g.failure_reason, g.created_at, g.updated_at, g.announcement_only, g.locked, g.suspended \
     FROM groups g JOIN numbers n ON n.id = g.number_id";

fn group_row(row: &SqliteRow) -> Result<Group, StoreError> {
    Ok(Group {
        id: row.try_get("id").map_err(db)?,
        org_id: text(row, "org_id")?,
        number_id: row.try_get("number_id").map_err(db)?,
        waba_number: text(row, "waba_number")?,
        group_id: text(row, "group_id")?,
        status: parse(row, "status", GroupStatus::parse)?,
        subject: text(row, "subject")?,
        description: text(row, "description")?,
        join_approval_mode: parse(row, "join_approval_mode", JoinApprovalMode::parse)?,
        wa_group_id: row.try_get("wa_group_id").map_err(db)?,
        invite_link: row.try_get("invite_link").map_err(db)?,
        participant_count: row.try_get("participant_count").map_err(db)?,
        announcement_only: row.try_get::<bool, _>("announcement_only").map_err(db)?,
        locked: row.try_get::<bool, _>("locked").map_err(db)?,
        suspended: row.try_get::<bool, _>("suspended").map_err(db)?,
        last_sequence: row.try_get("last_sequence").map_err(db)?,
        failure_reason: row.try_get("failure_reason").map_err(db)?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn participant_row(row: &SqliteRow) -> Result<Participant, StoreError> {
    Ok(Participant {
        phone: Phone::from_digits(text(row, "phone")?),
        role: parse(row, "role", ParticipantRole::parse)?,
        state: parse(row, "state", ParticipantState::parse)?,
        is_business: row.try_get::<bool, _>("is_business").map_err(db)?,
        joined_at: opt_ts(row, "joined_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn join_request_row(row: &SqliteRow) -> Result<JoinRequest, StoreError> {
    Ok(JoinRequest {
        join_request_id: text(row, "join_request_id")?,
        phone: Phone::from_digits(text(row, "phone")?),
        state: parse(row, "state", JoinRequestState::parse)?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

const PARTICIPANTS_SQL: &str = "SELECT phone, role, state, is_business, joined_at, updated_at FROM participants \
     WHERE group_id = ? ORDER BY is_business DESC, joined_at, phone";

async fn load_participants(conn: &mut SqliteConnection, group_row_id: i64) -> Result<Vec<Participant>, StoreError> {
    sqlx::query(PARTICIPANTS_SQL)
        .bind(group_row_id)
        .fetch_all(conn)
        .await
        .map_err(db)?
        .iter()
        .map(participant_row)
        .collect()
}

// ---------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await.map_err(db)?;
        Ok(())
    }

    async fn create_org(&self, name: &str, now: Timestamp) -> Result<Option<Org>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING \
             RETURNING id, name, created_at",
        )
        .bind(new_id("org"))
        .bind(name)
        .bind(now.millis())
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
        row.as_ref().map(org_row).transpose()
    }

    async fn find_org(&self, name_or_id: &str) -> Result<Option<Org>, StoreError> {
        let row = sqlx::query("SELECT id, name, created_at FROM orgs WHERE name = ?1 OR id = ?1")
            .bind(name_or_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        row.as_ref().map(org_row).transpose()
    }

    async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM orgs ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await
            .map_err(db)?
            .iter()
            .map(org_row)
            .collect()
    }

    async fn add_number(&self, n: NewNumber, now: Timestamp) -> Result<Option<Number>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO numbers (org_id, waba_number, provider, profile, default_join_approval_mode, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (waba_number) DO NOTHING RETURNING {NUMBER_COLS}"
        )))
        .bind(&n.org_id)
        .bind(&n.waba_number)
        .bind(n.provider.as_str())
        .bind(n.profile.as_str())
        .bind(n.default_join_approval_mode.as_str())
        .bind(now.millis())
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
        row.as_ref().map(number_row).transpose()
    }

    async fn set_number_disabled(&self, waba_number: &str, disabled: bool) -> Result<Option<Number>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE numbers SET disabled = ? WHERE waba_number = ? RETURNING {NUMBER_COLS}"
        )))
        .bind(disabled)
        .bind(waba_number)
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
        row.as_ref().map(number_row).transpose()
    }

    async fn list_numbers(&self, org_id: Option<&str>) -> Result<Vec<Number>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {NUMBER_COLS} FROM numbers WHERE ?1 IS NULL OR org_id = ?1 ORDER BY id"
        )))
        .bind(org_id)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?
        .iter()
        .map(number_row)
        .collect()
    }

    async fn find_number(&self, waba_number: &str) -> Result<Option<Number>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NUMBER_COLS} FROM numbers WHERE waba_number = ?"
        )))
        .bind(waba_number)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.as_ref().map(number_row).transpose()
    }

    async fn get_number(&self, number_id: i64) -> Result<Option<Number>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {NUMBER_COLS} FROM numbers WHERE id = ?")))
            .bind(number_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        row.as_ref().map(number_row).transpose()
    }

    async fn create_api_key(&self, k: NewApiKey, now: Timestamp) -> Result<ApiKey, StoreError> {
        let numbers = k
            .numbers
            .as_ref()
            .map(|n| serde_json::to_string(n).map_err(|e| StoreError::Database(e.to_string())))
            .transpose()?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO api_keys (id, org_id, name, key_hash, numbers, created_at) VALUES (?, ?, ?, ?, ?, ?) \
             RETURNING {KEY_COLS}"
        )))
        .bind(new_id("key"))
        .bind(&k.org_id)
        .bind(&k.name)
        .bind(&k.key_hash)
        .bind(numbers)
        .bind(now.millis())
        .fetch_one(&self.writer)
        .await
        .map_err(db)?;
        key_row(&row)
    }

    async fn list_api_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE org_id = ? ORDER BY created_at, id"
        )))
        .bind(org_id)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?
        .iter()
        .map(key_row)
        .collect()
    }

    async fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now.millis())
            .bind(key_id)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(r.rows_affected() == 1)
    }

    async fn find_api_key(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KEY_COLS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL"
        )))
        .bind(key_hash)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.as_ref().map(key_row).transpose()
    }

    async fn create_group(&self, g: NewGroup) -> Result<CreateGroupOutcome, StoreError> {
        let payload = serde_json::to_string(&g.command).map_err(|e| StoreError::Database(e.to_string()))?;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO groups (org_id, number_id, group_id, status, subject, description, join_approval_mode, \
             created_at, updated_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?) \
             ON CONFLICT (org_id, group_id) DO NOTHING RETURNING id",
        )
        .bind(&g.org_id)
        .bind(g.number_id)
        .bind(&g.group_id)
        .bind(&g.subject)
        .bind(&g.description)
        .bind(g.join_approval_mode.as_str())
        .bind(g.now.millis())
        .bind(g.now.millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let Some(row) = inserted else {
            return Ok(CreateGroupOutcome::DuplicateGroupId);
        };
        let row_id: i64 = row.try_get("id").map_err(db)?;
        insert_command(
            &mut tx,
            &g.command_id,
            &g.org_id,
            g.number_id,
            row_id,
            &g.command,
            &payload,
            g.now,
        )
        .await?;
        let group = sqlx::query(AssertSqlSafe(format!("{GROUP_SELECT} WHERE g.id = ?")))
            .bind(row_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
        let group = group_row(&group)?;
        tx.commit().await.map_err(db)?;
        Ok(CreateGroupOutcome::Created(Box::new(group)))
    }

    async fn get_group(&self, org_id: &str, group_id: &str) -> Result<Option<(Group, Vec<Participant>)>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db)?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "{GROUP_SELECT} WHERE g.org_id = ? AND g.group_id = ?"
        )))
        .bind(org_id)
        .bind(group_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db)?;
        let Some(row) = row else { return Ok(None) };
        let group = group_row(&row)?;
        let participants = load_participants(&mut conn, group.id).await?;
        Ok(Some((group, participants)))
    }

    async fn list_groups(
        &self,
        org_id: &str,
        filter: &GroupFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Group>, StoreError> {
        let mut sql = format!("{GROUP_SELECT} WHERE g.org_id = ?");
        if filter.number_id.is_some() {
            sql.push_str(" AND g.number_id = ?");
        }
        if let Some(ids) = &filter.number_ids {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            sql.push_str(" AND g.number_id IN (");
            sql.push_str(&vec!["?"; ids.len()].join(","));
            sql.push(')');
        }
        if filter.status.is_some() {
            sql.push_str(" AND g.status = ?");
        }
        if before.is_some() {
            sql.push_str(" AND g.id < ?");
        }
        sql.push_str(" ORDER BY g.id DESC LIMIT ?");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(org_id);
        if let Some(n) = filter.number_id {
            q = q.bind(n);
        }
        if let Some(ids) = &filter.number_ids {
            for id in ids {
                q = q.bind(*id);
            }
        }
        if let Some(s) = filter.status {
            q = q.bind(s.as_str());
        }
        if let Some(b) = before {
            q = q.bind(b);
        }
        q.bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(db)?
            .iter()
            .map(group_row)
            .collect()
    }

    async fn pending_join_requests(&self, group_row_id: i64) -> Result<Vec<JoinRequest>, StoreError> {
        sqlx::query(
            "SELECT join_request_id, phone, state, created_at, updated_at FROM join_requests \
             WHERE group_id = ? AND state = 'pending' ORDER BY created_at, join_request_id",
        )
        .bind(group_row_id)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?
        .iter()
        .map(join_request_row)
        .collect()
    }

    async fn command_outcome(&self, command_id: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT status, result FROM commands WHERE command_id = ?")
            .bind(command_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        row.map(|r| Ok((text(&r, "status")?, r.try_get("result").map_err(db)?)))
            .transpose()
    }

    async fn find_group_by_wa_id(&self, number_id: i64, wa_group_id: &str) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "{GROUP_SELECT} WHERE g.number_id = ? AND g.wa_group_id = ?"
        )))
        .bind(number_id)
        .bind(wa_group_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.as_ref().map(group_row).transpose()
    }

    async fn group_events(&self, group_row_id: i64, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        sqlx::query(
            "SELECT event_id, event_type, sequence, occurred_at, payload FROM events \
             WHERE group_id = ? AND sequence > ? ORDER BY sequence LIMIT ?",
        )
        .bind(group_row_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?
        .iter()
        .map(stored_event_row)
        .collect()
    }

    async fn mutate_group(
        &self,
        target: GroupTarget,
        dedup_key: Option<String>,
        now: Timestamp,
        rule: Rule,
    ) -> Result<Mutation, MutateError> {
        let mut tx = self.begin().await?;
        if let Some(key) = &dedup_key {
            let number_id = match &target {
                GroupTarget::WaGroupId { number_id, .. } | GroupTarget::Request { number_id, .. } => *number_id,
                GroupTarget::ClientId { .. } => 0,
            };
            let r = sqlx::query(
                "INSERT INTO provider_inbox (number_id, dedup_key, applied_at) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(number_id)
            .bind(key)
            .bind(now.millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            if r.rows_affected() == 0 {
                return Ok(Mutation::Duplicate);
            }
        }
        let (row, command_id) = match &target {
            GroupTarget::ClientId { org_id, group_id } => (
                sqlx::query(AssertSqlSafe(format!(
                    "{GROUP_SELECT} WHERE g.org_id = ? AND g.group_id = ?"
                )))
                .bind(org_id)
                .bind(group_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?,
                None,
            ),
            GroupTarget::WaGroupId { number_id, wa_group_id } => (
                sqlx::query(AssertSqlSafe(format!(
                    "{GROUP_SELECT} WHERE g.number_id = ? AND g.wa_group_id = ?"
                )))
                .bind(number_id)
                .bind(wa_group_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?,
                None,
            ),
            GroupTarget::Request { number_id, request_id } => {
                // The provider's request ID, or for providers that answer before we recorded
                // it (the simulated network echoes the command ID), the command ID.
                let cmd = sqlx::query(
                    "SELECT id, group_id FROM commands WHERE number_id = ?1 AND request_id = ?2 \
                     UNION ALL SELECT id, group_id FROM commands WHERE number_id = ?1 AND command_id = ?2 LIMIT 1",
                )
                .bind(number_id)
                .bind(request_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db)?;
                match cmd {
                    None => (None, None),
                    Some(c) => {
                        let cmd_id: i64 = c.try_get("id").map_err(db)?;
                        let group_row_id: i64 = c.try_get("group_id").map_err(db)?;
                        (
                            sqlx::query(AssertSqlSafe(format!("{GROUP_SELECT} WHERE g.id = ?")))
                                .bind(group_row_id)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(db)?,
                            Some(cmd_id),
                        )
                    }
                }
            }
        };
        let Some(row) = row else {
            return Err(DomainError::not_found(match &target {
                GroupTarget::ClientId { group_id, .. } => format!("group {group_id:?}"),
                GroupTarget::WaGroupId { wa_group_id, .. } => format!("group {wa_group_id}"),
                GroupTarget::Request { request_id, .. } => format!("request {request_id}"),
            })
            .into());
        };
        let group = group_row(&row)?;
        let participants = load_participants(&mut tx, group.id).await?;
        let join_requests = sqlx::query(
            "SELECT join_request_id, phone, state, created_at, updated_at FROM join_requests \
             WHERE group_id = ? AND state = 'pending' ORDER BY created_at",
        )
        .bind(group.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(join_request_row)
        .collect::<Result<Vec<_>, _>>()?;
        let state = GroupState {
            group,
            participants,
            join_requests,
            command_id,
        };
        let decision = rule(&state)?;
        persist(&mut tx, &decision).await?;
        tx.commit().await.map_err(db)?;
        Ok(Mutation::Applied(Box::new(decision)))
    }

    async fn claim_commands(&self, now: Timestamp, lease_ms: i64, limit: i64) -> Result<Vec<Command>, StoreError> {
        let rows = sqlx::query(
            "UPDATE commands SET lease_until = ?1, attempts = attempts + 1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM commands WHERE status = 'pending' AND not_before <= ?2 \
                          AND (lease_until IS NULL OR lease_until <= ?2) ORDER BY id LIMIT ?3) \
             RETURNING id, command_id, org_id, number_id, group_id, payload, attempts",
        )
        .bind(now.millis() + lease_ms)
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&self.writer)
        .await
        .map_err(db)?;
        let mut out = rows
            .iter()
            .map(|row| {
                let payload = text(row, "payload")?;
                Ok(Command {
                    id: row.try_get("id").map_err(db)?,
                    command_id: text(row, "command_id")?,
                    org_id: text(row, "org_id")?,
                    number_id: row.try_get("number_id").map_err(db)?,
                    group_row_id: row.try_get("group_id").map_err(db)?,
                    payload: serde_json::from_str::<CommandPayload>(&payload)
                        .map_err(|_| corrupt("command payload", &payload))?,
                    attempts: row.try_get("attempts").map_err(db)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    async fn command_submitted(&self, id: i64, request_id: &str, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE commands SET status = 'submitted', request_id = ?, lease_until = NULL, updated_at = ? \
             WHERE id = ? AND status = 'pending'",
        )
        .bind(request_id)
        .bind(now.millis())
        .bind(id)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn command_retry(&self, id: i64, error: &str, not_before: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE commands SET not_before = ?, lease_until = NULL, last_error = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(not_before.millis())
        .bind(error)
        .bind(id)
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn create_endpoint(&self, e: NewEndpoint, now: Timestamp) -> Result<Endpoint, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints (id, org_id, url, description, event_types, waba_numbers, secret, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {ENDPOINT_COLS}"
        )))
        .bind(new_id("ep"))
        .bind(&e.org_id)
        .bind(&e.url)
        .bind(&e.description)
        .bind(to_json_list(&e.event_types))
        .bind(to_json_list(&e.waba_numbers))
        .bind(&e.secret)
        .bind(now.millis())
        .bind(now.millis())
        .fetch_one(&self.writer)
        .await
        .map_err(db)?;
        endpoint_row(&row)
    }

    async fn list_endpoints(&self, org_id: &str) -> Result<Vec<Endpoint>, StoreError> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = ? AND deleted_at IS NULL ORDER BY created_at, id"
        )))
        .bind(org_id)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?
        .iter()
        .map(endpoint_row)
        .collect()
    }

    async fn get_endpoint(&self, org_id: &str, id: &str) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = ? AND id = ? AND deleted_at IS NULL"
        )))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.reader)
        .await
        .map_err(db)?;
        row.as_ref().map(endpoint_row).transpose()
    }

    async fn update_endpoint(
        &self,
        org_id: &str,
        id: &str,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE org_id = ? AND id = ? AND deleted_at IS NULL"
        )))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        else {
            return Ok(None);
        };
        let mut ep = endpoint_row(&row)?;
        if let Some(url) = patch.url {
            ep.url = url;
        }
        if let Some(d) = patch.description {
            ep.description = d;
        }
        if let Some(t) = patch.event_types {
            ep.event_types = t;
        }
        if let Some(n) = patch.waba_numbers {
            ep.waba_numbers = n;
        }
        if let Some(disabled) = patch.disabled {
            ep.disabled = disabled;
            if !disabled {
                ep.disabled_reason = None;
            } else if ep.disabled_reason.is_none() {
                ep.disabled_reason = Some("disabled by the API".into());
            }
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE webhook_endpoints SET url = ?, description = ?, event_types = ?, waba_numbers = ?, disabled = ?, \
             disabled_reason = ?, updated_at = ? WHERE id = ? RETURNING {ENDPOINT_COLS}"
        )))
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(to_json_list(&ep.event_types))
        .bind(to_json_list(&ep.waba_numbers))
        .bind(ep.disabled)
        .bind(&ep.disabled_reason)
        .bind(now.millis())
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let ep = endpoint_row(&row)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(ep))
    }

    async fn delete_endpoint(&self, org_id: &str, id: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET deleted_at = ?, disabled = 1, updated_at = ? \
             WHERE org_id = ? AND id = ? AND deleted_at IS NULL",
        )
        .bind(now.millis())
        .bind(now.millis())
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE deliveries SET status = 'dead', lease_until = NULL, updated_at = ? WHERE endpoint_id = ? AND status IN ('pending', 'failed')")
            .bind(now.millis())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn rotate_endpoint_secret(
        &self,
        org_id: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = ?, secret = ?, updated_at = ? \
             WHERE org_id = ? AND id = ? AND deleted_at IS NULL RETURNING {ENDPOINT_COLS}"
        )))
        .bind(previous_until.millis())
        .bind(secret)
        .bind(now.millis())
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.writer)
        .await
        .map_err(db)?;
        row.as_ref().map(endpoint_row).transpose()
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_ms: i64,
        limit: i64,
        per_endpoint: i64,
        skip: &[String],
    ) -> Result<Vec<DeliveryJob>, StoreError> {
        let skip_json = serde_json::Value::from(skip.to_vec()).to_string();
        let mut tx = self.begin().await?;
        let ids: Vec<i64> = sqlx::query(
            "UPDATE deliveries SET lease_until = ?1 WHERE id IN ( \
               SELECT id FROM ( \
                 SELECT d.id, ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) AS rn \
                 FROM deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                 WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= ?2 \
                   AND (d.lease_until IS NULL OR d.lease_until <= ?2) \
                   AND e.disabled = 0 AND e.deleted_at IS NULL \
                   AND d.endpoint_id NOT IN (SELECT value FROM json_each(?3)) \
                   AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id \
                       AND p.group_row_id = d.group_row_id AND p.sequence < d.sequence \
                       AND p.status IN ('pending', 'failed')) \
               ) WHERE rn <= ?4 ORDER BY id LIMIT ?5) \
             RETURNING id",
        )
        .bind(now.millis() + lease_ms)
        .bind(now.millis())
        .bind(skip_json)
        .bind(per_endpoint)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.try_get::<i64, _>("id").map_err(db))
        .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids_json = serde_json::Value::from(ids).to_string();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT d.id AS delivery_id, d.attempts, ev.event_id, ev.payload, {} FROM deliveries d \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id JOIN events ev ON ev.id = d.event_row_id \
             WHERE d.id IN (SELECT value FROM json_each(?)) ORDER BY d.id",
            ENDPOINT_COLS
                .split(", ")
                .map(|c| format!("e.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(ids_json)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        rows.iter()
            .map(|r| {
                let ep = endpoint_row(r)?;
                Ok(DeliveryJob {
                    id: r.try_get("delivery_id").map_err(db)?,
                    secrets: ep.signing_secrets(now),
                    endpoint_id: ep.id,
                    url: ep.url,
                    event_id: text(r, "event_id")?,
                    payload: text(r, "payload")?,
                    attempts: r.try_get("attempts").map_err(db)?,
                })
            })
            .collect()
    }

    async fn record_attempt(&self, delivery_id: i64, rec: &AttemptRecord) -> Result<(), StoreError> {
        let (status, next) = match &rec.next {
            AttemptNext::Succeeded => (DeliveryStatus::Succeeded, None),
            AttemptNext::RetryAt(t) => (DeliveryStatus::Failed, Some(*t)),
            AttemptNext::Dead | AttemptNext::DeadAndDisable(_) => (DeliveryStatus::Dead, None),
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempted_at, status_code, latency_ms, error, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(delivery_id)
        .bind(rec.attempted_at.millis())
        .bind(rec.status_code.map(i64::from))
        .bind(rec.latency_ms)
        .bind(&rec.error)
        .bind(next.map(|t| t.millis()))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        let row = sqlx::query(
            "UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, lease_until = NULL, \
             updated_at = ? WHERE id = ? RETURNING endpoint_id",
        )
        .bind(status.as_str())
        .bind(next.map(|t| t.millis()))
        .bind(rec.attempted_at.millis())
        .bind(delivery_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        if let (AttemptNext::DeadAndDisable(reason), Some(row)) = (&rec.next, row) {
            sqlx::query("UPDATE webhook_endpoints SET disabled = 1, disabled_reason = ?, updated_at = ? WHERE id = ?")
                .bind(reason)
                .bind(rec.attempted_at.millis())
                .bind(text(&row, "endpoint_id")?)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        org_id: &str,
        endpoint_id: &str,
        status: Option<DeliveryStatus>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<DeliveryView>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db)?;
        let rows = sqlx::query(
            "SELECT d.id, d.status, d.sequence, d.next_attempt_at, d.created_at, d.updated_at, ev.event_id, \
             ev.event_type, g.group_id FROM deliveries d JOIN events ev ON ev.id = d.event_row_id \
             JOIN groups g ON g.id = d.group_row_id \
             WHERE d.org_id = ?1 AND d.endpoint_id = ?2 AND (?3 IS NULL OR d.status = ?3) AND (?4 IS NULL OR d.id < ?4) \
             ORDER BY d.id DESC LIMIT ?5",
        )
        .bind(org_id)
        .bind(endpoint_id)
        .bind(status.map(|s| s.as_str()))
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id").map_err(db)?;
            let attempts = sqlx::query(
                "SELECT attempted_at, status_code, latency_ms, error, next_attempt_at FROM delivery_attempts \
                 WHERE delivery_id = ? ORDER BY id",
            )
            .bind(id)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .iter()
            .map(|a| {
                Ok(AttemptView {
                    attempted_at: ts(a, "attempted_at")?,
                    status_code: a
                        .try_get::<Option<i64>, _>("status_code")
                        .map_err(db)?
                        .map(|c| c as u16),
                    latency_ms: a.try_get("latency_ms").map_err(db)?,
                    error: a.try_get("error").map_err(db)?,
                    next_attempt_at: opt_ts(a, "next_attempt_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(DeliveryView {
                id,
                event_id: text(r, "event_id")?,
                event_type: text(r, "event_type")?,
                group_id: text(r, "group_id")?,
                sequence: r.try_get("sequence").map_err(db)?,
                status: parse(r, "status", DeliveryStatus::parse)?,
                next_attempt_at: opt_ts(r, "next_attempt_at")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
                attempts,
            });
        }
        Ok(out)
    }

    async fn recover_deliveries(
        &self,
        org_id: &str,
        endpoint_id: &str,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, lease_until = NULL, updated_at = ? \
             WHERE org_id = ? AND endpoint_id = ? AND status IN ('failed', 'dead') AND created_at >= ?",
        )
        .bind(now.millis())
        .bind(now.millis())
        .bind(org_id)
        .bind(endpoint_id)
        .bind(since.millis())
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(r.rows_affected())
    }

    async fn redeliver_event(&self, org_id: &str, event_id: &str, now: Timestamp) -> Result<Option<u64>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(ev) = sqlx::query(
            "SELECT ev.id, ev.group_id, ev.sequence, ev.event_type, n.waba_number FROM events ev \
             JOIN groups g ON g.id = ev.group_id JOIN numbers n ON n.id = g.number_id \
             WHERE ev.org_id = ? AND ev.event_id = ?",
        )
        .bind(org_id)
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        else {
            return Ok(None);
        };
        let event_row: i64 = ev.try_get("id").map_err(db)?;
        let group_row: i64 = ev.try_get("group_id").map_err(db)?;
        let sequence: i64 = ev.try_get("sequence").map_err(db)?;
        let event_type = text(&ev, "event_type")?;
        let waba = text(&ev, "waba_number")?;
        for ep in subscribed_endpoints(&mut tx, org_id).await? {
            if webhook::matches(ep.1.as_deref(), ep.2.as_deref(), &event_type, &waba) {
                insert_delivery(&mut tx, &ep.0, event_row, org_id, group_row, sequence, now).await?;
            }
        }
        let r = sqlx::query(
            "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ? \
             WHERE event_row_id = ? AND endpoint_id IN \
               (SELECT id FROM webhook_endpoints WHERE deleted_at IS NULL AND disabled = 0) \
             AND (lease_until IS NULL OR lease_until <= ?)",
        )
        .bind(now.millis())
        .bind(now.millis())
        .bind(event_row)
        .bind(now.millis())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(Some(r.rows_affected()))
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM deliveries WHERE status IN ('pending', 'failed')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(db)?;
        Ok(DeliveryStats {
            open: row.try_get("n").map_err(db)?,
            oldest_open_at: opt_ts(&row, "oldest")?,
        })
    }

    async fn release_delivery_leases(&self) -> Result<u64, StoreError> {
        let r = sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE lease_until IS NOT NULL AND status IN ('pending', 'failed')")
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(r.rows_affected())
    }

    async fn event_position(&self, org_id: &str, event_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT id FROM events WHERE org_id = ? AND event_id = ?")
            .bind(org_id)
            .bind(event_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db)?;
        row.map(|r| r.try_get("id").map_err(db)).transpose()
    }

    async fn list_events(
        &self,
        org_id: &str,
        filter: &EventFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, StoredEvent)>, StoreError> {
        let numbers = filter
            .number_ids
            .as_ref()
            .map(|n| serde_json::Value::from(n.clone()).to_string());
        sqlx::query(
            "SELECT ev.id, ev.event_id, ev.event_type, ev.sequence, ev.occurred_at, ev.payload FROM events ev \
             WHERE ev.org_id = ?1 AND ev.id > ?2 AND (?3 IS NULL OR ev.group_id = ?3) AND (?4 IS NULL OR ev.event_type = ?4) \
             AND (?5 IS NULL OR ev.group_id IN (SELECT g.id FROM groups g WHERE g.org_id = ?1 \
                  AND g.number_id IN (SELECT value FROM json_each(?5)))) \
             ORDER BY ev.id LIMIT ?6",
        )
        .bind(org_id)
        .bind(after)
        .bind(filter.group_row_id)
        .bind(&filter.event_type)
        .bind(numbers)
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok((r.try_get("id").map_err(db)?, stored_event_row(r)?)))
        .collect()
    }

    async fn release_command_leases(&self) -> Result<u64, StoreError> {
        let r =
            sqlx::query("UPDATE commands SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL")
                .execute(&self.writer)
                .await
                .map_err(db)?;
        Ok(r.rows_affected())
    }

    async fn open_commands(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM commands WHERE status IN ('pending', 'submitted')")
            .fetch_one(&self.reader)
            .await
            .map_err(db)?;
        row.try_get("n").map_err(db)
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_command(
    tx: &mut Tx,
    command_id: &str,
    org_id: &str,
    number_id: i64,
    group_row_id: i64,
    command: &CommandPayload,
    payload: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO commands (command_id, org_id, number_id, group_id, kind, payload, status, not_before, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
    )
    .bind(command_id)
    .bind(org_id)
    .bind(number_id)
    .bind(group_row_id)
    .bind(command.kind())
    .bind(payload)
    .bind(now.millis())
    .bind(now.millis())
    .bind(now.millis())
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Writes a decision: the group row, changed participants and join requests, new events,
/// and the command it closes.
async fn persist(tx: &mut Tx, d: &Decision) -> Result<(), StoreError> {
    if d.is_noop() {
        return Ok(());
    }
    let g = &d.group;
    sqlx::query(
        "UPDATE groups SET status = ?, subject = ?, description = ?, join_approval_mode = ?, wa_group_id = ?, \
         invite_link = ?, participant_count = ?, last_sequence = ?, failure_reason = ?, updated_at = ?, \
         announcement_only = ?, locked = ?, suspended = ? WHERE id = ?",
    )
    .bind(g.status.as_str())
    .bind(&g.subject)
    .bind(&g.description)
    .bind(g.join_approval_mode.as_str())
    .bind(&g.wa_group_id)
    .bind(&g.invite_link)
    .bind(g.participant_count)
    .bind(g.last_sequence)
    .bind(&g.failure_reason)
    .bind(g.updated_at.millis())
    .bind(g.announcement_only)
    .bind(g.locked)
    .bind(g.suspended)
    .bind(g.id)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    for p in d
        .participants
        .iter()
        .filter(|p| d.changed_participants.contains(&p.phone))
    {
        sqlx::query(
            "INSERT INTO participants (group_id, phone, role, state, is_business, joined_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, phone) DO UPDATE SET role = excluded.role, \
             state = excluded.state, is_business = excluded.is_business, joined_at = excluded.joined_at, \
             updated_at = excluded.updated_at",
        )
        .bind(g.id)
        .bind(p.phone.as_str())
        .bind(p.role.as_str())
        .bind(p.state.as_str())
        .bind(p.is_business)
        .bind(p.joined_at.map(|t| t.millis()))
        .bind(p.updated_at.millis())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    for r in d
        .join_requests
        .iter()
        .filter(|r| d.changed_join_requests.contains(&r.join_request_id))
    {
        sqlx::query(
            "INSERT INTO join_requests (group_id, join_request_id, phone, state, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, join_request_id) DO UPDATE SET \
             state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(g.id)
        .bind(&r.join_request_id)
        .bind(r.phone.as_str())
        .bind(r.state.as_str())
        .bind(r.created_at.millis())
        .bind(r.updated_at.millis())
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    }
    if !d.events.is_empty() {
        let endpoints = subscribed_endpoints(tx, &g.org_id).await?;
        for e in &d.events {
            let payload = e.payload(g).to_string();
            let row = sqlx::query(
                "INSERT INTO events (event_id, org_id, group_id, sequence, event_type, occurred_at, payload) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(&e.event_id)
            .bind(&g.org_id)
            .bind(g.id)
            .bind(e.sequence)
            .bind(e.event_type().as_str())
            .bind(e.occurred_at.millis())
            .bind(payload)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
            let event_row: i64 = row.try_get("id").map_err(db)?;
            for ep in endpoints.iter().filter(|ep| {
                webhook::matches(
                    ep.1.as_deref(),
                    ep.2.as_deref(),
                    e.event_type().as_str(),
                    &g.waba_number,
                )
            }) {
                insert_delivery(tx, &ep.0, event_row, &g.org_id, g.id, e.sequence, g.updated_at).await?;
            }
        }
    }
    match &d.close_command {
        None => {}
        Some(CommandClose::Done { id, result }) => {
            sqlx::query(
                "UPDATE commands SET status = 'done', lease_until = NULL, result = ?, updated_at = ? WHERE id = ?",
            )
            .bind(result)
            .bind(g.updated_at.millis())
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        Some(CommandClose::Failed { id, error }) => {
            sqlx::query(
                "UPDATE commands SET status = 'failed', lease_until = NULL, last_error = ?, updated_at = ? WHERE id = ?",
            )
            .bind(error)
            .bind(g.updated_at.millis())
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
    }
    Ok(())
}

/// (id, event type filter, number filter) of the organisation's live, enabled endpoints.
type EndpointFilters = (String, Option<Vec<String>>, Option<Vec<String>>);

async fn subscribed_endpoints(conn: &mut SqliteConnection, org_id: &str) -> Result<Vec<EndpointFilters>, StoreError> {
    sqlx::query(
        "SELECT id, event_types, waba_numbers FROM webhook_endpoints \
         WHERE org_id = ? AND deleted_at IS NULL AND disabled = 0",
    )
    .bind(org_id)
    .fetch_all(conn)
    .await
    .map_err(db)?
    .iter()
    .map(|r| {
        Ok((
            text(r, "id")?,
            json_list(r, "event_types")?,
            json_list(r, "waba_numbers")?,
        ))
    })
    .collect()
}

async fn insert_delivery(
    conn: &mut SqliteConnection,
    endpoint_id: &str,
    event_row: i64,
    org_id: &str,
    group_row_id: i64,
    sequence: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deliveries (endpoint_id, event_row_id, org_id, group_row_id, sequence, status, next_attempt_at, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(endpoint_id)
    .bind(event_row)
    .bind(org_id)
    .bind(group_row_id)
    .bind(sequence)
    .bind(now.millis())
    .bind(now.millis())
    .bind(now.millis())
    .execute(conn)
    .await
    .map_err(db)?;
    Ok(())
}

fn json_list(row: &SqliteRow, col: &str) -> Result<Option<Vec<String>>, StoreError> {
    let raw: Option<String> = row.try_get(col).map_err(db)?;
    raw.map(|s| serde_json::from_str::<Vec<String>>(&s).map_err(|_| corrupt(col, &s)))
        .transpose()
}

fn to_json_list(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref().map(|l| serde_json::Value::from(l.clone()).to_string())
}

const ENDPOINT_COLS: &str = "id, org_id, url, description, event_types, waba_numbers, disabled, disabled_reason, secret, \
     previous_secret, previous_secret_until, created_at, updated_at";

fn endpoint_row(row: &SqliteRow) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: text(row, "id")?,
        org_id: text(row, "org_id")?,
        url: text(row, "url")?,
        description: row.try_get("description").map_err(db)?,
        event_types: json_list(row, "event_types")?,
        waba_numbers: json_list(row, "waba_numbers")?,
        disabled: row.try_get::<bool, _>("disabled").map_err(db)?,
        disabled_reason: row.try_get("disabled_reason").map_err(db)?,
        secret: text(row, "secret")?,
        previous_secret: row.try_get("previous_secret").map_err(db)?,
        previous_secret_until: opt_ts(row, "previous_secret_until")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn stored_event_row(row: &SqliteRow) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        event_id: text(row, "event_id")?,
        event_type: text(row, "event_type")?,
        sequence: row.try_get("sequence").map_err(db)?,
        occurred_at: ts(row, "occurred_at")?,
        payload: text(row, "payload")?,
    })
}

// ---------------------------------------------------------------------------------------
// Simulated network

fn sim_group_row(row: &SqliteRow) -> Result<SimGroup, StoreError> {
    Ok(SimGroup {
        jid: text(row, "jid")?,
        waba_number: text(row, "waba_number")?,
        profile: text(row, "profile")?,
        create_key: text(row, "create_key")?,
        subject: text(row, "subject")?,
        description: text(row, "description")?,
        approval_required: row.try_get::<bool, _>("approval_required").map_err(db)?,
        invite_code: text(row, "invite_code")?,
        created_at: ts(row, "created_at")?,
        announcement_only: row.try_get::<bool, _>("announcement_only").map_err(db)?,
        locked: row.try_get::<bool, _>("locked").map_err(db)?,
        deleted: row.try_get::<bool, _>("deleted").map_err(db)?,
        suspended: row.try_get::<bool, _>("suspended").map_err(db)?,
    })
}

const SIM_GROUP_COLS: &str = "jid, waba_number, profile, create_key, subject, description, approval_required, \
     invite_code, created_at, announcement_only, locked, deleted, suspended";

async fn sim_load(
    conn: &mut SqliteConnection,
    target: &SimTarget,
    users: &[String],
) -> Result<Option<SimGroupState>, StoreError> {
    let row = match target {
        SimTarget::InviteCode(code) => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {SIM_GROUP_COLS} FROM sim_groups WHERE invite_code = ?"
            )))
            .bind(code)
            .fetch_optional(&mut *conn)
            .await
        }
        SimTarget::Jid(jid) => {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {SIM_GROUP_COLS} FROM sim_groups WHERE jid = ?"
            )))
            .bind(jid)
            .fetch_optional(&mut *conn)
            .await
        }
    }
    .map_err(db)?;
    let Some(row) = row else { return Ok(None) };
    let group = sim_group_row(&row)?;
    let members = sqlx::query("SELECT phone, role, state FROM sim_members WHERE jid = ?")
        .bind(&group.jid)
        .fetch_all(&mut *conn)
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(SimMember {
                phone: text(r, "phone")?,
                role: text(r, "role")?,
                state: text(r, "state")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let join_requests =
        sqlx::query("SELECT id, phone, state, created_at FROM sim_join_requests WHERE jid = ? ORDER BY created_at")
            .bind(&group.jid)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                Ok(SimJoinRequest {
                    id: text(r, "id")?,
                    phone: text(r, "phone")?,
                    state: text(r, "state")?,
                    created_at: ts(r, "created_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
    let mut loaded = Vec::new();
    for phone in users {
        if let Some(u) = sim_user_row(&mut *conn, phone).await? {
            loaded.push(u);
        }
    }
    Ok(Some(SimGroupState {
        group,
        members,
        join_requests,
        users: loaded,
    }))
}

async fn sim_user_row(conn: &mut SqliteConnection, phone: &str) -> Result<Option<SimUser>, StoreError> {
    let row = sqlx::query("SELECT phone, on_whatsapp, add_privacy, contact_of FROM sim_users WHERE phone = ?")
        .bind(phone)
        .fetch_optional(conn)
        .await
        .map_err(db)?;
    row.map(|r| {
        Ok(SimUser {
            phone: text(&r, "phone")?,
            on_whatsapp: r.try_get::<bool, _>("on_whatsapp").map_err(db)?,
            add_privacy: text(&r, "add_privacy")?,
            contact_of: json_list(&r, "contact_of")?.unwrap_or_default(),
        })
    })
    .transpose()
}

async fn sim_put_member(tx: &mut Tx, jid: &str, m: &SimMember) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sim_members (jid, phone, role, state) VALUES (?, ?, ?, ?) \
         ON CONFLICT (jid, phone) DO UPDATE SET role = excluded.role, state = excluded.state",
    )
    .bind(jid)
    .bind(&m.phone)
    .bind(&m.role)
    .bind(&m.state)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

async fn sim_queue(tx: &mut Tx, waba_number: &str, report: &ProviderEvent) -> Result<(), StoreError> {
    let json = serde_json::to_string(report).map_err(|e| StoreError::Database(e.to_string()))?;
    sqlx::query("INSERT INTO sim_outbox (waba_number, report) VALUES (?, ?)")
        .bind(waba_number)
        .bind(json)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl SimStore for SqliteStore {
    async fn sim_create_group(
        &self,
        group: SimGroup,
        members: Vec<SimMember>,
        reports: Vec<ProviderEvent>,
    ) -> Result<(SimGroup, bool), StoreError> {
        let mut tx = self.begin().await?;
        if let Some(existing) = sqlx::query(AssertSqlSafe(format!(
            "SELECT {SIM_GROUP_COLS} FROM sim_groups WHERE create_key = ?"
        )))
        .bind(&group.create_key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?
        {
            return Ok((sim_group_row(&existing)?, false));
        }
        sqlx::query(
            "INSERT INTO sim_groups (jid, waba_number, profile, create_key, subject, description, approval_required, \
             invite_code, created_at, announcement_only, locked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&group.jid)
        .bind(&group.waba_number)
        .bind(&group.profile)
        .bind(&group.create_key)
        .bind(&group.subject)
        .bind(&group.description)
        .bind(group.approval_required)
        .bind(&group.invite_code)
        .bind(group.created_at.millis())
        .bind(group.announcement_only)
        .bind(group.locked)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        for m in &members {
            sim_put_member(&mut tx, &group.jid, m).await?;
        }
        for report in &reports {
            sim_queue(&mut tx, &group.waba_number, report).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok((group, true))
    }

    async fn sim_mutate(
        &self,
        target: SimTarget,
        users: Vec<String>,
        rule: SimRule,
    ) -> Result<Option<Result<SimChange, SimRefusal>>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(state) = sim_load(&mut tx, &target, &users).await? else {
            return Ok(None);
        };
        let change = match rule(&state) {
            Ok(c) => c,
            Err(refusal) => return Ok(Some(Err(refusal))),
        };
        if let Some(g) = &change.group {
            sqlx::query(
                "UPDATE sim_groups SET subject = ?, description = ?, approval_required = ?, invite_code = ?, \
                 announcement_only = ?, locked = ?, deleted = ?, suspended = ? WHERE jid = ?",
            )
            .bind(&g.subject)
            .bind(&g.description)
            .bind(g.approval_required)
            .bind(&g.invite_code)
            .bind(g.announcement_only)
            .bind(g.locked)
            .bind(g.deleted)
            .bind(g.suspended)
            .bind(&state.group.jid)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for m in &change.members {
            sim_put_member(&mut tx, &state.group.jid, m).await?;
        }
        for r in &change.join_requests {
            sqlx::query(
                "INSERT INTO sim_join_requests (jid, id, phone, state, created_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (jid, id) DO UPDATE SET state = excluded.state",
            )
            .bind(&state.group.jid)
            .bind(&r.id)
            .bind(&r.phone)
            .bind(&r.state)
            .bind(r.created_at.millis())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        for report in &change.reports {
            sim_queue(&mut tx, &state.group.waba_number, report).await?;
        }
        tx.commit().await.map_err(db)?;
        Ok(Some(Ok(change)))
    }

    async fn sim_group(&self, target: SimTarget) -> Result<Option<SimGroupState>, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db)?;
        sim_load(&mut conn, &target, &[]).await
    }

    async fn sim_put_user(&self, user: SimUser) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sim_users (phone, on_whatsapp, add_privacy, contact_of) VALUES (?, ?, ?, ?) \
             ON CONFLICT (phone) DO UPDATE SET on_whatsapp = excluded.on_whatsapp, add_privacy = excluded.add_privacy, \
             contact_of = excluded.contact_of",
        )
        .bind(&user.phone)
        .bind(user.on_whatsapp)
        .bind(&user.add_privacy)
        .bind(serde_json::Value::from(user.contact_of.clone()).to_string())
        .execute(&self.writer)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn sim_user(&self, phone: &str) -> Result<SimUser, StoreError> {
        let mut conn = self.reader.acquire().await.map_err(db)?;
        Ok(sim_user_row(&mut conn, phone)
            .await?
            .unwrap_or_else(|| SimUser::default_for(phone)))
    }

    async fn sim_outbox(&self, limit: i64) -> Result<Vec<OutboxItem>, StoreError> {
        sqlx::query("SELECT id, waba_number, report FROM sim_outbox ORDER BY id LIMIT ?")
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                let report = text(r, "report")?;
                Ok(OutboxItem {
                    id: r.try_get("id").map_err(db)?,
                    waba_number: text(r, "waba_number")?,
                    report: serde_json::from_str(&report).map_err(|_| corrupt("sim report", &report))?,
                })
            })
            .collect()
    }

    async fn sim_outbox_done(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sim_outbox WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(db)?;
        Ok(())
    }
}
