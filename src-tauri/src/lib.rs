//! The Mission Control desktop shell: Tauri commands and events over `mission_core`. Every
//! command is a thin adapter; the behaviour, and every check, is in the core.

pub mod commands;
pub mod error;
pub mod events;
pub mod imports;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use mission_core::gateway::{GatewayConfig, GatewayEvent};
use mission_core::registry::import::ImportReport;
use tauri::{AppHandle, DragDropEvent, Manager, WindowEvent};
use tauri_plugin_notification::NotificationExt;
use tauri_specta::{collect_commands, collect_events, Event};

use crate::events::{
    ApprovalsChanged, ImportFailed, ImportPreviewReady, ImportProgress, ImportStarted,
    LibraryChanged, MissionsChanged,
};
use crate::imports::{ImportEvent, Sink};
use crate::state::AppState;

/// Where the generated TypeScript bindings live, relative to the repository root.
pub const BINDINGS_PATH: &str = "ui/src/bindings.ts";

const BINDINGS_HEADER: &str =
    "// Generated from the Rust types by tauri-specta (src-tauri/src/lib.rs); do not edit.\n\
// Regenerate with: UPDATE_BINDINGS=1 cargo test --test shell bindings";

/// The commands and events the window may use, for both the app and the bindings.
pub fn specta_builder() -> tauri_specta::Builder<tauri::Wry> {
    tauri_specta::Builder::<tauri::Wry>::new()
        .commands(collect_commands![
            commands::library_search,
            commands::library_facets,
            commands::mission_draft,
            commands::save_mission,
            commands::list_missions,
            commands::mission_views,
            commands::mission_events,
            commands::deploy_mission,
            commands::stop_mission,
            commands::kafka_status,
            commands::pick_manifests,
            commands::confirm_import,
            commands::cancel_import,
            commands::list_approvals,
            commands::decide_approval,
            commands::audit_page,
            commands::audit_verify,
            commands::library_rendered,
        ])
        .events(collect_events![
            ApprovalsChanged,
            ImportStarted,
            ImportProgress,
            ImportPreviewReady,
            ImportFailed,
            LibraryChanged,
            MissionsChanged
        ])
        // Counts, cents and seconds stay far below 2^53, so plain numbers are exact.
        .dangerously_cast_bigints_to_number()
        // The boundary types go one way each (results out, requests in), so one TypeScript
        // type per Rust type is exact; phase-split `_Serialize`/`_Deserialize` twins add noise.
        .disable_serde_phases()
}

/// Writes the TypeScript bindings to a file.
pub fn export_bindings(path: &Path) -> Result<(), String> {
    specta_builder()
        .export(
            specta_typescript::Typescript::default().header(BINDINGS_HEADER),
            path,
        )
        .map_err(|e| e.to_string())
}

/// Sends the import flow's events to the window.
pub fn window_sink(app: &AppHandle) -> Sink {
    let app = app.clone();
    Arc::new(move |event| {
        let sent = match event {
            ImportEvent::Started(e) => e.emit(&app),
            ImportEvent::Progress(e) => e.emit(&app),
            ImportEvent::Preview(e) => e.emit(&app),
            ImportEvent::LibraryChanged(e) => e.emit(&app),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not send an import event to the window");
        }
    })
}

/// Shows a native notification for a finished import when the window is in the background.
pub fn notify_if_unfocused(app: &AppHandle, report: &ImportReport) {
    let focused = main_window_focused(app);
    if let Some((title, body)) = imports::notification(report, focused) {
        if let Err(e) = app.notification().builder().title(title).body(body).show() {
            tracing::warn!(error = %e, "could not show the import notification");
        }
    }
}

/// How many approvals wait now, in this database (whichever process's gateway opened them).
async fn pending_approvals(app: &AppHandle) -> Option<u32> {
    let state = app.state::<AppState>();
    let services = state.services().await.ok()?;
    match mission_core::gateway::approvals(
        services.registry.repository().as_ref(),
        services.registry.catalog(),
        chrono::Utc::now(),
        true,
    )
    .await
    {
        Ok(items) => Some(u32::try_from(items.len()).unwrap_or(u32::MAX)),
        Err(e) => {
            tracing::warn!(error = %e, "could not count the waiting approvals");
            None
        }
    }
}

