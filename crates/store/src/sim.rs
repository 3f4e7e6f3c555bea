//! The simulated WhatsApp network's own SQLite database: its groups, members, join
//! requests and users, and the outbox of reports to the gateway. It is a file of its own with
//! its own writer, as WhatsApp is a system of its own: its writes never queue behind the
//! gateway's.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use wagroups_core::{
    model::{AddPrivacy, JoinRequestState, ParticipantRole, ParticipantState, Profile},
    provider::ProviderEvent,
    store::{
        StoreError,
        sim::{
            OutboxItem, SimChange, SimGroup, SimGroupState, SimJoinRequest, SimMember, SimRefusal, SimRule, SimStore,
            SimTarget, SimUser, SimUsers,
        },
    },
};

use crate::db::{Db, all, corrupt, exec, file_of, get, ids_json, json_list, one, parse, ts};

static SIM_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sim");

/// The simulated network's database.
#[derive(Clone)]
pub struct SqliteSimStore {
    db: Db,
    /// Prefix of the deduplication keys of this network's reports.
    key_prefix: String,
    /// Reports up to this ID were taken over from the gateway's database and keep the keys
    /// it knew them by (`sim:ID`).
    legacy_max: i64,
}

/// The simulated network's database beside the gateway's at `gateway_url`: `NAME.db` has
/// `NAME.sim.db` beside it.
pub fn sim_database_url(gateway_url: &str) -> Result<String, StoreError> {
    let path = file_of(gateway_url)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.sim.{}", ext.to_string_lossy()),
        None => format!("{stem}.sim"),
    };
    Ok(format!("sqlite://{}", path.with_file_name(name).display()))
}

impl SqliteSimStore {
    /// Opens (creating if missing) the simulated network's database at `url`
    /// (`sqlite://PATH`).
    pub async fn open(url: &str) -> Result<SqliteSimStore, StoreError> {
        Self::open_importing(url, None).await
    }

    /// Opens the simulated network's database at `url`. On the network's first start it draws
    /// the network's identity and takes over the state that earlier versions kept in the
    /// gateway's database at `gateway_url` (emptying it there, so that a later new network
    /// starts afresh).
    pub async fn open_importing(url: &str, gateway_url: Option<&str>) -> Result<SqliteSimStore, StoreError> {
        let path = file_of(url)?;
        let db = Db::open(&path, &SIM_MIGRATOR, 1, "wg-sim").await?;
        let meta = |db: &Db| {
            db.lookup(|c| {
                let get_meta = |key: &str| {
                    one(c, "SELECT value FROM sim_meta WHERE key = ?1", params![key], |r| {
                        get::<String>(r, "value")
                    })
                };
                Ok((get_meta("key_prefix")?, get_meta("legacy_max")?))
            })
        };
        if meta(&db)?.0.is_none() {
            let gateway = gateway_url.map(file_of).transpose()?;
            first_start(&path, gateway.as_deref())?;
        }
        let (prefix, legacy_max) = meta(&db)?;
        Ok(SqliteSimStore {
            db,
            key_prefix: prefix.ok_or_else(|| StoreError::Database("the simulated network has no identity".into()))?,
            legacy_max: legacy_max.and_then(|m| m.parse().ok()).unwrap_or(0),
        })
    }

    /// The deduplication key of report `id`.
    fn dedup_key(&self, id: i64) -> String {
        if id <= self.legacy_max {
            format!("sim:{id}")
        } else {
            format!("{}{id}", self.key_prefix)
        }
    }
}

const SIM_GROUP_COLS: &str = "jid, waba_number, profile, create_key, subject, description, approval_required, \
     invite_code, created_at, announcement_only, locked, deleted, suspended";

fn sim_group_row(r: &Row) -> Result<SimGroup, StoreError> {
    Ok(SimGroup {
        jid: get(r, "jid")?,
        waba_number: get(r, "waba_number")?,
        profile: parse(r, "profile", Profile::parse)?,
        create_key: get(r, "create_key")?,
        subject: get(r, "subject")?,
        description: get(r, "description")?,
        approval_required: get(r, "approval_required")?,
        invite_code: get(r, "invite_code")?,
        created_at: ts(r, "created_at")?,
        announcement_only: get(r, "announcement_only")?,
        locked: get(r, "locked")?,
        deleted: get(r, "deleted")?,
        suspended: get(r, "suspended")?,
    })
}

