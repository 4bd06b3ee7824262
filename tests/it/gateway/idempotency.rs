//! Exactly-once tool effects: a call with an idempotency key runs and is charged once, however
//! often it is repeated, and a repeat gets the recorded outcome; a call whose process died
//! between its reservation and its settlement is settled (its estimate charged, a record
//! written) and never run again; no cents stay reserved for good.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::*;

crate::on_both_backends!(
    a_repeated_key_gets_the_recorded_outcome_and_nothing_runs_or_is_charged_again,
    a_call_whose_process_died_is_settled_once_and_never_run_again,
    a_settlement_the_database_refuses_is_released_and_recorded_by_the_sweep,
);

fn keyed(token: &str, tool: &str, args: Value, key: &str) -> ToolCall {
    ToolCall {
        idempotency_key: Some(key.to_owned()),
        ..call(token, tool, args)
    }
}

/// The mission's audit records, oldest first.
async fn mission_records(rig: &Rig, mission: &str) -> Vec<mission_core::audit::AuditEntry> {
    let mut page = AuditLog::new(rig.core.repository().clone())
        .page(&AuditQuery {
            mission_id: Some(mission.to_owned()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit page");
    page.entries.reverse();
    page.entries
}

async fn a_repeated_key_gets_the_recorded_outcome_and_nothing_runs_or_is_charged_again(db: TestDb) {
    let rig = rig(&db).await;
    let (mission, token) = running(&rig, Spec::auto("finance")).await;
    let tool = "finance.ledger_query";
    let first = executed(
        rig.gateway
            .invoke(keyed(&token, tool, json!({"items": 4}), "pay-1"))
            .await,
    );
    assert!(!first.replayed);
    assert_eq!(first.cost_cents, Cents(4));
    let after_first = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(
        (after_first.steps_used, after_first.spent_cents),
        (1, Cents(4))
    );

    // The same call again: the same result, nothing run or charged, a record that says so.
    let again = executed(
        rig.gateway
            .invoke(keyed(&token, tool, json!({"items": 4}), "pay-1"))
            .await,
    );
    assert!(again.replayed);
    assert_eq!(again.output, first.output);
    assert_eq!(
        (again.step, again.cost_cents),
        (first.step, first.cost_cents)
    );
    assert_ne!(again.audit_seq, first.audit_seq);
    let replay = record(&rig, again.audit_seq).await;
    assert_eq!(replay.record.decision, AuditDecision::Replayed);
    assert_eq!(replay.record.cost_cents, Cents::ZERO);
    assert!(
        replay
            .record
            .reason
            .contains(&format!("audit record {}", first.audit_seq)),
        "{}",
        replay.record.reason
    );
    assert_eq!(
        rig.gateway.usage(&mission).await.expect("usage"),
        after_first
    );

    // The key names one call: other arguments or another tool under it are refused.
    for (tool, args) in [
        (tool, json!({"items": 5})),
        ("finance.variance_report", json!({"items": 4})),
    ] {
        let (code, message, seq) =
            refusal(rig.gateway.invoke(keyed(&token, tool, args, "pay-1")).await);
        assert_eq!(code, RefusalCode::IdempotencyKeyReused, "{message}");
        assert_eq!(
            record(&rig, seq).await.record.decision,
            AuditDecision::Denied
        );
    }
    assert_eq!(
        rig.gateway.usage(&mission).await.expect("usage"),
        after_first
    );

    // Eight copies of a new call at once: one runs; the others get its outcome or are told
    // it is still running.
    let copies: Vec<_> = (0..8)
        .map(|_| {
            let gateway = rig.gateway.clone();
            let call = keyed(&token, tool, json!({"items": 2}), "pay-2");
            tokio::spawn(async move { gateway.invoke(call).await })
        })
        .collect();
    let mut ran = 0;
    for copy in copies {
        match copy.await.expect("task") {
            Ok(CallOutcome::Executed(e)) if !e.replayed => ran += 1,
            Ok(CallOutcome::Executed(_)) => {}
            Err(GatewayError::Refused(r)) if r.code == RefusalCode::CallInProgress => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(ran, 1);
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!((usage.steps_used, usage.spent_cents), (2, Cents(6)));
    assert_eq!(usage.reserved_cents, Cents::ZERO);
    let allowed = mission_records(&rig, &mission)
        .await
        .iter()
        .filter(|e| {
            e.record.decision == AuditDecision::Allowed
                && e.record.action.as_deref() == Some("tool.invoke")
        })
        .count();
    assert_eq!(allowed, 2, "one execution per key");

    // A key is its mission's: another mission's call with the same key runs.
    let (other, other_token) = running(&rig, Spec::auto("finance")).await;
    let theirs = executed(
        rig.gateway
            .invoke(keyed(&other_token, tool, json!({"items": 4}), "pay-1"))
            .await,
    );
    assert!(!theirs.replayed);
    assert_eq!(
        rig.gateway.usage(&other).await.expect("usage").spent_cents,
        Cents(4)
    );

    // Once the mission is over, a repeat still learns what happened.
    rig.core
        .stop_mission(&operator("alice"), &mission)
        .await
        .expect("stop");
    let late = executed(
        rig.gateway
            .invoke(keyed(&token, tool, json!({"items": 4}), "pay-1"))
            .await,
    );
    assert!(late.replayed);
    assert_eq!(late.output, first.output);
    let report = verify(&rig).await;
    assert!(report.ok, "{report:?}");
}

/// An `http` tool's endpoint that accepts connections and never answers: a call to it is in
/// flight until its task is dropped. Reports each connection on the channel.
async fn silent_tool_server() -> (u16, Arc<AtomicUsize>, mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
            let _ = tx.send(());
        }
    });
    (port, connections, rx)
}

async fn a_call_whose_process_died_is_settled_once_and_never_run_again(db: TestDb) {
    let (port, connections, mut arrived) = silent_tool_server().await;
    let rig = rig_with(
        &db,
        crate::api::catalog_with_http_tools(port),
        GatewayConfig::bundled().expect("config"),
    )
    .await;
    let (mission, token) = running(&rig, Spec::auto("intelligence")).await;
    let tool = "intelligence.loopback_fetch";
    // Two calls reach the tool, one with a key and one without, and their process dies there:
    // the tasks are dropped mid-call, after the reservation, before the settlement.
    for key in [Some("fetch-1"), None] {
        let call = ToolCall {
            idempotency_key: key.map(str::to_owned),
            ..call(&token, tool, json!({"q": "rates"}))
        };
        let gateway = rig.gateway.clone();
        let task = tokio::spawn(async move { gateway.invoke(call).await });
        arrived.recv().await.expect("the tool is called");
        task.abort();
        assert!(task.await.expect_err("dropped").is_cancelled());
    }
    let held = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(
        (held.steps_used, held.reserved_cents, held.spent_cents),
        (2, Cents(14), Cents::ZERO)
    );

    // While the call may still be running, a repeat is told so and nothing runs.
    let (code, message, _) = refusal(
        rig.gateway
            .invoke(keyed(&token, tool, json!({"q": "rates"}), "fetch-1"))
            .await,
    );
    assert_eq!(code, RefusalCode::CallInProgress, "{message}");
    assert_eq!(rig.gateway.recover_calls().await.expect("recover"), 0);
    assert_eq!(rig.gateway.usage(&mission).await.expect("usage"), held);

    // Past the recovery time, both are settled: the estimate charged, nothing left reserved,
    // one record each; a second sweep finds nothing.
    rig.clock.advance(Duration::seconds(121));
    assert_eq!(rig.gateway.recover_calls().await.expect("recover"), 2);
    assert_eq!(rig.gateway.recover_calls().await.expect("recover"), 0);
    let settled = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(
        (
            settled.steps_used,
            settled.reserved_cents,
            settled.spent_cents
        ),
        (2, Cents::ZERO, Cents(14))
    );
    let records = mission_records(&rig, &mission).await;
    let recovered: Vec<_> = records
        .iter()
        .filter(|e| e.record.caller == "gateway (call recovery)")
        .collect();
    assert_eq!(recovered.len(), 2);
    for r in &recovered {
        assert_eq!(r.record.decision, AuditDecision::Failed);
        assert_eq!(r.record.cost_cents, Cents(7));
        assert!(
            r.record.reason.contains("not run again"),
            "{}",
            r.record.reason
        );
    }

    // The keyed call's repeat gets that outcome; the tool is not called again.
    let (code, message, seq) = refusal(
        rig.gateway
            .invoke(keyed(&token, tool, json!({"q": "rates"}), "fetch-1"))
            .await,
    );
    assert_eq!(code, RefusalCode::ToolFailed);
    assert!(message.contains("not run again"), "{message}");
    assert_eq!(
        record(&rig, seq).await.record.decision,
        AuditDecision::Replayed
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(rig.gateway.usage(&mission).await.expect("usage"), settled);
    let report = verify(&rig).await;
    assert!(report.ok, "{report:?}");
}

/// The tool ran but the database refused its settlement (a full disk, a lost connection): the
/// caller gets an error, the reservation stays held for the call while it might still be
/// settled, and once the recovery time has passed the sweep releases it, charges the estimate
/// (the tool ran) and records the call; the repeat of its key runs nothing.
async fn a_settlement_the_database_refuses_is_released_and_recorded_by_the_sweep(db: TestDb) {
    let rig = rig(&db).await;
    let (mission, token) = running(&rig, Spec::auto("finance")).await;
    let tool = "finance.ledger_query";
    // The settlement closes the call's journal row in its transaction: refusing that refuses
    // the whole settlement.
    let (refuse, restore): (Vec<&str>, Vec<&str>) = match db.kind {
        crate::helpers::Kind::Sqlite => (
            vec![
                "CREATE TRIGGER settle_lost BEFORE UPDATE ON tool_calls \
                 BEGIN SELECT RAISE(ABORT, 'the disk is full'); END",
            ],
            vec!["DROP TRIGGER settle_lost"],
        ),
        crate::helpers::Kind::Postgres => (
            vec![
                "CREATE FUNCTION settle_lost() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'the disk is full'; END $$",
                "CREATE TRIGGER settle_lost BEFORE UPDATE ON tool_calls FOR EACH ROW \
                 EXECUTE FUNCTION settle_lost()",
            ],
            vec![
                "DROP TRIGGER settle_lost ON tool_calls",
                "DROP FUNCTION settle_lost()",
            ],
        ),
    };
    db.sql(&refuse).await;
    let failed = rig
        .gateway
        .invoke(keyed(&token, tool, json!({"items": 4}), "post-1"))
        .await;
    assert!(failed.is_err(), "{failed:?}");
    let held = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(held.steps_used, 1);
    assert!(held.reserved_cents > Cents::ZERO, "{held:?}");
    assert_eq!(held.spent_cents, Cents::ZERO);

    // The database is back; past the recovery time the sweep settles the call once.
    db.sql(&restore).await;
    rig.clock.advance(Duration::seconds(121));
    assert_eq!(rig.gateway.recover_calls().await.expect("recover"), 1);
    assert_eq!(rig.gateway.recover_calls().await.expect("recover"), 0);
    let settled = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(settled.steps_used, 1);
    assert_eq!(
        settled.reserved_cents,
        Cents::ZERO,
        "nothing stays reserved"
    );
    assert_eq!(
        settled.spent_cents, held.reserved_cents,
        "the estimate, charged once"
    );
    let recovered = mission_records(&rig, &mission)
        .await
        .into_iter()
        .filter(|e| e.record.caller == "gateway (call recovery)")
        .count();
    assert_eq!(recovered, 1, "the call has its record");
    // Its key's repeat is answered from the journal: nothing runs or is charged again.
    let (code, message, _) = refusal(
        rig.gateway
            .invoke(keyed(&token, tool, json!({"items": 4}), "post-1"))
            .await,
    );
    assert_eq!(code, RefusalCode::ToolFailed);
    assert!(message.contains("not run again"), "{message}");
    assert_eq!(rig.gateway.usage(&mission).await.expect("usage"), settled);
    let report = verify(&rig).await;
    assert!(report.ok, "{report:?}");
}
