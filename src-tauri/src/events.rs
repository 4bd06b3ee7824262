//! Events the shell sends the window; their TypeScript types are generated with the commands'.

use mission_core::registry::import::{ImportPhase, ImportReport};
use mission_core::registry::staging::ImportPreview;
use serde::Serialize;

/// Files were dropped on the window and are being read.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type, tauri_specta::Event)]
pub struct ImportStarted {
    /// The dropped paths.
    pub files: Vec<String>,
}

/// How far a long import has come.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type, tauri_specta::Event)]
pub struct ImportProgress {
    /// The staged import being written; `None` while files are read and previewed.
    pub import_id: Option<String>,
    /// What is running.
    pub phase: ImportPhase,
    /// Bytes done.
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
}

/// The preview of dropped files is ready; nothing has been written.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type, tauri_specta::Event)]
pub struct ImportPreviewReady(pub ImportPreview);

/// An import changed the library; lists should reload.
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type, tauri_specta::Event)]
pub struct LibraryChanged {
    /// What the import did, in one line.
    pub summary: String,
    /// The full report.
    pub report: ImportReport,
}

/// Dropped files could not be previewed at all (for example, the database is unavailable).
#[derive(Debug, Clone, PartialEq, Serialize, specta::Type, tauri_specta::Event)]
pub struct ImportFailed {
    /// What went wrong.
    pub error: mission_core::CoreError,
}

/// Approvals were added or decided; lists should reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type, tauri_specta::Event)]
pub struct ApprovalsChanged {
    /// Approvals waiting now.
    pub pending: u32,
}

/// A mission's state or events changed; the Active Missions view reloads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type, tauri_specta::Event)]
pub struct MissionsChanged {
    /// The mission that changed.
    pub mission_id: String,
}