fn sim_user_row(c: &Connection, scope: &str, phone: &str) -> Result<Option<SimUser>, StoreError> {
    one(
        c,
        "SELECT phone, on_whatsapp, add_privacy, contact_of FROM sim_users WHERE scope = ?1 AND phone = ?2",
        params![scope, phone],
        |r| {
            Ok(SimUser {
                phone: get(r, "phone")?,
                on_whatsapp: get(r, "on_whatsapp")?,
                add_privacy: parse(r, "add_privacy", AddPrivacy::parse)?,
                contact_of: json_list(r, "contact_of")?.unwrap_or_default(),
            })
        },
    )
}

/// The group a target names (its row only).
fn sim_find(c: &Connection, target: &SimTarget) -> Result<Option<SimGroup>, StoreError> {
    let (column, value) = match target {
        SimTarget::InviteCode(code) => ("invite_code", code),
        SimTarget::Jid(jid) => ("jid", jid),
    };
    one(
        c,
        &format!("SELECT {SIM_GROUP_COLS} FROM sim_groups WHERE {column} = ?1"),
        params![value],
        sim_group_row,
    )
}

fn sim_load(c: &Connection, target: &SimTarget, users: &SimUsers) -> Result<Option<SimGroupState>, StoreError> {
    let group = sim_find(c, target)?;
    let Some(group) = group else { return Ok(None) };
    let members = all(
        c,
        "SELECT phone, role, state FROM sim_members WHERE jid = ?1",
        params![group.jid],
        |r| {
            Ok(SimMember {
                phone: get(r, "phone")?,
                role: parse(r, "role", ParticipantRole::parse)?,
                state: parse(r, "state", ParticipantState::parse)?,
            })
        },
    )?;
    let join_requests = all(
        c,
        "SELECT id, phone, state, created_at FROM sim_join_requests WHERE jid = ?1 ORDER BY created_at",
        params![group.jid],
        |r| {
            Ok(SimJoinRequest {
                id: get(r, "id")?,
                phone: get(r, "phone")?,
                state: parse(r, "state", JoinRequestState::parse)?,
                created_at: ts(r, "created_at")?,
            })
        },
    )?;
    let mut loaded = Vec::new();
    for phone in &users.phones {
        if let Some(u) = sim_user_row(c, &users.scope, phone)? {
            loaded.push(u);
        }
    }
    let next_write_refusal = one(
        c,
        "SELECT code, message FROM sim_write_refusals WHERE jid = ?1",
        params![group.jid],
        |r| {
            Ok(SimRefusal {
                code: get(r, "code")?,
                message: get(r, "message")?,
            })
        },
    )?;
    Ok(Some(SimGroupState {
        group,
        members,
        join_requests,
        users: loaded,
        next_write_refusal,
    }))
}

fn sim_put_member(c: &Connection, jid: &str, m: &SimMember) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO sim_members (jid, phone, role, state) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (jid, phone) DO UPDATE SET role = excluded.role, state = excluded.state",
        params![jid, m.phone, m.role.as_str(), m.state.as_str()],
    )
    .map(|_| ())
}

fn sim_queue(c: &Connection, waba_number: &str, report: &ProviderEvent) -> Result<(), StoreError> {
    let json = serde_json::to_string(report).map_err(|e| StoreError::Database(e.to_string()))?;
    exec(
        c,
        "INSERT INTO sim_outbox (waba_number, report) VALUES (?1, ?2)",
        params![waba_number, json],
    )
    .map(|_| ())
}

