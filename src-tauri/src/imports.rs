//! The import flow behind drag-and-drop and the file picker: stage the files (read in Rust,
//! previewed, nothing written), then confirm or cancel. Events go to a sink so the flow runs
//! the same in the window and in tests.

use std::path::PathBuf;
use std::sync::Arc;

use mission_core::gateway::Actor;
use mission_core::registry::import::{ImportPhase, ImportReport, ProgressFn};
use mission_core::registry::staging::ImportPreview;
use mission_core::{Core, CoreError};

use crate::events::{ImportPreviewReady, ImportProgress, ImportStarted, LibraryChanged};

/// Something the import flow tells the window.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportEvent {
    /// Files arrived and are being read.
    Started(ImportStarted),
    /// Progress of reading, checking or writing.
    Progress(ImportProgress),
    /// A preview is ready (for dropped files, which no command is waiting for).
    Preview(ImportPreviewReady),
    /// The library changed.
    LibraryChanged(LibraryChanged),
}

/// Where the flow's events go.
pub type Sink = Arc<dyn Fn(ImportEvent) + Send + Sync>;

/// Progress reports at most every 1/64th of the work, so large files do not flood the window.
fn progress_to(sink: &Sink, import_id: Option<String>) -> ProgressFn {
    let sink = sink.clone();
    let last = std::sync::Mutex::new(None::<(u64, ImportPhase)>);
    Arc::new(move |p| {
        let step = (p.total / 64).max(1);
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        let due = match *last {
            Some((done, phase)) => phase != p.phase || p.done >= done + step || p.done == p.total,
            None => true,
        };
        if due {
            *last = Some((p.done, p.phase));
            sink(ImportEvent::Progress(ImportProgress {
                import_id: import_id.clone(),
                phase: p.phase,
                done: p.done,
                total: p.total,
            }));
        }
    })
}

/// Reads and previews files; writes nothing. `announce` sends the preview as an event too
/// (dropped files), where the file picker's command returns it instead.
pub async fn stage(
    core: &Core,
    paths: Vec<PathBuf>,
    sink: Sink,
    announce: bool,
) -> Result<ImportPreview, CoreError> {
    sink(ImportEvent::Started(ImportStarted {
        files: paths.iter().map(|p| p.display().to_string()).collect(),
    }));
    let preview = core
        .stage_import(paths, Some(progress_to(&sink, None)))
        .await?;
    if announce {
        sink(ImportEvent::Preview(ImportPreviewReady(preview.clone())));
    }
    Ok(preview)
}

/// Writes exactly what was previewed, in one transaction, as the OS user at the keyboard.
pub async fn confirm(core: &Core, import_id: &str, sink: Sink) -> Result<ImportReport, CoreError> {
    let progress = progress_to(&sink, Some(import_id.to_owned()));
    let report = core
        .confirm_import(&Actor::operator(), import_id, Some(progress))
        .await?;
    if !report.changed_nothing() {
        sink(ImportEvent::LibraryChanged(LibraryChanged {
            summary: report.summary(),
            report: report.clone(),
        }));
    }
    Ok(report)
}

/// The native notification for a finished import: only when the window is not focused, since
/// a person looking at the window already sees the result.
pub fn notification(report: &ImportReport, window_focused: bool) -> Option<(String, String)> {
    (!window_focused).then(|| ("Import finished".to_owned(), report.summary()))
}
