//! The tool gateway on both backends: sector isolation (the specification's manual check and
//! the whole sector-pair matrix), token, time-to-live and step caps, the budget under
//! concurrency, the three approval modes and the approvals queue, and the audit chain's
//! tamper detection. The rig and helpers live here; the tests, by topic, in the submodules.

mod anchor;
mod approvals;
mod audit;
mod budget;
mod idempotency;
mod inputs;
mod memory;
mod ruleset;
mod secrets;
mod sectors;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Duration;
use mission_core::audit::{AuditDecision, AuditLog, AuditQuery, Sealer};
use mission_core::gateway::{
    ApprovalDecision, ApprovalKind, ApprovalStatus, CallOutcome, DecideApproval, DecideError,
    Gateway, GatewayConfig, GatewayError, RefusalCode, ToolCall,
};
use mission_core::perimeter::{MissionStatus, Missions, SaveMissionRequest};
use mission_core::registry::ApprovalMode;
use mission_core::{Catalog, Core, Registry};
use serde_json::{json, Value};
use uuid::Uuid;

pub use crate::app::{test_sealer, TestClock};
use crate::app::{AppOptions, TestApp};
use crate::helpers::{operator, reviewer, with_hash, TestDb};
use mission_core::units::{Cents, Seconds};

pub struct Rig {
    pub app: TestApp,
    pub core: Core,
    pub registry: Registry,
    pub gateway: Gateway,
    pub clock: Arc<TestClock>,
    pub catalog: Arc<Catalog>,
}

/// One template per sector, connectable to every other sector, whose ruleset allows its own
/// sector's tools and every read-only tool of the others (so the sector and the grants decide
/// the calls the tests make; a ruleset holds at most 64 tools), with a small per-sector cap.
fn sector_templates(catalog: &Catalog) -> Vec<Value> {
    catalog
        .sectors()
        .iter()
        .map(|sector| {
            let others: Vec<&str> = catalog
                .sectors()
                .iter()
                .filter(|s| s.id != sector.id)
                .map(|s| s.id.as_str())
                .collect();
            let own_tool = catalog
                .tools()
                .iter()
                .find(|t| t.sector == sector.id)
                .expect("every sector has a tool");
            let allowed: Vec<&str> = catalog
                .tools()
                .iter()
                .filter(|t| {
                    t.sector == sector.id
                        || (!t.side_effects && t.kind == "builtin" && t.risk.as_str() != "High")
                })
                .map(|t| t.id.as_str())
                .collect();
            with_hash(json!({
                "id": format!("{}.gateway-probe", sector.id),
                "name": format!("{} gateway probe", sector.name),
                "sector": sector.id,
                "category": sector.categories[0],
                "goal": format!("Exercise the gateway from the {} sector.", sector.name),
                "required_depts": [1],
                "connected_sectors": others,
                "ruleset": {
                    "allowed_tools": allowed,
                    "plan": [{"dept": 1, "action": "Call the sector's tool.", "tool": own_tool.id}],
                    "forbidden_actions": ["Anything outside the perimeter"]
                },
                "default_perimeter": {
                    "budget_cents": 100000, "ttl_seconds": 86400, "max_steps": 1000,
                    "approval_mode": "Auto"
                },
                "risk_level": "Low",
                "logic_hash": ""
            }))
        })
        .collect()
}

pub async fn rig_with(db: &TestDb, catalog: Catalog, config: GatewayConfig) -> Rig {
    let probes = sector_templates(&catalog);
    let app = TestApp::spawn_with(
        db,
        AppOptions {
            catalog,
            gateway: config,
            manifests: probes,
        },
    )
    .await;
    Rig {
        registry: app.core.registry().clone(),
        gateway: app.gateway().await,
        catalog: Arc::clone(&app.core.settings().catalog),
        clock: Arc::clone(&app.clock),
        core: app.core.clone(),
        app,
    }
}

pub async fn rig(db: &TestDb) -> Rig {
    rig_with(
        db,
        Catalog::bundled().expect("catalog"),
        GatewayConfig::bundled().expect("config"),
    )
    .await
}

