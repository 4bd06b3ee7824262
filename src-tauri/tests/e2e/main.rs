//! End to end through the real window: the built app under Xvfb, driven by tauri-driver and
//! WebKitWebDriver. Run by scripts/test as
//! `xvfb-run -a cargo test --features custom-protocol --test e2e`.
//!
//! The app runs with HOME and the XDG folders in a temporary directory, so it creates its
//! SQLite database there (the real default location, relocated); the test then reads that
//! database directly to check what Save wrote.

use std::path::Path;
use std::time::Duration;

use fantoccini::{Client, Locator};
use serde_json::json;
use sqlx::Row;

const TEMPLATE: &str = "talent.burnout-recruiter";
const WAIT: Duration = Duration::from_secs(30);

mod support;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn quick_deploy_burnout_recruiter_saves_one_clamped_threshold_mission() {
    let home = tempfile::tempdir().expect("temp home");
    let api_port = free_port();
    let driver = start_driver(home.path(), api_port);
    let client = connect(&driver).await;

    // The library renders the bundled templates.
    until("the library's first rows", || first_row_id(&client)).await;
    screenshot(&client, "library.png").await;

    // Search as you type.
    let search = client
        .find(Locator::Css("[data-testid='library-search']"))
        .await
        .expect("search box");
    search.send_keys("burnout").await.expect("type");
    until("Burnout Recruiter first in the results", || async {
        (first_row_id(&client).await.as_deref() == Some(TEMPLATE)).then_some(())
    })
    .await;

    // Quick Deploy opens the configurator.
    client
        .find(Locator::Css(&format!(
            "[data-template-id='{TEMPLATE}'] [data-testid='quick-deploy']"
        )))
        .await
        .expect("Quick Deploy button")
        .click()
        .await
        .expect("click Quick Deploy");
    until("the configurator's budget input", || {
        value_of(&client, "[data-testid='budget-input']")
    })
    .await;
    screenshot(&client, "mission-config-modal.png").await;

    // Push the budget past its cap: the field clamps to the cap ($250.00 for this template).
    let budget = client
        .find(Locator::Css("[data-testid='budget-input']"))
        .await
        .expect("budget input");
    budget.clear().await.expect("clear budget");
    budget.send_keys("999999").await.expect("type budget");
    let shown = until("the budget clamped to its cap", || async {
        value_of(&client, "[data-testid='budget-input']")
            .await
            .filter(|v| v.parse::<f64>().is_ok_and(|n| n <= 250.0))
    })
    .await;
    assert_eq!(shown.parse::<f64>().expect("number"), 250.0);

