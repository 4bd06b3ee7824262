//! Faults: a broker outage and a crash delay a mission without losing or doubling anything.

use mission_core::audit::AuditDecision;

use super::*;

crate::on_both_backends!(
    a_broker_outage_mid_mission_loses_no_event_and_applies_none_twice,
    an_outage_longer_than_the_message_timeout_heals_in_the_running_engine,
    a_broker_back_without_the_missions_topics_gets_them_again,
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

/// Environment variables naming the shell commands that stop and start a real broker, so the
/// outage tests run against it too (`KAFKA_BOOTSTRAP_SERVERS` set); without them those tests
/// skip their outage on real brokers.
const STOP_COMMAND: &str = "KAFKA_BROKER_STOP_COMMAND";
const START_COMMAND: &str = "KAFKA_BROKER_START_COMMAND";

/// A broker outage the test controls: the embedded cluster's broker, or a real broker stopped
/// and started by the commands above.
enum Outage<'a> {
    Embedded(&'a mission_core::squad::EmbeddedCluster),
    Real { stop: String, start: String },
}

/// The outage this run can cause; None on real brokers without the commands.
fn outage(bus: &Bus) -> Option<Outage<'_>> {
    if let Some(mock) = bus.mock_cluster() {
        return Some(Outage::Embedded(mock));
    }
    let command = |name| {
        std::env::var(name)
            .ok()
            .filter(|c: &String| !c.trim().is_empty())
    };
    let outage = Outage::Real {
        stop: command(STOP_COMMAND)?,
        start: command(START_COMMAND)?,
    };
    Some(outage)
}

impl Outage<'_> {
    fn down(&self) {
        match self {
            Self::Embedded(mock) => mock.broker_down(1).expect("broker down"),
            Self::Real { stop, .. } => shell(stop),
        }
    }

    fn up(&self) {
        match self {
            Self::Embedded(mock) => mock.broker_up(1).expect("broker up"),
            Self::Real { start, .. } => shell(start),
        }
    }

    /// The broker comes back without the mission's topics. The embedded cluster is told it
    /// lost the mission topic, the one the waiting events go to (its answers say the topic is
    /// unknown, though it keeps the events); a real broker, up again by then, has all of the
    /// mission's topics deleted, and returns the events it held, which are gone for good.
    async fn lose_topics(&self, rig: &Rig, mission: &str) -> HashSet<String> {
        match self {
            Self::Embedded(mock) => {
                mock.lose_topic(&mission_topic(mission))
                    .expect("lose topic");
                HashSet::new()
            }
            Self::Real { .. } => {
                let deleted = rig
                    .bus
                    .delete_mission_topics(mission)
                    .await
                    .expect("delete");
                assert!(deleted > 0, "the mission's topics were on the broker");
                rig.events(mission)
                    .await
                    .into_iter()
                    .filter(|e| e.published_at.is_some())
                    .map(|e| e.envelope.event_id)
                    .collect()
            }
        }
    }
}

/// Runs a command of the test's environment through the system's shell.
fn shell(command: &str) {
    // The shell differs by system; the commands are the tester's, written for theirs.
    #[cfg(windows)]
    let status = std::process::Command::new("cmd")
        .args(["/C", command])
        .status();
    #[cfg(not(windows))]
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .status();
    let status = status.unwrap_or_else(|e| panic!("run {command}: {e}"));
    assert!(status.success(), "{command} failed: {status}");
}

/// Waits until the posting step's report is stored but, with the broker down, not relayed.
async fn report_waits_in_the_outbox(rig: &Rig, mission: &str) {
    // Not stepped: the agent acts on its own, and a relay pass would only wait on the broker.
    until(
        rig.engine(),
        &rig.gateway,
        "the report to wait in the outbox",
        || async {
            let jobs = rig.repo.jobs(mission).await.expect("jobs");
            jobs.iter()
                .any(|j| {
                    j.tool_id.as_deref() == Some("finance.journal_entry_post")
                        && j.status == JobStatus::Reported
                })
                .then_some(())
        },
    )
    .await;
}

/// The mission finished with every report reaching Kafka and applied once: one result per
/// job, each tool run once.
async fn finished_once(rig: &Rig, mission: &str, gone: &HashSet<String>) {
    let copies = check_mission(rig, mission, gone).await;
    let results: Vec<&Received> = copies[&mission_topic(mission)]
        .iter()
        .filter(|r| r.envelope.kind == kind::JOB_RESULT)
        .collect();
    let distinct: HashSet<&str> = results.iter().map(|r| r.envelope.job_id.as_str()).collect();
    // One per plan step, but for those a lost topic took with it.
    let lost = rig
        .events(mission)
        .await
        .iter()
        .filter(|e| e.envelope.kind == kind::JOB_RESULT && gone.contains(&e.envelope.event_id))
        .count();
    assert_eq!(distinct.len(), 5 - lost);
    let audit = audit_of(rig, mission).await;
    let executed = audit
        .entries
        .iter()
        .filter(|e| {
            e.record.decision == AuditDecision::Allowed
                && e.record.action.as_deref() == Some("tool.invoke")
        })
        .count();
    assert_eq!(executed, usize::try_from(TOOL_STEPS).expect("small"));
}

