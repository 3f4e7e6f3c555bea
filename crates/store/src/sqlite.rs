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
    group::{CommandClose, Decision, GroupState},
    ids::new_id,
    model::{
        ApiKey, Group, GroupStatus, JoinApprovalMode, JoinRequest, JoinRequestState, Number, Org, Participant,
        ParticipantRole, ParticipantState, Profile, ProviderKind,
    },
    phone::Phone,
    store::{
        CreateGroupOutcome, EndpointPatch, EventFilter, GroupFilter, GroupTarget, MutateError, Mutation, NewApiKey,
        NewEndpoint, NewGroup, NewNumber, Rule, Store, StoreError,
    },
    time::Timestamp,
    webhook::{
        self, AttemptNext, AttemptRecord, AttemptView, DeliveryStats, DeliveryStatus, DeliveryView, Endpoint,
        OpenDelivery,
    },
};

use crate::{
    conn::db,
    db::{
        Db, all, at, corrupt, exec, file_of, get, ids_json, json_list, one, opt_ts, parse, parse_at, to_json_list, ts,
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
        id: get(r, "id")?,
        name: get(r, "name")?,
        created_at: ts(r, "created_at")?,
    })
}

const NUMBER_COLS: &str =
    "id, org_id, waba_number, provider, profile, disabled, default_join_approval_mode, created_at";

fn number_row(r: &Row) -> Result<Number, StoreError> {
    Ok(Number {
        id: get(r, "id")?,
        org_id: get(r, "org_id")?,
        waba_number: get(r, "waba_number")?,
        provider: parse(r, "provider", ProviderKind::parse)?,
        profile: parse(r, "profile", Profile::parse)?,
        disabled: get(r, "disabled")?,
        default_join_approval_mode: parse(r, "default_join_approval_mode", JoinApprovalMode::parse)?,
        created_at: ts(r, "created_at")?,
    })
}

const KEY_COLS: &str = "id, org_id, name, numbers, created_at, revoked_at";

fn key_row(r: &Row) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: get(r, "id")?,
        org_id: get(r, "org_id")?,
        name: get(r, "name")?,
        numbers: json_list(r, "numbers")?,
        created_at: ts(r, "created_at")?,
        revoked_at: opt_ts(r, "revoked_at")?,
    })
}

const GROUP_SELECT: &str = "SELECT g.id, g.org_id, g.number_id, n.waba_number, g.group_id, g.status, g.subject, \
     g.description, g.join_approval_mode, g.wa_group_id, g.invite_link, g.participant_count, g.last_sequence, \
     g.failure_reason, g.created_at, g.updated_at, g.announcement_only, g.locked, g.suspended \
     FROM groups g JOIN numbers n ON n.id = g.number_id";

/// A row of [`GROUP_SELECT`], by position (the hottest mapping: a name costs a scan).
fn group_row(r: &Row) -> Result<Group, StoreError> {
    Ok(Group {
        id: at(r, 0)?,
        org_id: at(r, 1)?,
        number_id: at(r, 2)?,
        waba_number: at(r, 3)?,
        group_id: at(r, 4)?,
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
        event_id: get(r, "event_id")?,
        event_type: get(r, "event_type")?,
        sequence: get(r, "sequence")?,
        occurred_at: ts(r, "occurred_at")?,
        payload: get(r, "payload")?,
    })
}

const ENDPOINT_COLS: &str = "id, org_id, url, description, event_types, waba_numbers, disabled, disabled_reason, secret, \
     previous_secret, previous_secret_until, created_at, updated_at";

fn endpoint_row(r: &Row) -> Result<Endpoint, StoreError> {
    Ok(Endpoint {
        id: get(r, "id")?,
        org_id: get(r, "org_id")?,
        url: get(r, "url")?,
        description: get(r, "description")?,
        event_types: json_list(r, "event_types")?,
        waba_numbers: json_list(r, "waba_numbers")?,
        disabled: get(r, "disabled")?,
        disabled_reason: get(r, "disabled_reason")?,
        secret: get(r, "secret")?,
        previous_secret: get(r, "previous_secret")?,
        previous_secret_until: opt_ts(r, "previous_secret_until")?,
        created_at: ts(r, "created_at")?,
        updated_at: ts(r, "updated_at")?,
    })
}

