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

use mission_core::app::ApprovalNotice;
use mission_core::gateway::GatewayEvent;
use mission_core::registry::import::ImportReport;
use mission_core::{Core, CoreError, Settings};
use tauri::{AppHandle, DragDropEvent, Manager, Runtime, WindowEvent};
use tauri_plugin_notification::NotificationExt;
use tauri_specta::Event;

use crate::events::{ApprovalsChanged, ImportFailed, MissionsChanged};
use crate::imports::{ImportEvent, Sink};
use crate::state::AppState;

/// Where the generated TypeScript bindings live, relative to the repository root.
pub const BINDINGS_PATH: &str = "ui/src/bindings.ts";

const BINDINGS_HEADER: &str =
    "// Generated from the Rust types by tauri-specta (src-tauri/src/lib.rs); do not edit.\n\
// Regenerate with: UPDATE_BINDINGS=1 cargo test --test shell bindings";

/// The commands and events the window may use, on one runtime. A macro rather than a generic
/// function: the command list names each generic command with its runtime, which an item
/// nested in a generic function cannot see.
#[macro_export]
macro_rules! specta_builder_for {
    ($runtime:ty) => {
        tauri_specta::Builder::<$runtime>::new()
            .commands(tauri_specta::collect_commands![
                $crate::commands::library_search,
                $crate::commands::library_facets,
                $crate::commands::mission_draft,
                $crate::commands::save_mission,
                $crate::commands::list_missions,
                $crate::commands::mission_views,
                $crate::commands::mission_events,
                $crate::commands::deploy_mission,
                $crate::commands::stop_mission,
                $crate::commands::kafka_status,
                $crate::commands::pick_manifests::<$runtime>,
                $crate::commands::confirm_import::<$runtime>,
                $crate::commands::cancel_import,
                $crate::commands::list_approvals,
                $crate::commands::decide_approval::<$runtime>,
                $crate::commands::audit_page,
                $crate::commands::audit_verify,
                $crate::commands::library_rendered,
            ])
            .events(tauri_specta::collect_events![
                $crate::events::ApprovalsChanged,
                $crate::events::ImportStarted,
                $crate::events::ImportProgress,
                $crate::events::ImportPreviewReady,
                $crate::events::ImportFailed,
                $crate::events::LibraryChanged,
                $crate::events::MissionsChanged
            ])
            // Counts, cents and seconds stay far below 2^53, so plain numbers are exact.
            .dangerously_cast_bigints_to_number()
            // The boundary types go one way each (results out, requests in), so one TypeScript
            // type per Rust type is exact; phase-split `_Serialize`/`_Deserialize` twins add noise.
            .disable_serde_phases()
    };
}

