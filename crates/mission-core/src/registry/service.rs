//! The registry's operations, as every shell (CLI, desktop, HTTP) calls them.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::import::{classify_items, ImportBatch, ImportRow};
use super::import::{report, ImportPhase, ImportPreview, ImportReport, ProgressFn};
use super::manifest::ManifestInput;
use super::model::{Perimeter, RiskLevel};
use super::problem::Problem;
use super::search::{
    CategoryCount, LibraryPage, LibraryQuery, SearchQuery, SectorCount, SectorTree, TemplateDetail,
    TemplateHeading, TemplateSummary,
};
use super::store::RegistryStore;
use super::validate::ValidTemplate;
use super::validate::{self, Validation};
use crate::catalog::{Catalog, CatalogError};
use crate::codes::ErrorCode;
use crate::store::DbError;

/// The library shipped with the app, imported on first start and after upgrades.
pub const BUNDLED_LIBRARY: &str = include_str!("../../../../config/mission_templates.json");
/// How the bundled library is named in problems and version history.
pub const BUNDLED_SOURCE: &str = "bundled:config/mission_templates.json";
const BUNDLED_HASH_KEY: &str = "bundled_library_sha256";

/// Default and largest page of search results.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a caller may ask for (the desktop loads whole filtered lists).
pub const MAX_LIMIT: u32 = 100_000;

