//! Faults: a broker outage and a crash delay a mission without losing or doubling anything.

use super::*;

crate::on_both_backends!(
    a_broker_outage_mid_mission_loses_no_event_and_applies_none_twice,
    a_crash_mid_mission_drains_the_outbox_and_the_next_engine_finishes_the_mission,
);

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
    // The crash: every task stops where it is, the claim stays, and in embedded mode the
    // in-process Kafka with everything on it is gone.
    rig.engine.take().expect("engine").abandon();
    rig.bus = Arc::new(crate::squad::bus());
    let mut options = rig.app.engine_options();
    stepped(&mut options);
    rig.engine = Some(rig.app.engine(Arc::clone(&rig.bus), options).await);
    // The dead engine's claim runs out on the clock, not by waiting for it.
    rig.app
        .clock
        .advance(chrono::Duration::from_std(LEASE).expect("lease") + chrono::Duration::seconds(1));
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
