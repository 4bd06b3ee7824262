//! Every operation that changes something leaves one signed audit record through the core's
//! one way in, whatever its outcome: success, refusal, and a storage failure half-way (which
//! used to return before its record was written). Each record names who acted, what, and how
//! it came out, and the chain still verifies.

use mission_core::audit::{AuditDecision, AuditEntry, AuditQuery};
use mission_core::gateway::{ApprovalDecision, DecideApproval};
use mission_core::perimeter::SaveMissionRequest;
use mission_core::registry::ApprovalMode;
use mission_core::{Core, ErrorCode};
use serde_json::json;
use uuid::Uuid;

use crate::gateway::{call, rig, running, Rig, Spec};
use crate::helpers::{operator, reviewer, Kind, TestDb};
use mission_core::units::{Cents, Seconds};

crate::on_both_backends!(
    saving_starting_and_stopping_are_audited_on_success_and_refusal,
    a_storage_failure_inside_a_tool_call_is_audited_and_nothing_is_spent,
    refused_approval_decisions_and_tokens_are_audited_with_the_reviewer,
    an_unknown_status_in_the_database_is_an_error_never_a_default,
);

/// The newest records, newest first.
async fn newest(rig: &Rig, limit: u32) -> Vec<AuditEntry> {
    rig.core
        .audit_page(&AuditQuery {
            limit,
            ..AuditQuery::default()
        })
        .await
        .expect("audit page")
        .entries
}

fn save_request(rig_template: &str, version: i64, budget: i64) -> SaveMissionRequest {
    SaveMissionRequest {
        request_id: Uuid::now_v7().to_string(),
        template_id: rig_template.to_owned(),
        template_version: version,
        budget_cents: Cents(budget),
        ttl_seconds: Seconds(3600),
        max_steps: 10,
        approval_mode: ApprovalMode::Auto,
        threshold_cents: None,
        connections: Vec::new(),
    }
}

/// Runs SQL on the test database as someone with direct access would, going around the
/// schema's checks.
async fn tamper(db: &TestDb, sql: &str) {
    let checks_off: &[&str] = match db.kind {
        Kind::Sqlite => &["PRAGMA ignore_check_constraints = ON"],
        Kind::Postgres => &[
            "ALTER TABLE approvals DROP CONSTRAINT IF EXISTS approvals_status_check",
            "ALTER TABLE active_missions DROP CONSTRAINT IF EXISTS active_missions_status_check",
        ],
    };
    db.sql(&[checks_off, &[sql]].concat()).await;
}

