//! The squad engine's storage: jobs, the outbox of mission events, the inbox of applied events,
//! squad leases and run records. Like the gateway's, one macro writes both backends.

/// Expands to the [`crate::squad::store::SquadStore`] implementation for one backend.
macro_rules! squad_store {
    ($repo:ty) => {
        mod squad_sql {
            use sqlx::Row as _;

            use super::*;
            use super::missions_sql::{keyset, mission, MISSIONS_AFTER};
            use crate::gateway::store::MissionUsage;
            use crate::squad::store::{JobRow, RunRecord, SquadOp, SquadStore, StoredEvent};
            use crate::squad::MissionView;
            use crate::store::After;
            use crate::db::DbError;
            use crate::perimeter::MissionStatus;
            use crate::squad::Envelope;
            use crate::units::Cents;

            /// One row of the mission page query: the mission, its usage, progress and run.
            fn mission_view(row: &DbRow) -> Result<MissionView, DbError> {
                let mission = mission(row)?;
                let run = match row.try_get::<Option<String>, _>("run_status")? {
                    None => None,
                    Some(status) => Some(RunRecord {
                        mission_id: mission.id.clone(),
                        template_id: row.try_get("run_template_id")?,
                        template_version: row.try_get("run_template_version")?,
                        status: MissionStatus::parse(&status)?,
                        profit_cents: row.try_get("run_profit_cents")?,
                        gas_cents: row.try_get("run_gas_cents")?,
                        steps: row.try_get("run_steps")?,
                        duration_ms: row.try_get("run_duration_ms")?,
                        failure_reason: row.try_get("run_failure_reason")?,
                        started_at: row.try_get("run_started_at")?,
                        ended_at: row.try_get("run_ended_at")?,
                    }),
                };
                Ok(MissionView {
                    usage: <MissionUsage as sqlx::FromRow<'_, DbRow>>::from_row(row)?,
                    steps_done: row.try_get("steps_done")?,
                    plan_steps: row.try_get("plan_steps")?,
                    run,
                    mission,
                })
            }

            fn json_text(value: &serde_json::Value) -> Result<String, DbError> {
                serde_json::to_string(value).map_err(|e| DbError::Corrupt(e.to_string()))
            }

            /// An event's columns from the table aliased `table`; CAST reads a Postgres UUID as
            /// the text SQLite stores, and the payload is read as JSON.
            fn event_columns(table: &str) -> String {
                format!(
                    "{table}.seq, {table}.event_id, {table}.topic, \
                     CAST({table}.mission_id AS TEXT) AS mission_id, {table}.job_id, {table}.dept, \
                     {table}.kind, {table}.ts, {table}.payload{JSON_READ} AS payload, \
                     {table}.published_at"
                )
            }

            /// A job's columns, read the same way as an event's.
            fn job_columns() -> String {
                format!(
                    "job_id, CAST(mission_id AS TEXT) AS mission_id, step, dept, action, tool_id, \
                     status, report_event_id, report{JSON_READ} AS report, cost_cents, \
                     value_cents, assigned_at, finished_at"
                )
            }

            async fn insert_event(
                tx: &mut Tx<'_>,
                topic: &str,
                e: &Envelope,
                published_at: Option<&str>,
            ) -> Result<bool, DbError> {
                Ok(sqlx::query(
                    "INSERT INTO mission_events (event_id, topic, mission_id, job_id, dept, kind, \
                     ts, payload, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (event_id) DO NOTHING",
                )
                .bind(&e.event_id)
                .bind(topic)
                .bind(id(&e.mission_id)?)
                .bind(&e.job_id)
                .bind(e.dept)
                .bind(&e.kind)
                .bind(&e.ts)
                .bind(json_text(&e.payload)?)
                .bind(published_at)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1)
            }

            /// Ends a mission and writes its run record; false if it had ended already.
            async fn end_mission(
                tx: &mut Tx<'_>,
                mission_id: &str,
                status: MissionStatus,
                reason: Option<&str>,
                at: &str,
            ) -> Result<bool, DbError> {
                let Some(row) = sqlx::query(
                    "UPDATE active_missions SET status = $2, ended_at = $3, end_reason = $4, \
                     squad_lease_until = NULL WHERE id = $1 \
                     AND (status IN ('Ready', 'Running', 'Paused') OR (status = $2 \
                     AND NOT EXISTS (SELECT 1 FROM mission_runs r WHERE r.mission_id = $1))) \
                     RETURNING template_id, template_version, started_at, steps_used, spent_cents",
                )
                .bind(id(mission_id)?)
                .bind(status.as_str())
                .bind(at)
                .bind(reason)
                .fetch_optional(&mut **tx)
                .await?
                else {
                    return Ok(false);
                };
                let value: Cents = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(value_cents), 0) AS BIGINT) FROM mission_jobs \
                     WHERE mission_id = $1 AND status = 'Done'",
                )
                .bind(id(mission_id)?)
                .fetch_one(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE mission_jobs SET status = 'Failed', finished_at = $2 \
                     WHERE mission_id = $1 AND status IN ('Assigned', 'Reported') AND step > 0",
                )
                .bind(id(mission_id)?)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "UPDATE mission_jobs SET status = $2, finished_at = $3 \
                     WHERE mission_id = $1 AND step = 0 AND status = 'Assigned'",
                )
                .bind(id(mission_id)?)
                .bind(if status == MissionStatus::Completed { "Done" } else { "Failed" })
                .bind(at)
                .execute(&mut **tx)
                .await?;
                let started_at: Option<String> = row.try_get("started_at")?;
                let run = crate::squad::run::figures(
                    value,
                    row.try_get("spent_cents")?,
                    started_at.as_deref(),
                    at,
                );
                sqlx::query(
                    "INSERT INTO mission_runs (mission_id, template_id, template_version, status, \
                     profit_cents, gas_cents, steps, duration_ms, failure_reason, started_at, \
                     ended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(id(mission_id)?)
                .bind(row.try_get::<String, _>("template_id")?)
                .bind(row.try_get::<i64, _>("template_version")?)
                .bind(status.as_str())
                .bind(run.profit_cents)
                .bind(run.gas_cents)
                .bind(row.try_get::<i64, _>("steps_used")?)
                .bind(run.duration_ms)
                .bind(reason)
                .bind(started_at)
                .bind(at)
                .execute(&mut **tx)
                .await?;
                Ok(true)
            }

            /// A job update binding the job, one text, the report, its cost and its value
            /// (`$1` to `$5`).
            fn job_update<'q>(
                sql: &'q str,
                job_id: &'q str,
                text: &'q str,
                report: Option<String>,
                cost_cents: Cents,
                value_cents: Cents,
            ) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>> {
                sqlx::query(sql)
                    .bind(job_id)
                    .bind(text)
                    .bind(report)
                    .bind(cost_cents)
                    .bind(value_cents)
            }

            /// Applies one op; `false` when its guard does not hold.
            async fn apply(tx: &mut Tx<'_>, op: &SquadOp) -> Result<bool, DbError> {
                let query = match op {
                    SquadOp::Inbox { consumer, event_id } => sqlx::query(
                        "INSERT INTO squad_inbox (consumer, event_id, applied_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING",
                    )
                    .bind(consumer)
                    .bind(event_id)
                    .bind(crate::gateway::timestamp(chrono::Utc::now())),
                    SquadOp::InsertJob(j) => sqlx::query(
                        "INSERT INTO mission_jobs (job_id, mission_id, step, dept, action, \
                         tool_id, status, assigned_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (mission_id, step) DO NOTHING",
                    )
                    .bind(&j.job_id)
                    .bind(id(&j.mission_id)?)
                    .bind(j.step)
                    .bind(j.dept)
                    .bind(&j.action)
                    .bind(&j.tool_id)
                    .bind(j.status.as_str())
                    .bind(&j.assigned_at),
                    SquadOp::ReportJob {
                        job_id,
                        event_id,
                        report,
                        cost_cents,
                        value_cents,
                    } => job_update(
                        "UPDATE mission_jobs SET status = 'Reported', report_event_id = $2, \
                         report = $3, cost_cents = $4, value_cents = $5 \
                         WHERE job_id = $1 AND status = 'Assigned'",
                        job_id,
                        event_id,
                        Some(json_text(report)?),
                        *cost_cents,
                        *value_cents,
                    ),
                    SquadOp::FinishJob {
                        job_id,
                        status,
                        report,
                        cost_cents,
                        value_cents,
                        at,
                    } => job_update(
                        "UPDATE mission_jobs SET status = $2, report = COALESCE(report, $3), \
                         cost_cents = $4, value_cents = $5, finished_at = $6 \
                         WHERE job_id = $1 AND status IN ('Assigned', 'Reported')",
                        job_id,
                        status.as_str(),
                        report.as_ref().map(json_text).transpose()?,
                        *cost_cents,
                        *value_cents,
                    )
                    .bind(at),
                    SquadOp::EndMission {
                        mission_id,
                        status,
                        reason,
                        at,
                    } => return end_mission(tx, mission_id, *status, reason.as_deref(), at).await,
                    SquadOp::Publish { topic, envelope } => {
                        return insert_event(tx, topic, envelope, None).await
                    }
                    SquadOp::Record {
                        topic,
                        envelope,
                        at,
                    } => {
                        // Seen before is fine: the history keeps the first copy.
                        insert_event(tx, topic, envelope, Some(at)).await?;
                        return Ok(true);
                    }
                };
                Ok(query.execute(&mut **tx).await?.rows_affected() == 1)
            }

            #[async_trait::async_trait]
            impl SquadStore for $repo {
                async fn squad_commit(&self, ops: Vec<SquadOp>) -> Result<bool, DbError> {
                    let mut tx = self.write_tx().await?;
                    for op in &ops {
                        if !apply(&mut tx, op).await? {
                            tx.rollback().await?;
                            return Ok(false);
                        }
                    }
                    tx.commit().await?;
                    Ok(true)
                }

                async fn claim_squads(
                    &self,
                    owner: &str,
                    now: &str,
                    until: &str,
                ) -> Result<Vec<String>, DbError> {
                    let rows = sqlx::query(
                        "UPDATE active_missions SET squad_owner = $1, squad_lease_until = $3 \
                         WHERE status IN ('Running', 'Paused') AND (squad_owner IS NULL \
                         OR squad_owner = $1 OR squad_lease_until IS NULL \
                         OR squad_lease_until < $2) RETURNING id",
                    )
                    .bind(owner)
                    .bind(now)
                    .bind(until)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter().map(|r| get_id(r, "id")).collect()
                }

                async fn release_squad(&self, mission_id: &str, owner: &str) -> Result<(), DbError> {
                    sqlx::query(
                        "UPDATE active_missions SET squad_owner = NULL, squad_lease_until = NULL \
                         WHERE id = $1 AND squad_owner = $2",
                    )
                    .bind(id(mission_id)?)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn jobs(&self, mission_id: &str) -> Result<Vec<JobRow>, DbError> {
                    let Ok(key) = id(mission_id) else {
                        return Ok(Vec::new());
                    };
                    Ok(sqlx::query_as(&format!(
                        "SELECT {} FROM mission_jobs WHERE mission_id = $1 ORDER BY step",
                        job_columns()
                    ))
                    .bind(key)
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn unpublished(
                    &self,
                    owner: &str,
                    limit: u32,
                ) -> Result<Vec<StoredEvent>, DbError> {
                    let sql = format!(
                        "SELECT {} FROM mission_events e JOIN active_missions m \
                         ON m.id = e.mission_id WHERE e.published_at IS NULL \
                         AND (m.squad_owner = $1 OR m.squad_owner IS NULL) \
                         ORDER BY e.seq LIMIT $2",
                        event_columns("e")
                    );
                    Ok(sqlx::query_as(&sql)
                        .bind(owner)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn mark_published(&self, seqs: &[i64], at: &str) -> Result<(), DbError> {
                    for chunk in seqs.chunks(crate::db::CHUNK) {
                        let mut update = sqlx::QueryBuilder::<Db>::new(
                            "UPDATE mission_events SET published_at = ",
                        );
                        update.push_bind(at.to_owned());
                        update.push(" WHERE published_at IS NULL AND seq IN (");
                        let mut list = update.separated(", ");
                        for seq in chunk {
                            list.push_bind(*seq);
                        }
                        update.push(")");
                        update.build().execute(&self.pool).await?;
                    }
                    Ok(())
                }

                async fn mission_events(
                    &self,
                    mission_id: &str,
                    after_seq: i64,
                    limit: u32,
                ) -> Result<Vec<StoredEvent>, DbError> {
                    let Ok(key) = id(mission_id) else {
                        return Ok(Vec::new());
                    };
                    let sql = format!(
                        "SELECT {} FROM mission_events e WHERE e.mission_id = $1 \
                         AND e.seq > $2 ORDER BY e.seq LIMIT $3",
                        event_columns("e")
                    );
                    Ok(sqlx::query_as(&sql)
                        .bind(key)
                        .bind(after_seq)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn mission_views(
                    &self,
                    after: Option<&After>,
                    limit: u32,
                ) -> Result<Vec<MissionView>, DbError> {
                    // The mission row holds its usage; progress, plan length and run record
                    // come along in the same query, so a page costs one round trip.
                    let sql = format!(
                        "SELECT m.*, \
                         (SELECT COUNT(*) FROM mission_jobs j WHERE j.mission_id = m.id \
                          AND j.step > 0 AND j.status = 'Done') AS steps_done, \
                         CAST(COALESCE((SELECT {PLAN_STEPS} FROM template_versions v \
                          WHERE v.template_id = m.template_id \
                          AND v.version = m.template_version), 0) AS BIGINT) AS plan_steps, \
                         r.template_id AS run_template_id, \
                         r.template_version AS run_template_version, r.status AS run_status, \
                         r.profit_cents AS run_profit_cents, r.gas_cents AS run_gas_cents, \
                         r.steps AS run_steps, r.duration_ms AS run_duration_ms, \
                         r.failure_reason AS run_failure_reason, \
                         r.started_at AS run_started_at, r.ended_at AS run_ended_at \
                         FROM active_missions m LEFT JOIN mission_runs r ON r.mission_id = m.id \
                         WHERE {MISSIONS_AFTER} ORDER BY m.created_at DESC, m.id DESC LIMIT $3"
                    );
                    let (at, key) = keyset(after)?;
                    let rows = sqlx::query(&sql)
                        .bind(at)
                        .bind(key)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                    rows.iter().map(mission_view).collect()
                }

                async fn run_record(&self, mission_id: &str) -> Result<Option<RunRecord>, DbError> {
                    let Ok(key) = id(mission_id) else {
                        return Ok(None);
                    };
                    // CAST reads a Postgres UUID as the text SQLite stores.
                    Ok(sqlx::query_as::<_, RunRecord>(
                        "SELECT CAST(mission_id AS TEXT) AS mission_id, template_id, \
                         template_version, status, profit_cents, gas_cents, steps, duration_ms, \
                         failure_reason, started_at, ended_at FROM mission_runs \
                         WHERE mission_id = $1",
                    )
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
                }

                async fn topics_to_delete(
                    &self,
                    before: &str,
                    limit: u32,
                ) -> Result<Vec<String>, DbError> {
                    Ok(sqlx::query_scalar(
                        "SELECT CAST(mission_id AS TEXT) FROM mission_runs \
                         WHERE topics_deleted_at IS NULL AND ended_at <= $1 \
                         ORDER BY ended_at LIMIT $2",
                    )
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn topics_deleted(&self, mission_id: &str, at: &str) -> Result<(), DbError> {
                    sqlx::query("UPDATE mission_runs SET topics_deleted_at = $2 WHERE mission_id = $1")
                        .bind(id(mission_id)?)
                        .bind(at)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                async fn revoke_tokens(
                    &self,
                    mission_id: &str,
                    dept: Option<i64>,
                ) -> Result<u64, DbError> {
                    // Unused exchange codes go with the tokens: each would open a new one.
                    let mut tx = self.write_tx().await?;
                    sqlx::query(
                        "DELETE FROM token_codes WHERE mission_id = $1 \
                         AND ($2 IS NULL OR dept = $2)",
                    )
                    .bind(id(mission_id)?)
                    .bind(dept)
                    .execute(&mut *tx)
                    .await?;
                    let revoked = sqlx::query(
                        "DELETE FROM gateway_tokens WHERE mission_id = $1 \
                         AND ($2 IS NULL OR dept = $2)",
                    )
                    .bind(id(mission_id)?)
                    .bind(dept)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    tx.commit().await?;
                    Ok(revoked)
                }
            }
        }
    };
}

pub(crate) use squad_store;