/// Registry errors, each with a stable code for the boundary.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// One or more manifests are invalid; nothing was written.
    #[error("the manifest has {} problem(s); nothing was imported", .0.len())]
    Invalid(Vec<Problem>),
    /// The sector filter names no sector.
    #[error("unknown sector \"{0}\"")]
    UnknownSector(String),
    /// The category filter names no category.
    #[error("unknown category \"{0}\"")]
    UnknownCategory(String),
    /// No template has this id.
    #[error("no template has the id \"{0}\"")]
    NotFound(String),
    /// The template has no such version.
    #[error("template \"{id}\" has no version {version}")]
    VersionNotFound {
        /// Template id.
        id: String,
        /// Requested version.
        version: i64,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] DbError),
    /// The configuration is broken.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// No staged import has this id (it was confirmed, cancelled, or the app restarted).
    #[error("no import is waiting under the id \"{0}\"; drop or choose the files again")]
    ImportNotFound(String),
    /// A fault inside the core (a background task died); nothing was written.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    /// The error's code from the core's closed list.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidManifest,
            Self::UnknownSector(_) => ErrorCode::UnknownSector,
            Self::UnknownCategory(_) => ErrorCode::UnknownCategory,
            Self::NotFound(_) => ErrorCode::TemplateNotFound,
            Self::VersionNotFound { .. } => ErrorCode::VersionNotFound,
            Self::Storage(_) => ErrorCode::Storage,
            Self::Catalog(_) => ErrorCode::Config,
            Self::ImportNotFound(_) => ErrorCode::ImportNotFound,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// A search as a person or shell states it: sector by id or name, category and risk as words.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Free text.
    pub text: Option<String>,
    /// Sector id or name.
    pub sector: Option<String>,
    /// Category name (case-insensitive).
    pub category: Option<String>,
    /// Risk level.
    pub risk: Option<RiskLevel>,
    /// Page size; defaults to [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`].
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// Reads manifest files within the catalogue's size limit, collecting every unreadable one.
pub fn read_manifests<P: AsRef<std::path::Path>>(
    paths: &[P],
    catalog: &Catalog,
) -> Result<Vec<ManifestInput>, Vec<Problem>> {
    let max = catalog.policy().import.max_file_bytes;
    let (inputs, problems): (Vec<_>, Vec<_>) = paths
        .iter()
        .map(|p| ManifestInput::read(p.as_ref(), max))
        .partition(Result::is_ok);
    if problems.is_empty() {
        Ok(inputs.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(problems.into_iter().filter_map(Result::err).collect())
    }
}

/// The template registry over one repository.
#[derive(Debug, Clone)]
pub struct Registry {
    repo: Arc<dyn RegistryStore>,
    catalog: Arc<Catalog>,
}

impl Registry {
    /// Wraps an open repository.
    pub fn new(repo: Arc<dyn RegistryStore>, catalog: Arc<Catalog>) -> Self {
        Self { repo, catalog }
    }

    /// The catalogues templates are checked against.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The storage behind the registry.
    pub fn store(&self) -> &Arc<dyn RegistryStore> {
        &self.repo
    }

    /// Imports the bundled library unless this exact copy was imported before; returns the
    /// report when it imported.
    pub async fn ensure_bundled_library(&self) -> Result<Option<ImportReport>, RegistryError> {
        let hash = hex::encode(Sha256::digest(BUNDLED_LIBRARY.as_bytes()));
        if self.repo.meta(BUNDLED_HASH_KEY).await?.as_deref() == Some(hash.as_str()) {
            return Ok(None);
        }
        let input = ManifestInput::new(BUNDLED_SOURCE, BUNDLED_LIBRARY.as_bytes());
        let report = self.import(std::slice::from_ref(&input)).await?;
        self.repo.set_meta(BUNDLED_HASH_KEY, &hash).await?;
        tracing::info!(summary = %report.summary(), "bundled template library checked");
        Ok(Some(report))
    }

    /// Reads manifest files from disk (the CLI's arguments, the desktop's dropped paths), each
    /// within the import size limit; every unreadable file is reported, not only the first.
    pub fn read_manifests<P: AsRef<std::path::Path>>(
        &self,
        paths: &[P],
    ) -> Result<Vec<ManifestInput>, Vec<Problem>> {
        read_manifests(paths, &self.catalog)
    }

    /// Validates manifests without touching the database.
    pub fn validate(&self, inputs: &[ManifestInput]) -> Validation {
        validate::validate(inputs, &self.catalog)
    }

    /// What importing these manifests would do, and every problem in them; writes nothing.
    pub async fn preview(&self, inputs: &[ManifestInput]) -> Result<ImportPreview, RegistryError> {
        self.preview_with_progress(inputs.into(), None).await
    }

    /// [`Registry::preview`], reporting progress while it validates (off the async threads).
    pub async fn preview_with_progress(
        &self,
        inputs: Arc<[ManifestInput]>,
        progress: Option<ProgressFn>,
    ) -> Result<ImportPreview, RegistryError> {
        let catalog = self.catalog.clone();
        let total = total_bytes(&inputs);
        let validation = tokio::task::spawn_blocking(move || {
            let mut templates = Vec::new();
            let problems = validate::validate_in_chunks(&inputs, &catalog, |chunk, done| {
                templates.extend(chunk);
                report(&progress, ImportPhase::Validating, done, total);
                true
            });
            report(&progress, ImportPhase::Done, total, total);
            Validation {
                templates,
                problems,
            }
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("validation stopped: {e}")))?;
        if !validation.is_valid() {
            return Ok(ImportPreview {
                report: ImportReport {
                    dry_run: true,
                    ..ImportReport::default()
                },
                problems: validation.problems,
            });
        }
        let rows = self.rows(validation);
        let ids: Vec<String> = rows.iter().map(|r| r.heading.id.clone()).collect();
        let current = self.repo.current_versions(&ids).await?;
        let items = classify_items(&rows, &current);
        Ok(ImportPreview {
            report: ImportReport::from_items(items, true),
            problems: Vec::new(),
        })
    }

    /// Validates everything and writes everything in one transaction, or nothing. Writing
    /// starts while later chunks are still being checked; the first problem stops the writes
    /// and the transaction is rolled back, so a bad template anywhere leaves the library as
    /// it was.
    pub async fn import(&self, inputs: &[ManifestInput]) -> Result<ImportReport, RegistryError> {
        self.import_with_progress(inputs.into(), None).await
    }

    /// [`Registry::import`], reporting progress as chunks are checked and handed to the writer.
    pub async fn import_with_progress(
        &self,
        inputs: Arc<[ManifestInput]>,
        progress: Option<ProgressFn>,
    ) -> Result<ImportReport, RegistryError> {
        let (sender, batches) = tokio::sync::mpsc::channel(2);
        let catalog = self.catalog.clone();
        let total = total_bytes(&inputs);
        let validating = tokio::task::spawn_blocking(move || {
            let problems = validate::validate_in_chunks(&inputs, &catalog, |chunk, done| {
                let rows = import_rows(&catalog, chunk);
                let sent = sender.blocking_send(ImportBatch::Rows(rows)).is_ok();
                report(&progress, ImportPhase::Writing, done, total);
                sent
            });
            if problems.is_empty() {
                // A closed channel here means the writer already failed; it reports why.
                let _ = sender.blocking_send(ImportBatch::Commit);
            }
            report(&progress, ImportPhase::Done, total, total);
            problems
        });
        let written = self.repo.import(batches).await;
        let problems = validating
            .await
            .map_err(|e| RegistryError::Internal(format!("validation stopped: {e}")))?;
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(problems));
        }
        Ok(ImportReport::from_items(written?, false))
    }

    fn rows(&self, validation: Validation) -> Vec<ImportRow> {
        import_rows(&self.catalog, validation.templates)
    }

    /// Resolves a person's search into catalogue ids, refusing unknown sectors and categories.
    pub fn resolve(&self, request: SearchRequest) -> Result<SearchQuery, RegistryError> {
        let sector = request
            .sector
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                self.catalog
                    .find_sector(s.trim())
                    .map(|found| found.id.clone())
                    .ok_or(RegistryError::UnknownSector(s))
            })
            .transpose()?;
        let category = request
            .category
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                self.catalog
                    .sectors()
                    .iter()
                    .filter(|s| sector.as_ref().is_none_or(|id| &s.id == id))
                    .flat_map(|s| s.categories.iter())
                    .find(|known| known.eq_ignore_ascii_case(c.trim()))
                    .cloned()
                    .ok_or(RegistryError::UnknownCategory(c))
            })
            .transpose()?;
        Ok(SearchQuery {
            text: request.text.filter(|t| !t.trim().is_empty()),
            sector,
            category,
            risk: request.risk,
            limit: request.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
            offset: request.offset.unwrap_or(0),
        })
    }

    /// Full-text search with filters, best match first.
    pub async fn search(
        &self,
        request: SearchRequest,
    ) -> Result<Vec<TemplateSummary>, RegistryError> {
        let query = self.resolve(request)?;
        Ok(self.repo.search(&query).await?)
    }

    /// How many templates match free text and a risk level, per sector and category, over the
    /// whole configured tree (empty branches count zero).
    pub async fn facets(
        &self,
        text: Option<String>,
        risk: Option<RiskLevel>,
    ) -> Result<SectorTree, RegistryError> {
        let query = SearchQuery {
            text: text.filter(|t| !t.trim().is_empty()),
            risk,
            ..SearchQuery::default()
        };
        let rows = self.repo.facets(&query).await?;
        let count = |sector: &str, category: &str| {
            rows.iter()
                .filter(|r| r.sector == sector && r.category == category)
                .map(|r| r.count)
                .sum::<i64>()
        };
        let sectors: Vec<SectorCount> = self
            .catalog
            .sectors()
            .iter()
            .map(|s| {
                let categories: Vec<CategoryCount> = s
                    .categories
                    .iter()
                    .map(|c| CategoryCount {
                        name: c.clone(),
                        count: count(&s.id, c),
                    })
                    .collect();
                SectorCount {
                    id: s.id.clone(),
                    name: s.name.clone(),
                    count: categories.iter().map(|c| c.count).sum(),
                    categories,
                }
            })
            .collect();
        Ok(SectorTree {
            total: sectors.iter().map(|s| s.count).sum(),
            sectors,
        })
    }

    /// One page of the library view: the templates matching text and filters, best first, and
    /// how many match in all.
    pub async fn library_page(
        &self,
        query: LibraryQuery,
        offset: u32,
        limit: u32,
    ) -> Result<LibraryPage, RegistryError> {
        let resolved = self.resolve(SearchRequest {
            text: query.text.clone(),
            sector: query.sector,
            category: query.category,
            risk: query.risk,
            limit: Some(limit),
            offset: Some(offset),
        })?;
        let tree = self.facets(query.text, query.risk).await?;
        let total = match (&resolved.sector, &resolved.category) {
            (None, None) => tree.total,
            (sector, category) => tree
                .sectors
                .iter()
                .filter(|s| sector.as_ref().is_none_or(|id| &s.id == id))
                .flat_map(|s| s.categories.iter())
                .filter(|c| category.as_ref().is_none_or(|name| &c.name == name))
                .map(|c| c.count)
                .sum(),
        };
        let templates = self.repo.search(&resolved).await?;
        Ok(LibraryPage {
            total,
            offset,
            templates,
        })
    }

    /// One template, at its current version or at an older one.
    pub async fn show(
        &self,
        id: &str,
        version: Option<i64>,
    ) -> Result<TemplateDetail, RegistryError> {
        let summary = self
            .repo
            .summary(id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(id.to_owned()))?;
        let shown_version = version.unwrap_or(summary.version);
        let content = self
            .repo
            .version_content(id, shown_version)
            .await?
            .ok_or_else(|| RegistryError::VersionNotFound {
                id: id.to_owned(),
                version: shown_version,
            })?;
        let default_perimeter: Perimeter = content
            .get("default_perimeter")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| DbError::Corrupt(format!("stored perimeter of {id}: {e}")))?
            .ok_or_else(|| DbError::Corrupt(format!("stored template {id} has no perimeter")))?;
        let versions = self.repo.versions(id).await?;
        Ok(TemplateDetail {
            summary,
            shown_version,
            versions,
            content,
            default_perimeter,
        })
    }
}

fn total_bytes(inputs: &[ManifestInput]) -> u64 {
    inputs.iter().map(|i| i.bytes.len() as u64).sum()
}

/// The rows the repository writes for validated templates.
fn import_rows(catalog: &Catalog, templates: Vec<ValidTemplate>) -> Vec<ImportRow> {
    templates
        .into_iter()
        .map(|v| {
            let t = v.template;
            let sector_name = catalog
                .sector(&t.sector)
                .map_or_else(|| t.sector.clone(), |s| s.name.clone());
            ImportRow {
                heading: TemplateHeading {
                    id: t.id,
                    name: t.name,
                    sector: t.sector,
                    sector_name,
                    category: t.category,
                    goal: t.goal,
                },
                baseline_risk: t.risk_level,
                logic_hash: t.logic_hash,
                content_hash: v.content_hash,
                content: v.content,
                source: v.source,
            }
        })
        .collect()
}