async fn saving_starting_and_stopping_are_audited_on_success_and_refusal(db: TestDb) {
    let rig = rig(&db).await;
    let template = "finance.gateway-probe";
    let version = rig
        .core
        .mission_draft(template)
        .await
        .expect("draft")
        .template
        .version;

    // Beyond the cap: refused, nothing saved, and the refusal is on record with its code.
    let refused = rig
        .core
        .save_mission(
            &operator("dana"),
            &save_request(template, version, 999_999_999),
        )
        .await
        .expect_err("beyond the cap");
    assert_eq!(refused.code, ErrorCode::PerimeterOutOfRange);
    assert!(rig
        .core
        .missions(None, 10)
        .await
        .expect("missions")
        .items
        .is_empty());
    let record = &newest(&rig, 1).await[0];
    assert_eq!(record.record.action.as_deref(), Some("mission.save"));
    assert_eq!(record.record.decision, AuditDecision::Denied);
    assert_eq!(record.record.caller, "dana");
    assert!(
        record.record.reason.starts_with("perimeter_out_of_range:"),
        "{}",
        record.record.reason
    );
    assert_eq!(refused.details.audit_seq, Some(record.seq));

    // Saved, started, stopped: one Allowed record each, naming the mission and the operator.
    let saved = rig
        .core
        .save_mission(&operator("dana"), &save_request(template, version, 10_000))
        .await
        .expect("save");
    let id = saved.mission.id.clone();
    rig.core
        .start_mission(&operator("erin"), &id)
        .await
        .expect("start");
    rig.core
        .stop_mission(&operator("erin"), &id)
        .await
        .expect("stop");
    let records = newest(&rig, 3).await;
    let actions: Vec<_> = records
        .iter()
        .rev()
        .map(|r| {
            (
                r.record.action.clone().unwrap_or_default(),
                r.record.decision,
                r.record.caller.clone(),
                r.record.mission_id.clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            (
                "mission.save".to_owned(),
                AuditDecision::Allowed,
                "dana".to_owned(),
                Some(id.clone())
            ),
            (
                "mission.start".to_owned(),
                AuditDecision::Allowed,
                "erin".to_owned(),
                Some(id.clone())
            ),
            (
                "mission.stop".to_owned(),
                AuditDecision::Allowed,
                "erin".to_owned(),
                Some(id.clone())
            ),
        ]
    );

    // Stopping it again is refused, and that refusal is recorded too.
    let again = rig
        .core
        .stop_mission(&operator("erin"), &id)
        .await
        .expect_err("already stopped");
    assert_eq!(again.code, ErrorCode::MissionNotActive);
    let record = &newest(&rig, 1).await[0];
    assert_eq!(
        (record.record.action.as_deref(), record.record.decision),
        (Some("mission.stop"), AuditDecision::Denied)
    );
    assert_eq!(record.record.mission_id.as_deref(), Some(id.as_str()));

    let report = rig.core.verify_audit(&[]).await.expect("verify");
    assert!(report.ok, "{report:?}");
}

async fn a_storage_failure_inside_a_tool_call_is_audited_and_nothing_is_spent(db: TestDb) {
    let rig = rig(&db).await;
    let (mission, token) = running(&rig, Spec::auto("finance")).await;
    let before = rig.gateway.usage(&mission).await.expect("usage");
    let records_before = newest(&rig, 1).await[0].seq;

    // The grants table disappears under the gateway: reading the mission's grants fails
    // half-way through the call, after the token was checked.
    tamper(&db, "DROP TABLE mission_connections").await;

    // A second process on the same database: nothing of this mission is in its memory, so the
    // call reads the grants.
    let mut settings = rig.core.settings().clone();
    settings.bundled_library = false;
    let other = Core::open(settings).await.expect("second core");
    let failed = other
        .invoke(call(&token, "finance.ledger_query", json!({})))
        .await
        .expect_err("storage fails");
    assert_eq!(failed.code, ErrorCode::Storage);
    assert!(
        !failed.message.contains("mission_connections"),
        "a database message reached the caller: {}",
        failed.message
    );
    let record = &newest(&rig, 1).await[0];
    assert!(record.seq > records_before);
    assert_eq!(record.record.action.as_deref(), Some("tool.invoke"));
    assert_eq!(record.record.decision, AuditDecision::Failed);
    assert!(
        record.record.caller.starts_with("token:"),
        "{}",
        record.record.caller
    );
    assert!(
        record.record.reason.starts_with("storage:"),
        "{}",
        record.record.reason
    );
    assert_eq!(failed.details.audit_seq, Some(record.seq));

    // Nothing ran, nothing was counted or spent.
    let after = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(
        (after.steps_used, after.spent_cents, after.reserved_cents),
        (before.steps_used, before.spent_cents, before.reserved_cents)
    );
    let report = rig.core.verify_audit(&[]).await.expect("verify");
    assert!(report.ok, "{report:?}");
}

async fn refused_approval_decisions_and_tokens_are_audited_with_the_reviewer(db: TestDb) {
    let rig = rig(&db).await;
    let missing = Uuid::now_v7().to_string();
    let refused = rig
        .core
        .decide_approval(
            &reviewer("frank"),
            &DecideApproval {
                approval_id: missing.clone(),
                decision: ApprovalDecision::Approve,
                budget_cents: None,
            },
        )
        .await
        .expect_err("no such approval");
    assert_eq!(refused.code, ErrorCode::ApprovalNotFound);
    let record = &newest(&rig, 1).await[0];
    assert_eq!(
        (
            record.record.action.as_deref(),
            record.record.decision,
            record.record.caller.as_str()
        ),
        (Some("approval.decide"), AuditDecision::Denied, "frank")
    );
    assert!(
        record.record.reason.contains(&missing),
        "{}",
        record.record.reason
    );

    // A token for a department the squad does not have: refused and recorded; a good one is
    // recorded without the token itself.
    let (mission, _) = running(&rig, Spec::auto("talent")).await;
    let refused = rig
        .core
        .issue_token(&operator("gus"), &mission, 9)
        .await
        .expect_err("dept 9 is not in the squad");
    assert_eq!(refused.code, ErrorCode::UnknownDepartment);
    let record = &newest(&rig, 1).await[0];
    assert_eq!(
        (
            record.record.action.as_deref(),
            record.record.decision,
            record.record.dept
        ),
        (Some("token.issue"), AuditDecision::Denied, Some(9))
    );
    let token = rig
        .core
        .issue_token(&operator("gus"), &mission, 1)
        .await
        .expect("token");
    let record = &newest(&rig, 1).await[0];
    assert_eq!(
        (record.record.action.as_deref(), record.record.decision),
        (Some("token.issue"), AuditDecision::Allowed)
    );
    assert!(
        !record.record.reason.contains(&token),
        "the token reached the log"
    );
}

async fn an_unknown_status_in_the_database_is_an_error_never_a_default(db: TestDb) {
    let rig = rig(&db).await;
    // Threshold 0: every call waits for a human.
    let (mission, token) = running(&rig, Spec::threshold("finance", 0)).await;
    let held = rig
        .core
        .invoke(call(&token, "finance.ledger_query", json!({})))
        .await
        .expect("held");
    assert!(matches!(
        held,
        mission_core::gateway::CallOutcome::Waiting(_)
    ));
    assert_eq!(
        rig.core
            .approvals(true, None, 50)
            .await
            .expect("queue")
            .items
            .len(),
        1
    );

    // A status no version of the app writes: reading it fails, it is never taken for Pending.
    tamper(&db, "UPDATE approvals SET status = 'Paused'").await;
    let unreadable = rig
        .core
        .approvals(false, None, 50)
        .await
        .expect_err("unknown status");
    assert_eq!(unreadable.code, ErrorCode::Storage);
    tamper(&db, "UPDATE active_missions SET status = 'Sleeping'").await;
    let unreadable = rig
        .core
        .mission_view(&mission)
        .await
        .expect_err("unknown mission status");
    assert_eq!(unreadable.code, ErrorCode::Storage);
}