fn emit_pending(app: &AppHandle, pending: u32) {
    if let Err(e) = (ApprovalsChanged { pending }).emit(app) {
        tracing::warn!(error = %e, "could not tell the window about approvals");
    }
}

/// Tells the window how many approvals wait now, so the queue and its tab count reload.
pub async fn approvals_changed(app: &AppHandle) {
    if let Some(pending) = pending_approvals(app).await {
        emit_pending(app, pending);
    }
}

/// What a reviewer is told natively about a gateway event: nothing while the window is in
/// front (the Approvals tab count already shows it) or for a decision already made.
pub fn approval_notification(event: &GatewayEvent, focused: bool) -> Option<(String, String)> {
    if focused {
        return None;
    }
    match event {
        GatewayEvent::ApprovalRequested {
            tool_id,
            mission_id,
            ..
        } => Some((
            "A tool call waits for your approval".to_owned(),
            format!("{tool_id} for mission {mission_id}. Open Approvals to approve or deny it."),
        )),
        GatewayEvent::BudgetCapReached { mission_id } => Some((
            "A mission reached its budget".to_owned(),
            format!(
                "Mission {mission_id} is paused. Open Approvals to raise its budget or stop it."
            ),
        )),
        GatewayEvent::ApprovalDecided { .. } => None,
    }
}

/// How often the queue is recounted for requests this app's gateway did not open (an agent
/// API served by `missionctl serve` on the same database) and for requests that expired.
const APPROVALS_RECOUNT: std::time::Duration = std::time::Duration::from_secs(10);

fn main_window_focused(app: &AppHandle) -> bool {
    app.get_webview_window("main")
        .and_then(|w| w.is_focused().ok())
        .unwrap_or(false)
}

fn notify(app: &AppHandle, (title, body): (String, String)) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(error = %e, "could not show the approval notification");
    }
}

/// Relays gateway events to the window, and to reviewers as native notifications while the
/// window is in the background; recounts the queue now and then for what no event announced.
async fn relay_gateway_events(
    app: AppHandle,
    mut events: tokio::sync::broadcast::Receiver<GatewayEvent>,
) {
    use tokio::sync::broadcast::error::RecvError;
    let mut recount = tokio::time::interval(APPROVALS_RECOUNT);
    recount.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = pending_approvals(&app).await.unwrap_or(0);
    emit_pending(&app, last);
    loop {
        tokio::select! {
            received = events.recv() => {
                match received {
                    Ok(event) => {
                        if let Some(note) = approval_notification(&event, main_window_focused(&app)) {
                            notify(&app, note);
                        }
                    }
                    // Missed events only mean the count is stale; it is recounted below.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
                if let Some(pending) = pending_approvals(&app).await {
                    last = pending;
                    emit_pending(&app, pending);
                }
            }
            _ = recount.tick() => {
                let Some(pending) = pending_approvals(&app).await else { continue };
                if pending != last {
                    if let Some(note) = queue_grew_notification(last, pending, main_window_focused(&app)) {
                        notify(&app, note);
                    }
                    last = pending;
                    emit_pending(&app, pending);
                }
            }
        }
    }
}

/// The notification for requests found by a recount (opened by another process on the same
/// database): only when the queue grew and the window is in the background.
pub fn queue_grew_notification(before: u32, now: u32, focused: bool) -> Option<(String, String)> {
    (!focused && now > before).then(|| {
        let new = now - before;
        (
            if new == 1 {
                "A request waits for your approval".to_owned()
            } else {
                format!("{new} requests wait for your approval")
            },
            format!("{now} in the queue. Open Approvals to decide."),
        )
    })
}

/// Where the agent API listens: `MISSION_CONTROL_API_LISTEN` if set, else `config/gateway.json`.
pub(crate) fn api_listen_address() -> Result<String, String> {
    if let Ok(addr) = std::env::var("MISSION_CONTROL_API_LISTEN") {
        if !addr.trim().is_empty() {
            return Ok(addr);
        }
    }
    GatewayConfig::bundled()
        .map(|c| c.listen)
        .map_err(|e| format!("config/gateway.json: {e}"))
}

/// Starts the squad engine (re-assembling missions that were running when the app last
/// stopped) and tells the window which missions changed, a few times a second at most.
async fn start_squads(app: AppHandle) {
    let state = app.state::<AppState>();
    let mut notices = match state.squads().await {
        Ok(squads) => squads.engine.subscribe(),
        Err(e) => {
            tracing::error!(error = %e.message, "no squad engine runs");
            return;
        }
    };
    loop {
        let first = match notices.recv().await {
            Ok(notice) => notice.mission_id,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let mut changed = std::collections::BTreeSet::from([first]);
        while let Ok(notice) = notices.try_recv() {
            changed.insert(notice.mission_id);
        }
        for mission_id in changed {
            if let Err(e) = (MissionsChanged { mission_id }).emit(&app) {
                tracing::warn!(error = %e, "could not tell the window a mission changed");
            }
        }
    }
}

/// Starts the gateway, its event relay and the agent API in the background. A failure is
/// logged and leaves the rest of the app working; commands that need the gateway report it.
async fn start_gateway(app: AppHandle) {
    let state = app.state::<AppState>();
    let gateway = match state.gateway().await {
        Ok(gateway) => gateway.clone(),
        Err(e) => {
            tracing::error!(error = %e.message, "the tool gateway did not start");
            return;
        }
    };
    tauri::async_runtime::spawn(relay_gateway_events(app.clone(), gateway.subscribe()));
    tauri::async_runtime::spawn(start_squads(app.clone()));
    let addr = match api_listen_address() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "the agent API has no address to listen on");
            return;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(
                error = %e,
                %addr,
                "the agent API could not listen; is `missionctl serve` or another app running?"
            );
            return;
        }
    };
    match listener.local_addr() {
        Ok(local) => tracing::info!(%local, "agent API listening"),
        Err(e) => tracing::warn!(error = %e, "agent API listening on an unknown address"),
    }
    if let Err(e) = mission_core::api::serve(listener, gateway, std::future::pending()).await {
        tracing::error!(error = %e, "the agent API stopped");
    }
}

