//! Generates the Tauri context. The app's own commands are declared here so that each needs an
//! explicit permission: the main window's capability grants exactly these and nothing else.

/// Every command the UI may call; keep in step with `collect_commands!` in src-tauri/src/lib.rs
/// (a mismatch makes the window's calls fail with a permission error, which the e2e test sees).
const COMMANDS: &[&str] = &[
    "library_search",
    "library_facets",
    "mission_draft",
    "save_mission",
    "list_missions",
    "mission_views",
    "mission_events",
    "deploy_mission",
    "stop_mission",
    "kafka_status",
    "pick_manifests",
    "confirm_import",
    "cancel_import",
    "list_approvals",
    "decide_approval",
    "audit_page",
    "audit_verify",
    "library_rendered",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .capabilities_path_pattern("src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        // Build scripts report through a failed build; there is no caller to return to.
        eprintln!("tauri build step failed: {e:#}");
        std::process::exit(1);
    }
}
