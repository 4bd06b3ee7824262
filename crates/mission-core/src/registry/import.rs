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

/// One template version to write, with the denormalised fields the listing needs.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// Id, name, sector, category and goal.
    pub heading: super::search::TemplateHeading,
    /// Baseline risk.
    pub baseline_risk: super::RiskLevel,
    /// logic_hash of the ruleset.
    pub logic_hash: String,
    /// Hash of the whole canonical template.
    pub content_hash: String,
    /// The template's canonical JSON.
    pub content: String,
    /// Manifest it came from.
    pub source: String,
}

/// What an importer sends while it is still validating: rows as each chunk passes, then
/// `Commit` once everything has. Closing the channel without `Commit` rolls everything back.
#[derive(Debug)]
pub enum ImportBatch {
    /// Valid rows to write.
    Rows(Vec<ImportRow>),
    /// Everything passed: make it permanent.
    Commit,
}

/// The receiving end of an import.
pub type ImportBatches = tokio::sync::mpsc::Receiver<ImportBatch>;

/// The stored version and content hash of each template id that exists.
pub type CurrentVersions = std::collections::HashMap<String, (i64, String)>;

/// What importing each row does against what is stored: a new id gets version 1, changed
/// content the next version, identical content nothing. Returns (status, version after).
pub fn classify(rows: &[ImportRow], current: &CurrentVersions) -> Vec<(ImportStatus, i64)> {
    rows.iter()
        .map(|r| match current.get(&r.heading.id) {
            None => (ImportStatus::New, 1),
            Some((v, hash)) if hash == &r.content_hash => (ImportStatus::Unchanged, *v),
            Some((v, _)) => (ImportStatus::Updated, v + 1),
        })
        .collect()
}

/// The rows that need a template row (new ids), and the rows that need a version row (new or
/// changed content) with the version they get.
pub fn split_writes<'a>(
    rows: &'a [ImportRow],
    outcomes: &[(ImportStatus, i64)],
) -> (Vec<&'a ImportRow>, Vec<(&'a ImportRow, i64)>) {
    let mut new = Vec::new();
    let mut written = Vec::new();
    for (row, (status, version)) in rows.iter().zip(outcomes) {
        if *status == ImportStatus::New {
            new.push(row);
        }
        if *status != ImportStatus::Unchanged {
            written.push((row, *version));
        }
    }
    (new, written)
}

/// Each row's outcome as reported.
pub fn items(rows: &[ImportRow], outcomes: &[(ImportStatus, i64)]) -> Vec<ImportItem> {
    rows.iter()
        .zip(outcomes)
        .map(|(r, (status, version))| ImportItem {
            id: r.heading.id.clone(),
            name: r.heading.name.clone(),
            status: *status,
            version: *version,
            source: r.source.clone(),
        })
        .collect()
}

/// Outcome per row if these rows were imported now: the preview's answer.
pub fn classify_items(rows: &[ImportRow], current: &CurrentVersions) -> Vec<ImportItem> {
    items(rows, &classify(rows, current))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, content_hash: &str) -> ImportRow {
        ImportRow {
            heading: super::super::search::TemplateHeading {
                id: id.into(),
                name: id.into(),
                sector: "talent".into(),
                sector_name: "Talent".into(),
                category: "Sourcing".into(),
                goal: "A goal.".into(),
            },
            baseline_risk: super::super::RiskLevel::Low,
            logic_hash: "l".into(),
            content_hash: content_hash.into(),
            content: "{}".into(),
            source: "m.json".into(),
        }
    }

    #[test]
    fn new_changed_and_identical_templates_are_told_apart() {
        let rows = [row("a", "h1"), row("b", "h2"), row("c", "h3")];
        let current = CurrentVersions::from([
            ("b".to_owned(), (3, "old".to_owned())),
            ("c".to_owned(), (7, "h3".to_owned())),
        ]);
        let outcomes = classify(&rows, &current);
        assert_eq!(
            outcomes,
            vec![
                (ImportStatus::New, 1),
                (ImportStatus::Updated, 4),
                (ImportStatus::Unchanged, 7)
            ]
        );
        let (new, written) = split_writes(&rows, &outcomes);
        assert_eq!(
            new.iter()
                .map(|r| r.heading.id.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(
            written
                .iter()
                .map(|(r, v)| (r.heading.id.as_str(), *v))
                .collect::<Vec<_>>(),
            [("a", 1), ("b", 4)]
        );
        let report = ImportReport::from_items(classify_items(&rows, &current), true);
        assert_eq!((report.new, report.updated, report.unchanged), (1, 1, 1));
    }
}
