//! Imports a person confirms: manifest files are read and previewed once, kept exactly as
//! previewed, and written only when the person confirms that preview. The desktop's
//! drag-and-drop and file picker both go through here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use uuid::Uuid;

use super::import::{report, ImportItem, ImportPhase, ImportReport, ProgressFn};
use super::manifest::ManifestInput;
use super::problem::Problem;
use super::service::{Registry, RegistryError};

/// One file of a staged import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ImportFile {
    /// Full path, as read.
    pub path: String,
    /// File name alone.
    pub name: String,
    /// Size in bytes (0 when unreadable).
    pub bytes: u64,
}

/// What confirming a staged import would do, and every problem that prevents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ImportPreview {
    /// The id to confirm or cancel.
    pub import_id: String,
    /// The files, in the order given.
    pub files: Vec<ImportFile>,
    /// Templates that would be added.
    pub new: u32,
    /// Templates that would get a new version.
    pub updated: u32,
    /// Templates already up to date.
    pub unchanged: u32,
    /// Outcome per template, in file order (empty when there are problems).
    pub items: Vec<ImportItem>,
    /// Every problem; Confirm is refused while there are any.
    pub problems: Vec<Problem>,
}

struct Staged {
    inputs: Arc<[ManifestInput]>,
    problems: Vec<Problem>,
}

/// Previewed imports waiting for Confirm or Cancel, held in memory only.
#[derive(Clone)]
pub struct ImportStage {
    registry: Registry,
    staged: Arc<Mutex<HashMap<String, Staged>>>,
}

impl std::fmt::Debug for ImportStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportStage").finish_non_exhaustive()
    }
}

impl ImportStage {
    /// An empty stage over a registry.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            staged: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Staged>> {
        // A panic elsewhere cannot leave the map half-written, so a poisoned lock is usable.
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the files (within the import size limit), previews them, and keeps what was read
    /// for [`ImportStage::confirm`]. Writes nothing. Unreadable files are problems in the
    /// preview, not errors.
    pub async fn stage(
        &self,
        paths: Vec<PathBuf>,
        progress: Option<ProgressFn>,
    ) -> Result<ImportPreview, RegistryError> {
        let max = self.registry.catalog().policy().import.max_file_bytes;
        let reading = progress.clone();
        let (files, inputs, mut problems) = tokio::task::spawn_blocking(move || {
            let sizes: Vec<u64> = paths
                .iter()
                .map(|p| std::fs::metadata(p).map_or(0, |m| m.len().min(max + 1)))
                .collect();
            let total: u64 = sizes.iter().sum();
            let mut done = 0;
            let mut files = Vec::new();
            let mut inputs = Vec::new();
            let mut problems = Vec::new();
            for (path, size) in paths.iter().zip(sizes) {
                report(&reading, ImportPhase::Reading, done, total);
                let read = ManifestInput::read(path, max);
                files.push(ImportFile {
                    path: path.display().to_string(),
                    name: path.file_name().map_or_else(
                        || path.display().to_string(),
                        |n| n.to_string_lossy().into(),
                    ),
                    bytes: read.as_ref().map_or(0, |i| i.bytes.len() as u64),
                });
                match read {
                    Ok(input) => inputs.push(input),
                    Err(problem) => problems.push(problem),
                }
                done += size;
            }
            report(&reading, ImportPhase::Reading, total, total);
            (files, inputs, problems)
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("reading stopped: {e}")))?;
        let inputs: Arc<[ManifestInput]> = inputs.into();
        let preview = self
            .registry
            .preview_with_progress(inputs.clone(), progress)
            .await?;
        problems.extend(preview.problems);
        let (report, problems) = if problems.is_empty() {
            (preview.report, problems)
        } else {
            (ImportReport::default(), problems)
        };
        let import_id = Uuid::now_v7().to_string();
        self.lock().insert(
            import_id.clone(),
            Staged {
                inputs,
                problems: problems.clone(),
            },
        );
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(ImportPreview {
            import_id,
            files,
            new: count(report.new),
            updated: count(report.updated),
            unchanged: count(report.unchanged),
            items: report.items,
            problems,
        })
    }

    /// Imports exactly what was previewed under this id, in one transaction. A preview with
    /// problems is refused and stays staged; any other outcome releases the staged files.
    pub async fn confirm(
        &self,
        import_id: &str,
        progress: Option<ProgressFn>,
    ) -> Result<ImportReport, RegistryError> {
        let inputs = {
            let staged = self.lock();
            let found = staged
                .get(import_id)
                .ok_or_else(|| RegistryError::ImportNotFound(import_id.to_owned()))?;
            if !found.problems.is_empty() {
                return Err(RegistryError::Invalid(found.problems.clone()));
            }
            found.inputs.clone()
        };
        let result = self.registry.import_with_progress(inputs, progress).await;
        self.lock().remove(import_id);
        result
    }

    /// Forgets a staged import; true if it was there.
    pub fn cancel(&self, import_id: &str) -> bool {
        self.lock().remove(import_id).is_some()
    }

    /// How many imports are waiting.
    pub fn pending(&self) -> usize {
        self.lock().len()
    }
}