    // Threshold mode, then Save.
    client
        .find(Locator::Css("[data-testid='mode-Threshold']"))
        .await
        .expect("Threshold toggle")
        .click()
        .await
        .expect("choose Threshold");
    until("the threshold input", || {
        value_of(&client, "[data-testid='threshold-input']")
    })
    .await;
    client
        .find(Locator::Css("[data-testid='save-mission']"))
        .await
        .expect("Save button")
        .click()
        .await
        .expect("Save");
    let mission_id = until("the saved mission's id", || async {
        let text = client
            .find(Locator::Css("[data-testid='saved-mission-id']"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (!text.trim().is_empty()).then(|| text.trim().to_owned())
    })
    .await;
    screenshot(&client, "mission-saved.png").await;

    // The core refuses a budget beyond the cap whatever the window sends.
    let draft = invoke(&client, "mission_draft", json!({ "templateId": TEMPLATE }))
        .await
        .expect("mission_draft");
    let cap = draft["hard_caps"]["budget_cents"].as_i64().expect("cap");
    assert_eq!(cap, 25_000);
    let refused = invoke(
        &client,
        "save_mission",
        json!({ "request": {
            "request_id": "0192f0a0-0000-7000-8000-000000000001",
            "template_id": TEMPLATE,
            "template_version": draft["template"]["version"],
            "budget_cents": cap + 1,
            "ttl_seconds": 3600,
            "max_steps": 1,
            "approval_mode": "Auto",
            "threshold_cents": null,
            "connections": []
        }}),
    )
    .await
    .expect_err("a budget beyond the cap must be refused");
    assert_eq!(refused["code"], "perimeter_out_of_range", "{refused}");
    assert_eq!(refused["details"]["field"], "budget_cents");
    assert_eq!(refused["details"]["limit"], cap);

    deploy_follow_approve_and_verify(&client, home.path(), &mission_id, api_port).await;

    client.close().await.expect("close session");
    drop(driver);

    // The configurator saved exactly one mission, as configured, pinned to the template's
    // version and logic_hash (the other one was saved through the command channel).
    let mut db = database(home.path()).await;
    let rows = sqlx::query(
        "SELECT m.id, m.budget_cents, m.approval_mode, m.threshold_cents, m.logic_hash, \
         m.template_version, v.logic_hash AS version_hash \
         FROM active_missions m JOIN template_versions v \
         ON v.template_id = m.template_id AND v.version = m.template_version \
         WHERE m.approval_mode = 'Threshold'",
    )
    .fetch_all(&mut db)
    .await
    .expect("read missions");
    assert_eq!(rows.len(), 1, "expected exactly one configured mission");
    let row = &rows[0];
    assert_eq!(row.get::<String, _>("id"), mission_id);
    assert_eq!(row.get::<i64, _>("budget_cents"), 25_000);
    assert_eq!(row.get::<String, _>("approval_mode"), "Threshold");
    assert!(row.get::<Option<i64>, _>("threshold_cents").is_some());
    let template_hash: String = sqlx::query_scalar("SELECT logic_hash FROM templates WHERE id = ?")
        .bind(TEMPLATE)
        .fetch_one(&mut db)
        .await
        .expect("template hash");
    assert_eq!(row.get::<String, _>("logic_hash"), template_hash);
    assert_eq!(
        row.get::<String, _>("logic_hash"),
        row.get::<String, _>("version_hash")
    );

    // Both runs are recorded for the ROI history, with why the first did not complete.
    let runs = sqlx::query("SELECT mission_id, status, failure_reason FROM mission_runs")
        .fetch_all(&mut db)
        .await
        .expect("read runs");
    assert_eq!(runs.len(), 2);
    let failed = runs
        .iter()
        .find(|r| r.get::<String, _>("mission_id") == mission_id)
        .expect("the first mission's run");
    assert_eq!(failed.get::<String, _>("status"), "Failed");
    assert!(failed
        .get::<Option<String>, _>("failure_reason")
        .is_some_and(|r| r.contains("sector_denied")));
    assert!(runs
        .iter()
        .any(|r| r.get::<String, _>("status") == "Completed"));
}

/// Deploys the saved mission from the Active Missions view: its squad runs on the embedded
/// Kafka and fails at the step whose sector was not connected, which the view shows with the
/// mission's events. A second mission, with the connection granted and Strict approvals, waits
/// for a reviewer twice, is approved in the Approvals tab and completes; meanwhile the app's
/// own agent API serves an extra agent of the same mission. The Audit tab verifies the chain.
async fn deploy_follow_approve_and_verify(
    client: &Client,
    home: &Path,
    mission_id: &str,
    api_port: u16,
) {
    // The saved mission's confirmation closes; the tabs are reachable again.
    click(client, "[data-testid='close-mission']").await;
    until("the configurator to close", || async {
        client
            .find(Locator::Css("[data-testid='mission-config-modal']"))
            .await
            .is_err()
            .then_some(())
    })
    .await;
    click(client, "[data-testid='tab-missions']").await;
    until("the Active Missions table", || async {
        client
            .find(Locator::Css("[data-testid='active-missions']"))
            .await
            .ok()
    })
    .await;
    screenshot(client, "active-missions.png").await;
    let kafka = until("the Kafka mode line", || async {
        text_of(client, "[data-testid='kafka-mode']")
            .await
            .filter(|t| t.contains("embedded"))
    })
    .await;
    assert!(kafka.contains("mock cluster"), "{kafka}");
    until("the saved mission, Ready", || async {
        (status_of(client, mission_id).await.as_deref() == Some("Ready")).then_some(())
    })
    .await;
    click(
        client,
        &format!("{} [data-testid='deploy-mission']", row(mission_id)),
    )
    .await;
    // Intelligence was not ticked as a connection: the sentiment step is refused and the
    // mission fails with that reason.
    until("the mission to fail at the unconnected sector", || async {
        (status_of(client, mission_id).await.as_deref() == Some("Failed")).then_some(())
    })
    .await;
    click(client, &format!("{} td:first-child", row(mission_id))).await;
    let events = until("the mission's events", || async {
        let rows = event_rows(client).await;
        rows.iter()
            .any(|(kind, _)| kind == "mission.ended")
            .then_some(rows)
    })
    .await;
    for kind in [
        "context",
        "job.assigned",
        "job.result",
        "job.failed",
        "mission.ended",
    ] {
        assert!(
            events.iter().any(|(k, _)| k == kind),
            "no {kind} event in {events:?}"
        );
    }
    assert!(
        events.iter().all(|(_, job)| !job.is_empty()),
        "every event names its job: {events:?}"
    );
    let panel = text_of(client, "[data-testid='mission-events']")
        .await
        .unwrap_or_default();
    assert!(panel.contains("sector_denied"), "{panel}");
    screenshot(client, "active-missions-failed.png").await;

    // A second mission with the connection granted and every side effect held for a human.
    let draft = invoke(client, "mission_draft", json!({ "templateId": TEMPLATE }))
        .await
        .expect("mission_draft");
    let saved = invoke(
        client,
        "save_mission",
        json!({ "request": {
            "request_id": "0192f0a0-0000-7000-8000-000000000002",
            "template_id": TEMPLATE,
            "template_version": draft["template"]["version"],
            "budget_cents": 25_000,
            "ttl_seconds": 3600,
            "max_steps": 120,
            "approval_mode": "Strict",
            "threshold_cents": null,
            "connections": ["intelligence"]
        }}),
    )
    .await
    .expect("save the Strict mission");
    let strict = saved["mission"]["id"].as_str().expect("id").to_owned();
    invoke(client, "deploy_mission", json!({ "missionId": strict }))
        .await
        .expect("deploy the Strict mission");

    // The engagement pulse has side effects: it waits. Meanwhile an extra agent of the same
    // mission calls a read-only tool through the app's agent API and it runs at once.
    one_waiting(client, "the pulse to wait for a reviewer").await;
    let token = token_for(home, &strict, 8).await;
    let (status, ran) = call_tool(
        api_port,
        &token,
        "talent.candidate_search",
        json!({ "items": 2, "role": "SRE" }),
    )
    .await;
    assert_eq!(
        status, 200,
        "a read-only call runs at once in Strict mode: {ran}"
    );
    assert_eq!(ran["simulated"], true);
    let first = approve_next(client, &strict, None).await;
    // The outreach step has side effects too.
    approve_next(client, &strict, Some(&first)).await;

    click(client, "[data-testid='tab-missions']").await;
    until("the Strict mission to complete", || async {
        (status_of(client, &strict).await.as_deref() == Some("Completed")).then_some(())
    })
    .await;
    click(client, &format!("{} td:first-child", row(&strict))).await;
    until("its events up to the end", || async {
        event_rows(client)
            .await
            .iter()
            .any(|(kind, _)| kind == "mission.ended")
            .then_some(())
    })
    .await;
    screenshot(client, "active-missions-completed.png").await;

    // The Audit tab lists the calls and decisions and verifies the chain.
    click(client, "[data-testid='tab-audit']").await;
    let rows = until("the audit rows of the calls", || async {
        let rows = client
            .find_all(Locator::Css("[data-testid='audit-row']"))
            .await
            .ok()?;
        (rows.len() >= 8).then_some(rows.len())
    })
    .await;
    assert!(
        rows >= 8,
        "the squads' calls, waits and approvals are audited"
    );
    click(client, "[data-testid='verify-log']").await;
    let ok = until("the verify result", || async {
        client
            .find(Locator::Css("[data-testid='verify-result']"))
            .await
            .ok()?
            .attr("data-ok")
            .await
            .ok()?
    })
    .await;
    assert_eq!(ok, "true", "the freshly written chain verifies");
    screenshot(client, "audit.png").await;
}
