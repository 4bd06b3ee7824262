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

use mission_core::registry::import::ImportReport;
use tauri::{AppHandle, DragDropEvent, Manager, WindowEvent};
use tauri_plugin_notification::NotificationExt;
use tauri_specta::{collect_commands, collect_events, Event};

use crate::events::{
    ImportFailed, ImportPreviewReady, ImportProgress, ImportStarted, LibraryChanged,
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
            commands::pick_manifests,
            commands::confirm_import,
            commands::cancel_import,
            commands::library_rendered,
        ])
        .events(collect_events![
            ImportStarted,
            ImportProgress,
            ImportPreviewReady,
            ImportFailed,
            LibraryChanged
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
    let focused = app
        .get_webview_window("main")
        .and_then(|w| w.is_focused().ok())
        .unwrap_or(false);
    if let Some((title, body)) = imports::notification(report, focused) {
        if let Err(e) = app.notification().builder().title(title).body(body).show() {
            tracing::warn!(error = %e, "could not show the import notification");
        }
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
    let specta = specta_builder();
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(specta.invoke_handler())
        .setup(move |app| {
            specta.mount_events(app);
            let url = database_url(app.handle())?;
            app.manage(AppState::new(url, started));
            // Open the database while the webview loads.
            let handle = app.handle().clone();
            tauri::async_runtime::spawn(async move {
                let _ = handle.state::<AppState>().services().await;
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
