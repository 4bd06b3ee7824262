//! The gateway's and the audit log's reads: tokens, running-mission counters, approvals and
//! the audit chain; the writes go through the ledger (`db::ledger`). The SQL is the same on
//! both backends (`$n` parameters work in SQLite too), so one macro writes both
//! implementations; they differ only in the id type Postgres stores as UUID.

/// Expands to the [`crate::gateway::store::GatewayStore`] and
/// [`crate::audit::store::AuditStore`] implementations for one backend.
macro_rules! gateway_store {
    ($repo:ty) => {
        mod gateway_sql {
            use sqlx::Row as _;

            use super::ledger_sql::{APPROVAL_SELECT, AUDIT_COLUMNS, CALL_SELECT};
            use super::*;
            use crate::audit::store::AuditStore;
            use crate::audit::{
                AuditEntry, AuditHead, AuditPage, AuditQuery, ExportedKey, Sealer, SignedEntry,
            };
            use crate::db::DbError;
            use crate::gateway::ledger::{ApprovalRow, CallRecord, LedgerOp, LedgerResult};
            use crate::gateway::store::{
                GatewayStore, Grant, MissionRow, MissionUsage, NewToken, NewTokenCode, TokenRow,
            };
            use crate::perimeter::MissionStatus;
            use crate::store::After;

            /// The log's columns as `SignedEntry` reads them (policy ids are JSON text).
            fn audit_select() -> String {
                AUDIT_COLUMNS.replace(
                    "policy_ids",
                    &format!("policy_ids{JSON_READ} AS policy_ids"),
                )
            }

            #[async_trait::async_trait]
            impl GatewayStore for $repo {
                async fn ledger(
                    &self,
                    ops: Vec<LedgerOp>,
                    sealer: &Sealer,
                ) -> Result<Vec<LedgerResult>, DbError> {
                    super::ledger_sql::apply(self, ops, sealer).await
                }

                async fn call_record(
                    &self,
                    mission_id: &str,
                    key: &str,
                ) -> Result<Option<CallRecord>, DbError> {
                    let Ok(mission) = id(mission_id) else {
                        return Ok(None);
                    };
                    Ok(sqlx::query_as::<_, CallRecord>(&format!(
                        "{CALL_SELECT} WHERE call_key = $1 AND mission_id = $2"
                    ))
                    .bind(key)
                    .bind(mission)
                    .fetch_optional(&self.pool)
                    .await?)
                }

                async fn stale_calls(
                    &self,
                    before: &str,
                    limit: u32,
                ) -> Result<Vec<CallRecord>, DbError> {
                    Ok(sqlx::query_as::<_, CallRecord>(&format!(
                        "{CALL_SELECT} WHERE state = 'Running' AND reserved_at < $1 \
                         ORDER BY reserved_at LIMIT $2"
                    ))
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn token(&self, token_hash: &str) -> Result<Option<TokenRow>, DbError> {
                    // CAST reads a Postgres UUID as the text SQLite stores.
                    Ok(sqlx::query_as::<_, TokenRow>(
                        "SELECT CAST(t.mission_id AS TEXT) AS mission_id, t.dept, m.status, \
                         m.expires_at FROM gateway_tokens t \
                         JOIN active_missions m ON m.id = t.mission_id WHERE t.token_hash = $1",
                    )
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?)
                }

                async fn insert_token(&self, token: &NewToken<'_>) -> Result<(), DbError> {
                    sqlx::query(
                        "INSERT INTO gateway_tokens (token_hash, mission_id, dept, issued_by, \
                         issued_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(token.hash)
                    .bind(id(token.mission_id)?)
                    .bind(token.dept)
                    .bind(token.issued_by)
                    .bind(token.issued_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn insert_token_code(&self, code: &NewTokenCode<'_>) -> Result<(), DbError> {
                    sqlx::query(
                        "INSERT INTO token_codes (code_hash, mission_id, dept, issued_at, \
                         expires_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(code.hash)
                    .bind(id(code.mission_id)?)
                    .bind(code.dept)
                    .bind(code.issued_at)
                    .bind(code.expires_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn use_token_code(
                    &self,
                    code_hash: &str,
                    now: &str,
                ) -> Result<Option<(String, i64)>, DbError> {
                    Ok(sqlx::query_as::<_, (String, i64)>(
                        "UPDATE token_codes SET used_at = $2 WHERE code_hash = $1 \
                         AND used_at IS NULL AND expires_at > $2 \
                         RETURNING CAST(mission_id AS TEXT), dept",
                    )
                    .bind(code_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?)
                }

                async fn mission_row(
                    &self,
                    mission_id: &str,
                ) -> Result<Option<MissionRow>, DbError> {
                    let Ok(key) = id(mission_id) else {
                        return Ok(None);
                    };
                    let Some(row) = sqlx::query(
                        "SELECT id, template_id, template_version, template_name, sector, \
                         approval_mode, threshold_cents, status, expires_at \
                         FROM active_missions WHERE id = $1",
                    )
                    .bind(key.clone())
                    .fetch_optional(&self.pool)
                    .await?
                    else {
                        return Ok(None);
                    };
                    let grants: Vec<Grant> = sqlx::query_as(
                        "SELECT sector, granted_by, granted_at FROM mission_connections \
                         WHERE mission_id = $1 ORDER BY sector",
                    )
                    .bind(key)
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(Some(MissionRow {
                        id: get_id(&row, "id")?,
                        template_id: row.try_get("template_id")?,
                        template_version: row.try_get("template_version")?,
                        template_name: row.try_get("template_name")?,
                        sector: row.try_get("sector")?,
                        approval_mode: crate::db::approval_mode(
                            &row.try_get::<String, _>("approval_mode")?,
                        )?,
                        threshold_cents: row.try_get("threshold_cents")?,
                        status: MissionStatus::parse(&row.try_get::<String, _>("status")?)?,
                        expires_at: row.try_get("expires_at")?,
                        grants,
                    }))
                }

                async fn start_mission(
                    &self,
                    mission_id: &str,
                    started_at: &str,
                    expires_at: &str,
                ) -> Result<bool, DbError> {
                    Ok(sqlx::query(
                        "UPDATE active_missions SET status = 'Running', started_at = $2, \
                         expires_at = $3 WHERE id = $1 AND status = 'Ready'",
                    )
                    .bind(id(mission_id)?)
                    .bind(started_at)
                    .bind(expires_at)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                        == 1)
                }

                async fn mission_usage(
                    &self,
                    mission_id: &str,
                ) -> Result<Option<MissionUsage>, DbError> {
                    let Ok(key) = id(mission_id) else {
                        return Ok(None);
                    };
                    Ok(sqlx::query_as::<_, MissionUsage>(
                        "SELECT status, steps_used, max_steps, reserved_cents, spent_cents, \
                         budget_cents, ttl_seconds, started_at, expires_at \
                         FROM active_missions WHERE id = $1",
                    )
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
                }

                async fn approvals(
                    &self,
                    pending_only: bool,
                    now: &str,
                    after: Option<&After>,
                    limit: u32,
                ) -> Result<Vec<ApprovalRow>, DbError> {
                    let sql = format!(
                        "{APPROVAL_SELECT} WHERE ($1 = 0 OR (a.status = 'Pending' \
                         AND (a.expires_at IS NULL OR a.expires_at > $2))) \
                         AND ($3 IS NULL OR a.requested_at < $3 \
                         OR (a.requested_at = $3 AND a.id < $4)) \
                         ORDER BY a.requested_at DESC, a.id DESC LIMIT $5"
                    );
                    let (at, key) = match after {
                        Some(after) => (Some(after.at.as_str()), Some(id(&after.id)?)),
                        None => (None, None),
                    };
                    Ok(sqlx::query_as(&sql)
                        .bind(i64::from(pending_only))
                        .bind(now)
                        .bind(at)
                        .bind(key)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn pending_approvals(&self, now: &str) -> Result<i64, DbError> {
                    Ok(sqlx::query_scalar(
                        "SELECT COUNT(*) FROM approvals WHERE status = 'Pending' \
                         AND (expires_at IS NULL OR expires_at > $1)",
                    )
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await?)
                }

                async fn approval(
                    &self,
                    approval_id: &str,
                ) -> Result<Option<ApprovalRow>, DbError> {
                    let Ok(key) = id(approval_id) else {
                        return Ok(None);
                    };
                    Ok(
                        sqlx::query_as(&format!("{APPROVAL_SELECT} WHERE a.id = $1"))
                            .bind(key)
                            .fetch_optional(&self.pool)
                            .await?,
                    )
                }
            }

            #[async_trait::async_trait]
            impl AuditStore for $repo {
                async fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, DbError> {
                    let limit = query.limit.clamp(1, 1000);
                    let sql = format!(
                        "SELECT {} FROM audit_log \
                         WHERE ($1 IS NULL OR mission_id = $1) AND ($2 IS NULL OR sector = $2) \
                         AND ($3 IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4",
                        audit_select()
                    );
                    let mut entries: Vec<AuditEntry> = sqlx::query_as(&sql)
                        .bind(&query.mission_id)
                        .bind(&query.sector)
                        .bind(query.before_seq)
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&self.pool)
                        .await?;
                    let has_more = entries.len() > limit as usize;
                    entries.truncate(limit as usize);
                    Ok(AuditPage { entries, has_more })
                }

                async fn audit_range(
                    &self,
                    after_seq: i64,
                    limit: u32,
                ) -> Result<Vec<SignedEntry>, DbError> {
                    let sql = format!(
                        "SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                        audit_select()
                    );
                    Ok(sqlx::query_as(&sql)
                        .bind(after_seq)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn audit_head(&self) -> Result<AuditHead, DbError> {
                    Ok(sqlx::query_as::<_, AuditHead>(
                        "SELECT seq, hash, key_id, signature FROM audit_head WHERE id = 1",
                    )
                    .fetch_one(&self.pool)
                    .await?)
                }

                async fn audit_keys(&self) -> Result<Vec<ExportedKey>, DbError> {
                    Ok(sqlx::query_as::<_, ExportedKey>(
                        "SELECT key_id, public_key FROM audit_keys ORDER BY created_at",
                    )
                    .fetch_all(&self.pool)
                    .await?)
                }

                async fn register_key(&self, key: &ExportedKey, now: &str) -> Result<(), DbError> {
                    sqlx::query(
                        "INSERT INTO audit_keys (key_id, public_key, created_at) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                    .bind(&key.key_id)
                    .bind(&key.public_key)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use gateway_store;