#[async_trait]
impl SimStore for SqliteSimStore {
    async fn sim_create_group(
        &self,
        group: SimGroup,
        members: Vec<SimMember>,
        reports: Vec<ProviderEvent>,
    ) -> Result<(SimGroup, bool), StoreError> {
        self.db.write(move |c| {
            if let Some(existing) = one(
                c,
                &format!("SELECT {SIM_GROUP_COLS} FROM sim_groups WHERE create_key = ?1"),
                params![group.create_key],
                sim_group_row,
            )? {
                return Ok((existing, false));
            }
            exec(
                c,
                "INSERT INTO sim_groups (jid, waba_number, profile, create_key, subject, description, approval_required, \
                 invite_code, created_at, announcement_only, locked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    group.jid,
                    group.waba_number,
                    group.profile.as_str(),
                    group.create_key,
                    group.subject,
                    group.description,
                    group.approval_required,
                    group.invite_code,
                    group.created_at.millis(),
                    group.announcement_only,
                    group.locked
                ],
            )?;
            for m in &members {
                sim_put_member(c, &group.jid, m)?;
            }
            for report in &reports {
                sim_queue(c, &group.waba_number, report)?;
            }
            Ok((group.clone(), true))
        })
        .await
    }

    async fn sim_mutate(
        &self,
        target: SimTarget,
        users: SimUsers,
        rule: SimRule,
    ) -> Result<Option<Result<SimChange, SimRefusal>>, StoreError> {
        self.db.write(move |c| {
            let Some(state) = sim_load(c, &target, &users)? else {
                return Ok(None);
            };
            let change = match rule(&state) {
                Ok(ch) => ch,
                Err(refusal) => {
                    // The refusal the sandbox asked for is used up by refusing (nothing else
                    // is written).
                    if state.next_write_refusal.as_ref() == Some(&refusal) {
                        exec(c, "DELETE FROM sim_write_refusals WHERE jid = ?1", params![state.group.jid])?;
                    }
                    return Ok(Some(Err(refusal)));
                }
            };
            let jid = &state.group.jid;
            if let Some(g) = &change.group {
                exec(
                    c,
                    "UPDATE sim_groups SET subject = ?1, description = ?2, approval_required = ?3, invite_code = ?4, \
                     announcement_only = ?5, locked = ?6, deleted = ?7, suspended = ?8 WHERE jid = ?9",
                    params![
                        g.subject,
                        g.description,
                        g.approval_required,
                        g.invite_code,
                        g.announcement_only,
                        g.locked,
                        g.deleted,
                        g.suspended,
                        jid
                    ],
                )?;
            }
            for m in &change.members {
                sim_put_member(c, jid, m)?;
            }
            for r in &change.join_requests {
                exec(
                    c,
                    "INSERT INTO sim_join_requests (jid, id, phone, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (jid, id) DO UPDATE SET state = excluded.state",
                    params![jid, r.id, r.phone, r.state.as_str(), r.created_at.millis()],
                )?;
            }
            for report in &change.reports {
                sim_queue(c, &state.group.waba_number, report)?;
            }
            if change.refusal_used {
                exec(c, "DELETE FROM sim_write_refusals WHERE jid = ?1", params![jid])?;
            }
            Ok(Some(Ok(change)))
        })
        .await
    }

    async fn sim_refuse_next_write(&self, jid: &str, refusal: Option<SimRefusal>) -> Result<(), StoreError> {
        let jid = jid.to_string();
        self.db
            .write(move |c| {
                match &refusal {
                    Some(r) => exec(
                        c,
                        "INSERT INTO sim_write_refusals (jid, code, message) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (jid) DO UPDATE SET code = excluded.code, message = excluded.message",
                        params![jid, r.code, r.message],
                    )?,
                    None => exec(c, "DELETE FROM sim_write_refusals WHERE jid = ?1", params![jid])?,
                };
                Ok(())
            })
            .await
    }

    async fn sim_find_group(&self, target: SimTarget) -> Result<Option<SimGroup>, StoreError> {
        self.db.lookup(move |c| sim_find(c, &target))
    }

    async fn sim_group(&self, target: SimTarget) -> Result<Option<SimGroupState>, StoreError> {
        self.db.lookup(move |c| sim_load(c, &target, &SimUsers::default()))
    }

    async fn sim_put_user(&self, scope: &str, user: SimUser) -> Result<(), StoreError> {
        let scope = scope.to_string();
        self.db.write(move |c| {
            exec(
                c,
                "INSERT INTO sim_users (scope, phone, on_whatsapp, add_privacy, contact_of) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (scope, phone) DO UPDATE SET on_whatsapp = excluded.on_whatsapp, \
                 add_privacy = excluded.add_privacy, contact_of = excluded.contact_of",
                params![
                    scope,
                    user.phone,
                    user.on_whatsapp,
                    user.add_privacy.as_str(),
                    serde_json::Value::from(user.contact_of.clone()).to_string()
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn sim_user(&self, scope: &str, phone: &str) -> Result<SimUser, StoreError> {
        let (scope, phone) = (scope.to_string(), phone.to_string());
        self.db
            .lookup(move |c| Ok(sim_user_row(c, &scope, &phone)?.unwrap_or_else(|| SimUser::default_for(&phone))))
    }

    async fn sim_outbox(&self, after: i64, limit: i64) -> Result<Vec<OutboxItem>, StoreError> {
        self.db.lookup(move |c| {
            all(
                c,
                "SELECT id, waba_number, report FROM sim_outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
                params![after, limit],
                |r| {
                    let report: String = get(r, "report")?;
                    let id: i64 = get(r, "id")?;
                    Ok(OutboxItem {
                        id,
                        dedup_key: self.dedup_key(id),
                        waba_number: get(r, "waba_number")?,
                        report: serde_json::from_str(&report).map_err(|_| corrupt("sim report", &report))?,
                    })
                },
            )
        })
    }

    async fn sim_outbox_done(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.db
            .write(move |c| {
                exec(
                    c,
                    "DELETE FROM sim_outbox WHERE id IN (SELECT value FROM json_each(?1))",
                    params![ids_json(&ids)],
                )
                .map(|_| ())
            })
            .await
    }
}

/// The network's first start, in one transaction: its identity, and the state earlier versions
/// kept in the gateway's database, if any. The gateway's copy is emptied after.
fn first_start(path: &std::path::Path, gateway: Option<&std::path::Path>) -> Result<(), StoreError> {
    let c = crate::conn::open(path, false)?;
    let attached = match gateway.filter(|g| g.exists()) {
        Some(g) => {
            c.execute("ATTACH DATABASE ?1 AS gw", params![g.to_string_lossy()])
                .map_err(crate::conn::db)?;
            true
        }
        None => false,
    };
    let has_state: bool = attached
        && c.query_row(
            "SELECT EXISTS (SELECT 1 FROM gw.sqlite_master WHERE name = 'sim_groups') \
             AND (EXISTS (SELECT 1 FROM gw.sim_groups) OR EXISTS (SELECT 1 FROM gw.sim_users) \
                  OR EXISTS (SELECT 1 FROM gw.sim_outbox))",
            [],
            |r| r.get(0),
        )
        .map_err(crate::conn::db)?;
    let prefix = format!("sim:{}:", wagroups_core::ids::random_alnum(12));
    c.execute_batch("BEGIN IMMEDIATE").map_err(crate::conn::db)?;
    let done = (|| {
        if has_state {
            c.execute_batch(
                "INSERT INTO sim_groups (jid, waba_number, profile, create_key, subject, description, approval_required,
                     invite_code, created_at, announcement_only, locked, deleted, suspended)
                   SELECT jid, waba_number, profile, create_key, subject, description, approval_required, invite_code,
                     created_at, announcement_only, locked, deleted, suspended FROM gw.sim_groups;
                 INSERT INTO sim_members (jid, phone, role, state) SELECT jid, phone, role, state FROM gw.sim_members;
                 INSERT INTO sim_join_requests (jid, id, phone, state, created_at)
                   SELECT jid, id, phone, state, created_at FROM gw.sim_join_requests;
                 -- Users are configured per organisation now; the old unscoped ones are not
                 -- taken over (they would show one organisation's settings to all).
                 INSERT INTO sim_outbox (id, waba_number, report) SELECT id, waba_number, report FROM gw.sim_outbox;
                 -- Report IDs go on from where they were: the gateway knows the old ones by them.
                 DELETE FROM sqlite_sequence WHERE name = 'sim_outbox';
                 INSERT INTO sqlite_sequence (name, seq)
                   SELECT 'sim_outbox', max(coalesce((SELECT seq FROM gw.sqlite_sequence WHERE name = 'sim_outbox'), 0),
                                            coalesce((SELECT max(id) FROM sim_outbox), 0));
                 INSERT INTO sim_meta (key, value) SELECT 'legacy_max', seq FROM sqlite_sequence WHERE name = 'sim_outbox';",
            )?;
        }
        c.execute(
            "INSERT INTO sim_meta (key, value) VALUES ('key_prefix', ?1)",
            params![prefix],
        )?;
        c.execute_batch("COMMIT")
    })();
    if let Err(e) = done {
        let _ = c.execute_batch("ROLLBACK");
        return Err(crate::conn::db(e));
    }
    if has_state {
        // Taken over: a network made later (this file deleted) starts afresh. Should this not
        // happen (a crash now), the copy stays behind, unused while this network lives.
        c.execute_batch(
            "BEGIN IMMEDIATE;
             DELETE FROM gw.sim_members; DELETE FROM gw.sim_join_requests; DELETE FROM gw.sim_groups;
             DELETE FROM gw.sim_users; DELETE FROM gw.sim_outbox;
             COMMIT;",
        )
        .map_err(crate::conn::db)?;
        tracing::info!("simulated network: state taken over from the gateway's database");
    }
    if attached {
        c.execute_batch("DETACH DATABASE gw").map_err(crate::conn::db)?;
    }
    Ok(())
}