/// What a test mission looks like.
pub struct Spec<'a> {
    pub sector: &'a str,
    /// The template to deploy; the sector's gateway probe when absent.
    pub template: Option<&'a str>,
    pub mode: ApprovalMode,
    pub threshold: Option<i64>,
    pub budget: i64,
    pub steps: i64,
    pub connections: Vec<String>,
}

impl<'a> Spec<'a> {
    pub fn auto(sector: &'a str) -> Self {
        Self {
            sector,
            template: None,
            mode: ApprovalMode::Auto,
            threshold: None,
            budget: 100_000,
            steps: 1000,
            connections: Vec::new(),
        }
    }

    /// Threshold mode: calls estimated above `cents` wait for a human (0: every call waits).
    pub fn threshold(sector: &'a str, cents: i64) -> Self {
        Self {
            mode: ApprovalMode::Threshold,
            threshold: Some(cents),
            ..Self::auto(sector)
        }
    }
}

/// Saves, starts and issues a department-1 token for a mission; returns (mission id, token).
pub async fn running(rig: &Rig, spec: Spec<'_>) -> (String, String) {
    let template_id = spec
        .template
        .map_or_else(|| format!("{}.gateway-probe", spec.sector), str::to_owned);
    let missions = Missions::new(rig.registry.clone(), rig.core.repository().clone());
    let draft = missions.draft(&template_id).await.expect("draft");
    let saved = missions
        .save(
            &SaveMissionRequest {
                request_id: Uuid::now_v7().to_string(),
                template_id,
                template_version: draft.template.version,
                budget_cents: Cents(spec.budget),
                ttl_seconds: Seconds(3600),
                max_steps: spec.steps,
                approval_mode: spec.mode,
                threshold_cents: spec.threshold.map(Cents),
                connections: spec.connections,
            },
            "alice",
        )
        .await
        .expect("save mission");
    let id = saved.mission.id;
    rig.gateway
        .start_mission::<GatewayError>(&operator("alice"), &id)
        .await
        .expect("start");
    let token = rig
        .gateway
        .issue_token::<GatewayError>(&operator("alice"), &id, 1)
        .await
        .expect("token");
    (id, token)
}

pub fn call(token: &str, tool: &str, args: Value) -> ToolCall {
    ToolCall {
        token: token.to_owned(),
        tool_id: tool.to_owned(),
        args,
        job_id: Some("job-1".to_owned()),
        mission_id: None,
        idempotency_key: None,
    }
}

fn refusal(result: Result<CallOutcome, GatewayError>) -> (RefusalCode, String, i64) {
    match result {
        Err(GatewayError::Refused(r)) => (r.code, r.message, r.audit_seq),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub fn executed(result: Result<CallOutcome, GatewayError>) -> mission_core::gateway::Executed {
    match result {
        Ok(CallOutcome::Executed(e)) => e,
        other => panic!("expected the tool to run, got {other:?}"),
    }
}

pub fn waiting(result: Result<CallOutcome, GatewayError>) -> mission_core::gateway::Waiting {
    match result {
        Ok(CallOutcome::Waiting(w)) => w,
        other => panic!("expected the call to wait, got {other:?}"),
    }
}

async fn record(rig: &Rig, seq: i64) -> mission_core::audit::AuditEntry {
    let page = AuditLog::new(rig.core.repository().clone())
        .page(&AuditQuery {
            before_seq: Some(seq + 1),
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("audit page");
    let entry = page.entries.into_iter().next().expect("record");
    assert_eq!(entry.seq, seq);
    entry
}

async fn verify(rig: &Rig) -> mission_core::audit::VerifyReport {
    AuditLog::new(rig.core.repository().clone())
        .verify(None)
        .await
        .expect("verify")
}

/// How many records the audit log holds.
pub async fn audit_count(rig: &Rig) -> usize {
    let mut count = 0;
    let mut before = None;
    loop {
        let page = AuditLog::new(rig.core.repository().clone())
            .page(&AuditQuery {
                before_seq: before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("audit page");
        count += page.entries.len();
        before = page.entries.last().map(|e| e.seq);
        if !page.has_more {
            return count;
        }
    }
}

/// The first page of requests waiting for a reviewer (every one the tests open).
async fn waiting_queue(rig: &Rig) -> Vec<mission_core::gateway::ApprovalItem> {
    rig.gateway
        .approvals(true, None, 200)
        .await
        .expect("queue")
        .items
}
