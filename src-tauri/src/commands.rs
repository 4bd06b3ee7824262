//! The commands the window calls. Each turns its arguments into core values, calls the core
//! and hands back the result or the core's error; nothing is decided here.

use mission_core::app::KafkaInfo;
use mission_core::audit::{AuditPage, AuditQuery, VerifyReport};
use mission_core::gateway::{Actor, ApprovalItem, ApprovalPage, DecideApproval};
use mission_core::perimeter::{MissionDraft, MissionList, SaveMissionRequest, SaveOutcome};
use mission_core::registry::import::ImportReport;
use mission_core::registry::search::{LibraryPage, LibraryQuery, SectorTree};
use mission_core::registry::staging::ImportPreview;
use mission_core::registry::RiskLevel;
use mission_core::squad::{MissionEvent, MissionPage, MissionView};
use mission_core::CoreError;
use tauri::{AppHandle, Runtime, State};
use tauri_plugin_dialog::DialogExt;

use crate::error::not_a_local_file;
use crate::state::AppState;
use crate::{imports, window_sink};

/// Most events sent to the window at once.
const EVENT_PAGE: u32 = 500;

/// One page of templates matching the query, and how many match in all.
#[tauri::command]
#[specta::specta]
pub async fn library_search(
    state: State<'_, AppState>,
    query: LibraryQuery,
    offset: u32,
    limit: u32,
) -> Result<LibraryPage, CoreError> {
    state.core().await?.library_page(query, offset, limit).await
}

/// The sector → category tree with match counts for the text and risk filter.
#[tauri::command]
#[specta::specta]
pub async fn library_facets(
    state: State<'_, AppState>,
    text: Option<String>,
    risk: Option<RiskLevel>,
) -> Result<SectorTree, CoreError> {
    state.core().await?.library_facets(text, risk).await
}

/// What the configurator offers for a template: caps, defaults, modes, connections.
#[tauri::command]
#[specta::specta]
pub async fn mission_draft(
    state: State<'_, AppState>,
    template_id: String,
) -> Result<MissionDraft, CoreError> {
    state.core().await?.mission_draft(&template_id).await
}

/// Saves a configured perimeter as an active mission; the core refuses anything beyond a cap.
#[tauri::command]
#[specta::specta]
pub async fn save_mission(
    state: State<'_, AppState>,
    request: SaveMissionRequest,
) -> Result<SaveOutcome, CoreError> {
    state
        .core()
        .await?
        .save_mission(&Actor::operator(), &request)
        .await
}

/// One page of saved missions, newest first: after the cursor `after` (the first page when
/// null), at most `limit` (1 to 200).
#[tauri::command]
#[specta::specta]
pub async fn list_missions(
    state: State<'_, AppState>,
    after: Option<String>,
    limit: u32,
) -> Result<MissionList, CoreError> {
    state.core().await?.missions(after.as_deref(), limit).await
}

/// One page of missions, newest first, with usage, plan progress and run record: after the
/// cursor `after` (the first page when null), at most `limit` (1 to 200).
#[tauri::command]
#[specta::specta]
pub async fn mission_views(
    state: State<'_, AppState>,
    after: Option<String>,
    limit: u32,
) -> Result<MissionPage, CoreError> {
    state
        .core()
        .await?
        .mission_views(after.as_deref(), limit)
        .await
}

/// A mission's events after `after_seq`, oldest first.
#[tauri::command]
#[specta::specta]
pub async fn mission_events(
    state: State<'_, AppState>,
    mission_id: String,
    after_seq: i64,
) -> Result<Vec<MissionEvent>, CoreError> {
    state
        .core()
        .await?
        .mission_events(&mission_id, after_seq, EVENT_PAGE)
        .await
}

/// Deploys a saved (Ready) mission: its clock starts and the squad engine assembles its squad.
#[tauri::command]
#[specta::specta]
pub async fn deploy_mission(
    state: State<'_, AppState>,
    mission_id: String,
) -> Result<MissionView, CoreError> {
    state
        .core()
        .await?
        .start_mission(&Actor::operator(), &mission_id)
        .await
}

