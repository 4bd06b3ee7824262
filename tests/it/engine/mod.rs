//! The squad engine end to end, on both backends and on librdkafka's mock cluster (or real
//! brokers when `KAFKA_BOOTSTRAP_SERVERS` is set): a three-department mission runs to its run
//! record with mission and job ids on every event; two missions never see each other's events;
//! a broker outage and a crash delay a mission without losing or doubling anything; a tampered
//! context is refused; a stop tears the squad down. The rig and checks live here; the tests,
//! by topic, in the submodules.

mod faults;
mod lifecycle;
mod runs;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mission_core::audit::AuditQuery;
use mission_core::db::Repository;
use mission_core::gateway::{
    ApprovalDecision, ApprovalStatus, DecideApproval, Gateway, GatewayError, ToolCall,
};
use mission_core::perimeter::{MissionStatus, Missions, SaveMissionRequest};
use mission_core::registry::ApprovalMode;
use mission_core::squad::store::{JobStatus, RunRecord, StoredEvent};
use mission_core::squad::{
    dept_topic, kind, mission_topic, AgentExit, Bus, ContextError, Credential, EngineOptions,
    Envelope, MissionContext, Received, SquadEngine,
};
use mission_core::Registry;
use serde_json::json;
use uuid::Uuid;

use crate::app::{drive_until, until, TestApp, LEASE};
use crate::helpers::{operator, reviewer, with_hash, TestDb};
use mission_core::units::{Cents, Seconds};

const TEMPLATE: &str = "finance.squad-close";
/// Plan steps that call a tool (the others are done by the department without one).
const TOOL_STEPS: i64 = 3;

/// Three departments: the Orchestrator (1), Analytics (3) and the Finance Desk (4).
pub(crate) fn squad_template() -> serde_json::Value {
    with_hash(json!({
        "id": TEMPLATE,
        "name": "Squad month-end close",
        "sector": "finance",
        "category": "Treasury",
        "goal": "Close the month with reconciled ledgers and a posted adjustment.",
        "required_depts": [1, 3, 4],
        "ruleset": {
            "allowed_tools": ["finance.ledger_query", "finance.variance_report", "finance.journal_entry_post"],
            "plan": [
                {"dept": 1, "action": "Confirm the period and the entities in scope."},
                {"dept": 4, "action": "Pull period-end balances.", "tool": "finance.ledger_query"},
                {"dept": 3, "action": "Explain every movement above materiality.", "tool": "finance.variance_report"},
                {"dept": 4, "action": "Post the reconciling adjustment.", "tool": "finance.journal_entry_post"},
                {"dept": 1, "action": "Record the close and hand over."}
            ],
            "forbidden_actions": ["Post to a closed period"]
        },
        "default_perimeter": {
            "budget_cents": 50000, "ttl_seconds": 86400, "max_steps": 50,
            "approval_mode": "Auto"
        },
        "risk_level": "Medium",
        "logic_hash": ""
    }))
}

fn real_brokers() -> bool {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok_and(|s| !s.trim().is_empty())
}

struct Rig {
    app: TestApp,
    repo: Arc<dyn Repository>,
    registry: Registry,
    gateway: Gateway,
    bus: Arc<Bus>,
    engine: Option<SquadEngine>,
    /// Whether the test steps the engine itself (no supervisor or relay of its own).
    stepped: bool,
}

/// The squad template imported, and an engine that runs on its own.
async fn rig(db: &TestDb) -> Rig {
    rig_with(db, |_| {}).await
}

/// The same, with the engine's options adjusted (external departments, stepping).
async fn rig_with(db: &TestDb, adjust: impl FnOnce(&mut EngineOptions)) -> Rig {
    rig_on(db, crate::squad::bus(), adjust).await
}

/// The same, on a bus of the test's own.
async fn rig_on(db: &TestDb, bus: Bus, adjust: impl FnOnce(&mut EngineOptions)) -> Rig {
    let app = TestApp::with_templates(db, vec![squad_template()]).await;
    let bus = Arc::new(bus);
    let mut options = app.engine_options();
    adjust(&mut options);
    let stepped = !options.autonomous;
    let engine = app.engine(Arc::clone(&bus), options).await;
    Rig {
        repo: app.core.repository().clone(),
        registry: app.core.registry().clone(),
        gateway: app.gateway().await,
        bus,
        engine: Some(engine),
        stepped,
        app,
    }
}

