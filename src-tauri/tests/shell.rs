//! Tests of the desktop shell that need no window: the generated TypeScript bindings match the
//! Rust types, the drop-import flow works on real files against a real SQLite database, and
//! reviewers' notifications say what waits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mission_control::error::ErrorCode;
use mission_control::imports::{self, ImportEvent, Sink};
use mission_core::app::KeyStore;
use mission_core::registry::import::ImportPhase;
use mission_core::{Core, Registry, Settings};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed bindings are what the Rust types generate. `UPDATE_BINDINGS=1` rewrites them.
#[test]
fn bindings_match_the_rust_types() {
    let committed = repo_root().join(mission_control::BINDINGS_PATH);
    let dir = tempfile::tempdir().expect("temp dir");
    let fresh = dir.path().join("bindings.ts");
    mission_control::export_bindings(&fresh).expect("export bindings");
    let generated = std::fs::read_to_string(&fresh).expect("read generated bindings");
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        std::fs::write(&committed, &generated).expect("write bindings");
        return;
    }
    let current = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        current == generated,
        "{} is out of date with the Rust types; run `UPDATE_BINDINGS=1 cargo test --test shell \
         bindings` and commit the result",
        mission_control::BINDINGS_PATH
    );
}

fn collecting_sink() -> (Sink, Arc<Mutex<Vec<ImportEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let sink: Sink = Arc::new(move |e| sink_events.lock().expect("events").push(e));
    (sink, events)
}

/// A manifest of `count` variants of the first bundled template, with fresh ids and names.
fn manifest(dir: &Path, name: &str, count: usize) -> PathBuf {
    let library: serde_json::Value =
        serde_json::from_str(mission_core::registry::service::BUNDLED_LIBRARY).expect("library");
    let first = library["templates"][0].clone();
    let templates: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let mut t = first.clone();
            t["id"] = format!("{}-dropped-{i}", first["id"].as_str().expect("id")).into();
            t["name"] = format!("Dropped Variant {i}").into();
            t
        })
        .collect();
    let mut file = library.clone();
    file["templates"] = templates.into();
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(&file).expect("json")).expect("write");
    path
}

/// The core over a fresh SQLite file, signing with a key held in memory (never the keychain).
async fn open(dir: &Path) -> (Registry, Core) {
    let url = dir.join("library.sqlite3").to_string_lossy().into_owned();
    let mut settings = Settings::bundled(Some(url)).expect("settings");
    settings.keystore = KeyStore::Ephemeral;
    let core = Core::open(settings).await.expect("open the core");
    (core.registry().clone(), core)
}

#[tokio::test]
async fn dropped_files_are_previewed_and_written_only_on_confirm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (registry, stage) = open(dir.path()).await;
    let before = registry.store().count_templates().await.expect("count");
    let valid = manifest(dir.path(), "valid.json", 3);

    let (sink, events) = collecting_sink();
    let preview = imports::stage(&stage, vec![valid.clone()], sink.clone(), true)
        .await
        .expect("preview");
    assert_eq!((preview.new, preview.updated, preview.unchanged), (3, 0, 0));
    assert!(preview.problems.is_empty(), "{:?}", preview.problems);
    assert_eq!(preview.files[0].name, "valid.json");
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before,
        "a preview wrote to the library"
    );
    {
        let events = events.lock().expect("events");
        assert!(
            matches!(&events[0], ImportEvent::Started(s) if s.files == [valid.display().to_string()])
        );
        assert!(events
            .iter()
            .any(|e| matches!(e, ImportEvent::Progress(p) if p.phase == ImportPhase::Validating)));
        assert!(matches!(events.last(), Some(ImportEvent::Preview(p)) if p.0 == preview));
    }

    let report = imports::confirm(&stage, &preview.import_id, sink)
        .await
        .expect("confirm");
    assert_eq!(report.new, 3);
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before + 3
    );
    assert!(events
        .lock()
        .expect("events")
        .iter()
        .any(|e| matches!(e, ImportEvent::LibraryChanged(c) if c.report.new == 3)));
    // The staged files are released: confirming twice cannot import twice.
    let again = imports::confirm(&stage, &preview.import_id, collecting_sink().0).await;
    assert_eq!(
        again.expect_err("second confirm").code,
        ErrorCode::ImportNotFound
    );
}