/// Stops a mission as the OS user at the keyboard; its run record is written and its squad
/// torn down.
#[tauri::command]
#[specta::specta]
pub async fn stop_mission(
    state: State<'_, AppState>,
    mission_id: String,
) -> Result<MissionView, CoreError> {
    state
        .core()
        .await?
        .stop_mission(&Actor::operator(), &mission_id)
        .await
}

/// Which Kafka the squads use; an error if it could not be started.
#[tauri::command]
#[specta::specta]
pub async fn kafka_status(state: State<'_, AppState>) -> Result<KafkaInfo, CoreError> {
    state.core().await?.kafka_info().await
}

/// Opens the native file picker and previews the chosen manifests; `None` if cancelled.
#[tauri::command]
#[specta::specta]
pub async fn pick_manifests<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<Option<ImportPreview>, CoreError> {
    let core = state.core().await?;
    let picked = app
        .dialog()
        .file()
        .set_title("Choose manifest files to import")
        .add_filter("Mission template manifests", &["json"])
        .blocking_pick_files();
    let Some(picked) = picked else {
        return Ok(None);
    };
    let paths = picked
        .into_iter()
        .map(|p| p.into_path().map_err(|e| not_a_local_file(&e)))
        .collect::<Result<Vec<_>, _>>()?;
    let preview = imports::stage(core, paths, window_sink(&app), false).await?;
    Ok(Some(preview))
}

/// Imports exactly what a preview showed, in one transaction.
#[tauri::command]
#[specta::specta]
pub async fn confirm_import<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    import_id: String,
) -> Result<ImportReport, CoreError> {
    let core = state.core().await?;
    let report = imports::confirm(core, &import_id, window_sink(&app)).await?;
    crate::notify_if_unfocused(&app, &report);
    Ok(report)
}

/// Forgets a previewed import without writing anything.
#[tauri::command]
#[specta::specta]
pub async fn cancel_import(state: State<'_, AppState>, import_id: String) -> Result<(), CoreError> {
    state.core().await?.cancel_import(&import_id);
    Ok(())
}

/// One page of approvals waiting for a human, or of every approval when `pending_only` is
/// false: after the cursor `after` (the first page when null), at most `limit` (1 to 200),
/// with the exact number waiting.
#[tauri::command]
#[specta::specta]
pub async fn list_approvals(
    state: State<'_, AppState>,
    pending_only: bool,
    after: Option<String>,
    limit: u32,
) -> Result<ApprovalPage, CoreError> {
    state
        .core()
        .await?
        .approvals(pending_only, after.as_deref(), limit)
        .await
}

/// Approves or denies one waiting tool call or budget cap request, as the OS user at the
/// keyboard; the core checks the request is still open and the budget within the policy.
#[tauri::command]
#[specta::specta]
pub async fn decide_approval<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    request: DecideApproval,
) -> Result<ApprovalItem, CoreError> {
    let core = state.core().await?;
    let item = core
        .decide_approval(&Actor::Reviewer(Actor::operator().name()), &request)
        .await?;
    if let Ok(pending) = core.pending_approvals().await {
        crate::emit_pending(&app, pending);
    }
    Ok(item)
}

/// One page of the audit log, newest first.
#[tauri::command]
#[specta::specta]
pub async fn audit_page(
    state: State<'_, AppState>,
    query: AuditQuery,
) -> Result<AuditPage, CoreError> {
    state.core().await?.audit_page(&query).await
}

/// Checks the whole audit log: hash chain and signatures.
#[tauri::command]
#[specta::specta]
pub async fn audit_verify(state: State<'_, AppState>) -> Result<VerifyReport, CoreError> {
    state.core().await?.verify_audit(&[]).await
}

/// The window reports the first render of the library (the startup figure in the log).
#[tauri::command]
#[specta::specta]
pub fn library_rendered(state: State<'_, AppState>, count: u32) {
    state.library_rendered(count);
}