/// An engine the test steps: nothing moves between the test's own steps.
fn stepped(options: &mut EngineOptions) {
    options.autonomous = false;
}

impl Rig {
    fn engine(&self) -> &SquadEngine {
        self.engine.as_ref().expect("engine")
    }

    /// Waits until `probe` finds what it looks for, stepping the engine when the test does.
    async fn until<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        if self.stepped {
            drive_until(self.engine(), &self.gateway, what, probe).await
        } else {
            until(self.engine(), &self.gateway, what, probe).await
        }
    }

    async fn deploy(&self, mode: ApprovalMode) -> String {
        let missions = Missions::new(self.registry.clone(), self.repo.clone());
        let draft = missions.draft(TEMPLATE).await.expect("draft");
        let saved = missions
            .save(
                &SaveMissionRequest {
                    request_id: Uuid::now_v7().to_string(),
                    template_id: TEMPLATE.to_owned(),
                    template_version: draft.template.version,
                    budget_cents: Cents(50000),
                    ttl_seconds: Seconds(86400),
                    max_steps: 50,
                    approval_mode: mode,
                    threshold_cents: None,
                    connections: Vec::new(),
                },
                "alice",
            )
            .await
            .expect("save");
        self.gateway
            .start_mission::<GatewayError>(&operator("alice"), &saved.mission.id)
            .await
            .expect("start");
        self.engine().poke().await.expect("assemble");
        saved.mission.id
    }

    async fn run_record(&self, mission: &str) -> RunRecord {
        self.until(&format!("mission {mission} to end"), || async {
            self.repo.run_record(mission).await.expect("run record")
        })
        .await
    }

    async fn events(&self, mission: &str) -> Vec<StoredEvent> {
        self.repo
            .mission_events(mission, 0, 10_000)
            .await
            .expect("events")
    }

    /// Waits until every event of the mission is published.
    async fn drained(&self, mission: &str) -> Vec<StoredEvent> {
        self.until("the outbox to drain", || async {
            let events = self.events(mission).await;
            events
                .iter()
                .all(|e| e.published_at.is_some())
                .then_some(events)
        })
        .await
    }

    async fn pending_approval(&self, mission: &str) -> String {
        self.until("a call to wait for approval", || async {
            self.gateway
                .approvals(true, None, 200)
                .await
                .expect("approvals")
                .items
                .into_iter()
                .find(|a| a.record.mission_id == mission && a.status == ApprovalStatus::Pending)
                .map(|a| a.record.id)
        })
        .await
    }

    async fn approve(&self, approval_id: &str) {
        self.gateway
            .decide::<GatewayError>(
                &reviewer("reviewer"),
                &DecideApproval {
                    approval_id: approval_id.to_owned(),
                    decision: ApprovalDecision::Approve,
                    budget_cents: None,
                },
            )
            .await
            .expect("approve");
    }
}

/// Every event on one topic, read back from Kafka, until `ids` have all arrived.
async fn consume(bus: &Bus, mission: &str, topic: &str, ids: &HashSet<String>) -> Vec<Received> {
    let stream = if topic == mission_topic(mission) {
        bus.mission_stream(mission, 99).expect("consumer")
    } else {
        let dept: i64 = topic
            .rsplit("dept-")
            .next()
            .and_then(|d| d.parse().ok())
            .expect("dept topic");
        bus.dept_stream(mission, dept, None).expect("consumer")
    };
    let mut got = Vec::new();
    let mut seen = HashSet::new();
    while !ids.is_subset(&seen) {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap_or_else(|_| panic!("{topic}: {} of {} events arrived", seen.len(), ids.len()))
            .expect("a well-formed event");
        seen.insert(next.envelope.event_id.clone());
        got.push(next);
    }
    got
}

