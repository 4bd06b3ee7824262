//! The embedded backend: one SQLite file, WAL, foreign keys on, FTS5 for search.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{
    split_writes, summaries, Backend, DbError, ImportBatches, ImportRow, Repository, SummaryRow,
    SUMMARY_COLUMNS,
};
use crate::registry::import::{ImportItem, ImportStatus};
use crate::registry::search::{fts5_query, query_words, SearchQuery, TemplateSummary};

/// SQLite implementation of [`Repository`].
#[derive(Debug, Clone)]
pub struct SqliteRepository {
    pool: SqlitePool,
    /// The checkpoint started after the last import; closing waits for it.
    checkpoint: std::sync::Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl SqliteRepository {
    /// Opens or creates the file, then applies migrations.
    pub async fn open(path: &Path) -> Result<Self, DbError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DbError::Sqlx(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Version rows carry kilobytes of JSON; 16 KiB pages hold several each and cut the
            // per-page work of large imports. Applies when the file is created.
            .page_size(16384)
            // Large imports fit in the page cache instead of spilling mid-transaction.
            .pragma("cache_size", "-32768");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            checkpoint: std::sync::Arc::default(),
        })
    }

    /// The connection pool, for modules that add their own tables.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Appends the sector, category and risk filters (aliases `t` and `s`).
fn push_filters(qb: &mut QueryBuilder<'_, Sqlite>, query: &SearchQuery) {
    if let Some(sector) = &query.sector {
        qb.push(" AND t.sector = ").push_bind(sector.clone());
    }
    if let Some(category) = &query.category {
        qb.push(" AND t.category = ").push_bind(category.clone());
    }
    if let Some(risk) = query.risk {
        qb.push(" AND COALESCE(s.risk_level, t.baseline_risk) = ")
            .push_bind(risk.as_str());
    }
}

/// Where each search tier looks for every word: the name, then the heading (name, category,
/// sector), then anywhere. Each tier holds the matches the tier before it does not.
const TIERS: [&str; 3] = [
    "{name}",
    "{name category sector_name}",
    "{name goal category sector_name}",
];

/// The index rowid is `(name length << 32) | pk`; this recovers the pk.
const PK_MASK: i64 = 0xFFFF_FFFF;

/// The FTS5 expression for one tier of a query's words.
fn tier_query(words: &str, tier: usize) -> String {
    match tier.checked_sub(1).and_then(|below| TIERS.get(below)) {
        None => format!("{} : ({words})", TIERS[0]),
        Some(above) => format!("{} : ({words}) NOT ({above} : ({words}))", TIERS[tier]),
    }
}

/// FROM and WHERE of a full-text match with the filters; the rowid order is the rank.
fn push_match(qb: &mut QueryBuilder<'_, Sqlite>, fts: String, query: &SearchQuery) {
    qb.push(format!(
        " FROM template_search JOIN templates t ON t.pk = (template_search.rowid & {PK_MASK}) \
         LEFT JOIN template_stats s ON s.template_id = t.id WHERE template_search MATCH "
    ))
    .push_bind(fts);
    push_filters(qb, query);
}

impl SqliteRepository {
    /// One page of a tier, best first: shorter names, then earlier imports.
    async fn tier_page(
        &self,
        fts: String,
        query: &SearchQuery,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<TemplateSummary>, DbError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS}"));
        push_match(&mut qb, fts, query);
        qb.push(" ORDER BY template_search.rowid LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        summaries(
            qb.build_query_as::<SummaryRow>()
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn count_matches(&self, fts: String, query: &SearchQuery) -> Result<i64, DbError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT COUNT(*)");
        push_match(&mut qb, fts, query);
        Ok(qb.build_query_scalar().fetch_one(&self.pool).await?)
    }
}

async fn current_in(
    conn: &mut sqlx::SqliteConnection,
    ids: &[String],
) -> Result<HashMap<String, (i64, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT id, current_version, content_hash FROM templates \
         WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(sqlx::types::Json(ids))
    .fetch_all(&mut *conn)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        out.insert(
            row.try_get("id")?,
            (
                row.try_get("current_version")?,
                row.try_get("content_hash")?,
            ),
        );
    }
    Ok(out)
}