#[tokio::test]
async fn a_bad_file_among_good_ones_is_shown_and_confirm_writes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (registry, stage) = open(dir.path()).await;
    let before = registry.store().count_templates().await.expect("count");
    let valid = manifest(dir.path(), "valid.json", 2);
    let invalid = manifest(dir.path(), "invalid.json", 2);
    let mut broken: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&invalid).expect("read")).expect("json");
    broken["templates"][1]["sector"] = "no-such-sector".into();
    std::fs::write(&invalid, serde_json::to_vec(&broken).expect("json")).expect("write");

    let (sink, _) = collecting_sink();
    let preview = imports::stage(&stage, vec![valid, invalid], sink.clone(), false)
        .await
        .expect("preview");
    assert!(preview.items.is_empty());
    let problem = preview
        .problems
        .iter()
        .find(|p| p.pointer == "/templates/1/sector")
        .expect("the sector problem is reported with its pointer");
    assert!(problem.file.ends_with("invalid.json"));
    assert_eq!(
        problem.template_id.as_deref(),
        broken["templates"][1]["id"].as_str()
    );

    let refused = imports::confirm(&stage, &preview.import_id, sink)
        .await
        .expect_err("confirm must refuse a preview with problems");
    assert_eq!(refused.code, ErrorCode::InvalidManifest);
    assert!(!refused.details.problems.is_empty());
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before,
        "a refused import wrote to the library"
    );
}

#[test]
fn the_finished_import_is_notified_only_when_the_window_is_in_the_background() {
    let report = mission_core::registry::import::ImportReport::from_items(Vec::new(), false);
    assert!(imports::notification(&report, true).is_none());
    let (title, body) = imports::notification(&report, false).expect("notification");
    assert_eq!(title, "Import finished");
    assert_eq!(body, report.summary());
}

#[test]
fn reviewers_are_notified_of_held_calls_and_paused_missions_only_in_the_background() {
    use mission_core::gateway::GatewayEvent;
    let held = GatewayEvent::ApprovalRequested {
        approval_id: "a-1".into(),
        mission_id: "m-1".into(),
        tool_id: "talent.offer_draft".into(),
    };
    let paused = GatewayEvent::BudgetCapReached {
        mission_id: "m-2".into(),
    };
    let decided = GatewayEvent::ApprovalDecided {
        approval_id: "a-1".into(),
    };
    for event in [&held, &paused, &decided] {
        assert!(mission_control::approval_notification(event, true).is_none());
    }
    let (title, body) = mission_control::approval_notification(&held, false).expect("held");
    assert_eq!(title, "A tool call waits for your approval");
    assert!(
        body.contains("talent.offer_draft") && body.contains("m-1"),
        "{body}"
    );
    let (title, body) = mission_control::approval_notification(&paused, false).expect("paused");
    assert_eq!(title, "A mission reached its budget");
    assert!(body.contains("m-2") && body.contains("raise"), "{body}");
    assert!(mission_control::approval_notification(&decided, false).is_none());
}

#[test]
fn a_recount_notifies_only_of_a_grown_queue_in_the_background() {
    use mission_control::queue_grew_notification;
    assert!(queue_grew_notification(2, 3, true).is_none());
    assert!(queue_grew_notification(3, 3, false).is_none());
    assert!(queue_grew_notification(3, 1, false).is_none());
    let (title, body) = queue_grew_notification(0, 1, false).expect("one new");
    assert_eq!(title, "A request waits for your approval");
    assert_eq!(body, "1 in the queue. Open Approvals to decide.");
    let (title, _) = queue_grew_notification(1, 4, false).expect("three new");
    assert_eq!(title, "3 requests wait for your approval");
}
