//! The commands the window calls. Each turns its arguments into core values, calls the core
//! and maps the result; nothing is decided here.

use mission_core::audit::{AuditPage, AuditQuery, VerifyReport};
use mission_core::gateway::{ApprovalItem, DecideApproval};
use mission_core::perimeter::{ActiveMission, MissionDraft, SaveMissionRequest, SaveOutcome};
use mission_core::registry::import::ImportReport;
use mission_core::registry::search::{LibraryPage, LibraryQuery, SectorTree};
use mission_core::registry::staging::ImportPreview;
use mission_core::registry::RiskLevel;
use mission_core::squad::{self, MissionEvent, MissionView};
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

use crate::error::{AppError, ErrorCode};
use crate::state::{AppState, KafkaInfo};
use crate::{imports, window_sink};

/// Largest page the library view asks for at once.
const MAX_PAGE: u32 = 500;

/// One page of templates matching the query, and how many match in all.
#[tauri::command]
#[specta::specta]
pub async fn library_search(
    state: State<'_, AppState>,
    query: LibraryQuery,
    offset: u32,
    limit: u32,
) -> Result<LibraryPage, AppError> {
    let services = state.services().await?;
    Ok(services
        .registry
        .library_page(query, offset, limit.clamp(1, MAX_PAGE))
        .await?)
}

/// The sector → category tree with match counts for the text and risk filter.
#[tauri::command]
#[specta::specta]
pub async fn library_facets(
    state: State<'_, AppState>,
    text: Option<String>,
    risk: Option<RiskLevel>,
) -> Result<SectorTree, AppError> {
    Ok(state.services().await?.registry.facets(text, risk).await?)
}

/// What the configurator offers for a template: caps, defaults, modes, connections.
#[tauri::command]
#[specta::specta]
pub async fn mission_draft(
    state: State<'_, AppState>,
    template_id: String,
) -> Result<MissionDraft, AppError> {
    Ok(state.services().await?.missions.draft(&template_id).await?)
}

/// Saves a configured perimeter as an active mission; the core refuses anything beyond a cap.
#[tauri::command]
#[specta::specta]
pub async fn save_mission(
    state: State<'_, AppState>,
    request: SaveMissionRequest,
) -> Result<SaveOutcome, AppError> {
    let operator = mission_core::gateway::operator_name();
    Ok(state
        .services()
        .await?
        .missions
        .save(&request, &operator)
        .await?)
}

/// Saved missions, newest first.
#[tauri::command]
#[specta::specta]
pub async fn list_missions(state: State<'_, AppState>) -> Result<Vec<ActiveMission>, AppError> {
    Ok(state.services().await?.missions.list(1000).await?)
}

/// Missions, newest first, with usage, plan progress and run record.
#[tauri::command]
#[specta::specta]
pub async fn mission_views(state: State<'_, AppState>) -> Result<Vec<MissionView>, AppError> {
    let repo = state.services().await?.registry.repository();
    Ok(squad::mission_views(&**repo, 200).await?)
}

/// A mission's events after `after_seq`, oldest first (at most 500 at a time).
#[tauri::command]
#[specta::specta]
pub async fn mission_events(
    state: State<'_, AppState>,
    mission_id: String,
    after_seq: i64,
) -> Result<Vec<MissionEvent>, AppError> {
    let repo = state.services().await?.registry.repository();
    Ok(squad::mission_events(&**repo, &mission_id, after_seq, 500).await?)
}

/// Deploys a saved (Ready) mission: its clock starts and the squad engine assembles its squad.
#[tauri::command]
#[specta::specta]
pub async fn deploy_mission(
    state: State<'_, AppState>,
    mission_id: String,
) -> Result<MissionView, AppError> {
    let gateway = state.gateway().await?;
    let repo = state.services().await?.registry.repository();
    let view = squad::find_mission(&**repo, &mission_id).await?;
    squad::start(gateway, view.mission).await?;
    let squads = state.squads().await?;
    if let Err(e) = squads.engine.poke().await {
        tracing::warn!(error = %e, "the squad engine will pick the mission up at its next tick");
    }
    Ok(squad::find_mission(&**repo, &mission_id).await?)
}

