//! The gateway's SQLite store: one file in WAL mode. Writes run on one writer thread, whole
//! transactions at a time, batched into group commits (see [`crate::conn`]); reads run on a
//! few read-only connections of their own. Migrations are embedded and applied at open.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use wagroups_core::{
    DomainError,
    command::{Command, CommandPayload},
    event::StoredEvent,
    group::{CommandClose, GroupState, PendingOperation},
    ids::{ApiKeyId, CommandId, EndpointId, EventId, GroupId, OperationId, OrgId},
    model::{
        ApiKey, CommandStatus, Group, GroupStatus, HealthStatus, ItemResult, JoinApprovalMode, JoinRequest,
        JoinRequestState, Number, NumberHealth, Operation, OperationKind, OperationStatus, Org, Participant,
        ParticipantRole, ParticipantState, Profile, ProviderKind,
    },
    phone::Phone,
    plan::{self, GroupWrite, Subscription},
    provider::ProviderEvent,
    secret::Sealed,
    store::{
        CommandStore, CreateGroupOutcome, EndpointPatch, EventFilter, EventLogStore, GroupFilter, GroupStore,
        GroupTarget, HeldReport, IdempotencyStore, InboxStats, InboxStore, MutateError, Mutation, NewApiKey,
        NewEndpoint, NewGroup, NewNumber, NewOperation, NewOrg, OperationStore, ReportRef, Rule, Store, StoreError,
        TenancyStore, WebhookStore,
    },
    time::Timestamp,
    webhook::{
        AttemptNext, AttemptRecord, AttemptView, DeliveryStats, DeliveryStatus, DeliveryView, Endpoint, OpenDelivery,
        WebhookFormat,
    },
};

use crate::{
    conn::db,
    db::{
        Db, all, at, corrupt, exec, file_of, get, id, id_at, ids_json, json_list, one, opt_ts, parse, parse_at,
        to_json_list, ts,
    },
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Read-only connections (each on its own thread).
const READERS: usize = 3;

/// The gateway's record: organisations, numbers, keys, groups and their members, commands,
/// events, webhook endpoints and deliveries.
#[derive(Clone)]
pub struct SqliteStore {
    db: Db,
    auth: Arc<Mutex<AuthCache>>,
}

/// API keys and numbers, read on every request and rarely changed, held in memory as of an
/// `auth_epoch` that triggers bump on every change to them (made by this process or another,
/// such as the CLI). Each lookup reads the epoch first: a change is seen at once.
#[derive(Default)]
struct AuthCache {
    epoch: i64,
    /// Unrevoked keys by hash (unknown keys are not remembered).
    keys: HashMap<String, ApiKey>,
    numbers: HashMap<String, Number>,
    numbers_by_id: HashMap<i64, Number>,
}

/// Entries held at most, of each kind (past it, the cache starts over).
const AUTH_CACHE_MAX: usize = 4096;

impl AuthCache {
    /// Forgets everything if the epoch moved.
    fn at(&mut self, epoch: i64) -> &mut Self {
        if self.epoch != epoch {
            *self = AuthCache {
                epoch,
                ..AuthCache::default()
            };
        }
        self
    }
}

fn auth_epoch(c: &Connection) -> Result<i64, StoreError> {
    c.prepare_cached("SELECT epoch FROM auth_epoch WHERE id = 1")
        .map_err(db)?
        .query_row([], |r| r.get(0))
        .map_err(db)
}

impl SqliteStore {
    /// Opens (creating if missing) the gateway's database at `url` (`sqlite://PATH`) and
    /// applies its embedded migrations.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let path = file_of(url)?;
        Ok(SqliteStore {
            db: Db::open(&path, &MIGRATOR, READERS, "wg-db").await?,
            auth: Arc::new(Mutex::new(AuthCache::default())),
        })
    }

    /// A key or number through the [`AuthCache`]: `get` finds it there, `load` in the
    /// database, `put` remembers what was loaded.
    fn cached<T: Clone>(
        &self,
        get: impl Fn(&AuthCache) -> Option<&T>,
        load: impl FnOnce(&Connection) -> Result<Option<T>, StoreError>,
        put: impl FnOnce(&mut AuthCache, T),
    ) -> Result<Option<T>, StoreError> {
        self.db.lookup(|c| {
            let epoch = auth_epoch(c)?;
            {
                let mut cache = self.auth.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(hit) = get(cache.at(epoch)) {
                    return Ok(Some(hit.clone()));
                }
            }
            let found = load(c)?;
            if let Some(v) = &found {
                let mut cache = self.auth.lock().unwrap_or_else(|e| e.into_inner());
                // Loaded as of `epoch` or later: kept only if nothing changed since.
                if cache.epoch == epoch {
                    if [cache.keys.len(), cache.numbers.len(), cache.numbers_by_id.len()]
                        .iter()
                        .any(|n| *n >= AUTH_CACHE_MAX)
                    {
                        *cache = AuthCache {
                            epoch,
                            ..AuthCache::default()
                        };
                    }
                    put(&mut cache, v.clone());
                }
            }
            Ok(found)
        })
    }

    /// Nothing to release explicitly: the connection threads end with the store.
    pub async fn close(&self) {}
}