const PARTICIPANTS_SQL: &str = "SELECT phone, role, state, is_business, joined_at, updated_at FROM participants \
     WHERE group_id = ?1 ORDER BY is_business DESC, joined_at, phone";

fn load_participants(c: &Connection, group_row_id: i64) -> Result<Vec<Participant>, StoreError> {
    all(c, PARTICIPANTS_SQL, params![group_row_id], participant_row)
}

fn group_where(c: &Connection, clause: &str, p: impl rusqlite::Params) -> Result<Option<Group>, StoreError> {
    one(c, &format!("{GROUP_SELECT} WHERE {clause}"), p, group_row)
}

// ---------------------------------------------------------------------------------------
// Writes shared by several operations

/// (id, event type filter, number filter) of the organisation's live, enabled endpoints.
type EndpointFilters = (String, Option<Vec<String>>, Option<Vec<String>>);

fn subscribed_endpoints(c: &Connection, org_id: &str) -> Result<Vec<EndpointFilters>, StoreError> {
    all(
        c,
        "SELECT id, event_types, waba_numbers FROM webhook_endpoints \
         WHERE org_id = ?1 AND deleted_at IS NULL AND disabled = 0",
        params![org_id],
        |r| {
            Ok((
                get(r, "id")?,
                json_list(r, "event_types")?,
                json_list(r, "waba_numbers")?,
            ))
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

/// Writes a decision taken on `before`: the group row, changed participants and join
/// requests, new events with one delivery per matching endpoint, and the command it closes.
fn persist(c: &Connection, before: &Group, d: &Decision) -> Result<(), StoreError> {
    if d.is_noop() {
        return Ok(());
    }
    let g = &d.group;
    // Most changes leave the indexed status and WhatsApp ID as they were: the narrow statement
    // (?1 and ?5 bound, unused) then leaves their indexes alone.
    let sql = if g.status == before.status && g.wa_group_id == before.wa_group_id {
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
    for p in d
        .participants
        .iter()
        .filter(|p| d.changed_participants.contains(&p.phone))
    {
        exec(
            c,
            "INSERT INTO participants (group_id, phone, role, state, is_business, joined_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (group_id, phone) DO UPDATE SET role = excluded.role, \
             state = excluded.state, is_business = excluded.is_business, joined_at = excluded.joined_at, \
             updated_at = excluded.updated_at",
            params![
                g.id,
                p.phone.as_str(),
                p.role.as_str(),
                p.state.as_str(),
                p.is_business,
                p.joined_at.map(|t| t.millis()),
                p.updated_at.millis()
            ],
        )?;
    }
    for r in d
        .join_requests
        .iter()
        .filter(|r| d.changed_join_requests.contains(&r.join_request_id))
    {
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
    if !d.events.is_empty() {
        let endpoints = subscribed_endpoints(c, &g.org_id)?;
        for e in &d.events {
            let payload = e.payload(g).to_string();
            exec(
                c,
                "INSERT INTO events (event_id, org_id, group_id, sequence, event_type, occurred_at, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.event_id,
                    g.org_id,
                    g.id,
                    e.sequence,
                    e.event_type().as_str(),
                    e.occurred_at.millis(),
                    payload
                ],
            )?;
            let event_row = c.last_insert_rowid();
            for ep in endpoints.iter().filter(|ep| {
                webhook::matches(
                    ep.1.as_deref(),
                    ep.2.as_deref(),
                    e.event_type().as_str(),
                    &g.waba_number,
                )
            }) {
                insert_delivery(c, &ep.0, event_row, &g.org_id, g.id, e.sequence, g.updated_at)?;
            }
        }
    }
    match &d.close_command {
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
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.db.read(|c| one(c, "SELECT 1", [], |_| Ok(())).map(|_| ())).await?;
        self.db.write(|c| one(c, "SELECT 1", [], |_| Ok(())).map(|_| ())).await
    }

    async fn create_org(&self, name: &str, now: Timestamp) -> Result<Option<Org>, StoreError> {
        let name = name.to_string();
        self.db.write(move |c| {
            one(
                c,
                &format!(
                    "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING RETURNING {ORG_COLS}"
                ),
                params![new_id("org"), name, now.millis()],
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
                    "INSERT INTO numbers (org_id, waba_number, provider, profile, default_join_approval_mode, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (waba_number) DO NOTHING RETURNING {NUMBER_COLS}"
                ),
                params![
                    n.org_id,
                    n.waba_number,
                    n.provider.as_str(),
                    n.profile.as_str(),
                    n.default_join_approval_mode.as_str(),
                    now.millis()
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

    async fn list_numbers(&self, org_id: Option<&str>) -> Result<Vec<Number>, StoreError> {
        let org = org_id.map(str::to_string);
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

    async fn create_api_key(&self, k: NewApiKey, now: Timestamp) -> Result<ApiKey, StoreError> {
        self.db.write(move |c| {
            one(
                c,
                &format!(
                    "INSERT INTO api_keys (id, org_id, name, key_hash, numbers, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     RETURNING {KEY_COLS}"
                ),
                params![new_id("key"), k.org_id, k.name, k.key_hash, to_json_list(&k.numbers), now.millis()],
                key_row,
            )?
            .ok_or_else(|| StoreError::Database("the new key was not returned".into()))
        })
        .await
    }

    async fn list_api_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError> {
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

    async fn revoke_api_key(&self, key_id: &str, now: Timestamp) -> Result<bool, StoreError> {
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

    async fn create_group(&self, g: NewGroup) -> Result<CreateGroupOutcome, StoreError> {
        let payload = serde_json::to_string(&g.command).map_err(|e| StoreError::Database(e.to_string()))?;
        self.db.write(move |c| {
            let now = g.now.millis();
            let row_id: Option<i64> = c
                .prepare_cached(
                    "INSERT INTO groups (org_id, number_id, group_id, status, subject, description, join_approval_mode, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?7) \
                     ON CONFLICT (org_id, group_id) DO NOTHING RETURNING id",
                )
                .map_err(db)?
                .query_row(
                    params![g.org_id, g.number_id, g.group_id, g.subject, g.description, g.join_approval_mode.as_str(), now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?;
            let Some(row_id) = row_id else {
                return Ok(CreateGroupOutcome::DuplicateGroupId);
            };
            exec(
                c,
                "INSERT INTO commands (command_id, org_id, number_id, group_id, kind, payload, status, not_before, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7, ?7)",
                params![g.command_id, g.org_id, g.number_id, row_id, g.command.kind(), payload, now],
            )?;
            let waba_number: String = c
                .prepare_cached("SELECT waba_number FROM numbers WHERE id = ?1")
                .map_err(db)?
                .query_row(params![g.number_id], |r| r.get(0))
                .map_err(db)?;
            // The row as written, without reading it back.
            Ok(CreateGroupOutcome::Created(Box::new(g.pending(row_id, waba_number))))
        })
        .await
    }

    async fn get_group(&self, org_id: &str, group_id: &str) -> Result<Option<(Group, Vec<Participant>)>, StoreError> {
        let (org, gid) = (org_id.to_string(), group_id.to_string());
        self.db.lookup(move |c| {
            let Some(g) = group_where(c, "g.org_id = ?1 AND g.group_id = ?2", params![org, gid])? else {
                return Ok(None);
            };
            let ps = load_participants(c, g.id)?;
            Ok(Some((g, ps)))
        })
    }

    async fn list_groups(
        &self,
        org_id: &str,
        filter: &GroupFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Group>, StoreError> {
        if filter.number_ids.as_ref().is_some_and(|ids| ids.is_empty()) {
            return Ok(Vec::new());
        }
        let org = org_id.to_string();
        let number = filter.number_id;
        let numbers = filter.number_ids.as_deref().map(ids_json);
        let status = filter.status.map(|s| s.as_str());
        // One statement per filter shape, so each keeps its own plan in the statement cache.
        let mut sql = format!("{GROUP_SELECT} WHERE g.org_id = ?1");
        if number.is_some() {
            sql.push_str(" AND g.number_id = ?2");
        }
        if numbers.is_some() {
            sql.push_str(" AND g.number_id IN (SELECT value FROM json_each(?3))");
        }
        if status.is_some() {
            sql.push_str(" AND g.status = ?4");
        }
        if before.is_some() {
            sql.push_str(" AND g.id < ?5");
        }
        sql.push_str(" ORDER BY g.id DESC LIMIT ?6");
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(db)?;
                let mut bind = |i: usize, v: &dyn rusqlite::ToSql| stmt.raw_bind_parameter(i, v).map_err(db);
                bind(1, &org)?;
                if let Some(n) = number {
                    bind(2, &n)?;
                }
                if let Some(n) = &numbers {
                    bind(3, n)?;
                }
                if let Some(s) = status {
                    bind(4, &s)?;
                }
                if let Some(b) = before {
                    bind(5, &b)?;
                }
                bind(6, &limit)?;
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next().map_err(db)? {
                    out.push(group_row(r)?);
                }
                Ok(out)
            })
            .await
    }

    async fn pending_join_requests(&self, group_row_id: i64) -> Result<Vec<JoinRequest>, StoreError> {
        self.db.lookup(move |c| {
            all(
                c,
                "SELECT join_request_id, phone, state, created_at, updated_at FROM join_requests \
                 WHERE group_id = ?1 AND state = 'pending' ORDER BY created_at, join_request_id",
                params![group_row_id],
                join_request_row,
            )
        })
    }

    async fn command_outcome(&self, command_id: &str) -> Result<Option<(String, Option<String>)>, StoreError> {
        let id = command_id.to_string();
        self.db.lookup(move |c| {
            one(
                c,
                "SELECT status, result FROM commands WHERE command_id = ?1",
                params![id],
                |r| Ok((get(r, "status")?, get(r, "result")?)),
            )
        })
    }

    async fn find_group_by_wa_id(&self, number_id: i64, wa_group_id: &str) -> Result<Option<Group>, StoreError> {
        let wa = wa_group_id.to_string();
        self.db
            .lookup(move |c| group_where(c, "g.number_id = ?1 AND g.wa_group_id = ?2", params![number_id, wa]))
    }

    async fn group_events(&self, group_row_id: i64, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        self.db
            .read(move |c| {
                all(
                    c,
                    "SELECT event_id, event_type, sequence, occurred_at, payload FROM events \
                 WHERE group_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
                    params![group_row_id, after, limit],
                    stored_event_row,
                )
            })
            .await
    }

    async fn mutate_group(
        &self,
        target: GroupTarget,
        dedup_key: Option<String>,
        now: Timestamp,
        rule: Rule,
    ) -> Result<Mutation, MutateError> {
        let inbox_number = match &target {
            GroupTarget::WaGroupId { number_id, .. } | GroupTarget::Request { number_id, .. } => *number_id,
            GroupTarget::ClientId { .. } => 0,
        };
        self.db
            .write(move |c| {
                // Decide, then write: a report already applied, an unknown group or a refusing
                // rule leaves before anything is written.
                if let Some(key) = &dedup_key {
                    let seen = one(
                        c,
                        "SELECT 1 AS seen FROM provider_inbox WHERE number_id = ?1 AND dedup_key = ?2",
                        params![inbox_number, key],
                        |_| Ok(()),
                    )?;
                    if seen.is_some() {
                        return Ok(Mutation::Duplicate);
                    }
                }
                let (group, command_id) = match &target {
                    GroupTarget::ClientId { org_id, group_id } => (
                        group_where(c, "g.org_id = ?1 AND g.group_id = ?2", params![org_id, group_id])?,
                        None,
                    ),
                    GroupTarget::WaGroupId { number_id, wa_group_id } => (
                        group_where(
                            c,
                            "g.number_id = ?1 AND g.wa_group_id = ?2",
                            params![number_id, wa_group_id],
                        )?,
                        None,
                    ),
                    GroupTarget::Request { number_id, request_id } => {
                        // The provider's request ID, or for providers that answer before we recorded
                        // it (the simulated network echoes the command ID), the command ID.
                        let cmd = one(
                            c,
                            "SELECT id, group_id FROM commands WHERE number_id = ?1 AND request_id = ?2 \
                         UNION ALL SELECT id, group_id FROM commands WHERE number_id = ?1 AND command_id = ?2 LIMIT 1",
                            params![number_id, request_id],
                            |r| Ok((get::<i64>(r, "id")?, get::<i64>(r, "group_id")?)),
                        )?;
                        match cmd {
                            None => (None, None),
                            Some((cmd_id, group_row_id)) => {
                                (group_where(c, "g.id = ?1", params![group_row_id])?, Some(cmd_id))
                            }
                        }
                    }
                };
                let Some(group) = group else {
                    return Err(DomainError::not_found(match &target {
                        GroupTarget::ClientId { group_id, .. } => format!("group {group_id:?}"),
                        GroupTarget::WaGroupId { wa_group_id, .. } => format!("group {wa_group_id}"),
                        GroupTarget::Request { request_id, .. } => format!("request {request_id}"),
                    })
                    .into());
                };
                let participants = load_participants(c, group.id)?;
                let join_requests = all(
                    c,
                    "SELECT join_request_id, phone, state, created_at, updated_at FROM join_requests \
                 WHERE group_id = ?1 AND state = 'pending' ORDER BY created_at",
                    params![group.id],
                    join_request_row,
                )?;
                let state = GroupState {
                    group,
                    participants,
                    join_requests,
                    command_id,
                };
                let decision = rule(&state)?;
                if let Some(key) = &dedup_key {
                    exec(
                        c,
                        "INSERT INTO provider_inbox (number_id, dedup_key, applied_at) VALUES (?1, ?2, ?3)",
                        params![inbox_number, key, now.millis()],
                    )?;
                }
                persist(c, &state.group, &decision)?;
                Ok(Mutation::Applied(Box::new(decision)))
            })
            .await
    }

    async fn due_commands(&self, now: Timestamp, after: i64, limit: i64) -> Result<Vec<Command>, StoreError> {
        self.db.lookup(move |c| {
            all(
                c,
                "SELECT id, command_id, org_id, number_id, group_id, payload, attempts FROM commands \
                 WHERE status = 'pending' AND id > ?1 AND not_before <= ?2 ORDER BY id LIMIT ?3",
                params![after, now.millis(), limit],
                |r| {
                    let payload: String = get(r, "payload")?;
                    Ok(Command {
                        id: get(r, "id")?,
                        command_id: get(r, "command_id")?,
                        org_id: get(r, "org_id")?,
                        number_id: get(r, "number_id")?,
                        group_row_id: get(r, "group_id")?,
                        payload: serde_json::from_str::<CommandPayload>(&payload)
                            .map_err(|_| corrupt("command payload", &payload))?,
                        // This submission is one more.
                        attempts: get::<i64>(r, "attempts")? + 1,
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
                    "UPDATE commands SET not_before = ?1, attempts = attempts + 1, last_error = ?2 \
                 WHERE id = ?3 AND status = 'pending'",
                    params![not_before.millis(), err, id],
                )
                .map(|_| ())
            })
            .await
    }

    async fn create_endpoint(&self, e: NewEndpoint, now: Timestamp) -> Result<Endpoint, StoreError> {
        self.db
            .write(move |c| {
                one(
                c,
                &format!(
                    "INSERT INTO webhook_endpoints (id, org_id, url, description, event_types, waba_numbers, secret, \
                     created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) RETURNING {ENDPOINT_COLS}"
                ),
                params![
                    new_id("ep"),
                    e.org_id,
                    e.url,
                    e.description,
                    to_json_list(&e.event_types),
                    to_json_list(&e.waba_numbers),
                    e.secret,
                    now.millis()
                ],
                endpoint_row,
            )?
            .ok_or_else(|| StoreError::Database("the new endpoint was not returned".into()))
            })
            .await
    }

    async fn list_endpoints(&self, org_id: &str) -> Result<Vec<Endpoint>, StoreError> {
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

    async fn get_endpoint(&self, org_id: &str, id: &str) -> Result<Option<Endpoint>, StoreError> {
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
        org_id: &str,
        id: &str,
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
            if let Some(url) = &patch.url {
                ep.url = url.clone();
            }
            if let Some(d) = &patch.description {
                ep.description = d.clone();
            }
            if let Some(t) = &patch.event_types {
                ep.event_types = t.clone();
            }
            if let Some(n) = &patch.waba_numbers {
                ep.waba_numbers = n.clone();
            }
            if let Some(disabled) = patch.disabled {
                ep.disabled = disabled;
                if !disabled {
                    ep.disabled_reason = None;
                } else if ep.disabled_reason.is_none() {
                    ep.disabled_reason = Some("disabled by the API".into());
                }
            }
            one(
                c,
                &format!(
                    "UPDATE webhook_endpoints SET url = ?1, description = ?2, event_types = ?3, waba_numbers = ?4, \
                     disabled = ?5, disabled_reason = ?6, updated_at = ?7 WHERE id = ?8 RETURNING {ENDPOINT_COLS}"
                ),
                params![
                    ep.url,
                    ep.description,
                    to_json_list(&ep.event_types),
                    to_json_list(&ep.waba_numbers),
                    ep.disabled,
                    ep.disabled_reason,
                    now.millis(),
                    id
                ],
                endpoint_row,
            )
        })
        .await
    }

    async fn delete_endpoint(&self, org_id: &str, id: &str, now: Timestamp) -> Result<bool, StoreError> {
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
        org_id: &str,
        id: &str,
        secret: &str,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Endpoint>, StoreError> {
        let (org, id, secret) = (org_id.to_string(), id.to_string(), secret.to_string());
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
        endpoint_id: Option<&str>,
        after: i64,
        upto: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OpenDelivery>, StoreError> {
        let endpoint_id = endpoint_id.map(str::to_string);
        self.db.lookup(move |c| {
            // By position: both statements below select these columns in this order.
            let map = |r: &Row| {
                Ok(OpenDelivery {
                    id: at(r, 0)?,
                    endpoint_id: at(r, 1)?,
                    group_row_id: at(r, 2)?,
                    attempts: at(r, 3)?,
                    next_attempt_at: at::<Option<i64>>(r, 4)?.map(Timestamp).unwrap_or_default(),
                    event_id: at(r, 5)?,
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
                    params![ep, after, upto, limit],
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
        org_id: &str,
        endpoint_id: &str,
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
                            event_id: get(r, "event_id")?,
                            event_type: get(r, "event_type")?,
                            group_id: get(r, "group_id")?,
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
        org_id: &str,
        endpoint_id: &str,
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

    async fn redeliver_event(&self, org_id: &str, event_id: &str, now: Timestamp) -> Result<Option<u64>, StoreError> {
        let (org, event_id) = (org_id.to_string(), event_id.to_string());
        self.db
            .write(move |c| {
                let Some((event_row, group_row, sequence, event_type, waba)) = one(
                    c,
                    "SELECT ev.id, ev.group_id, ev.sequence, ev.event_type, n.waba_number FROM events ev \
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
                        ))
                    },
                )?
                else {
                    return Ok(None);
                };
                for ep in subscribed_endpoints(c, &org)? {
                    if webhook::matches(ep.1.as_deref(), ep.2.as_deref(), &event_type, &waba) {
                        insert_delivery(c, &ep.0, event_row, &org, group_row, sequence, now)?;
                    }
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

    async fn event_position(&self, org_id: &str, event_id: &str) -> Result<Option<i64>, StoreError> {
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
        org_id: &str,
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
                "suspended"
            ]
        );
        assert_eq!(
            names(PARTICIPANTS_SQL),
            ["phone", "role", "state", "is_business", "joined_at", "updated_at"]
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
