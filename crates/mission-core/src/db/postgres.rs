//! The shared backend: a Postgres server, full-text search through a weighted tsvector.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{
    approval_mode, classify, items, next_rows, split_writes, summaries, Backend, DbError,
    ImportBatches, ImportRow, Repository, SummaryRow, CHUNK,
};
use crate::perimeter::store::MissionStore;
use crate::perimeter::{ActiveMission, MissionStatus, NewMission};
use crate::registry::import::{ImportItem, ImportStatus};
use crate::registry::search::{
    pg_tsquery, query_words, FacetRow, SearchQuery, TemplateSummary, VersionInfo,
};
use crate::registry::store::RegistryStore;
use crate::registry::Perimeter;

fn mission(row: &PgRow) -> Result<ActiveMission, DbError> {
    let id: uuid::Uuid = row.try_get("id")?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    let connections: sqlx::types::Json<Vec<String>> = row.try_get("connections")?;
    Ok(ActiveMission {
        id: id.to_string(),
        template_id: row.try_get("template_id")?,
        template_name: row.try_get("template_name")?,
        template_version: row.try_get("template_version")?,
        logic_hash: row.try_get("logic_hash")?,
        sector: row.try_get("sector")?,
        perimeter: Perimeter {
            budget_cents: row.try_get("budget_cents")?,
            ttl_seconds: row.try_get("ttl_seconds")?,
            max_steps: row.try_get("max_steps")?,
            approval_mode: approval_mode(row.try_get("approval_mode")?)?,
            threshold_cents: row.try_get("threshold_cents")?,
        },
        connections: connections.0,
        status: MissionStatus::parse(row.try_get("status")?)?,
        created_at: created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
    })
}

/// Postgres implementation of [`Repository`].
#[derive(Debug, Clone)]
pub struct PostgresRepository {
    pool: PgPool,
}

const SUMMARY_COLUMNS: &str = "t.id, t.name, t.sector, t.sector_name, t.category, t.goal, \
     t.current_version, t.logic_hash, t.baseline_risk, s.risk_level, s.est_roi, \
     COALESCE(s.runs, 0) AS runs, COALESCE(s.top_performance, FALSE) AS top_performance";

/// Serialises importers across every app instance sharing the server.
const IMPORT_LOCK: i64 = 0x4d43_0001;

impl PostgresRepository {
    /// Connects and applies migrations.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        Ok(Self { pool })
    }

    /// The connection pool, for modules that add their own tables.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

async fn current_in(
    conn: &mut sqlx::PgConnection,
    ids: &[String],
) -> Result<HashMap<String, (i64, String)>, DbError> {
    let rows =
        sqlx::query("SELECT id, current_version, content_hash FROM templates WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                (
                    row.try_get("current_version")?,
                    row.try_get("content_hash")?,
                ),
            ))
        })
        .collect()
}

/// Writes one batch's template and version rows.
async fn write_rows(
    tx: &mut sqlx::PgConnection,
    rows: &[ImportRow],
    outcomes: &[(ImportStatus, i64)],
    now: DateTime<Utc>,
) -> Result<(), DbError> {
    let (new, written) = split_writes(rows, outcomes);
    for chunk in new.chunks(CHUNK) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO templates (id, name, sector, sector_name, category, goal, baseline_risk, \
             current_version, logic_hash, content_hash, created_at, updated_at) ",
        );
        qb.push_values(chunk, |mut b, r| {
            b.push_bind(&r.id)
                .push_bind(&r.name)
                .push_bind(&r.sector)
                .push_bind(&r.sector_name)
                .push_bind(&r.category)
                .push_bind(&r.goal)
                .push_bind(r.baseline_risk.as_str())
                .push_bind(1_i64)
                .push_bind(&r.logic_hash)
                .push_bind(&r.content_hash)
                .push_bind(now)
                .push_bind(now);
        });
        qb.build().execute(&mut *tx).await?;
    }
    for (r, (status, version)) in rows.iter().zip(outcomes) {
        if *status == ImportStatus::Updated {
            sqlx::query(
                "UPDATE templates SET name = $1, sector = $2, sector_name = $3, category = $4, \
                 goal = $5, baseline_risk = $6, current_version = $7, logic_hash = $8, \
                 content_hash = $9, updated_at = $10 WHERE id = $11",
            )
            .bind(&r.name)
            .bind(&r.sector)
            .bind(&r.sector_name)
            .bind(&r.category)
            .bind(&r.goal)
            .bind(r.baseline_risk.as_str())
            .bind(version)
            .bind(&r.logic_hash)
            .bind(&r.content_hash)
            .bind(now)
            .bind(&r.id)
            .execute(&mut *tx)
            .await?;
        }
    }
    for chunk in written.chunks(CHUNK) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO template_versions (template_id, version, content, logic_hash, content_hash, \
             source, imported_at) ",
        );
        qb.push_values(chunk, |mut b, (r, v)| {
            b.push_bind(&r.id)
                .push_bind(*v)
                .push_bind(&r.content)
                .push_unseparated("::jsonb")
                .push_bind(&r.logic_hash)
                .push_bind(&r.content_hash)
                .push_bind(&r.source)
                .push_bind(now);
        });
        qb.build().execute(&mut *tx).await?;
    }
    Ok(())
}