// ---------------------------------------------------------------------------------------
// Row mapping

const ORG_COLS: &str = "id, name, created_at";

fn org_row(r: &Row) -> Result<Org, StoreError> {
    Ok(Org {
        id: id(r, "id")?,
        name: get(r, "name")?,
        created_at: ts(r, "created_at")?,
    })
}

const NUMBER_COLS: &str = "id, org_id, waba_number, provider, profile, disabled, default_join_approval_mode, provider_config, provider_ref, \
     health, health_until, health_detail, created_at, instance_id";

fn number_row(r: &Row) -> Result<Number, StoreError> {
    Ok(Number {
        id: get(r, "id")?,
        org_id: id(r, "org_id")?,
        waba_number: get(r, "waba_number")?,
        provider: parse(r, "provider", ProviderKind::parse)?,
        profile: parse(r, "profile", Profile::parse)?,
        disabled: get(r, "disabled")?,
        default_join_approval_mode: parse(r, "default_join_approval_mode", JoinApprovalMode::parse)?,
        provider_config: {
            let raw: String = get(r, "provider_config")?;
            serde_json::from_str(&raw).map_err(|_| corrupt("provider_config", &raw))?
        },
        provider_ref: get(r, "provider_ref")?,
        instance_id: get(r, "instance_id")?,
        health: NumberHealth {
            status: parse(r, "health", HealthStatus::parse)?,
            until: get::<Option<i64>>(r, "health_until")?.map(Timestamp),
            detail: get(r, "health_detail")?,
        },
        created_at: ts(r, "created_at")?,
    })
}

const KEY_COLS: &str = "id, org_id, name, numbers, created_at, revoked_at";

fn key_row(r: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: id(r, "id")?,
        org_id: id(r, "org_id")?,
        name: get(r, "name")?,
        numbers: json_list(r, "numbers")?,
        created_at: ts(r, "created_at")?,
        revoked_at: opt_ts(r, "revoked_at")?,
    })
}

const GROUP_SELECT: &str = "SELECT g.id, g.org_id, g.number_id, n.waba_number, g.group_id, g.status, g.subject, \
     g.description, g.join_approval_mode, g.wa_group_id, g.invite_link, g.participant_count, g.last_sequence, \
     g.failure_reason, g.created_at, g.updated_at, g.announcement_only, g.locked, g.suspended, n.provider_ref, \
     json_extract(n.provider_config, '$.wabaId') AS waba_id \
     FROM groups g JOIN numbers n ON n.id = g.number_id";

/// A row of [`GROUP_SELECT`], by position (the hottest mapping: a name costs a scan).
fn group_row(r: &Row) -> Result<Group, StoreError> {
    Ok(Group {
        id: at(r, 0)?,
        org_id: id_at(r, 1)?,
        number_id: at(r, 2)?,
        waba_number: at(r, 3)?,
        group_id: id_at(r, 4)?,
        status: parse_at(r, 5, "status", GroupStatus::parse)?,
        subject: at(r, 6)?,
        description: at(r, 7)?,
        join_approval_mode: parse_at(r, 8, "join_approval_mode", JoinApprovalMode::parse)?,
        wa_group_id: at(r, 9)?,
        invite_link: at(r, 10)?,
        participant_count: at(r, 11)?,
        last_sequence: at(r, 12)?,
        failure_reason: at(r, 13)?,
        created_at: Timestamp(at(r, 14)?),
        updated_at: Timestamp(at(r, 15)?),
        announcement_only: at(r, 16)?,
        locked: at(r, 17)?,
        suspended: at(r, 18)?,
        phone_number_id: at(r, 19)?,
        // The configuration's `wabaId`, the key every provider writes the number's WABA to.
        waba_id: at(r, 20)?,
    })
}

