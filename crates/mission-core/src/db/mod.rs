//! Storage: one repository interface, one implementation per backend (SQLite, Postgres).

pub mod gateway;
pub mod ledger;
pub mod missions;
mod postgres;
mod sqlite;
pub mod squad;
pub mod templates;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::audit::store::AuditStore;
use crate::gateway::store::{GatewayRepository, GatewayStore};
use crate::perimeter::store::MissionStore;
use crate::registry::search::{TemplateHeading, TemplateSummary};
use crate::registry::store::RegistryStore;
use crate::registry::RiskLevel;
use crate::squad::store::{EngineRepository, SquadStore};

pub use postgres::PostgresRepository;
pub use sqlite::SqliteRepository;

pub use crate::registry::import::{ImportBatch, ImportBatches, ImportRow};
pub use crate::store::{Backend, DbError, APP_IDENTIFIER};

/// Declares, in a backend's module, the items every shared SQL macro (`ledger_sql!`,
/// `gateway_store!`, `squad_store!`, `missions_store!`, `templates_sql!`, `registry_store!`) builds on: the
/// database, its transaction and row types, and the type it stores mission, approval and request
/// ids as, with `to_id` converting the core's text form into it. The backend also declares
/// `Stamp`, `stamp` and `stamp_text` for the way it stores times, and `JSON_READ`, how a JSON text
/// column is read for `#[sqlx(json)]` fields.
macro_rules! backend {
    (db = $db:ty, id = $id:ty, to_id = $to_id:path) => {
        type Db = $db;
        type Tx<'a> = sqlx::Transaction<'a, $db>;
        type DbRow = <$db as sqlx::Database>::Row;
        type Conn = <$db as sqlx::Database>::Connection;
        /// How the backend stores ids (UUID on Postgres, text on SQLite).
        type StoredId = $id;

        fn id(value: &str) -> Result<$id, DbError> {
            $to_id(value)
        }

        fn get_id(row: &DbRow, column: &str) -> Result<String, DbError> {
            Ok(sqlx::Row::try_get::<$id, _>(row, column)?.to_string())
        }
    };
}
pub(crate) use backend;

/// Expands to every domain's storage for one backend, from the shared SQL macros; `lock_head`
/// is how the backend reads the audit chain's head for a write.
macro_rules! stores {
    ($repo:ty, lock_head = $lock_head:literal) => {
        crate::db::ledger::ledger_sql!($repo, lock_head = $lock_head);
        crate::db::gateway::gateway_store!($repo);
        crate::db::squad::squad_store!($repo);
        crate::db::missions::missions_store!($repo);
        crate::db::templates::templates_sql!();
        crate::db::templates::registry_store!($repo);
    };
}
pub(crate) use stores;

/// The next rows of an import; `None` once the importer asked to commit.
async fn next_rows(batches: &mut ImportBatches) -> Result<Option<Vec<ImportRow>>, DbError> {
    match batches.recv().await {
        Some(ImportBatch::Rows(rows)) => Ok(Some(rows)),
        Some(ImportBatch::Commit) => Ok(None),
        None => Err(DbError::ImportAbandoned),
    }
}

/// Everything the core stores: every domain's storage, with one implementation per backend.
#[async_trait]
pub trait Repository:
    RegistryStore
    + MissionStore
    + AuditStore
    + GatewayStore
    + SquadStore
    + GatewayRepository
    + EngineRepository
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Closes the connections.
    async fn close(&self);
}

/// Opens (creating if needed) the database a URL names and applies migrations.
/// `postgres://…` selects Postgres; `sqlite://PATH`, `sqlite:PATH` or a bare path selects SQLite.
pub async fn open(url: &str) -> Result<Arc<dyn Repository>, DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresRepository::connect(url).await?));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(DbError::UnsupportedUrl(url.to_owned()));
    }
    Ok(Arc::new(SqliteRepository::open(Path::new(path)).await?))
}

/// Chunk size for multi-row statements: keeps bound parameters far below both backends' limits.
const CHUNK: usize = 400;

pub(crate) use crate::registry::import::{classify, items, split_writes};

/// The columns of a template's listing row (aliases `t` for templates, `s` for their stats).
pub(crate) const SUMMARY_COLUMNS: &str = "t.id, t.name, t.sector, t.sector_name, t.category, \
     t.goal, t.current_version, t.logic_hash, t.baseline_risk, s.risk_level, s.est_roi, \
     COALESCE(s.runs, 0) AS runs, COALESCE(s.top_performance, FALSE) AS top_performance";

/// A template's listing row as both backends select it ([`SUMMARY_COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    #[sqlx(flatten)]
    heading: TemplateHeading,
    current_version: i64,
    logic_hash: String,
    baseline_risk: String,
    risk_level: Option<String>,
    est_roi: Option<f64>,
    runs: i64,
    top_performance: bool,
}

impl SummaryRow {
    /// The listing entry, with its risk levels parsed.
    pub(crate) fn into_summary(self) -> Result<TemplateSummary, DbError> {
        Ok(TemplateSummary {
            baseline_risk: parse_risk(&self.baseline_risk)?,
            risk_level: self.risk_level.as_deref().map(parse_risk).transpose()?,
            history_note: no_history(self.runs),
            heading: self.heading,
            version: self.current_version,
            logic_hash: self.logic_hash,
            est_roi: self.est_roi,
            runs: self.runs,
            top_performance: self.top_performance,
        })
    }
}

/// Listing rows as entries.
pub(crate) fn summaries(rows: Vec<SummaryRow>) -> Result<Vec<TemplateSummary>, DbError> {
    rows.into_iter().map(SummaryRow::into_summary).collect()
}

fn no_history(runs: i64) -> Option<String> {
    (runs == 0).then(|| crate::registry::search::NO_HISTORY.to_owned())
}

fn parse_risk(value: &str) -> Result<RiskLevel, DbError> {
    value
        .parse()
        .map_err(|_| DbError::Corrupt(format!("unknown risk level {value}")))
}

pub(crate) fn approval_mode(value: &str) -> Result<crate::registry::ApprovalMode, DbError> {
    value
        .parse()
        .map_err(|_| DbError::Corrupt(format!("unknown approval mode {value}")))
}