/// Checks the mission's run and jobs, and that Kafka carried exactly its events with the
/// right mission and job on each; returns the Kafka copies by topic.
/// Events in `gone` were published to a Kafka that no longer exists (a crashed process's
/// embedded cluster) and are not looked for.
async fn check_mission(
    rig: &Rig,
    mission: &str,
    gone: &HashSet<String>,
) -> HashMap<String, Vec<Received>> {
    let run = rig.run_record(mission).await;
    assert_eq!(run.status, MissionStatus::Completed, "{run:?}");
    assert_eq!(run.steps, TOOL_STEPS);
    let jobs = rig.repo.jobs(mission).await.expect("jobs");
    assert_eq!(jobs.len(), 6, "the orchestration job and one per plan step");
    assert!(jobs.iter().all(|j| j.status == JobStatus::Done), "{jobs:?}");
    let gas: Cents = jobs.iter().map(|j| j.cost_cents).sum();
    let value: Cents = jobs.iter().map(|j| j.value_cents).sum();
    assert_eq!(run.gas_cents, gas);
    assert_eq!(run.profit_cents, value - gas);
    let usage = rig.gateway.usage(mission).await.expect("usage");
    assert_eq!(usage.spent_cents, gas);
    assert_eq!(usage.steps_used, TOOL_STEPS);

    let events = rig.drained(mission).await;
    let job_ids: HashSet<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    for step in jobs.iter().filter(|j| j.step > 0) {
        let results: Vec<_> = events
            .iter()
            .filter(|e| e.envelope.kind == kind::JOB_RESULT && e.envelope.job_id == step.job_id)
            .collect();
        assert_eq!(results.len(), 1, "one result for step {}", step.step);
        assert_eq!(results[0].envelope.dept, step.dept);
        assert!(events.iter().any(|e| e.envelope.kind == kind::JOB_ASSIGNED
            && e.envelope.job_id == step.job_id
            && e.topic == dept_topic(mission, step.dept)));
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e.envelope.kind == kind::MISSION_ENDED)
            .count(),
        1
    );

    let mut by_topic: HashMap<String, HashSet<String>> = HashMap::new();
    for e in &events {
        assert_eq!(e.envelope.mission_id, mission);
        assert!(job_ids.contains(e.envelope.job_id.as_str()), "{e:?}");
        if gone.contains(&e.envelope.event_id) {
            continue;
        }
        by_topic
            .entry(e.topic.clone())
            .or_default()
            .insert(e.envelope.event_id.clone());
    }
    let mut copies = HashMap::new();
    for (topic, ids) in &by_topic {
        let got = consume(&rig.bus, mission, topic, ids).await;
        for r in &got {
            assert_eq!(r.header_mission_id, mission, "header on {topic}");
            assert_eq!(r.envelope.mission_id, mission, "envelope on {topic}");
            assert_eq!(r.key, mission);
            assert_eq!(r.header_job_id, r.envelope.job_id);
            assert!(
                job_ids.contains(r.envelope.job_id.as_str()),
                "job {} on {topic} is not one of the mission's",
                r.envelope.job_id
            );
            assert!(
                ids.contains(&r.envelope.event_id),
                "unexpected event on {topic}"
            );
        }
        copies.insert(topic.clone(), got);
    }
    copies
}

async fn audit_of(rig: &Rig, mission: &str) -> mission_core::audit::AuditPage {
    rig.repo
        .audit_page(&AuditQuery {
            mission_id: Some(mission.to_owned()),
            sector: None,
            before_seq: None,
            limit: 1000,
        })
        .await
        .expect("audit")
}

/// Once the squad is torn down, no token or exchange code of the mission is left.
async fn tokens_revoked(rig: &Rig, db: &TestDb, mission: &str) {
    let left = || async {
        db.count(&format!(
            "SELECT (SELECT COUNT(*) FROM gateway_tokens WHERE mission_id = '{mission}') + \
             (SELECT COUNT(*) FROM token_codes WHERE mission_id = '{mission}')"
        ))
        .await
    };
    rig.until("the squad's tokens to be revoked", || async {
        (left().await == 0).then_some(())
    })
    .await;
}

/// The one-time code an external department's context carries.
fn exchange_code(context: &MissionContext) -> String {
    match &context.credential {
        Credential::ExchangeCode { code, .. } => code.clone(),
        Credential::InProcess => panic!("an external department gets an exchange code"),
    }
}

/// Everything Kafka holds on the mission's topics, as bytes: payloads and headers.
fn kafka_bytes(copies: &HashMap<String, Vec<Received>>) -> String {
    copies
        .values()
        .flatten()
        .map(|r| serde_json::to_string(&r.envelope).expect("json"))
        .collect::<Vec<_>>()
        .join("\n")
}