/// A row of [`PARTICIPANTS_SQL`], by position.
fn participant_row(r: &Row) -> Result<Participant, StoreError> {
    Ok(Participant {
        phone: Phone::from_digits(at::<String>(r, 0)?),
        role: parse_at(r, 1, "role", ParticipantRole::parse)?,
        state: parse_at(r, 2, "state", ParticipantState::parse)?,
        is_business: at(r, 3)?,
        joined_at: at::<Option<i64>>(r, 4)?.map(Timestamp),
        updated_at: Timestamp(at(r, 5)?),
        changed_at: at::<Option<i64>>(r, 6)?.map(Timestamp),
        exit_unannounced: at(r, 7)?,
    })
}

fn join_request_row(r: &Row) -> Result<JoinRequest, StoreError> {
    Ok(JoinRequest {
        join_request_id: get(r, "join_request_id")?,
        phone: Phone::from_digits(get::<String>(r, "phone")?),
        state: parse(r, "state", JoinRequestState::parse)?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

fn stored_event_row(r: &Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        event_id: id(r, "event_id")?,
        event_type: get(r, "event_type")?,
        sequence: get(r, "sequence")?,
        occurred_at: ts(r, "occurred_at")?,
        payload: get(r, "payload")?,
    })
}

const ENDPOINT_COLS: &str = "id, org_id, url, description, event_types, waba_numbers, format, disabled, disabled_reason, \
     secret, previous_secret, previous_secret_until, verify_token, created_at, updated_at";

fn endpoint_row(r: &Row) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: id(r, "id")?,
        org_id: id(r, "org_id")?,
        url: get(r, "url")?,
        description: get(r, "description")?,
        event_types: json_list(r, "event_types")?,
        waba_numbers: json_list(r, "waba_numbers")?,
        format: parse(r, "format", WebhookFormat::parse)?,
        disabled: get(r, "disabled")?,
        disabled_reason: get(r, "disabled_reason")?,
        secret: Sealed::from_stored(get(r, "secret")?),
        previous_secret: get::<Option<String>>(r, "previous_secret")?.map(Sealed::from_stored),
        previous_secret_until: opt_ts(r, "previous_secret_until")?,
        verify_token: get::<Option<String>>(r, "verify_token")?.map(Sealed::from_stored),
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

const PARTICIPANTS_SQL: &str = "SELECT phone, role, state, is_business, joined_at, updated_at, changed_at, \
     exit_unannounced FROM participants \
     WHERE group_id = ?1 ORDER BY is_business DESC, joined_at, phone";

fn load_participants(c: &Connection, group_row_id: i64) -> Result<Vec<Participant>, StoreError> {
    all(c, PARTICIPANTS_SQL, params![group_row_id], participant_row)
}

fn group_where(c: &Connection, clause: &str, p: impl rusqlite::Params) -> Result<Option<Group>, StoreError> {
    one(c, &format!("{GROUP_SELECT} WHERE {clause}"), p, group_row)
}

// ---------------------------------------------------------------------------------------
// Writes shared by several operations

/// The organisation's live, enabled endpoints, with their filters.
fn subscriptions(c: &Connection, org_id: &str) -> Result<Vec<Subscription>, StoreError> {
    all(
        c,
        "SELECT id, event_types, waba_numbers, format FROM webhook_endpoints \
         WHERE org_id = ?1 AND deleted_at IS NULL AND disabled = 0",
        params![org_id],
        |r| {
            Ok(Subscription {
                endpoint_id: id(r, "id")?,
                event_types: json_list(r, "event_types")?,
                waba_numbers: json_list(r, "waba_numbers")?,
                format: parse(r, "format", WebhookFormat::parse)?,
            })
        },
    )
}

fn insert_delivery(
    c: &Connection,
    endpoint_id: &str,
    event_row: i64,
    org_id: &str,
    group_row_id: i64,
    sequence: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO deliveries (endpoint_id, event_row_id, org_id, group_row_id, sequence, status, next_attempt_at, \
         created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6, ?6) ON CONFLICT DO NOTHING",
        params![endpoint_id, event_row, org_id, group_row_id, sequence, now.millis()],
    )?;
    Ok(())
}