/// The commands and events of the app on its real runtime, for the app and the bindings.
pub fn specta_builder() -> tauri_specta::Builder<tauri::Wry> {
    specta_builder_for!(tauri::Wry)
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
pub fn window_sink<R: Runtime>(app: &AppHandle<R>) -> Sink {
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
pub fn notify_if_unfocused<R: Runtime>(app: &AppHandle<R>, report: &ImportReport) {
    let focused = main_window_focused(app);
    if let Some((title, body)) = imports::notification(report, focused) {
        if let Err(e) = app.notification().builder().title(title).body(body).show() {
            tracing::warn!(error = %e, "could not show the import notification");
        }
    }
}

pub(crate) fn emit_pending<R: Runtime>(app: &AppHandle<R>, pending: u32) {
    if let Err(e) = (ApprovalsChanged { pending }).emit(app) {
        tracing::warn!(error = %e, "could not tell the window about approvals");
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

/// What to tell a reviewer natively about a change of the queue, if anything.
pub fn notice_notification(notice: &ApprovalNotice, focused: bool) -> Option<(String, String)> {
    match notice {
        ApprovalNotice::Event { event, .. } => approval_notification(event, focused),
        ApprovalNotice::Recounted { before, pending } => {
            queue_grew_notification(*before, *pending, focused)
        }
    }
}

fn main_window_focused<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.get_webview_window("main")
        .and_then(|w| w.is_focused().ok())
        .unwrap_or(false)
}

fn notify<R: Runtime>(app: &AppHandle<R>, (title, body): (String, String)) {
    if let Err(e) = app.notification().builder().title(title).body(body).show() {
        tracing::warn!(error = %e, "could not show the approval notification");
    }
}

/// Hands the core's approval notices to the window (the tab count) and, while the window is in
/// the background, to the reviewer as native notifications.
async fn relay_approvals<R: Runtime>(app: AppHandle<R>, core: Core) {
    let mut notices = match core.watch_approvals().await {
        Ok(notices) => notices,
        Err(e) => {
            tracing::error!(error = %e, "the approvals queue is not watched");
            return;
        }
    };
    while let Some(notice) = notices.recv().await {
        if let Some(note) = notice_notification(&notice, main_window_focused(&app)) {
            notify(&app, note);
        }
        emit_pending(&app, notice.pending());
    }
}

/// Tells the window which missions changed, a few times a second at most.
async fn relay_missions<R: Runtime>(app: AppHandle<R>, core: Core) {
    let mut notices = match core.mission_notices().await {
        Ok(notices) => notices,
        Err(e) => {
            tracing::error!(error = %e, "no squad engine runs");
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

/// Starts, beside the window, the approvals relay, the squad engine (re-assembling missions
/// that were running when the app last stopped) and the agent API. A failure is logged and
/// leaves the rest of the app working; commands that need the failed part report it.
async fn start_background<R: Runtime>(app: AppHandle<R>, core: Core) {
    tauri::async_runtime::spawn(relay_approvals(app.clone(), core.clone()));
    tauri::async_runtime::spawn(relay_missions(app.clone(), core.clone()));
    let listener = match mission_core::api::bind(&core).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "the agent API does not run");
            return;
        }
    };
    match listener.local_addr() {
        Ok(local) => tracing::info!(%local, "agent API listening"),
        Err(e) => tracing::warn!(error = %e, "agent API listening on an unknown address"),
    }
    if let Err(e) = mission_core::api::serve(listener, core, std::future::pending()).await {
        tracing::error!(error = %e, "the agent API stopped");
    }
}

/// Previews files dropped on the window; the window gets the preview (or the error) as events.
fn on_drop<R: Runtime>(app: &AppHandle<R>, paths: Vec<PathBuf>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let state = app.state::<AppState>();
        let result = match state.core().await {
            Ok(core) => imports::stage(core, paths, window_sink(&app), true)
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

/// The app on any runtime: plugins, commands, the core opened in the background, and the
/// window's drag-and-drop. The real app runs it on Wry; tests on `tauri::test::mock_builder()`.
pub fn app<R: Runtime>(
    builder: tauri::Builder<R>,
    specta: tauri_specta::Builder<R>,
    settings: Result<Settings, CoreError>,
    started: Instant,
) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(specta.invoke_handler())
        .manage(AppState::new(settings, started))
        .setup(move |app| {
            specta.mount_events(app);
            // Open the database while the webview loads, then start what runs beside the
            // window.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                if let Ok(core) = handle.state::<AppState>().core().await {
                    start_background(handle.clone(), core.clone()).await;
                }
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::DragDrop(DragDropEvent::Drop { paths, .. }) = event {
                on_drop(window.app_handle(), paths.clone());
            }
        })
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
    let settings = Settings::from_env(None);
    if let Err(e) = &settings {
        tracing::error!(error = %e, "the settings are wrong");
    }
    let result = app(
        tauri::Builder::default(),
        specta_builder(),
        settings,
        started,
    )
    .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!(error = %e, "the app stopped with an error");
        std::process::exit(1);
    }
}
