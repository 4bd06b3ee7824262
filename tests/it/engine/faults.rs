//! Faults: a broker outage and a crash delay a mission without losing or doubling anything.

use mission_core::audit::AuditDecision;

use super::*;

crate::on_both_backends!(
    a_broker_outage_mid_mission_loses_no_event_and_applies_none_twice,
    a_crash_mid_mission_drains_the_outbox_and_the_next_engine_finishes_the_mission,
    a_crash_between_a_tool_call_and_its_report_runs_and_charges_the_tool_once,
);

/// The crash: every task stops where it is, the claim stays, and in embedded mode the
/// in-process Kafka with everything on it is gone. `meanwhile` runs while no engine does; then
/// a new engine starts, and the dead one's claim runs out on the clock, not by waiting for it.
async fn crash_and_restart<F: std::future::Future<Output = ()>>(
    rig: &mut Rig,
    meanwhile: impl FnOnce() -> F,
) {
    rig.engine.take().expect("engine").abandon();
    meanwhile().await;
    rig.bus = Arc::new(crate::squad::bus());
    let mut options = rig.app.engine_options();
    stepped(&mut options);
    rig.engine = Some(rig.app.engine(Arc::clone(&rig.bus), options).await);
    rig.app
        .clock
        .advance(chrono::Duration::from_std(LEASE).expect("lease") + chrono::Duration::seconds(1));
}

async fn a_broker_outage_mid_mission_loses_no_event_and_applies_none_twice(db: TestDb) {
    let rig = rig_with(&db, stepped).await;
    // Strict: the posting step waits for a reviewer, a fixed point in the middle of the mission.
    let mission = rig.deploy(ApprovalMode::Strict).await;
    let approval = rig.pending_approval(&mission).await;
    let mock = (!real_brokers()).then(|| rig.bus.mock_cluster().expect("embedded"));
    if let Some(mock) = mock {
        mock.broker_down(1).expect("broker down");
    }
    rig.approve(&approval).await;
    if let Some(mock) = mock {
        // The step runs and its report waits in the outbox (the agent acts on its own).
        until(
            rig.engine(),
            &rig.gateway,
            "the report to wait in the outbox",
            || async {
                let jobs = rig.repo.jobs(&mission).await.expect("jobs");
                jobs.iter()
                    .any(|j| {
                        j.tool_id.as_deref() == Some("finance.journal_entry_post")
                            && j.status == JobStatus::Reported
                    })
                    .then_some(())
            },
        )
        .await;
        // The relay cannot hand it to Kafka: it stays in the outbox and nothing moves past it.
        let pass = rig.engine().relay_once().await.expect("relay");
        assert_eq!(pass.published, 0, "{pass:?}");
        assert!(pass.waiting > 0, "{pass:?}");
        assert!(rig.repo.run_record(&mission).await.expect("run").is_none());
        let waiting = rig.events(&mission).await;
        assert!(waiting.iter().any(|e| e.published_at.is_none()));
        // Back up, with the first produce requests failing and being retried.
        mock.fail_next_produce_requests(3).expect("inject errors");
        mock.broker_up(1).expect("broker up");
    }
    let copies = check_mission(&rig, &mission, &HashSet::new()).await;
    // Every report reached Kafka once per publish and was applied once: one result per job,
    // steps and spend counted once.
    let results: Vec<&Received> = copies[&mission_topic(&mission)]
        .iter()
        .filter(|r| r.envelope.kind == kind::JOB_RESULT)
        .collect();
    let distinct: HashSet<&str> = results.iter().map(|r| r.envelope.job_id.as_str()).collect();
    assert_eq!(distinct.len(), 5);
    let audit = audit_of(&rig, &mission).await;
    let executed = audit
        .entries
        .iter()
        .filter(|e| {
            e.record.decision == mission_core::audit::AuditDecision::Allowed
                && e.record.action.as_deref() == Some("tool.invoke")
        })
        .count();
    assert_eq!(executed, usize::try_from(TOOL_STEPS).expect("small"));
}