/// Moves delivery ?1's latest attempt, if any, from its row to the attempt history (before a
/// new attempt takes its place). A retry was scheduled only after a failed attempt.
const ARCHIVE_LATEST_ATTEMPT: &str = "INSERT INTO delivery_attempts \
     (delivery_id, attempted_at, status_code, latency_ms, error, next_attempt_at) \
     SELECT id, last_attempted_at, last_status_code, last_latency_ms, last_error, \
     CASE WHEN status = 'failed' THEN next_attempt_at END FROM deliveries \
     WHERE id = ?1 AND last_attempted_at IS NOT NULL AND status IN ('pending', 'failed')";

/// The same for every delivery a condition appended to it selects (before they are queued
/// again).
const ARCHIVE_LATEST_ATTEMPTS: &str = "INSERT INTO delivery_attempts \
     (delivery_id, attempted_at, status_code, latency_ms, error, next_attempt_at) \
     SELECT id, last_attempted_at, last_status_code, last_latency_ms, last_error, \
     CASE WHEN status = 'failed' THEN next_attempt_at END FROM deliveries \
     WHERE last_attempted_at IS NOT NULL AND";

/// Queues deliveries again at ?1, their latest attempt already in the history.
const REQUEUE: &str = "status = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1, \
     last_attempted_at = NULL, last_status_code = NULL, last_latency_ms = NULL, last_error = NULL";