/// Stops a mission as the OS user at the keyboard; its run record is written and its squad
/// torn down.
#[tauri::command]
#[specta::specta]
pub async fn stop_mission(
    state: State<'_, AppState>,
    mission_id: String,
) -> Result<MissionView, AppError> {
    let repo = state.services().await?.registry.repository();
    squad::stop_mission(
        &**repo,
        &mission_id,
        &mission_core::gateway::operator_name(),
    )
    .await?;
    if let Ok(squads) = state.squads().await {
        let _ = squads.engine.poke().await;
    }
    Ok(squad::find_mission(&**repo, &mission_id).await?)
}

/// Which Kafka the squads use; an error if it could not be started.
#[tauri::command]
#[specta::specta]
pub async fn kafka_status(state: State<'_, AppState>) -> Result<KafkaInfo, AppError> {
    Ok(state.squads().await?.kafka.clone())
}

/// Opens the native file picker and previews the chosen manifests; `None` if cancelled.
#[tauri::command]
#[specta::specta]
pub async fn pick_manifests(
    app: AppHandle,
    state: State<'_, AppState>,
) -> Result<Option<ImportPreview>, AppError> {
    let services = state.services().await?;
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
        .map(|p| {
            p.into_path().map_err(|e| {
                AppError::new(
                    ErrorCode::Dialog,
                    format!("The chosen file is not a local file ({e}); copy it to this computer first."),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let preview = imports::stage(&services.imports, paths, window_sink(&app), false).await?;
    Ok(Some(preview))
}

/// Imports exactly what a preview showed, in one transaction.
#[tauri::command]
#[specta::specta]
pub async fn confirm_import(
    app: AppHandle,
    state: State<'_, AppState>,
    import_id: String,
) -> Result<ImportReport, AppError> {
    let services = state.services().await?;
    let report = imports::confirm(&services.imports, &import_id, window_sink(&app)).await?;
    crate::notify_if_unfocused(&app, &report);
    Ok(report)
}

/// Forgets a previewed import without writing anything.
#[tauri::command]
#[specta::specta]
pub async fn cancel_import(state: State<'_, AppState>, import_id: String) -> Result<(), AppError> {
    state.services().await?.imports.cancel(&import_id);
    Ok(())
}

/// Approvals waiting for a human, or every approval when `pending_only` is false.
#[tauri::command]
#[specta::specta]
pub async fn list_approvals(
    state: State<'_, AppState>,
    pending_only: bool,
) -> Result<Vec<ApprovalItem>, AppError> {
    let services = state.services().await?;
    Ok(mission_core::gateway::approvals(
        services.registry.repository().as_ref(),
        services.registry.catalog(),
        chrono::Utc::now(),
        pending_only,
    )
    .await?)
}

/// Approves or denies one waiting tool call or budget cap request, as the OS user at the
/// keyboard; the core checks the request is still open and the budget within the policy.
#[tauri::command]
#[specta::specta]
pub async fn decide_approval(
    app: AppHandle,
    state: State<'_, AppState>,
    request: DecideApproval,
) -> Result<ApprovalItem, AppError> {
    let gateway = state.gateway().await?;
    let item = gateway
        .decide(&request, &mission_core::gateway::operator_name())
        .await?;
    crate::approvals_changed(&app).await;
    Ok(item)
}

/// One page of the audit log, newest first.
#[tauri::command]
#[specta::specta]
pub async fn audit_page(
    state: State<'_, AppState>,
    query: AuditQuery,
) -> Result<AuditPage, AppError> {
    Ok(state.services().await?.audit.page(&query).await?)
}

/// Checks the whole audit log: hash chain and signatures.
#[tauri::command]
#[specta::specta]
pub async fn audit_verify(state: State<'_, AppState>) -> Result<VerifyReport, AppError> {
    Ok(state.services().await?.audit.verify(None).await?)
}

/// The window reports the first render of the library (the startup figure in the log).
#[tauri::command]
#[specta::specta]
pub fn library_rendered(state: State<'_, AppState>, count: u32) {
    state.library_rendered(count);
}
