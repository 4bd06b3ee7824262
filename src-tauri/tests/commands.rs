//! The window's commands on Tauri's mock runtime: the real app builder, the real core over a
//! fresh SQLite file, and IPC requests as the window sends them. The core's errors reach the
//! window unchanged, with their code and details, and a refused request changes nothing.

use std::time::Instant;

use mission_core::app::KeyStore;
use mission_core::Settings;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindow;

/// The app as it runs, on the mock runtime, over a database in `dir`.
fn app(dir: &std::path::Path) -> (tauri::App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let mut settings = Settings::bundled(Some(
        dir.join("library.sqlite3").to_string_lossy().into_owned(),
    ))
    .expect("settings");
    // Never the real keychain, and an agent API on a free port.
    settings.keystore = KeyStore::Ephemeral;
    settings.api_listen = Some("127.0.0.1:0".to_owned());
    // The audit trust anchor in the test's folder, never the user's config folder.
    settings.trust_anchor = Some(mission_core::audit::TrustAnchor::at(
        dir.join("audit-trust.json"),
    ));
    let app = mission_control::app(
        mock_builder(),
        mission_control::specta_builder_for!(MockRuntime),
        Ok(settings),
        Instant::now(),
    )
    .build(mock_context(noop_assets()))
    .expect("build the app");
    let window = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("main window");
    (app, window)
}

/// The origin of the window's own pages: Tauri serves them from `http://tauri.localhost` on
/// Windows and from `tauri://localhost` elsewhere.
#[cfg(windows)]
const LOCAL_ORIGIN: &str = "http://tauri.localhost";
#[cfg(not(windows))]
const LOCAL_ORIGIN: &str = "tauri://localhost";

/// Sends one command as the window does; the command's answer or its error, as JSON.
fn invoke(window: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    tauri::test::get_ipc_response(
        window,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: LOCAL_ORIGIN.parse().expect("url"),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_owned(),
        },
    )
    .map(|body| body.deserialize::<Value>().expect("json answer"))
}

#[test]
fn commands_answer_through_the_core_and_its_errors_reach_the_window_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_app, window) = app(dir.path());

    let page = invoke(
        &window,
        "library_search",
        json!({"query": {"text": "burn", "sector": null, "category": null, "risk": null},
               "offset": 0, "limit": 5}),
    )
    .expect("search");
    assert_eq!(page["templates"][0]["id"], "talent.burnout-recruiter");

    let draft = invoke(
        &window,
        "mission_draft",
        json!({"templateId": "talent.burnout-recruiter"}),
    )
    .expect("draft");
    let cap = draft["hard_caps"]["budget_cents"].as_i64().expect("cap");
    let request = |budget: i64| {
        json!({"request": {
            "request_id": uuid::Uuid::now_v7().to_string(),
            "template_id": "talent.burnout-recruiter",
            "template_version": draft["template"]["version"],
            "budget_cents": budget,
            "ttl_seconds": draft["defaults"]["ttl_seconds"],
            "max_steps": draft["defaults"]["max_steps"],
            "approval_mode": "Auto",
            "threshold_cents": null,
            "connections": []
        }})
    };

    // Beyond the cap: the core's own code, field and limit arrive as they were, with the
    // audit record of the refusal; nothing is saved.
    let refused = invoke(&window, "save_mission", request(cap + 1)).expect_err("beyond the cap");
    assert_eq!(refused["code"], "perimeter_out_of_range", "{refused}");
    assert_eq!(refused["details"]["field"], "budget_cents");
    assert_eq!(refused["details"]["limit"], cap);
    assert!(refused["details"]["audit_seq"].is_i64(), "{refused}");
    let first_page = json!({ "after": null, "limit": 50 });
    let missions = invoke(&window, "list_missions", first_page.clone()).expect("missions");
    assert_eq!(missions, json!({ "items": [], "next": null }));

    let saved = invoke(&window, "save_mission", request(cap)).expect("save");
    assert_eq!(saved["created"], true);
    let missions = invoke(&window, "list_missions", first_page).expect("missions");
    assert_eq!(missions["items"].as_array().map(Vec::len), Some(1));

    // A refusal of the gateway keeps its precise code all the way to the window.
    let missing = invoke(
        &window,
        "decide_approval",
        json!({"request": {"approval_id": uuid::Uuid::now_v7().to_string(),
                           "decision": "Approve", "budget_cents": null}}),
    )
    .expect_err("no such approval");
    assert_eq!(missing["code"], "approval_not_found", "{missing}");

    let audit = invoke(
        &window,
        "audit_page",
        json!({"query": {"mission_id": null, "sector": null, "before_seq": null, "limit": 10}}),
    )
    .expect("audit");
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["approval.decide", "mission.save", "mission.save"],
        "{audit}"
    );
    let verified = invoke(&window, "audit_verify", json!({})).expect("verify");
    assert_eq!(verified["ok"], true, "{verified}");
}
