//! The shared backend: a Postgres server, full-text search through a weighted tsvector.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};

use super::{
    split_writes, summaries, Backend, DbError, ImportBatches, ImportRow, Repository, SummaryRow,
    SUMMARY_COLUMNS,
};
use crate::registry::import::{ImportItem, ImportStatus};
use crate::registry::search::{pg_tsquery, query_words, SearchQuery, TemplateSummary};

/// Postgres implementation of [`Repository`].
#[derive(Debug, Clone)]
pub struct PostgresRepository {
    pool: PgPool,
}

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
    conn: &mut sqlx::PgConnection,
    rows: &[ImportRow],
    outcomes: &[(ImportStatus, i64)],
    now: &Stamp,
) -> Result<(), DbError> {
    let (new, written) = split_writes(rows, outcomes);
    templates_sql::insert_new(conn, &new, now).await?;
    templates_sql::update_changed(conn, rows, outcomes, now).await?;
    templates_sql::insert_versions(conn, &written, now).await
}

impl PostgresRepository {
    /// Writes an import in one transaction; an advisory lock serialises importers.
    async fn import_all(&self, batches: ImportBatches) -> Result<Vec<ImportItem>, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(IMPORT_LOCK)
            .execute(&mut *tx)
            .await?;
        let items = templates_sql::write_batches(&mut tx, batches, &Utc::now()).await?;
        tx.commit().await?;
        Ok(items)
    }

    /// One page of listing rows.
    async fn search_rows(&self, query: &SearchQuery) -> Result<Vec<TemplateSummary>, DbError> {
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

    /// The facet counts' query up to its grouping: every template the text and risk match.
    fn facet_query(query: &SearchQuery) -> QueryBuilder<'static, Postgres> {
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
        qb
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

/// Mission, approval and request ids are UUIDs in Postgres; anything else names no row.
fn gateway_id(value: &str) -> Result<uuid::Uuid, DbError> {
    uuid::Uuid::parse_str(value).map_err(|_| DbError::Corrupt(format!("{value} is not a UUID")))
}

crate::db::backend!(db = sqlx::Postgres, id = uuid::Uuid, to_id = gateway_id);

/// Times are `timestamptz` columns.
type Stamp = DateTime<Utc>;

/// The column type of stored template content.
const JSON_CAST: &str = "::jsonb";

/// Reads a JSON text column as JSON for `#[sqlx(json)]` fields, keeping its text as written.
const JSON_READ: &str = "::json";

/// Reads stored template content as text.
const JSON_TEXT: &str = "::text";

/// How many plan steps the template version aliased `v` has (NULL when it has no plan).
const PLAN_STEPS: &str = "jsonb_array_length(v.content -> 'ruleset' -> 'plan')";

fn stamp(text: &str) -> Result<Stamp, DbError> {
    Ok(DateTime::parse_from_rfc3339(text)
        .map_err(|e| DbError::Corrupt(format!("time {text}: {e}")))?
        .with_timezone(&Utc))
}

fn stamp_text(row: &DbRow, column: &str) -> Result<String, DbError> {
    let at: Stamp = row.try_get(column)?;
    Ok(at.to_rfc3339_opts(SecondsFormat::Micros, true))
}

impl PostgresRepository {
    /// A write transaction; the chain head's row lock (taken first) orders writers.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, DbError> {
        Ok(self.pool.begin().await?)
    }
}

crate::db::stores!(
    PostgresRepository,
    lock_head = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE"
);