#[async_trait]
impl RegistryStore for PostgresRepository {
    async fn current_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String)>, DbError> {
        let mut conn = self.pool.acquire().await?;
        current_in(&mut conn, ids).await
    }

    async fn import(&self, mut batches: ImportBatches) -> Result<Vec<ImportItem>, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(IMPORT_LOCK)
            .execute(&mut *tx)
            .await?;
        let now = Utc::now();
        let mut all_items = Vec::new();
        while let Some(rows) = next_rows(&mut batches).await? {
            let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
            let current = current_in(&mut tx, &ids).await?;
            let outcomes = classify(&rows, &current);
            write_rows(&mut tx, &rows, &outcomes, now).await?;
            all_items.extend(items(&rows, &outcomes));
        }
        tx.commit().await?;
        Ok(all_items)
    }

    async fn search(&self, query: &SearchQuery) -> Result<Vec<TemplateSummary>, DbError> {
        let words = query.text.as_deref().map(query_words).unwrap_or_default();
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS} FROM templates t "));
        qb.push("LEFT JOIN template_stats s ON s.template_id = t.id WHERE TRUE ");
        let tsquery = pg_tsquery(&words, "");
        if !words.is_empty() {
            qb.push("AND t.search @@ to_tsquery('simple', ")
                .push_bind(tsquery)
                .push(")");
        }
        if let Some(sector) = &query.sector {
            qb.push(" AND t.sector = ").push_bind(sector);
        }
        if let Some(category) = &query.category {
            qb.push(" AND t.category = ").push_bind(category);
        }
        if let Some(risk) = query.risk {
            qb.push(" AND COALESCE(s.risk_level, t.baseline_risk) = ")
                .push_bind(risk.as_str());
        }
        if words.is_empty() {
            qb.push(" ORDER BY t.sector_name, t.category, t.name");
        } else {
            // The same order as SQLite: every word in the name, then in the heading (name,
            // category, sector; weights A and B), then anywhere; within a tier shorter names,
            // then earlier imports.
            qb.push(" ORDER BY CASE WHEN t.search @@ to_tsquery('simple', ")
                .push_bind(pg_tsquery(&words, "A"))
                .push(") THEN 0 WHEN t.search @@ to_tsquery('simple', ")
                .push_bind(pg_tsquery(&words, "AB"))
                .push(") THEN 1 ELSE 2 END, length(t.name), t.pk");
        }
        qb.push(" LIMIT ")
            .push_bind(i64::from(query.limit))
            .push(" OFFSET ")
            .push_bind(i64::from(query.offset));
        summaries(
            qb.build_query_as::<SummaryRow>()
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn facets(&self, query: &SearchQuery) -> Result<Vec<FacetRow>, DbError> {
        let words = query.text.as_deref().map(query_words).unwrap_or_default();
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "SELECT t.sector, t.category, COUNT(*) AS count FROM templates t \
             LEFT JOIN template_stats s ON s.template_id = t.id WHERE TRUE",
        );
        if !words.is_empty() {
            qb.push(" AND t.search @@ to_tsquery('simple', ")
                .push_bind(pg_tsquery(&words, ""))
                .push(")");
        }
        if let Some(risk) = query.risk {
            qb.push(" AND COALESCE(s.risk_level, t.baseline_risk) = ")
                .push_bind(risk.as_str());
        }
        qb.push(" GROUP BY t.sector, t.category");
        Ok(qb
            .build_query_as::<FacetRow>()
            .fetch_all(&self.pool)
            .await?)
    }

    async fn summary(&self, id: &str) -> Result<Option<TemplateSummary>, DbError> {
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM templates t \
             LEFT JOIN template_stats s ON s.template_id = t.id WHERE t.id = $1"
        );
        sqlx::query_as::<_, SummaryRow>(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(SummaryRow::into_summary)
            .transpose()
    }

    async fn version_content(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<serde_json::Value>, DbError> {
        Ok(sqlx::query_scalar(
            "SELECT content FROM template_versions WHERE template_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn versions(&self, id: &str) -> Result<Vec<VersionInfo>, DbError> {
        let rows = sqlx::query(
            "SELECT version, logic_hash, source, imported_at FROM template_versions \
             WHERE template_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let at: DateTime<Utc> = r.try_get("imported_at")?;
                Ok(VersionInfo {
                    version: r.try_get("version")?,
                    logic_hash: r.try_get("logic_hash")?,
                    source: r.try_get("source")?,
                    imported_at: at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                })
            })
            .collect()
    }

    async fn count_templates(&self) -> Result<i64, DbError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM templates")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl MissionStore for PostgresRepository {
    async fn insert_mission(
        &self,
        new: &NewMission,
    ) -> Result<(ActiveMission, String, bool), DbError> {
        let m = &new.mission;
        let id = uuid::Uuid::parse_str(&m.id)
            .map_err(|e| DbError::Corrupt(format!("mission id {}: {e}", m.id)))?;
        let created_at = DateTime::parse_from_rfc3339(&m.created_at)
            .map_err(|e| DbError::Corrupt(format!("mission time {}: {e}", m.created_at)))?
            .with_timezone(&Utc);
        // The mission and the grants of its connections are one write.
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO active_missions (id, request_id, request_hash, template_id, \
             template_name, template_version, logic_hash, sector, budget_cents, ttl_seconds, \
             max_steps, approval_mode, threshold_cents, connections, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(id)
        .bind(new.request_id)
        .bind(&new.request_hash)
        .bind(&m.template_id)
        .bind(&m.template_name)
        .bind(m.template_version)
        .bind(&m.logic_hash)
        .bind(&m.sector)
        .bind(m.perimeter.budget_cents)
        .bind(m.perimeter.ttl_seconds)
        .bind(m.perimeter.max_steps)
        .bind(m.perimeter.approval_mode.as_str())
        .bind(m.perimeter.threshold_cents)
        .bind(sqlx::types::Json(&m.connections))
        .bind(m.status.as_str())
        .bind(created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            for sector in &m.connections {
                sqlx::query(
                    "INSERT INTO mission_connections (mission_id, sector, granted_by, granted_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(sector)
                .bind(&new.granted_by)
                .bind(&m.created_at)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        let row = sqlx::query("SELECT * FROM active_missions WHERE request_id = $1")
            .bind(new.request_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((mission(&row)?, row.try_get("request_hash")?, inserted))
    }

    async fn missions(&self, limit: u32) -> Result<Vec<ActiveMission>, DbError> {
        sqlx::query("SELECT * FROM active_missions ORDER BY created_at DESC, id DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(mission)
            .collect()
    }

    async fn mission(&self, id: &str) -> Result<Option<ActiveMission>, DbError> {
        // Mission ids are UUIDs here; anything else names no mission.
        let Ok(key) = gateway_id(id) else {
            return Ok(None);
        };
        sqlx::query("SELECT * FROM active_missions WHERE id = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(mission)
            .transpose()
    }
}

#[async_trait]
impl Repository for PostgresRepository {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Mission and approval ids are UUIDs in Postgres; anything else names no row.
fn gateway_id(value: &str) -> Result<uuid::Uuid, DbError> {
    uuid::Uuid::parse_str(value).map_err(|_| DbError::Corrupt(format!("{value} is not a UUID")))
}

impl PostgresRepository {
    /// A write transaction; the chain head's row lock (taken first) orders writers.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, DbError> {
        Ok(self.pool.begin().await?)
    }
}

crate::db::ledger::ledger_sql!(
    PostgresRepository,
    sqlx::Postgres,
    id = uuid::Uuid,
    to_id = gateway_id,
    lock_head = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
);

crate::db::gateway::gateway_store!(
    PostgresRepository,
    sqlx::Postgres,
    id = uuid::Uuid,
    to_id = gateway_id
);

crate::db::squad::squad_store!(
    PostgresRepository,
    sqlx::Postgres,
    id = uuid::Uuid,
    to_id = gateway_id
);
