//! Search requests and the rows the library view shows.

use serde::{Deserialize, Serialize};

use super::model::{Perimeter, RiskLevel};

/// What the operator asked for; every part is optional and all given parts combine.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Free text over name, goal, category and sector; each word also matches as a prefix.
    pub text: Option<String>,
    /// Sector id.
    pub sector: Option<String>,
    /// Category name, exactly as configured.
    pub category: Option<String>,
    /// Risk level: the historical one when runs exist, otherwise the baseline.
    pub risk: Option<RiskLevel>,
    /// Most rows to return.
    pub limit: u32,
    /// Rows to skip, for paging.
    pub offset: u32,
}

/// Shown where a figure needs history that does not exist yet.
pub const NO_HISTORY: &str =
    "No history yet: Est. ROI and Risk Level appear after the first finished run.";

/// What names a template and places it in the library: the fields its stored row, its import
/// and its listing entry all carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TemplateHeading {
    /// Template id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Sector id.
    pub sector: String,
    /// Sector display name (searchable).
    pub sector_name: String,
    /// Category under the sector.
    pub category: String,
    /// One-sentence goal.
    pub goal: String,
}

/// One template as the library lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TemplateSummary {
    /// Id, name, sector, category and goal.
    #[serde(flatten)]
    pub heading: TemplateHeading,
    /// Current version.
    pub version: i64,
    /// logic_hash of the current version.
    pub logic_hash: String,
    /// Risk from the template itself.
    pub baseline_risk: RiskLevel,
    /// Risk from history; `None` until runs exist.
    pub risk_level: Option<RiskLevel>,
    /// Estimated ROI from history; `None` until runs exist.
    pub est_roi: Option<f64>,
    /// Finished runs recorded.
    pub runs: i64,
    /// Whether the ROI job awarded the Top Performance badge.
    pub top_performance: bool,
    /// Why figures are missing, when they are.
    pub history_note: Option<String>,
}

/// A template version in full.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TemplateDetail {
    /// The listing fields (of the current version).
    #[serde(flatten)]
    pub summary: TemplateSummary,
    /// The version shown (may be older than the current one).
    pub shown_version: i64,
    /// Every stored version, oldest first.
    pub versions: Vec<VersionInfo>,
    /// The template exactly as imported for `shown_version`.
    pub content: serde_json::Value,
    /// Default perimeter of `shown_version`.
    pub default_perimeter: Perimeter,
}

/// One stored version of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    /// Version number, from 1.
    pub version: i64,
    /// logic_hash of that version.
    pub logic_hash: String,
    /// Manifest it was imported from.
    pub source: String,
    /// When it was imported (RFC 3339, UTC).
    pub imported_at: String,
}

/// The words of a free-text query, lowercased; punctuation separates words and is dropped, so
/// nothing the operator types can change the query syntax of either backend.
pub fn query_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(16)
        .map(str::to_lowercase)
        .collect()
}

/// The words as an FTS5 query: every word must match, each as a prefix.
pub fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words as a Postgres tsquery: every word must match, each as a prefix. `weights` limits
/// the match to lexemes of those weights ("A" is the name); empty means any field.
pub fn pg_tsquery(words: &[String], weights: &str) -> String {
    words
        .iter()
        .map(|w| format!("{w}:*{weights}"))
        .collect::<Vec<_>>()
        .join(" & ")
}

/// What the library view asks for: free text and the filters, by id and name as shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct LibraryQuery {
    /// Free text; empty or absent lists everything.
    pub text: Option<String>,
    /// Sector id or name.
    pub sector: Option<String>,
    /// Category under the sector.
    pub category: Option<String>,
    /// Risk level.
    pub risk: Option<RiskLevel>,
}

/// One page of library results and how many match in all.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct LibraryPage {
    /// Templates matching the query and filters.
    pub total: i64,
    /// Position of the first template of this page.
    pub offset: u32,
    /// This page, best match first.
    pub templates: Vec<TemplateSummary>,
}

/// Matches in one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct CategoryCount {
    /// Category name.
    pub name: String,
    /// Matching templates.
    pub count: i64,
}

/// Matches in one sector and its categories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SectorCount {
    /// Sector id.
    pub id: String,
    /// Sector name.
    pub name: String,
    /// Matching templates in the sector.
    pub count: i64,
    /// Its categories, in configured order.
    pub categories: Vec<CategoryCount>,
}

/// The sector → category tree with the number of matches at every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SectorTree {
    /// Matching templates in all sectors.
    pub total: i64,
    /// Sectors in configured order.
    pub sectors: Vec<SectorCount>,
}

/// Matches per (sector id, category), as a repository counts them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FacetRow {
    /// Sector id.
    pub sector: String,
    /// Category.
    pub category: String,
    /// Matching templates.
    pub count: i64,
}