/// Previews files dropped on the window; the window gets the preview (or the error) as events.
fn on_drop(app: &AppHandle, paths: Vec<PathBuf>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = app.state::<AppState>();
        let result = match state.services().await {
            Ok(services) => imports::stage(&services.imports, paths, window_sink(&app), true)
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(error) = result {
            if let Err(e) = (ImportFailed { error }).emit(&app) {
                tracing::warn!(error = %e, "could not report a failed import to the window");
            }
        }
    });
}

/// The database the app opens: `DATABASE_URL` if set, else the SQLite file in the app-data
/// folder (the same file `missionctl` uses).
fn database_url(app: &AppHandle) -> Result<String, String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if !url.trim().is_empty() {
            return Ok(url);
        }
    }
    let dir = app
        .path()
        .app_data_dir()
        .map_err(|e| format!("no app-data folder is known for this user: {e}"))?;
    Ok(dir
        .join("mission-control.sqlite3")
        .to_string_lossy()
        .into_owned())
}

/// On Linux without a GPU render node, WebKitGTK composites in software anyway; its
/// accelerated-compositing path then only costs memory (about 110 MB more in the web process,
/// measured by the startup benchmark under Xvfb) and startup time. An explicit setting wins.
#[cfg(target_os = "linux")]
fn prefer_plain_rendering_without_gpu() {
    const KEY: &str = "WEBKIT_DISABLE_COMPOSITING_MODE";
    let has_render_node = std::fs::read_dir("/dev/dri").is_ok_and(|dir| {
        dir.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    });
    if !has_render_node && std::env::var_os(KEY).is_none() {
        // Runs first thing in `run`, before any thread exists that could read the environment.
        std::env::set_var(KEY, "1");
    }
}

/// Runs the desktop app until its window closes.
pub fn run() {
    let started = Instant::now();
    #[cfg(target_os = "linux")]
    prefer_plain_rendering_without_gpu();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = mission_core::audit::select_keystore_from_env() {
        tracing::error!(error = %e, "the key store setting is wrong");
        std::process::exit(2);
    }
    let specta = specta_builder();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(specta.invoke_handler())
        .setup(move |app| {
            specta.mount_events(app);
            let url = database_url(app.handle())?;
            app.manage(AppState::new(url, started));
            // Open the database while the webview loads, then start the gateway and the agent
            // API beside the window.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                if handle.state::<AppState>().services().await.is_ok() {
                    start_gateway(handle).await;
                }
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::DragDrop(DragDropEvent::Drop { paths, .. }) = event {
                on_drop(window.app_handle(), paths.clone());
            }
        })
        .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!(error = %e, "the app stopped with an error");
        std::process::exit(1);
    }
}