async fn a_crash_mid_mission_drains_the_outbox_and_the_next_engine_finishes_the_mission(
    db: TestDb,
) {
    let mut rig = rig_with(&db, stepped).await;
    let mission = rig.deploy(ApprovalMode::Strict).await;
    let approval = rig.pending_approval(&mission).await;
    let embedded = !real_brokers();
    if embedded {
        rig.bus
            .mock_cluster()
            .expect("embedded")
            .broker_down(1)
            .expect("broker down");
    }
    rig.approve(&approval).await;
    // The agent acts on its own; nothing is relayed before the crash.
    until(
        rig.engine(),
        &rig.gateway,
        "the step's report to be stored",
        || async {
            let jobs = rig.repo.jobs(&mission).await.expect("jobs");
            jobs.iter()
                .any(|j| {
                    j.tool_id.as_deref() == Some("finance.journal_entry_post")
                        && j.status != JobStatus::Assigned
                })
                .then_some(())
        },
    )
    .await;
    let before = rig.events(&mission).await;
    if embedded {
        assert!(
            before.iter().any(|e| e.published_at.is_none()),
            "the report is still in the outbox when the process dies"
        );
    }
    crash_and_restart(&mut rig, || async {}).await;
    let run = rig.run_record(&mission).await;
    assert_eq!(run.status, MissionStatus::Completed, "{run:?}");
    let gone: HashSet<String> = if embedded {
        before
            .iter()
            .filter(|e| e.published_at.is_some())
            .map(|e| e.envelope.event_id.clone())
            .collect()
    } else {
        HashSet::new()
    };
    check_mission(&rig, &mission, &gone).await;
    let events = rig.events(&mission).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.envelope.kind == kind::MISSION_STARTED)
            .count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.envelope.kind == kind::CONTEXT)
            .count(),
        6,
        "each department got a fresh context from the second assembly"
    );
}

async fn a_crash_between_a_tool_call_and_its_report_runs_and_charges_the_tool_once(db: TestDb) {
    const POST: &str = "finance.journal_entry_post";
    let mut rig = rig_with(&db, stepped).await;
    // The database refuses the posting step's report: the process is as good as dead after
    // the tool ran and before its report was committed.
    let refuse = match db.kind {
        crate::helpers::Kind::Sqlite => vec![format!(
            "CREATE TRIGGER report_lost BEFORE UPDATE ON mission_jobs \
             WHEN NEW.status = 'Reported' AND NEW.tool_id = '{POST}' \
             BEGIN SELECT RAISE(ABORT, 'the process died here'); END"
        )],
        crate::helpers::Kind::Postgres => vec![
            "CREATE FUNCTION report_lost() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'the process died here'; END $$"
                .to_owned(),
            format!(
                "CREATE TRIGGER report_lost BEFORE UPDATE ON mission_jobs FOR EACH ROW \
                 WHEN (NEW.status = 'Reported' AND NEW.tool_id = '{POST}') \
                 EXECUTE FUNCTION report_lost()"
            ),
        ],
    };
    db.sql(&refuse.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let mission = rig.deploy(ApprovalMode::Auto).await;
    let ran = |entries: &[mission_core::audit::AuditEntry], decision| {
        entries
            .iter()
            .filter(|e| e.record.tool_id.as_deref() == Some(POST) && e.record.decision == decision)
            .count()
    };
    // The agent's failed report wakes the wait (the engine announces a stopped agent).
    rig.until("the posting tool to run", || async {
        let audit = audit_of(&rig, &mission).await;
        (ran(&audit.entries, AuditDecision::Allowed) > 0).then_some(())
    })
    .await;

    // The crash, and a new process on a database that stores reports again.
    let restore = [match db.kind {
        crate::helpers::Kind::Sqlite => "DROP TRIGGER report_lost",
        crate::helpers::Kind::Postgres => "DROP TRIGGER report_lost ON mission_jobs",
    }];
    crash_and_restart(&mut rig, || db.sql(&restore)).await;
    let run = rig.run_record(&mission).await;
    assert_eq!(run.status, MissionStatus::Completed, "{run:?}");

    // The job was done again, but its tool ran once and was charged once: the repeat got the
    // recorded outcome.
    let audit = audit_of(&rig, &mission).await;
    assert_eq!(ran(&audit.entries, AuditDecision::Allowed), 1);
    assert!(ran(&audit.entries, AuditDecision::Replayed) >= 1);
    let charged: Cents = audit
        .entries
        .iter()
        .filter(|e| e.record.decision == AuditDecision::Allowed)
        .map(|e| e.record.cost_cents)
        .sum();
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(usage.spent_cents, charged);
    assert_eq!(usage.reserved_cents, Cents::ZERO);
    assert_eq!(usage.steps_used, TOOL_STEPS);
}
