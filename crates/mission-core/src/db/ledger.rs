//! The gateway's writes, in SQL: each batch of ledger ops (reservations with their approval
//! gate, settlements, decisions, audit records) in one transaction, with the chain head moved
//! and signed once at the end. The decisions themselves are `gateway::rules`; this applies them.
//! The SQL is the same on both backends, so one macro writes both.

/// Expands to the ledger's SQL for one backend: `ledger_sql::apply`, and the approval and audit
/// columns the reads share.
macro_rules! ledger_sql {
    ($repo:ty, lock_head = $lock_head:literal) => {
        mod ledger_sql {
            use sqlx::Row as _;

            use super::*;
            use crate::audit::{AuditDecision, Sealer, SignedEntry};
            use crate::db::DbError;
            use crate::gateway::ledger::{
                ApprovalRow, ApprovalUse, CallKey, CallRecord, CallState, Decide, DecideError, Interrupt,
                LedgerOp, LedgerResult, RecordedOutcome, Reserve, ReserveResult, Settle,
            };
            use crate::gateway::{ApprovalKind, ApprovalStatus, RefusalCode};
            use crate::perimeter::MissionStatus;
            use crate::units::Cents;

            struct Head {
                seq: i64,
                hash: String,
                moved: bool,
                /// Sealed records not yet written: the chain is built in memory and written
                /// with a few multi-row inserts at the end of the batch (same transaction).
                pending: Vec<SignedEntry>,
            }

            /// Rows per insert: 20 parameters each stays under both backends' limits.
            const INSERT_CHUNK: usize = 500;

            /// Seals a record onto the chain; it is written by [`flush`] with the batch.
            fn append(head: &mut Head, sealer: &Sealer, draft: crate::audit::AuditDraft) -> i64 {
                let signed = sealer.seal(draft, head.seq + 1, &head.hash);
                head.seq = signed.entry.seq;
                head.hash.clone_from(&signed.entry.hash);
                head.moved = true;
                head.pending.push(signed);
                head.seq
            }

            async fn flush(tx: &mut Tx<'_>, head: &mut Head) -> Result<(), DbError> {
                for chunk in head.pending.chunks(INSERT_CHUNK) {
                    let mut insert = sqlx::QueryBuilder::<Db>::new(format!(
                        "INSERT INTO audit_log ({AUDIT_COLUMNS}) "
                    ));
                    let mut failed = None;
                    insert.push_values(chunk, |mut row, signed| {
                        let e = &signed.entry;
                        let r = &e.record;
                        let policy_ids = serde_json::to_string(&r.policy_ids).unwrap_or_else(|err| {
                            failed = Some(err.to_string());
                            String::new()
                        });
                        row.push_bind(e.seq)
                            .push_bind(r.ts.clone())
                            .push_bind(r.mission_id.clone())
                            .push_bind(r.job_id.clone())
                            .push_bind(r.dept)
                            .push_bind(r.caller.clone())
                            .push_bind(r.action.clone())
                            .push_bind(r.tool_id.clone())
                            .push_bind(r.args_hash.clone())
                            .push_bind(r.decision.as_str())
                            .push_bind(r.reason.clone())
                            .push_bind(r.sector.clone())
                            .push_bind(r.grant.clone())
                            .push_bind(policy_ids)
                            .push_bind(r.cost_cents)
                            .push_bind(r.simulated)
                            .push_bind(e.prev_hash.clone())
                            .push_bind(e.hash.clone())
                            .push_bind(e.key_id.clone())
                            .push_bind(signed.signature.clone());
                    });
                    if let Some(err) = failed {
                        return Err(DbError::Corrupt(format!("policy ids: {err}")));
                    }
                    insert.build().execute(&mut **tx).await?;
                }
                head.pending.clear();
                Ok(())
            }

            async fn release(tx: &mut Tx<'_>, mission: &str, cents: Cents) -> Result<(), DbError> {
                sqlx::query(
                    "UPDATE active_missions SET steps_used = steps_used - 1, \
                     reserved_cents = reserved_cents - $2 WHERE id = $1",
                )
                .bind(id(mission)?)
                .bind(cents)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Settlements of this batch not yet written, per mission: (reserved cents to
            /// release, cents spent). They are written with the mission's next reservation in
            /// the batch, or at its end: one statement instead of two.
            type Unsettled = std::collections::HashMap<String, (Cents, Cents)>;

            async fn settle(tx: &mut Tx<'_>, mission: &str, (release, spend): (Cents, Cents)) -> Result<(), DbError> {
                sqlx::query(
                    "UPDATE active_missions SET reserved_cents = reserved_cents - $2, \
                     spent_cents = spent_cents + $3 WHERE id = $1",
                )
                .bind(id(mission)?)
                .bind(release)
                .bind(spend)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Missions per multi-mission statement (five parameters each).
            const MISSION_CHUNK: usize = 200;

            /// Starts one row of a multi-mission statement's list of values: the first row
            /// names the columns, later ones are joined to it.
            fn values_row(query: &mut sqlx::QueryBuilder<'_, Db>, first: bool) {
                query.push(if first { "SELECT " } else { " UNION ALL SELECT " });
            }

            /// Writes every mission's pending settlements with one statement (per chunk of
            /// missions): a batch's commit waits on each statement in turn, so their number,
            /// not their size, sets how long every call in the batch waits.
            async fn settle_all(tx: &mut Tx<'_>, unsettled: &mut Unsettled) -> Result<(), DbError> {
                let all: Vec<(String, (Cents, Cents))> = unsettled.drain().collect();
                for chunk in all.chunks(MISSION_CHUNK) {
                    let mut update = sqlx::QueryBuilder::<Db>::new(
                        "UPDATE active_missions SET reserved_cents = reserved_cents - v.freed, \
                         spent_cents = spent_cents + v.spent FROM (",
                    );
                    for (k, (mission, (freed, spent))) in chunk.iter().enumerate() {
                        values_row(&mut update, k == 0);
                        update.push_bind(id(mission)?);
                        update.push(" AS mid, ");
                        update.push_bind(*freed);
                        update.push(" AS freed, ");
                        update.push_bind(*spent);
                        update.push(" AS spent");
                    }
                    update.push(") AS v WHERE id = v.mid");
                    update.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// A journal row's columns, as `CallRecord` reads them.
            pub(super) const CALL_SELECT: &str =
                "SELECT call_key, CAST(mission_id AS TEXT) AS mission_id, keyed, tool_id, \
                 args_hash, step, reserved_cents, reserved_at, state, outcome, audit_seq \
                 FROM tool_calls";

            const JOURNAL_INSERT: &str = "INSERT INTO tool_calls (call_key, mission_id, keyed, \
                 tool_id, args_hash, step, reserved_cents, reserved_at, state) ";

            /// Writes reserved calls' journal rows (same transaction as the reservation).
            async fn journal(
                tx: &mut Tx<'_>,
                rows: &[(&Reserve, i64)],
            ) -> Result<(), DbError> {
                for chunk in rows.chunks(INSERT_CHUNK) {
                    let mut ids = Vec::with_capacity(chunk.len());
                    for (r, _) in chunk {
                        ids.push(id(&r.mission_id)?);
                    }
                    let mut insert = sqlx::QueryBuilder::<Db>::new(JOURNAL_INSERT);
                    insert.push_values(chunk.iter().zip(ids), |mut row, ((r, step), mission)| {
                        let call: &CallKey = &r.call;
                        row.push_bind(call.key.clone())
                            .push_bind(mission)
                            .push_bind(call.keyed)
                            .push_bind(call.tool_id.clone())
                            .push_bind(call.args_hash.clone())
                            .push_bind(*step)
                            .push_bind(r.cost_cents)
                            .push_bind(r.now.clone())
                            .push_bind(CallState::Running.as_str());
                    });
                    insert.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// A journal row, read inside the batch's transaction.
            async fn call_row(
                tx: &mut Tx<'_>,
                mission: &str,
                key: &str,
            ) -> Result<Option<CallRecord>, DbError> {
                Ok(sqlx::query_as::<_, CallRecord>(&format!(
                    "{CALL_SELECT} WHERE call_key = $1 AND mission_id = $2"
                ))
                .bind(key)
                .bind(id(mission)?)
                .fetch_optional(&mut **tx)
                .await?)
            }

            /// Closes a keyed call's journal row with its outcome and the seq of the record
            /// about to be appended; false if it was no longer Running.
            async fn close_keyed(
                tx: &mut Tx<'_>,
                key: &str,
                mission: &str,
                outcome: &RecordedOutcome,
                seq: i64,
            ) -> Result<bool, DbError> {
                let text = serde_json::to_string(outcome)
                    .map_err(|e| DbError::Corrupt(format!("outcome: {e}")))?;
                let closed = sqlx::query(
                    "UPDATE tool_calls SET state = $3, outcome = $4, audit_seq = $5 \
                     WHERE call_key = $1 AND mission_id = $2 AND state = 'Running'",
                )
                .bind(key)
                .bind(id(mission)?)
                .bind(outcome.state().as_str())
                .bind(text)
                .bind(seq)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                Ok(closed == 1)
            }

            /// Applies the batch's settlements: each closes its journal row, and only a row
            /// still Running moves money — a call already settled as interrupted (its process
            /// was taken for dead) was charged its estimate then, and is not charged again.
            async fn settle_calls(
                tx: &mut Tx<'_>,
                head: &mut Head,
                sealer: &Sealer,
                settlements: Vec<(usize, Settle)>,
                unsettled: &mut Unsettled,
                results: &mut [Option<LedgerResult>],
            ) -> Result<(), DbError> {
                // Rows without a key are deleted, all in one statement per chunk.
                let mut closed = std::collections::HashSet::new();
                let plain: Vec<&Settle> = settlements
                    .iter()
                    .map(|(_, s)| s)
                    .filter(|s| !s.keyed)
                    .collect();
                for chunk in plain.chunks(INSERT_CHUNK) {
                    let mut delete = sqlx::QueryBuilder::<Db>::new(
                        "DELETE FROM tool_calls WHERE state = 'Running' AND call_key IN (",
                    );
                    let mut keys = delete.separated(", ");
                    for s in chunk {
                        keys.push_bind(s.call_key.clone());
                    }
                    delete.push(") RETURNING call_key");
                    let gone: Vec<String> =
                        delete.build_query_scalar().fetch_all(&mut **tx).await?;
                    closed.extend(gone);
                }
                for (index, s) in settlements {
                    let seq = head.seq + 1;
                    let live = if s.keyed {
                        close_keyed(tx, &s.call_key, &s.mission_id, &s.outcome, seq).await?
                    } else {
                        closed.contains(&s.call_key)
                    };
                    let mut audit = s.audit;
                    if live {
                        let delta = unsettled.entry(s.mission_id).or_default();
                        delta.0 += s.reserved_cents;
                        delta.1 += s.actual_cents.min(s.reserved_cents);
                    } else {
                        audit.cost_cents = Cents::ZERO;
                        audit.reason.push_str(
                            "; the call had already been settled as interrupted and charged \
                             its estimate, so nothing more was charged",
                        );
                    }
                    let appended = append(head, sealer, audit);
                    debug_assert_eq!(appended, seq);
                    results[index] = Some(LedgerResult::Audited(appended));
                }
                Ok(())
            }

            /// Settles a call whose process stopped while the tool ran, if it is still
            /// Running: its estimate is charged (the tool may have run), the record written.
            async fn interrupt(
                tx: &mut Tx<'_>,
                head: &mut Head,
                sealer: &Sealer,
                Interrupt { call, outcome, mut audit }: Interrupt,
                unsettled: &mut Unsettled,
            ) -> Result<Option<i64>, DbError> {
                let seq = head.seq + 1;
                let changed = if call.keyed {
                    close_keyed(tx, &call.call_key, &call.mission_id, &outcome, seq).await?
                } else {
                    sqlx::query(
                        "DELETE FROM tool_calls WHERE call_key = $1 AND mission_id = $2 \
                         AND state = 'Running'",
                    )
                    .bind(&call.call_key)
                    .bind(id(&call.mission_id)?)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected()
                        == 1
                };
                if !changed {
                    return Ok(None);
                }
                let delta = unsettled.entry(call.mission_id).or_default();
                delta.0 += call.reserved_cents;
                delta.1 += call.reserved_cents;
                audit.cost_cents = call.reserved_cents;
                Ok(Some(append(head, sealer, audit)))
            }

            /// Ops of a batch handled after the plain reservations, in arrival order.
            enum Pending {
                Reserve(Box<Reserve>),
                Decide(Decide),
                Interrupt(Box<Interrupt>),
            }

            /// Reserves the batch's gate-less calls of every mission with one statement (per
            /// chunk of missions) for all missions whose calls all fit; a mission whose calls
            /// would pass a cap has them reserved one by one, so each gets its exact answer.
            async fn reserve_plain(
                tx: &mut Tx<'_>,
                head: &mut Head,
                sealer: &Sealer,
                plain: Vec<(String, Vec<(usize, Reserve)>)>,
                unsettled: &mut Unsettled,
                results: &mut [Option<LedgerResult>],
            ) -> Result<(), DbError> {
                // The last step each mission that fit reached, by its stored id.
                let mut fit = std::collections::HashMap::<String, i64>::new();
                for chunk in plain.chunks(MISSION_CHUNK) {
                    let mut update = sqlx::QueryBuilder::<Db>::new(
                        "UPDATE active_missions SET steps_used = steps_used + v.n, \
                         reserved_cents = reserved_cents - v.freed + v.total, \
                         spent_cents = spent_cents + v.spent FROM (",
                    );
                    for (k, (mission, group)) in chunk.iter().enumerate() {
                        let (freed, spent) = unsettled.get(mission).copied().unwrap_or_default();
                        let total: Cents = group.iter().map(|(_, r)| r.cost_cents).sum();
                        values_row(&mut update, k == 0);
                        update.push_bind(id(mission)?);
                        update.push(" AS mid, ");
                        update.push_bind(i64::try_from(group.len()).unwrap_or(i64::MAX));
                        update.push(" AS n, ");
                        update.push_bind(total);
                        update.push(" AS total, ");
                        update.push_bind(freed);
                        update.push(" AS freed, ");
                        update.push_bind(spent);
                        update.push(" AS spent");
                    }
                    update.push(
                        ") AS v WHERE id = v.mid AND status = 'Running' \
                         AND steps_used + v.n <= max_steps \
                         AND (spent_cents + v.spent) + (reserved_cents - v.freed) + v.total \
                         <= budget_cents RETURNING id, steps_used",
                    );
                    for row in update.build().fetch_all(&mut **tx).await? {
                        fit.insert(get_id(&row, "id")?, row.try_get("steps_used")?);
                    }
                }
                let mut reserved: Vec<(Reserve, i64)> = Vec::new();
                for (mission, group) in plain {
                    let Some(&last) = fit.get(&id(&mission)?.to_string()) else {
                        for (i, r) in group {
                            results[i] = Some(LedgerResult::Reserve(
                                reserve(tx, head, sealer, r, unsettled).await?,
                            ));
                        }
                        continue;
                    };
                    unsettled.remove(&mission);
                    let first = last - i64::try_from(group.len()).unwrap_or(i64::MAX) + 1;
                    for (step, (i, r)) in (first..).zip(group) {
                        results[i] = Some(LedgerResult::Reserve(ReserveResult::Reserved {
                            step,
                            approval: None,
                        }));
                        reserved.push((r, step));
                    }
                }
                let rows: Vec<(&Reserve, i64)> = reserved.iter().map(|(r, step)| (r, *step)).collect();
                journal(tx, &rows).await
            }

            async fn reserve(
                tx: &mut Tx<'_>,
                head: &mut Head,
                sealer: &Sealer,
                r: Reserve,
                unsettled: &mut Unsettled,
            ) -> Result<ReserveResult, DbError> {
                let mission = id(&r.mission_id)?;
                // A key used before gets its journal row back and holds nothing. Every ledger
                // transaction locks the chain head first, so no other can insert it meanwhile.
                if r.call.keyed {
                    if let Some(row) = call_row(tx, &r.mission_id, &r.call.key).await? {
                        return Ok(ReserveResult::Repeated(Box::new(row)));
                    }
                }
                let (freed, spent) = unsettled.remove(&r.mission_id).unwrap_or_default();
                let step: Option<i64> = sqlx::query_scalar(
                    "UPDATE active_missions SET steps_used = steps_used + 1, \
                     reserved_cents = reserved_cents - $3 + $2, spent_cents = spent_cents + $4 \
                     WHERE id = $1 AND status = 'Running' AND steps_used < max_steps \
                     AND (spent_cents + $4) + (reserved_cents - $3) + $2 <= budget_cents \
                     RETURNING steps_used",
                )
                .bind(mission.clone())
                .bind(r.cost_cents)
                .bind(freed)
                .bind(spent)
                .fetch_optional(&mut **tx)
                .await?;
                let Some(step) = step else {
                    // Nothing was written: settle first, so the refusal reads the true state.
                    if (freed, spent) != Default::default() {
                        settle(tx, &r.mission_id, (freed, spent)).await?;
                    }
                    return refuse_reservation(tx, head, sealer, r).await;
                };
                let Some(gate) = r.gate.clone() else {
                    journal(tx, &[(&r, step)]).await?;
                    return Ok(ReserveResult::Reserved {
                        step,
                        approval: None,
                    });
                };
                let latest = sqlx::query(
                    "SELECT id, status, expires_at, decided_by FROM approvals \
                     WHERE mission_id = $1 AND kind = 'ToolCall' AND tool_id = $2 \
                     AND args_hash = $3 ORDER BY requested_at DESC, id DESC LIMIT 1",
                )
                .bind(mission.clone())
                .bind(&gate.tool_id)
                .bind(&gate.args_hash)
                .fetch_optional(&mut **tx)
                .await?;
                let latest = match latest {
                    Some(row) => Some((
                        get_id(&row, "id")?,
                        ApprovalStatus::parse(&row.try_get::<String, _>("status")?)?,
                        row.try_get::<Option<String>, _>("expires_at")?,
                        row.try_get::<Option<String>, _>("decided_by")?,
                    )),
                    None => None,
                };
                let expired = |at: &Option<String>| at.as_deref().is_some_and(|t| t <= r.now.as_str());
                let refused = |code: RefusalCode, message: String| (code, message);
                let outcome = match latest {
                    Some((approval, status, at, by)) if status == ApprovalStatus::Approved && !expired(&at) => {
                        let used = sqlx::query(
                            "UPDATE approvals SET status = 'Used' WHERE id = $1 \
                             AND status = 'Approved'",
                        )
                        .bind(id(&approval)?)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                        if used == 1 {
                            journal(tx, &[(&r, step)]).await?;
                            return Ok(ReserveResult::Reserved {
                                step,
                                approval: Some(ApprovalUse {
                                    id: approval,
                                    decided_by: by.unwrap_or_default(),
                                }),
                            });
                        }
                        Err(refused(
                            RefusalCode::ApprovalExpired,
                            format!("approval {approval} was already used by another call"),
                        ))
                    }
                    Some((approval, status, at, _))
                        if matches!(status, ApprovalStatus::Approved | ApprovalStatus::Pending)
                            && expired(&at) =>
                    {
                        sqlx::query("UPDATE approvals SET status = 'Expired' WHERE id = $1")
                            .bind(id(&approval)?)
                            .execute(&mut **tx)
                            .await?;
                        Err(refused(
                            RefusalCode::ApprovalExpired,
                            format!(
                                "approval {approval} for this exact call expired at {}; call \
                                 again to ask a human anew",
                                at.unwrap_or_default()
                            ),
                        ))
                    }
                    Some((approval, status, at, _)) if status == ApprovalStatus::Pending => {
                        Ok((approval, at.unwrap_or_default()))
                    }
                    Some((approval, status, _, by)) if status == ApprovalStatus::Denied => Err(refused(
                        RefusalCode::ApprovalDenied,
                        format!(
                            "{} denied this exact call (approval {approval})",
                            by.unwrap_or_else(|| "a reviewer".into())
                        ),
                    )),
                    _ => {
                        sqlx::query(
                            "INSERT INTO approvals (id, kind, mission_id, dept, job_id, tool_id, \
                             args_hash, args, cost_cents, reason, status, requested_at, \
                             expires_at) VALUES ($1, 'ToolCall', $2, $3, $4, $5, $6, $7, $8, \
                             $9, 'Pending', $10, $11)",
                        )
                        .bind(id(&gate.approval_id)?)
                        .bind(mission.clone())
                        .bind(gate.dept)
                        .bind(&gate.job_id)
                        .bind(&gate.tool_id)
                        .bind(&gate.args_hash)
                        .bind(&gate.args)
                        .bind(r.cost_cents)
                        .bind(&gate.reason)
                        .bind(&r.now)
                        .bind(&gate.expires_at)
                        .execute(&mut **tx)
                        .await?;
                        Ok((gate.approval_id.clone(), gate.expires_at.clone()))
                    }
                };
                release(tx, &r.mission_id, r.cost_cents).await?;
                Ok(match outcome {
                    Ok((approval_id, expires_at)) => {
                        let reason = format!(
                            "{}; waiting for a human in approval {approval_id} until {expires_at}",
                            gate.reason
                        );
                        let seq =
                            append(head, sealer, r.audit.decided(AuditDecision::Waiting, reason));
                        ReserveResult::Waiting {
                            approval_id,
                            expires_at,
                            seq,
                        }
                    }
                    Err((code, message)) => {
                        let seq = append(
                            head,
                            sealer,
                            r.audit.decided(AuditDecision::Denied, message.clone()),
                        );
                        ReserveResult::Refused { code, message, seq }
                    }
                })
            }

            async fn refuse_reservation(
                tx: &mut Tx<'_>,
                head: &mut Head,
                sealer: &Sealer,
                r: Reserve,
            ) -> Result<ReserveResult, DbError> {
                let mission = id(&r.mission_id)?;
                let row = sqlx::query(
                    "SELECT status, steps_used, max_steps, spent_cents, reserved_cents, \
                     budget_cents FROM active_missions WHERE id = $1",
                )
                .bind(mission.clone())
                .fetch_one(&mut **tx)
                .await?;
                let counters = crate::gateway::rules::Counters {
                    status: MissionStatus::parse(&row.try_get::<String, _>("status")?)?,
                    steps_used: row.try_get("steps_used")?,
                    max_steps: row.try_get("max_steps")?,
                    spent_cents: row.try_get("spent_cents")?,
                    reserved_cents: row.try_get("reserved_cents")?,
                    budget_cents: row.try_get("budget_cents")?,
                };
                let refused = crate::gateway::rules::refuse_reservation(&counters, r.cost_cents);
                if let Some(reason) = &refused.pause {
                    // The cap itself is reached: pause and ask a human to raise it or stop.
                    sqlx::query(
                        "UPDATE active_missions SET status = 'Paused' WHERE id = $1 \
                         AND status = 'Running'",
                    )
                    .bind(mission.clone())
                    .execute(&mut **tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO approvals (id, kind, mission_id, cost_cents, reason, \
                         status, requested_at, budget_cents) VALUES ($1, 'BudgetCap', $2, $3, \
                         $4, 'Pending', $5, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind(id(&r.budget_request_id)?)
                    .bind(mission.clone())
                    .bind(r.cost_cents)
                    .bind(reason)
                    .bind(&r.now)
                    .bind(counters.budget_cents)
                    .execute(&mut **tx)
                    .await?;
                }
                let (code, message) = (refused.code, refused.message);
                let seq = append(
                    head,
                    sealer,
                    r.audit.decided(AuditDecision::Denied, message.clone()),
                );
                Ok(ReserveResult::Refused { code, message, seq })
            }

            // CAST reads a Postgres UUID as the text SQLite stores.
            pub(super) const APPROVAL_SELECT: &str =
                "SELECT CAST(a.id AS TEXT) AS id, a.kind, CAST(a.mission_id AS TEXT) AS mission_id, \
                 m.template_name AS mission_name, m.sector, a.dept, a.job_id, a.tool_id, \
                 a.args_hash, a.args, a.cost_cents, a.reason, a.status, a.requested_at, \
                 a.expires_at, a.decided_by, a.decided_at, a.budget_cents, \
                 m.budget_cents AS mission_budget_cents \
                 FROM approvals a JOIN active_missions m ON m.id = a.mission_id";

            async fn decide(
                tx: &mut Tx<'_>,
                head: &mut Head,
                sealer: &Sealer,
                d: Decide,
            ) -> Result<Result<(ApprovalRow, i64), DecideError>, DbError> {
                let Ok(approval) = id(&d.approval_id) else {
                    return Ok(Err(DecideError::NotFound(d.approval_id)));
                };
                let select = format!("{APPROVAL_SELECT} WHERE a.id = $1");
                let Some(a) = sqlx::query_as::<_, ApprovalRow>(&select)
                    .bind(approval.clone())
                    .fetch_optional(&mut **tx)
                    .await?
                else {
                    return Ok(Err(DecideError::NotFound(d.approval_id)));
                };
                let mission = id(&a.record.mission_id)?;
                let t = match crate::gateway::rules::decide(&a, &d) {
                    Ok(t) => t,
                    Err(DecideError::Expired(at)) => {
                        sqlx::query("UPDATE approvals SET status = 'Expired' WHERE id = $1")
                            .bind(approval.clone())
                            .execute(&mut **tx)
                            .await?;
                        return Ok(Err(DecideError::Expired(at)));
                    }
                    Err(refused) => return Ok(Err(refused)),
                };
                match t.mission {
                    crate::gateway::rules::MissionChange::None => {}
                    crate::gateway::rules::MissionChange::RaiseBudget(new) => {
                        sqlx::query(
                            "UPDATE active_missions SET budget_cents = $2, status = 'Running' \
                             WHERE id = $1 AND status = 'Paused'",
                        )
                        .bind(mission.clone())
                        .bind(new)
                        .execute(&mut **tx)
                        .await?;
                    }
                    crate::gateway::rules::MissionChange::Stop => {
                        sqlx::query(
                            "UPDATE active_missions SET status = 'Stopped' WHERE id = $1 \
                             AND status IN ('Paused', 'Running')",
                        )
                        .bind(mission.clone())
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                let budget_cap = a.kind == ApprovalKind::BudgetCap;
                let (status, reason, budget, expires_at) =
                    (t.status, t.reason, t.budget_cents, t.expires_at);
                sqlx::query(
                    "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, \
                     budget_cents = $5, expires_at = $6 WHERE id = $1",
                )
                .bind(approval.clone())
                .bind(status.as_str())
                .bind(&d.by)
                .bind(&d.now)
                .bind(budget)
                .bind(&expires_at)
                .execute(&mut **tx)
                .await?;
                let decision = if d.approve {
                    AuditDecision::Approved
                } else {
                    AuditDecision::Rejected
                };
                let draft = crate::audit::AuditDraft {
                    ts: d.now.clone(),
                    mission_id: Some(a.record.mission_id.clone()),
                    job_id: a.job_id.clone(),
                    dept: a.record.dept,
                    caller: d.by.clone(),
                    action: Some(
                        if budget_cap {
                            crate::audit::Operation::BudgetDecide
                        } else {
                            crate::audit::Operation::ApprovalDecide
                        }
                        .as_str()
                        .to_owned(),
                    ),
                    tool_id: a.record.tool_id.clone(),
                    args_hash: a.record.args_hash.clone(),
                    sector: Some(a.record.sector.clone()),
                    cost_cents: Cents::ZERO,
                    ..Default::default()
                }
                .decided(decision, reason);
                let seq = append(head, sealer, draft);
                let row = sqlx::query_as::<_, ApprovalRow>(&select)
                    .bind(approval)
                    .fetch_one(&mut **tx)
                    .await?;
                Ok(Ok((row, seq)))
            }

            pub(super) const AUDIT_COLUMNS: &str = "seq, ts, mission_id, job_id, dept, caller, action, tool_id, \
                 args_hash, decision, reason, sector, grant_text, policy_ids, cost_cents, \
                 simulated, prev_hash, hash, key_id, signature";

            pub(super) async fn apply(
                repo: &$repo,
                ops: Vec<LedgerOp>,
                sealer: &Sealer,
            ) -> Result<Vec<LedgerResult>, DbError> {
                let mut tx = repo.write_tx().await?;
                let row = sqlx::query($lock_head).fetch_one(&mut *tx).await?;
                let mut head = Head {
                    seq: row.try_get("seq")?,
                    hash: row.try_get("hash")?,
                    moved: false,
                    pending: Vec::with_capacity(ops.len()),
                };
                // The ops of a batch arrived concurrently, so any order is a valid one:
                // settlements and records first (they depend on nothing in the batch), then
                // plain reservations, one statement for all missions, then the rest in order.
                let mut unsettled = Unsettled::new();
                let mut results: Vec<Option<LedgerResult>> = Vec::new();
                results.resize_with(ops.len(), || None);
                let mut plain: Vec<(String, Vec<(usize, Reserve)>)> = Vec::new();
                let mut plain_index = std::collections::HashMap::<String, usize>::new();
                let mut rest = Vec::new();
                let mut settlements = Vec::new();
                for (i, op) in ops.into_iter().enumerate() {
                    match op {
                        LedgerOp::Audit(draft) => {
                            results[i] = Some(LedgerResult::Audited(append(&mut head, sealer, draft)));
                        }
                        LedgerOp::Settle(settle) => settlements.push((i, *settle)),
                        LedgerOp::Interrupt(op) => rest.push((i, Pending::Interrupt(op))),
                        LedgerOp::Reserve(r) if r.gate.is_none() && !r.call.keyed => {
                            let at = *plain_index.entry(r.mission_id.clone()).or_insert_with(|| {
                                plain.push((r.mission_id.clone(), Vec::new()));
                                plain.len() - 1
                            });
                            plain[at].1.push((i, *r));
                        }
                        LedgerOp::Reserve(r) => rest.push((i, Pending::Reserve(r))),
                        LedgerOp::Decide(d) => rest.push((i, Pending::Decide(d))),
                    }
                }
                settle_calls(&mut tx, &mut head, sealer, settlements, &mut unsettled, &mut results).await?;
                reserve_plain(&mut tx, &mut head, sealer, plain, &mut unsettled, &mut results).await?;
                for (i, op) in rest {
                    results[i] = Some(match op {
                        Pending::Reserve(r) => LedgerResult::Reserve(
                            reserve(&mut tx, &mut head, sealer, *r, &mut unsettled).await?,
                        ),
                        Pending::Interrupt(op) => LedgerResult::Interrupted(
                            interrupt(&mut tx, &mut head, sealer, *op, &mut unsettled).await?,
                        ),
                        Pending::Decide(d) => {
                            // A decision reads and changes budgets and states: settle first.
                            settle_all(&mut tx, &mut unsettled).await?;
                            LedgerResult::Decided(Box::new(decide(&mut tx, &mut head, sealer, d).await?))
                        }
                    });
                }
                let results = results
                    .into_iter()
                    .map(|r| r.ok_or_else(|| DbError::Corrupt("a gateway write got no answer".into())))
                    .collect::<Result<Vec<_>, _>>()?;
                settle_all(&mut tx, &mut unsettled).await?;
                flush(&mut tx, &mut head).await?;
                if head.moved {
                    sqlx::query(
                        "UPDATE audit_head SET seq = $1, hash = $2, key_id = $3, \
                         signature = $4 WHERE id = 1",
                    )
                    .bind(head.seq)
                    .bind(&head.hash)
                    .bind(sealer.key_id())
                    .bind(sealer.sign_head(head.seq, &head.hash))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(results)
            }
        }
    };
}

pub(crate) use ledger_sql;
