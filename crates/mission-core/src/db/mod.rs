//! Storage: one repository interface, one implementation per backend (SQLite, Postgres).

pub mod gateway;
mod postgres;
mod sqlite;
pub mod squad;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::perimeter::{ActiveMission, NewMission};
use crate::registry::import::ImportItem;
use crate::registry::search::{FacetRow, SearchQuery, TemplateSummary, VersionInfo};
use crate::registry::RiskLevel;

pub use postgres::PostgresRepository;
pub use sqlite::SqliteRepository;

/// Identifier shared with the desktop shell: the app-data folder is named after it.
pub const APP_IDENTIFIER: &str = "app.missioncontrol.desktop";

/// Storage errors. Their text is for logs; people see the boundary's wording instead.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL \"{0}\": use a SQLite file path, sqlite://PATH or postgres://…"
    )]
    UnsupportedUrl(String),
    /// No app-data folder could be determined.
    #[error("no app-data folder is known for this user; pass --database-url")]
    NoDataDir,
    /// Stored data does not decode.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The importer stopped sending before asking to commit; nothing was written.
    #[error("the import was abandoned before it finished; nothing was written")]
    ImportAbandoned,
}

/// Which backend a repository uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// Postgres server.
    Postgres,
}

pub use crate::registry::import::{ImportBatch, ImportBatches, ImportRow};

/// The next rows of an import; `None` once the importer asked to commit.
async fn next_rows(batches: &mut ImportBatches) -> Result<Option<Vec<ImportRow>>, DbError> {
    match batches.recv().await {
        Some(ImportBatch::Rows(rows)) => Ok(Some(rows)),
        Some(ImportBatch::Commit) => Ok(None),
        None => Err(DbError::ImportAbandoned),
    }
}

/// Everything the core stores, behind one interface with one implementation per backend.
#[async_trait]
pub trait Repository:
    gateway::GatewayStore + squad::SquadStore + Send + Sync + std::fmt::Debug
{
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Current version and content hash of each of these ids that exists.
    async fn current_versions(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, (i64, String)>, DbError>;

    /// Writes every batch in one transaction, as the batches arrive: new ids get version 1,
    /// changed content the next version, identical content nothing. Commits on
    /// [`ImportBatch::Commit`]; if the channel closes first, writes nothing and returns
    /// [`DbError::ImportAbandoned`]. Returns each row's outcome in the order sent.
    async fn import(&self, batches: ImportBatches) -> Result<Vec<ImportItem>, DbError>;

    /// Templates matching the query, best match first (by name when there is no text).
    async fn search(&self, query: &SearchQuery) -> Result<Vec<TemplateSummary>, DbError>;

    /// How many templates match the query's text and risk, per sector and category (the
    /// query's sector, category and paging are ignored).
    async fn facets(&self, query: &SearchQuery) -> Result<Vec<FacetRow>, DbError>;

    /// Stores a new active mission unless its request id was stored before. Returns the stored
    /// mission, the hash of the request that created it, and whether this call created it.
    async fn insert_mission(
        &self,
        new: &NewMission,
    ) -> Result<(ActiveMission, String, bool), DbError>;

    /// Saved missions, newest first.
    async fn missions(&self, limit: u32) -> Result<Vec<ActiveMission>, DbError>;

    /// One saved mission.
    async fn mission(&self, id: &str) -> Result<Option<ActiveMission>, DbError>;

    /// The listing row of one template.
    async fn summary(&self, id: &str) -> Result<Option<TemplateSummary>, DbError>;

    /// The stored JSON of one version.
    async fn version_content(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<serde_json::Value>, DbError>;

    /// Every version of a template, oldest first.
    async fn versions(&self, id: &str) -> Result<Vec<VersionInfo>, DbError>;

    /// Number of templates.
    async fn count_templates(&self) -> Result<i64, DbError>;

    /// A stored installation fact.
    async fn meta(&self, key: &str) -> Result<Option<String>, DbError>;

    /// Stores an installation fact.
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), DbError>;

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

fn no_history(runs: i64) -> Option<String> {
    (runs == 0).then(|| crate::registry::search::NO_HISTORY.to_owned())
}

fn parse_risk(value: &str) -> Result<RiskLevel, DbError> {
    value
        .parse()
        .map_err(|_| DbError::Corrupt(format!("unknown risk level {value}")))
}

pub(crate) fn approval_mode(value: &str) -> Result<crate::registry::ApprovalMode, DbError> {
    use crate::registry::ApprovalMode;
    [
        ApprovalMode::Strict,
        ApprovalMode::Threshold,
        ApprovalMode::Auto,
    ]
    .into_iter()
    .find(|m| m.as_str() == value)
    .ok_or_else(|| DbError::Corrupt(format!("unknown approval mode {value}")))
}