/// SQLite's default auto-checkpoint size, restored after an import.
const AUTO_CHECKPOINT_PAGES: u32 = 1000;

/// Writes an import in one transaction, batch by batch (see [`Repository::import`]).
async fn import_batches(
    conn: &mut sqlx::SqliteConnection,
    batches: ImportBatches,
) -> Result<Vec<ImportItem>, DbError> {
    // IMMEDIATE takes the write lock up front, so two importers cannot both classify
    // against the same state and then collide on version numbers.
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let items = templates_sql::write_batches(&mut tx, batches, &Utc::now().to_rfc3339()).await?;
    tx.commit().await?;
    Ok(items)
}

/// Writes one batch: template rows, their search index entries and version rows.
async fn write_rows(
    tx: &mut sqlx::SqliteConnection,
    rows: &[ImportRow],
    outcomes: &[(ImportStatus, i64)],
    now: &Stamp,
) -> Result<(), DbError> {
    let (new, written) = split_writes(rows, outcomes);
    let last_pk: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(pk), 0) FROM templates")
        .fetch_one(&mut *tx)
        .await?;
    templates_sql::insert_new(tx, &new, now).await?;
    let updated: Vec<&str> = rows
        .iter()
        .zip(outcomes)
        .filter(|(_, (status, _))| *status == ImportStatus::Updated)
        .map(|(r, _)| r.heading.id.as_str())
        .collect();
    if !updated.is_empty() {
        // The index key holds the name length, so a changed template leaves under its old
        // key and comes back under its new one below.
        sqlx::query(
            "DELETE FROM template_search WHERE rowid IN (SELECT (length(name) << 32) | pk \
             FROM templates WHERE id IN (SELECT value FROM json_each(?)))",
        )
        .bind(sqlx::types::Json(&updated))
        .execute(&mut *tx)
        .await?;
    }
    templates_sql::update_changed(tx, rows, outcomes, now).await?;
    if !new.is_empty() || !updated.is_empty() {
        // One statement in key order: FTS5 flushes its pending data whenever a key arrives
        // out of order, so sorted input builds one index segment per batch.
        sqlx::query(
            "INSERT INTO template_search (rowid, name, goal, category, sector_name) \
             SELECT (length(name) << 32) | pk, name, goal, category, sector_name FROM ( \
                 SELECT * FROM templates WHERE pk > ? \
                 UNION ALL \
                 SELECT * FROM templates WHERE id IN (SELECT value FROM json_each(?)) \
             ) ORDER BY 1",
        )
        .bind(last_pk)
        .bind(sqlx::types::Json(&updated))
        .execute(&mut *tx)
        .await?;
    }
    templates_sql::insert_versions(tx, &written, now).await
}

