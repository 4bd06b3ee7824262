//! The storage the registry needs: template rows and versions, search and facets, and a few
//! installation facts. `db` implements it for SQLite and Postgres.

use async_trait::async_trait;

use super::import::{CurrentVersions, ImportBatches, ImportItem};
use super::model::Template;
use super::search::{FacetRow, SearchQuery, TemplateSummary, VersionInfo};
use crate::store::DbError;

/// The registry's storage.
#[async_trait]
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    /// Current version and content hash of each of these ids that exists.
    async fn current_versions(&self, ids: &[String]) -> Result<CurrentVersions, DbError>;

    /// Writes every batch in one transaction, as the batches arrive: new ids get version 1,
    /// changed content the next version, identical content nothing. Commits on
    /// [`super::import::ImportBatch::Commit`]; if the channel closes first, writes nothing and returns
    /// [`DbError::ImportAbandoned`]. Returns each row's outcome in the order sent.
    async fn import(&self, batches: ImportBatches) -> Result<Vec<ImportItem>, DbError>;

    /// Templates matching the query, best match first (by name when there is no text).
    async fn search(&self, query: &SearchQuery) -> Result<Vec<TemplateSummary>, DbError>;

    /// How many templates match the query's text and risk, per sector and category (the
    /// query's sector, category and paging are ignored).
    async fn facets(&self, query: &SearchQuery) -> Result<Vec<FacetRow>, DbError>;

    /// The listing row of one template.
    async fn summary(&self, id: &str) -> Result<Option<TemplateSummary>, DbError>;

    /// The stored JSON of one version.
    async fn version_content(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<serde_json::Value>, DbError>;

    /// The template version a mission pinned, parsed; a mission whose version is gone or
    /// unreadable is corrupt storage.
    async fn pinned_template(
        &self,
        mission_id: &str,
        template_id: &str,
        version: i64,
    ) -> Result<Template, DbError> {
        let content = self
            .version_content(template_id, version)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("mission {mission_id} lost its template")))?;
        serde_json::from_value(content)
            .map_err(|e| DbError::Corrupt(format!("stored template: {e}")))
    }

    /// Every version of a template, oldest first.
    async fn versions(&self, id: &str) -> Result<Vec<VersionInfo>, DbError>;

    /// Number of templates.
    async fn count_templates(&self) -> Result<i64, DbError>;

    /// A stored installation fact.
    async fn meta(&self, key: &str) -> Result<Option<String>, DbError>;

    /// Stores an installation fact.
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), DbError>;
}
