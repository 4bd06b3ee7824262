//! What an import did, or would do, to each template.

use serde::Serialize;

use super::problem::Problem;

/// Effect of importing one template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// The id was not in the registry.
    New,
    /// The content changed: a new version was added.
    Updated,
    /// Identical to the current version: nothing written.
    Unchanged,
}

/// One template's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ImportItem {
    /// Template id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What happened (or would happen).
    pub status: ImportStatus,
    /// The current version after the import.
    pub version: i64,
    /// The manifest the template came from.
    pub source: String,
}

/// Outcome of an import or of its preview.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ImportReport {
    /// True for a preview: nothing was written.
    pub dry_run: bool,
    /// Templates added.
    pub new: usize,
    /// Templates that got a new version.
    pub updated: usize,
    /// Templates already up to date.
    pub unchanged: usize,
    /// Per-template outcomes, in manifest order.
    pub items: Vec<ImportItem>,
}

impl ImportReport {
    /// Builds the counts from the items.
    pub fn from_items(items: Vec<ImportItem>, dry_run: bool) -> Self {
        let count = |s| items.iter().filter(|i| i.status == s).count();
        Self {
            dry_run,
            new: count(ImportStatus::New),
            updated: count(ImportStatus::Updated),
            unchanged: count(ImportStatus::Unchanged),
            items,
        }
    }

    /// True when the import changed nothing.
    pub fn changed_nothing(&self) -> bool {
        self.new == 0 && self.updated == 0
    }

    /// One line a person can read.
    pub fn summary(&self) -> String {
        if self.changed_nothing() {
            return format!(
                "Nothing to change: all {} template(s) are already up to date.",
                self.unchanged
            );
        }
        let verb = if self.dry_run { "would be" } else { "were" };
        format!(
            "{} new, {} updated, {} unchanged template(s) {verb} imported.",
            self.new, self.updated, self.unchanged
        )
    }
}

/// What the desktop shows before the operator confirms an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportPreview {
    /// Would-be outcome per template (empty when there are problems).
    pub report: ImportReport,
    /// Every problem found; Confirm is only possible when this is empty.
    pub problems: Vec<Problem>,
}

/// Which part of an import is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum ImportPhase {
    /// Reading the files from disk.
    Reading,
    /// Checking templates (nothing is written).
    Validating,
    /// Checking and writing in one transaction.
    Writing,
    /// Finished.
    Done,
}

/// How far a long import has come, in bytes of the manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ImportProgress {
    /// What is running.
    pub phase: ImportPhase,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// Receives progress reports; called from a worker thread.
pub type ProgressFn = std::sync::Arc<dyn Fn(ImportProgress) + Send + Sync>;

/// Sends a progress report when someone listens.
pub(crate) fn report(progress: &Option<ProgressFn>, phase: ImportPhase, done: u64, total: u64) {
    if let Some(progress) = progress {
        progress(ImportProgress { phase, done, total });
    }
}