impl SqliteRepository {
    /// Writes an import in one transaction, checkpointing the WAL afterwards in the
    /// background.
    async fn import_all(&self, batches: ImportBatches) -> Result<Vec<ImportItem>, DbError> {
        let mut conn = self.pool.acquire().await?;
        // A large import fills the WAL far past the auto-checkpoint size, and the checkpoint
        // would then run inside the commit, copying everything into the main file before the
        // operator sees the result. The commit is complete without it, so the checkpoint runs
        // in the background instead.
        sqlx::query("PRAGMA wal_autocheckpoint = 0")
            .execute(&mut *conn)
            .await?;
        let result = import_batches(&mut conn, batches).await;
        let restored = sqlx::query(&format!(
            "PRAGMA wal_autocheckpoint = {AUTO_CHECKPOINT_PAGES}"
        ))
        .execute(&mut *conn)
        .await;
        if restored.is_err() {
            // Never hand a connection without auto-checkpoints back to the pool.
            conn.close_on_drop();
        }
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                // The next auto-checkpoint catches up; nothing is lost meanwhile.
                tracing::warn!("background WAL checkpoint failed: {e}");
            }
        });
        *self.checkpoint.lock().await = Some(task);
        result
    }

    /// One page of listing rows.
    async fn search_rows(&self, query: &SearchQuery) -> Result<Vec<TemplateSummary>, DbError> {
        let words = query.text.as_deref().map(query_words).unwrap_or_default();
        if words.is_empty() {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "SELECT {SUMMARY_COLUMNS} FROM templates t \
                 LEFT JOIN template_stats s ON s.template_id = t.id WHERE 1 = 1"
            ));
            push_filters(&mut qb, query);
            qb.push(" ORDER BY t.sector_name, t.category, t.name LIMIT ")
                .push_bind(i64::from(query.limit))
                .push(" OFFSET ")
                .push_bind(i64::from(query.offset));
            return summaries(
                qb.build_query_as::<SummaryRow>()
                    .fetch_all(&self.pool)
                    .await?,
            );
        }
        // Tier by tier until the page is full. A tier that returns nothing while rows are
        // still to be skipped is counted, so the offset carries over to the next tier exactly.
        let words = fts5_query(&words);
        let mut limit = i64::from(query.limit);
        let mut skip = i64::from(query.offset);
        let mut hits = Vec::new();
        for tier in 0..TIERS.len() {
            let page = self
                .tier_page(tier_query(&words, tier), query, limit, skip)
                .await?;
            if page.is_empty() && skip > 0 {
                skip = (skip - self.count_matches(tier_query(&words, tier), query).await?).max(0);
            } else {
                skip = 0;
            }
            limit -= page.len() as i64;
            hits.extend(page);
            if limit == 0 {
                break;
            }
        }
        Ok(hits)
    }

    /// The facet counts' query up to its grouping: every template the text and risk match.
    fn facet_query(query: &SearchQuery) -> QueryBuilder<'static, Sqlite> {
        let words = query.text.as_deref().map(query_words).unwrap_or_default();
        let filters = SearchQuery {
            risk: query.risk,
            ..SearchQuery::default()
        };
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT t.sector, t.category, COUNT(*) AS count");
        if words.is_empty() {
            qb.push(
                " FROM templates t LEFT JOIN template_stats s ON s.template_id = t.id WHERE 1 = 1",
            );
            push_filters(&mut qb, &filters);
        } else {
            // The widest tier holds every match.
            let everywhere = format!("{} : ({})", TIERS[TIERS.len() - 1], fts5_query(&words));
            push_match(&mut qb, everywhere, &filters);
        }
        qb
    }
}

#[async_trait]
impl Repository for SqliteRepository {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn close(&self) {
        if let Some(task) = self.checkpoint.lock().await.take() {
            // Let the checkpoint finish so the file is compact when the app exits.
            let _ = task.await;
        }
        self.pool.close().await;
    }
}

/// Mission, approval and request ids are stored as text in SQLite.
fn gateway_id(value: &str) -> Result<String, DbError> {
    Ok(value.to_owned())
}

crate::db::backend!(db = sqlx::Sqlite, id = String, to_id = gateway_id);

/// Times are RFC 3339 text.
type Stamp = String;

/// Template content is stored as text.
const JSON_CAST: &str = "";

/// JSON is stored and read as text.
const JSON_READ: &str = "";

/// Template content is already text.
const JSON_TEXT: &str = "";

/// How many plan steps the template version aliased `v` has (NULL when it has no plan).
const PLAN_STEPS: &str = "json_array_length(v.content, '$.ruleset.plan')";

fn stamp(text: &str) -> Result<Stamp, DbError> {
    Ok(text.to_owned())
}

fn stamp_text(row: &DbRow, column: &str) -> Result<String, DbError> {
    Ok(row.try_get(column)?)
}

impl SqliteRepository {
    /// A write transaction that holds SQLite's write lock from its first statement, so a batch
    /// never has to upgrade a read lock (which can fail under contention instead of waiting).
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, DbError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

crate::db::stores!(
    SqliteRepository,
    lock_head = "SELECT seq, hash FROM audit_head WHERE id = 1"
);