/// Writes a decision's plan: the group row, changed participants and join requests, new
/// events with their deliveries, and the command it closes.
fn write_group(c: &Connection, w: &GroupWrite<'_>) -> Result<(), StoreError> {
    let g = w.group;
    // Most changes leave the indexed status and WhatsApp ID as they were: the narrow statement
    // (?1 and ?5 bound, unused) then leaves their indexes alone.
    let sql = if !w.indexed_changed {
        "UPDATE groups SET subject = ?2, description = ?3, join_approval_mode = ?4, \
         invite_link = ?6, participant_count = ?7, last_sequence = ?8, failure_reason = ?9, updated_at = ?10, \
         announcement_only = ?11, locked = ?12, suspended = ?13 WHERE id = ?14"
    } else {
        "UPDATE groups SET status = ?1, subject = ?2, description = ?3, join_approval_mode = ?4, wa_group_id = ?5, \
         invite_link = ?6, participant_count = ?7, last_sequence = ?8, failure_reason = ?9, updated_at = ?10, \
         announcement_only = ?11, locked = ?12, suspended = ?13 WHERE id = ?14"
    };
    exec(
        c,
        sql,
        params![
            g.status.as_str(),
            g.subject,
            g.description,
            g.join_approval_mode.as_str(),
            g.wa_group_id,
            g.invite_link,
            g.participant_count,
            g.last_sequence,
            g.failure_reason,
            g.updated_at.millis(),
            g.announcement_only,
            g.locked,
            g.suspended,
            g.id
        ],
    )?;
    for p in &w.participants {
        exec(
            c,
            "INSERT INTO participants (group_id, phone, role, state, is_business, joined_at, updated_at, \
             changed_at, exit_unannounced) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (group_id, phone) DO UPDATE SET role = excluded.role, state = excluded.state, \
             is_business = excluded.is_business, joined_at = excluded.joined_at, \
             updated_at = excluded.updated_at, changed_at = excluded.changed_at, \
             exit_unannounced = excluded.exit_unannounced",
            params![
                g.id,
                p.phone.as_str(),
                p.role.as_str(),
                p.state.as_str(),
                p.is_business,
                p.joined_at.map(|t| t.millis()),
                p.updated_at.millis(),
                p.changed_at.map(|t| t.millis()),
                p.exit_unannounced
            ],
        )?;
    }
    for r in &w.join_requests {
        exec(
            c,
            "INSERT INTO join_requests (group_id, join_request_id, phone, state, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (group_id, join_request_id) DO UPDATE SET \
             state = excluded.state, updated_at = excluded.updated_at",
            params![
                g.id,
                r.join_request_id,
                r.phone.as_str(),
                r.state.as_str(),
                r.created_at.millis(),
                r.updated_at.millis()
            ],
        )?;
    }
    for e in &w.events {
        exec(
            c,
            "INSERT INTO events (event_id, org_id, group_id, sequence, event_type, occurred_at, payload) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.event_id.as_str(),
                g.org_id.as_str(),
                g.id,
                e.sequence,
                e.event_type,
                e.occurred_at.millis(),
                e.payload
            ],
        )?;
        let event_row = c.last_insert_rowid();
        for endpoint_id in &e.deliver_to {
            insert_delivery(c, endpoint_id, event_row, &g.org_id, g.id, e.sequence, g.updated_at)?;
        }
    }
    if let Some(op) = w.close_operation {
        exec(
            c,
            "UPDATE operations SET status = ?1, results = ?2, error_code = ?3, error_message = ?4, updated_at = ?5 \
             WHERE id = ?6 AND status = 'pending'",
            params![
                if op.succeeded { "succeeded" } else { "failed" },
                op.results,
                op.error_code,
                op.error_message,
                g.updated_at.millis(),
                op.id.as_str()
            ],
        )?;
    }
    match w.close_command {
        None => {}
        Some(CommandClose::Done { id, result }) => {
            exec(
                c,
                "UPDATE commands SET status = 'done', result = ?1, updated_at = ?2 WHERE id = ?3",
                params![result, g.updated_at.millis(), id],
            )?;
        }
        Some(CommandClose::Failed { id, error }) => {
            exec(
                c,
                "UPDATE commands SET status = 'failed', last_error = ?1, updated_at = ?2 WHERE id = ?3",
                params![error, g.updated_at.millis(), id],
            )?;
        }
        Some(CommandClose::Reopen { id }) => {
            exec(
                c,
                "UPDATE commands SET status = 'pending', not_before = ?1, sending_at = NULL, updated_at = ?1 \
                 WHERE id = ?2",
                params![g.updated_at.millis(), id],
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------

mod commands;
mod events;
mod groups;
mod idempotency;
mod inbox;
mod operations;
mod tenancy;
mod webhooks;

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.read(|c| one(c, "SELECT 1", [], |_| Ok(())).map(|_| ())).await?;
        self.db.write(|c| one(c, "SELECT 1", [], |_| Ok(())).map(|_| ())).await
    }
}

#[cfg(test)]
mod plans {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A read connection to a new, migrated database (and its directory).
    async fn migrated() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.db");
        SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let c = crate::conn::open(&path, true).unwrap();
        (dir, c)
    }

    /// The query plan of `sql` on a migrated database, as SQLite explains it.
    fn plan(c: &Connection, sql: &str, n: usize) -> String {
        let params: Vec<i64> = vec![1; n];
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    /// The hot row mappings read by position: their statements must list these columns.
    #[tokio::test]
    async fn positional_mappings_match_their_statements() {
        let (_dir, c) = migrated().await;
        let names = |sql: &str| -> Vec<String> {
            c.prepare(sql)
                .unwrap()
                .column_names()
                .into_iter()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            names(GROUP_SELECT),
            [
                "id",
                "org_id",
                "number_id",
                "waba_number",
                "group_id",
                "status",
                "subject",
                "description",
                "join_approval_mode",
                "wa_group_id",
                "invite_link",
                "participant_count",
                "last_sequence",
                "failure_reason",
                "created_at",
                "updated_at",
                "announcement_only",
                "locked",
                "suspended",
                "provider_ref",
                "waba_id"
            ]
        );
        assert_eq!(
            names(PARTICIPANTS_SQL),
            [
                "phone",
                "role",
                "state",
                "is_business",
                "joined_at",
                "updated_at",
                "changed_at",
                "exit_unannounced"
            ]
        );
    }

    /// Plans are fixed at prepare time (QPSG): the hot lookups must still use their partial
    /// indexes without seeing the bound values.
    #[tokio::test]
    async fn hot_lookups_use_their_indexes() {
        let (_dir, c) = migrated().await;
        let p = plan(
            &c,
            &format!("{GROUP_SELECT} WHERE g.number_id = ?1 AND g.wa_group_id = ?2"),
            2,
        );
        assert!(p.contains("groups_wa_group_id"), "{p}");
        let p = plan(
            &c,
            "SELECT id FROM commands WHERE number_id = ?1 AND request_id = ?2",
            2,
        );
        assert!(p.contains("commands_request"), "{p}");
        let p = plan(
            &c,
            "SELECT d.id FROM deliveries d WHERE d.endpoint_id = ?1 AND d.status IN ('pending', 'failed') \
             AND d.id > ?2 AND d.id <= ?3 ORDER BY d.id LIMIT ?4",
            4,
        );
        assert!(p.contains("deliveries_open"), "{p}");
        let p = plan(
            &c,
            "SELECT id FROM commands WHERE status = 'pending' AND id > ?1 AND not_before <= ?2 ORDER BY id LIMIT ?3",
            3,
        );
        assert!(p.contains("commands_pending") && !p.contains("TEMP B-TREE"), "{p}");
    }
}
