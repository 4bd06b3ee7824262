//! Storage: one repository interface, one implementation per backend (SQLite, Postgres).

pub mod gateway;
pub mod ledger;
mod postgres;
mod sqlite;
pub mod squad;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::audit::store::AuditStore;
use crate::gateway::store::{GatewayRepository, GatewayStore};
use crate::perimeter::store::MissionStore;
use crate::registry::search::TemplateSummary;
use crate::registry::store::RegistryStore;
use crate::registry::RiskLevel;
use crate::squad::store::{EngineRepository, SquadStore};

pub use postgres::PostgresRepository;
pub use sqlite::SqliteRepository;

pub use crate::registry::import::{ImportBatch, ImportBatches, ImportRow};
pub use crate::store::{Backend, DbError, APP_IDENTIFIER};

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

/// A template's listing row as both backends select it (their `SUMMARY_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: String,
    name: String,
    sector: String,
    sector_name: String,
    category: String,
    goal: String,
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
            id: self.id,
            name: self.name,
            sector: self.sector,
            sector_name: self.sector_name,
            category: self.category,
            goal: self.goal,
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