/// A stepped rig whose publishes give up after 1 s, with a Strict mission approved while the
/// broker is down and the step's report waiting in the outbox; None (said on stderr) when this
/// run cannot cause an outage.
async fn report_waiting_in_an_outage(db: &TestDb) -> Option<(Rig, String)> {
    let timeout = Duration::from_secs(1);
    let rig = rig_on(db, crate::squad::bus_with_timeout(timeout), stepped).await;
    let mission = rig.deploy(ApprovalMode::Strict).await;
    let approval = rig.pending_approval(&mission).await;
    let Some(outage) = outage(&rig.bus) else {
        eprintln!("real brokers without {STOP_COMMAND}/{START_COMMAND}: no outage to cause");
        return None;
    };
    outage.down();
    rig.approve(&approval).await;
    report_waits_in_the_outbox(&rig, &mission).await;
    Some((rig, mission))
}

async fn a_broker_outage_mid_mission_loses_no_event_and_applies_none_twice(db: TestDb) {
    let rig = rig_with(&db, stepped).await;
    // Strict: the posting step waits for a reviewer, a fixed point in the middle of the mission.
    let mission = rig.deploy(ApprovalMode::Strict).await;
    let approval = rig.pending_approval(&mission).await;
    let outage = outage(&rig.bus);
    if let Some(outage) = &outage {
        outage.down();
    }
    rig.approve(&approval).await;
    if let Some(outage) = &outage {
        // The step runs and its report waits in the outbox (the agent acts on its own).
        report_waits_in_the_outbox(&rig, &mission).await;
        // The relay cannot hand it to Kafka: it stays in the outbox and nothing moves past it.
        let pass = rig.engine().relay_once().await.expect("relay");
        assert_eq!(pass.published, 0, "{pass:?}");
        assert!(pass.waiting > 0, "{pass:?}");
        assert!(rig.repo.run_record(&mission).await.expect("run").is_none());
        let waiting = rig.events(&mission).await;
        assert!(waiting.iter().any(|e| e.published_at.is_none()));
        if let Outage::Embedded(mock) = outage {
            // Back up, with the first produce requests failing and being retried.
            mock.fail_next_produce_requests(3).expect("inject errors");
        }
        outage.up();
    }
    finished_once(&rig, &mission, &HashSet::new()).await;
}

/// The broker stays down longer than the message timeout while events wait, and the producer
/// ends up refused for good (as an idempotent producer whose epoch bump the broker rejects
/// does): the running engine replaces it and finishes the mission, with nothing lost or
/// applied twice, and without a restart.
async fn an_outage_longer_than_the_message_timeout_heals_in_the_running_engine(db: TestDb) {
    let Some((rig, mission)) = report_waiting_in_an_outage(&db).await else {
        return;
    };
    let outage = outage(&rig.bus).expect("an outage");
    // Each pass waits one message timeout for the broker and keeps everything in the outbox;
    // after two timeouts of nothing but failures the producer is no longer trusted.
    for _ in 0..4 {
        let pass = rig.engine().relay_once().await.expect("relay");
        assert_eq!(pass.published, 0, "{pass:?}");
        assert!(pass.waiting > 0, "{pass:?}");
    }
    assert!(rig.repo.run_record(&mission).await.expect("run").is_none());
    let replaced = rig.bus.producers_replaced();
    assert!(
        replaced >= 1,
        "a producer failing for longer than two timeouts is replaced"
    );
    // Back, the broker refuses the producer's epoch for good (as a real broker did after such
    // an outage): only a new producer gets through.
    let fenced = if let Outage::Embedded(mock) = outage {
        mock.fence_next_producer().expect("fence");
        true
    } else {
        false
    };
    outage.up();
    finished_once(&rig, &mission, &HashSet::new()).await;
    if fenced {
        assert!(
            rig.bus.producers_replaced() > replaced,
            "the fenced producer was replaced"
        );
    }
}

/// The broker comes back without the mission's topics (a wiped or rebuilt broker): the relay
/// creates them again and the mission finishes, with nothing lost or applied twice.
async fn a_broker_back_without_the_missions_topics_gets_them_again(db: TestDb) {
    let Some((rig, mission)) = report_waiting_in_an_outage(&db).await else {
        return;
    };
    let outage = outage(&rig.bus).expect("an outage");
    let pass = rig.engine().relay_once().await.expect("relay");
    assert_eq!(pass.published, 0, "{pass:?}");
    let gone = if matches!(outage, Outage::Embedded(_)) {
        let gone = outage.lose_topics(&rig, &mission).await;
        outage.up();
        gone
    } else {
        outage.up();
        outage.lose_topics(&rig, &mission).await
    };
    finished_once(&rig, &mission, &gone).await;
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
