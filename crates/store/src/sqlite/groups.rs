//! Groups and their changes: creation with its command, reads, and `mutate_group`.

use super::*;

#[async_trait]
impl GroupStore for SqliteStore {
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
                    params![g.org_id.as_str(), g.number_id, g.group_id.as_str(), g.subject, g.description, g.join_approval_mode.as_str(), now],
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
                params![g.command_id.as_str(), g.org_id.as_str(), g.number_id, row_id, g.command.kind(), payload, now],
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

    async fn get_group(
        &self,
        org_id: &OrgId,
        group_id: &GroupId,
    ) -> Result<Option<(Group, Vec<Participant>)>, StoreError> {
        let (org, gid) = (org_id.to_string(), group_id.to_string());
        self.db.lookup(move |c| {
            let Some(g) = group_where(c, "g.org_id = ?1 AND g.group_id = ?2", params![org, gid])? else {
                return Ok(None);
            };
            let ps = load_participants(c, g.id)?;
            Ok(Some((g, ps)))
        })
    }

    async fn group_by_row(&self, group_row_id: i64) -> Result<Option<(Group, Vec<Participant>)>, StoreError> {
        self.db.lookup(move |c| {
            let Some(g) = group_where(c, "g.id = ?1", params![group_row_id])? else {
                return Ok(None);
            };
            let ps = load_participants(c, g.id)?;
            Ok(Some((g, ps)))
        })
    }

    async fn list_groups(
        &self,
        org_id: &OrgId,
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
        let newer = filter.newer_than;
        if before.is_some() {
            sql.push_str(" AND g.id < ?5");
        }
        if newer.is_some() {
            sql.push_str(" AND g.id > ?7 ORDER BY g.id ASC LIMIT ?6");
        } else {
            sql.push_str(" ORDER BY g.id DESC LIMIT ?6");
        }
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
                if let Some(n) = newer {
                    bind(7, &n)?;
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
        report: Option<ReportRef>,
        now: Timestamp,
        rule: Rule,
    ) -> Result<Mutation, MutateError> {
        self.db
            .write(move |c| {
                // Decide, then write: a report the inbox has, one behind a held report of its
                // group, an unknown group or a refusing rule leaves before anything is written.
                if let Some(r) = &report {
                    let (status, held_seq, blocked) = c
                        .prepare_cached(
                            "SELECT (SELECT status FROM provider_inbox WHERE number_id = ?1 AND dedup_key = ?2), \
                             (SELECT held_seq FROM provider_inbox WHERE number_id = ?1 AND dedup_key = ?2), \
                             EXISTS (SELECT 1 FROM provider_inbox WHERE status = 'held' AND number_id = ?1 \
                                     AND correlation = ?3 AND held_seq < ?4)",
                        )
                        .and_then(|mut st| {
                            st.query_row(
                                params![r.number_id, r.dedup_key, r.correlation, r.held_seq.unwrap_or(i64::MAX)],
                                |row| {
                                    Ok((
                                        row.get::<_, Option<String>>(0)?,
                                        row.get::<_, Option<i64>>(1)?,
                                        row.get::<_, bool>(2)?,
                                    ))
                                },
                            )
                        })
                        .map_err(db)?;
                    let applying_held =
                        status.as_deref() == Some("held") && held_seq.is_some() && held_seq == r.held_seq;
                    if status.is_some() && !applying_held {
                        return Ok(Mutation::Duplicate);
                    }
                    if blocked {
                        return Ok(Mutation::Blocked);
                    }
                }
                let mut operation = None;
                let mut command_participants = Vec::new();
                let (group, command_id) = match &target {
                    GroupTarget::ClientId { org_id, group_id } => (
                        group_where(c, "g.org_id = ?1 AND g.group_id = ?2", params![org_id.as_str(), group_id.as_str()])?,
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
                    GroupTarget::Operation {
                        number_id,
                        request_id,
                        fallback,
                    } => {
                        let row = |r: &rusqlite::Row<'_>| {
                            Ok((
                                id::<OperationId>(r, "id")?,
                                get::<i64>(r, "group_id")?,
                                parse(r, "kind", OperationKind::parse)?,
                                parse(r, "status", OperationStatus::parse)?,
                            ))
                        };
                        let mut op = one(
                            c,
                            "SELECT id, group_id, kind, status FROM operations WHERE number_id = ?1 AND request_id = ?2",
                            params![number_id, request_id],
                            row,
                        )?;
                        if let (None, Some(f)) = (&op, fallback) {
                            // Its request ID never learned (still the operation's own ID): the
                            // group's oldest pending operation of the kind.
                            op = one(
                                c,
                                "SELECT o.id, o.group_id, o.kind, o.status FROM operations o \
                                 JOIN groups g ON g.id = o.group_id \
                                 WHERE o.number_id = ?1 AND g.number_id = ?1 AND g.wa_group_id = ?2 AND o.kind = ?3 \
                                 AND o.status = 'pending' AND o.request_id = o.id ORDER BY o.created_at, o.id LIMIT 1",
                                params![number_id, f.wa_group_id, f.kind.as_str()],
                                row,
                            )?;
                        }
                        match op {
                            None => (None, None),
                            Some((id, group_row_id, kind, status)) => {
                                // A confirmation of a closed operation changes nothing.
                                if status == OperationStatus::Pending {
                                    operation = Some(PendingOperation { id, kind });
                                }
                                (group_where(c, "g.id = ?1", params![group_row_id])?, None)
                            }
                        }
                    }
                    GroupTarget::Request { number_id, request_id } => {
                        // The provider's request ID, or for providers that answer before we recorded
                        // it (the simulated network echoes the command ID), the command ID.
                        let cmd = one(
                            c,
                            "SELECT id, group_id, payload FROM commands WHERE number_id = ?1 AND request_id = ?2 \
                         UNION ALL SELECT id, group_id, payload FROM commands WHERE number_id = ?1 AND command_id = ?2 LIMIT 1",
                            params![number_id, request_id],
                            |r| {
                                Ok((
                                    get::<i64>(r, "id")?,
                                    get::<i64>(r, "group_id")?,
                                    get::<String>(r, "payload")?,
                                ))
                            },
                        )?;
                        match cmd {
                            None => (None, None),
                            Some((cmd_id, group_row_id, payload)) => {
                                let CommandPayload::CreateGroup { participants, .. } =
                                    serde_json::from_str::<CommandPayload>(&payload)
                                        .map_err(|_| corrupt("command payload", &payload))?;
                                command_participants = participants;
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
                        GroupTarget::Operation { request_id, .. } => format!("operation request {request_id}"),
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
                    command_participants,
                    operation,
                };
                let decision = rule(&state)?;
                if let Some(r) = &report {
                    exec(
                        c,
                        "INSERT INTO provider_inbox (number_id, dedup_key, status, received_at, applied_at) \
                         VALUES (?1, ?2, 'applied', ?3, ?3) ON CONFLICT (number_id, dedup_key) DO UPDATE SET \
                         status = 'applied', applied_at = excluded.applied_at, report = NULL, correlation = NULL, \
                         held_seq = NULL, next_attempt_at = NULL, error = NULL",
                        params![r.number_id, r.dedup_key, now.millis()],
                    )?;
                }
                let subs = if decision.events.is_empty() {
                    Vec::new()
                } else {
                    subscriptions(c, &state.group.org_id)?
                };
                if let Some(write) = plan::group_write(&state.group, &decision, &subs) {
                    write_group(c, &write)?;
                }
                Ok(Mutation::Applied(Box::new(decision)))
            })
            .await
    }
}
