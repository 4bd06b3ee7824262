//! The tool gateway on both backends: sector isolation (the specification's manual check and
//! the whole sector-pair matrix), token, time-to-live and step caps, the budget under
//! concurrency, the three approval modes and the approvals queue, and the audit chain's
//! tamper detection.

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

crate::on_both_backends!(
    a_security_mission_calling_a_trading_tool_is_refused_and_the_audit_names_trading,
    every_sector_pair_is_allowed_only_for_the_same_sector_or_an_explicit_connection,
    a_token_acts_only_for_its_mission_and_ttl_and_steps_are_exact,
    two_hundred_concurrent_calls_never_overspend_a_budget_for_one_hundred,
    strict_threshold_and_auto_hold_exactly_the_calls_they_state,
    an_approval_covers_one_exact_call_and_expires,
    reaching_the_budget_pauses_the_mission_until_a_human_raises_it_or_stops_it,
    editing_deleting_or_reordering_any_audit_record_is_detected,
);

pub struct Rig {
    pub app: TestApp,
    pub core: Core,
    pub registry: Registry,
    pub gateway: Gateway,
    pub clock: Arc<TestClock>,
    pub catalog: Arc<Catalog>,
}

/// One template per sector, connectable to every other sector, with a small per-sector cap.
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
            with_hash(json!({
                "id": format!("{}.gateway-probe", sector.id),
                "name": format!("{} gateway probe", sector.name),
                "sector": sector.id,
                "category": sector.categories[0],
                "goal": format!("Exercise the gateway from the {} sector.", sector.name),
                "required_depts": [1],
                "connected_sectors": others,
                "ruleset": {
                    "allowed_tools": [own_tool.id],
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
            mode: ApprovalMode::Auto,
            threshold: None,
            budget: 100_000,
            steps: 1000,
            connections: Vec::new(),
        }
    }
}

/// Saves, starts and issues a department-1 token for a mission; returns (mission id, token).
pub async fn running(rig: &Rig, spec: Spec<'_>) -> (String, String) {
    let template_id = format!("{}.gateway-probe", spec.sector);
    let missions = Missions::new(rig.registry.clone(), rig.core.repository().clone());
    let draft = missions.draft(&template_id).await.expect("draft");
    let saved = missions
        .save(
            &SaveMissionRequest {
                request_id: Uuid::now_v7().to_string(),
                template_id,
                template_version: draft.template.version,
                budget_cents: spec.budget,
                ttl_seconds: 3600,
                max_steps: spec.steps,
                approval_mode: spec.mode,
                threshold_cents: spec.threshold,
                connections: spec.connections,
            },
            "alice",
        )
        .await
        .expect("save mission");
    let id = saved.mission.id;
    rig.gateway
        .start_mission(&operator("alice"), &id)
        .await
        .expect("start");
    let token = rig
        .gateway
        .issue_token(&operator("alice"), &id, 1)
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

async fn a_security_mission_calling_a_trading_tool_is_refused_and_the_audit_names_trading(
    db: TestDb,
) {
    let rig = rig(&db).await;
    let (mission, token) = running(&rig, Spec::auto("security")).await;
    let (code, message, seq) = refusal(
        rig.gateway
            .invoke(call(
                &token,
                "trading.market_data_fetch",
                json!({"items": 1}),
            ))
            .await,
    );
    assert_eq!(code, RefusalCode::SectorDenied);
    assert!(message.contains("trading"), "{message}");
    let entry = record(&rig, seq).await;
    assert_eq!(entry.decision, AuditDecision::Denied);
    assert_eq!(entry.mission_id.as_deref(), Some(mission.as_str()));
    assert_eq!(entry.tool_id.as_deref(), Some("trading.market_data_fetch"));
    // The sector that would have had to authorize it, and no policy permitted it.
    assert_eq!(entry.sector.as_deref(), Some("trading"));
    assert!(entry.policy_ids.is_empty(), "{:?}", entry.policy_ids);
    assert_eq!(entry.grant, None);
    assert_eq!(entry.cost_cents, 0);
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!((usage.steps_used, usage.spent_cents), (0, 0));

    // Its own sector's tool runs, and the record names the authorizing sector and policy.
    let ran = executed(
        rig.gateway
            .invoke(call(&token, "security.log_search", json!({"items": 2})))
            .await,
    );
    assert!(ran.simulated);
    assert_eq!(ran.cost_cents, 2);
    let entry = record(&rig, ran.audit_seq).await;
    assert_eq!(entry.decision, AuditDecision::Allowed);
    assert_eq!(entry.sector.as_deref(), Some("security"));
    assert_eq!(entry.policy_ids, ["sector/security"]);
    assert!(entry.simulated);
    assert!(verify(&rig).await.ok);
}

async fn every_sector_pair_is_allowed_only_for_the_same_sector_or_an_explicit_connection(
    db: TestDb,
) {
    let rig = rig(&db).await;
    let sectors: Vec<String> = rig.catalog.sectors().iter().map(|s| s.id.clone()).collect();
    // One read-only, non-High tool per sector, so no approval gate is involved.
    let probe: HashMap<&str, &str> = sectors
        .iter()
        .map(|s| {
            let tool = rig
                .catalog
                .tools()
                .iter()
                .find(|t| {
                    &t.sector == s
                        && !t.side_effects
                        && t.kind == "builtin"
                        && t.risk.as_str() != "High"
                })
                .expect("a read-only tool per sector");
            (s.as_str(), tool.id.as_str())
        })
        .collect();
    let mut checked = 0;
    for (i, own) in sectors.iter().enumerate() {
        let connected = &sectors[(i + 1) % sectors.len()];
        let (_, plain) = running(&rig, Spec::auto(own)).await;
        let (_, linked) = running(
            &rig,
            Spec {
                connections: vec![connected.clone()],
                ..Spec::auto(own)
            },
        )
        .await;
        for target in &sectors {
            let tool = probe[target.as_str()];
            for (token, grant) in [(&plain, None), (&linked, Some(connected))] {
                let result = rig.gateway.invoke(call(token, tool, json!({}))).await;
                let should = target == own || grant == Some(target);
                match result {
                    Ok(CallOutcome::Executed(e)) => {
                        assert!(should, "{own} mission reached {tool} without a connection");
                        let entry = record(&rig, e.audit_seq).await;
                        assert_eq!(entry.sector.as_deref(), Some(target.as_str()));
                        if target == own {
                            assert_eq!(entry.policy_ids, [format!("sector/{own}")]);
                            assert_eq!(entry.grant, None);
                        } else {
                            assert!(entry.policy_ids[0].starts_with("connection/"));
                            let grant = entry.grant.expect("grant recorded");
                            assert!(
                                grant.contains(&format!("connection to {target} granted by alice")),
                                "{grant}"
                            );
                        }
                    }
                    other => {
                        assert!(!should, "{own} → {target} should be allowed: {other:?}");
                        assert_eq!(refusal(other).0, RefusalCode::SectorDenied);
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, sectors.len() * sectors.len() * 2);
    assert!(verify(&rig).await.ok);
}

async fn a_token_acts_only_for_its_mission_and_ttl_and_steps_are_exact(db: TestDb) {
    let rig = rig(&db).await;
    let (a, token_a) = running(&rig, Spec::auto("wealth")).await;
    let (b, _) = running(
        &rig,
        Spec {
            steps: 3,
            ..Spec::auto("wealth")
        },
    )
    .await;
    // Mission A's token presented for mission B.
    let mut stray = call(&token_a, "wealth.portfolio_snapshot", json!({}));
    stray.mission_id = Some(b.clone());
    let (code, message, seq) = refusal(rig.gateway.invoke(stray).await);
    assert_eq!(code, RefusalCode::Unauthenticated);
    assert!(message.contains(&b), "{message}");
    assert_eq!(record(&rig, seq).await.decision, AuditDecision::Denied);
    assert_eq!(rig.gateway.usage(&b).await.expect("usage").steps_used, 0);
    // A token nobody issued.
    let (code, _, seq) = refusal(
        rig.gateway
            .invoke(call("mct_forged", "wealth.portfolio_snapshot", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::Unauthenticated);
    assert_eq!(record(&rig, seq).await.mission_id, None);

    // Max steps is exact: three calls run, the fourth is refused.
    let token_b = rig
        .gateway
        .issue_token(&operator("alice"), &b, 1)
        .await
        .expect("token");
    for step in 1..=3 {
        let ran = executed(
            rig.gateway
                .invoke(call(&token_b, "wealth.portfolio_snapshot", json!({})))
                .await,
        );
        assert_eq!(ran.step, step);
    }
    let (code, _, _) = refusal(
        rig.gateway
            .invoke(call(&token_b, "wealth.portfolio_snapshot", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::StepsExhausted);
    assert_eq!(rig.gateway.usage(&b).await.expect("usage").steps_used, 3);

    // Tokens only for the template's departments.
    assert!(matches!(
        rig.gateway.issue_token(&operator("alice"), &a, 7).await,
        Err(GatewayError::UnknownDepartment { dept: 7, .. })
    ));

    // Time to live: an hour and a second later mission A refuses.
    executed(
        rig.gateway
            .invoke(call(&token_a, "wealth.portfolio_snapshot", json!({})))
            .await,
    );
    rig.clock.advance(Duration::seconds(3601));
    let (code, _, _) = refusal(
        rig.gateway
            .invoke(call(&token_a, "wealth.portfolio_snapshot", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::MissionExpired);
    assert!(verify(&rig).await.ok);
}

async fn two_hundred_concurrent_calls_never_overspend_a_budget_for_one_hundred(db: TestDb) {
    let rig = rig(&db).await;
    // wealth.portfolio_snapshot costs a flat 5 cents: 500 cents fit exactly 100 calls.
    let (mission, token) = running(
        &rig,
        Spec {
            budget: 500,
            ..Spec::auto("wealth")
        },
    )
    .await;
    let calls = (0..200).map(|i| {
        let gateway = rig.gateway.clone();
        let c = call(&token, "wealth.portfolio_snapshot", json!({"n": i}));
        tokio::spawn(async move { gateway.invoke(c).await })
    });
    let mut ran = 0;
    let mut refused = 0;
    let mut steps = Vec::new();
    for handle in calls.collect::<Vec<_>>() {
        match handle.await.expect("task") {
            Ok(CallOutcome::Executed(e)) => {
                ran += 1;
                steps.push(e.step);
            }
            Err(GatewayError::Refused(r)) => {
                assert!(
                    matches!(
                        r.code,
                        RefusalCode::BudgetExhausted
                            | RefusalCode::BudgetReserved
                            | RefusalCode::MissionNotActive
                    ),
                    "{r:?}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(ran, 100, "every call that fits runs");
    steps.sort_unstable();
    assert_eq!(
        steps,
        (1..=100).collect::<Vec<i64>>(),
        "each call has its own step"
    );
    assert_eq!(refused, 100);
    assert_eq!(usage.spent_cents, 500);
    assert!(usage.spent_cents <= usage.budget_cents);
    assert_eq!(usage.reserved_cents, 0);
    assert_eq!(usage.steps_used, 100);
    let report = verify(&rig).await;
    assert!(report.ok, "{report:?}");
    // The mission's start and its token, then the 200 calls.
    assert_eq!(report.records, 202);
}

async fn strict_threshold_and_auto_hold_exactly_the_calls_they_state(db: TestDb) {
    let rig = rig(&db).await;
    // Strict: side-effecting calls wait, read-only ones run.
    let (_, strict) = running(
        &rig,
        Spec {
            mode: ApprovalMode::Strict,
            ..Spec::auto("wealth")
        },
    )
    .await;
    executed(
        rig.gateway
            .invoke(call(&strict, "wealth.portfolio_snapshot", json!({})))
            .await,
    );
    executed(
        rig.gateway
            .invoke(call(&strict, "wealth.rebalance_proposal", json!({})))
            .await,
    );
    let w = waiting(
        rig.gateway
            .invoke(call(
                &strict,
                "wealth.estate_document_draft",
                json!({"client": "a"}),
            ))
            .await,
    );
    assert!(w.reason.contains("Strict"), "{}", w.reason);
    assert_eq!(
        record(&rig, w.audit_seq).await.decision,
        AuditDecision::Waiting
    );

    // Threshold 100: at or above the threshold waits, and High risk waits at any cost.
    let (threshold_mission, threshold) = running(
        &rig,
        Spec {
            mode: ApprovalMode::Threshold,
            threshold: Some(100),
            ..Spec::auto("wealth")
        },
    )
    .await;
    executed(
        rig.gateway
            .invoke(call(&threshold, "wealth.rebalance_proposal", json!({})))
            .await,
    );
    let at = waiting(
        rig.gateway
            .invoke(call(
                &threshold,
                "wealth.tax_lot_scan",
                json!({"items": 50}),
            ))
            .await,
    );
    assert!(at.reason.contains("100"), "{}", at.reason);
    executed(
        rig.gateway
            .invoke(call(
                &threshold,
                "wealth.tax_lot_scan",
                json!({"items": 49}),
            ))
            .await,
    );
    let high = waiting(
        rig.gateway
            .invoke(call(
                &threshold,
                "wealth.rebalance_execute",
                json!({"items": 1}),
            ))
            .await,
    );
    assert!(high.reason.contains("High"), "{}", high.reason);
    // Waiting calls hold neither steps nor budget.
    let usage = rig.gateway.usage(&threshold_mission).await.expect("usage");
    assert_eq!(
        (usage.steps_used, usage.spent_cents, usage.reserved_cents),
        (2, 20 + 98, 0)
    );

    // Auto: nothing waits, High-risk side effects included.
    let (_, auto) = running(&rig, Spec::auto("wealth")).await;
    let ran = executed(
        rig.gateway
            .invoke(call(&auto, "wealth.rebalance_execute", json!({"items": 2})))
            .await,
    );
    assert_eq!(ran.cost_cents, 80);

    let queue = rig.gateway.approvals(true).await.expect("queue");
    assert_eq!(queue.len(), 3);
    assert!(queue
        .iter()
        .all(|a| a.kind == ApprovalKind::ToolCall && a.status == ApprovalStatus::Pending));
}

async fn an_approval_covers_one_exact_call_and_expires(db: TestDb) {
    let rig = rig(&db).await;
    let (mission, token) = running(
        &rig,
        Spec {
            mode: ApprovalMode::Strict,
            ..Spec::auto("wealth")
        },
    )
    .await;
    let tool = "wealth.estate_document_draft";
    let asked = waiting(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "a"})))
            .await,
    );
    // Asking again for the same call does not open a second request.
    let again = waiting(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "a"})))
            .await,
    );
    assert_eq!(asked.approval_id, again.approval_id);
    let approved = rig
        .gateway
        .decide(
            &reviewer("bob"),
            &DecideApproval {
                approval_id: asked.approval_id.clone(),
                decision: ApprovalDecision::Approve,
                budget_cents: None,
            },
        )
        .await
        .expect("approve");
    assert_eq!(approved.status, ApprovalStatus::Approved);
    assert_eq!(approved.decided_by.as_deref(), Some("bob"));

    // Different arguments are a different call: still waiting, in a new request.
    let other = waiting(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "b"})))
            .await,
    );
    assert_ne!(other.approval_id, asked.approval_id);
    // The approved call runs once, and the record says who approved it.
    let ran = executed(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "a"})))
            .await,
    );
    let entry = record(&rig, ran.audit_seq).await;
    assert!(entry.reason.contains("approved by bob"), "{}", entry.reason);
    // A second identical call needs a new approval.
    let third = waiting(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "a"})))
            .await,
    );
    assert_ne!(third.approval_id, asked.approval_id);

    // The approval decision itself is audited under the reviewer's name.
    let page = AuditLog::new(rig.core.repository().clone())
        .page(&AuditQuery {
            mission_id: Some(mission.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("page");
    assert!(page
        .entries
        .iter()
        .any(|e| e.decision == AuditDecision::Approved && e.caller == "bob"));

    // An approval that expires before use is refused.
    rig.gateway
        .decide(
            &reviewer("bob"),
            &DecideApproval {
                approval_id: other.approval_id.clone(),
                decision: ApprovalDecision::Approve,
                budget_cents: None,
            },
        )
        .await
        .expect("approve b");
    rig.clock.advance(Duration::seconds(901));
    let (code, _, _) = refusal(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "b"})))
            .await,
    );
    assert_eq!(code, RefusalCode::ApprovalExpired);
    // A request that expired while pending cannot be approved.
    let late = rig
        .gateway
        .decide(
            &reviewer("bob"),
            &DecideApproval {
                approval_id: third.approval_id.clone(),
                decision: ApprovalDecision::Approve,
                budget_cents: None,
            },
        )
        .await;
    assert!(
        matches!(late, Err(GatewayError::Approval(DecideError::Expired(_)))),
        "{late:?}"
    );
    // A denied call stays denied.
    let fresh = waiting(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "c"})))
            .await,
    );
    rig.gateway
        .decide(
            &reviewer("carol"),
            &DecideApproval {
                approval_id: fresh.approval_id.clone(),
                decision: ApprovalDecision::Deny,
                budget_cents: None,
            },
        )
        .await
        .expect("deny");
    let (code, message, _) = refusal(
        rig.gateway
            .invoke(call(&token, tool, json!({"client": "c"})))
            .await,
    );
    assert_eq!(code, RefusalCode::ApprovalDenied);
    assert!(message.contains("carol"), "{message}");
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(usage.steps_used, 1, "only the approved call used a step");
    assert!(verify(&rig).await.ok);
}

async fn reaching_the_budget_pauses_the_mission_until_a_human_raises_it_or_stops_it(db: TestDb) {
    let rig = rig(&db).await;
    // growth.audience_segment costs a flat 30 cents; the budget fits three calls.
    let spec = || Spec {
        budget: 100,
        ..Spec::auto("growth")
    };
    let (mission, token) = running(&rig, spec()).await;
    for _ in 0..3 {
        executed(
            rig.gateway
                .invoke(call(&token, "growth.audience_segment", json!({})))
                .await,
        );
    }
    let (code, _, _) = refusal(
        rig.gateway
            .invoke(call(&token, "growth.audience_segment", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::BudgetExhausted);
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(usage.status, MissionStatus::Paused);
    assert_eq!(usage.spent_cents, 90);
    let (code, _, _) = refusal(
        rig.gateway
            .invoke(call(&token, "growth.audience_segment", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::MissionNotActive);

    let queue = rig.gateway.approvals(true).await.expect("queue");
    let cap = queue
        .iter()
        .find(|a| a.kind == ApprovalKind::BudgetCap && a.mission_id == mission)
        .expect("budget request");
    assert_eq!(cap.budget_cents, Some(100));
    let max = rig.catalog.policy().hard_caps.budget_cents;
    assert_eq!(cap.max_budget_cents, Some(max));
    let decide = |budget: Option<i64>, decision| DecideApproval {
        approval_id: cap.id.clone(),
        decision,
        budget_cents: budget,
    };
    // Beyond the global policy, or not a raise: refused, nothing changes.
    for bad in [max + 1, 100, 50] {
        let refused = rig
            .gateway
            .decide(
                &reviewer("bob"),
                &decide(Some(bad), ApprovalDecision::Approve),
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(GatewayError::Approval(DecideError::BudgetOutOfRange { .. }))
            ),
            "{refused:?}"
        );
    }
    assert_eq!(
        rig.gateway.usage(&mission).await.expect("usage").status,
        MissionStatus::Paused
    );
    rig.gateway
        .decide(
            &reviewer("bob"),
            &decide(Some(200), ApprovalDecision::Approve),
        )
        .await
        .expect("raise");
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(
        (usage.status, usage.budget_cents),
        (MissionStatus::Running, 200)
    );
    executed(
        rig.gateway
            .invoke(call(&token, "growth.audience_segment", json!({})))
            .await,
    );

    // The other answer stops the mission.
    let (second, token2) = running(&rig, spec()).await;
    for _ in 0..4 {
        let _ = rig
            .gateway
            .invoke(call(&token2, "growth.audience_segment", json!({})))
            .await;
    }
    let cap2 = rig
        .gateway
        .approvals(true)
        .await
        .expect("queue")
        .into_iter()
        .find(|a| a.mission_id == second)
        .expect("second request");
    rig.gateway
        .decide(
            &reviewer("bob"),
            &DecideApproval {
                approval_id: cap2.id,
                decision: ApprovalDecision::Deny,
                budget_cents: None,
            },
        )
        .await
        .expect("stop");
    assert_eq!(
        rig.gateway.usage(&second).await.expect("usage").status,
        MissionStatus::Stopped
    );
    assert!(verify(&rig).await.ok);
}

/// Runs SQL against the test database directly, as someone with database access would.
async fn sql(db: &TestDb, statements: &[&str]) {
    if db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&db.url).await.expect("connect");
        for s in statements {
            sqlx::query(s).execute(&pool).await.expect(s);
        }
        pool.close().await;
    } else {
        let path = db.url.trim_start_matches("sqlite://");
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{path}"))
            .await
            .expect("connect");
        for s in statements {
            sqlx::query(s).execute(&pool).await.expect(s);
        }
        pool.close().await;
    }
}

async fn editing_deleting_or_reordering_any_audit_record_is_detected(db: TestDb) {
    let rig = rig(&db).await;
    let (_, token) = running(&rig, Spec::auto("security")).await;
    for i in 0..4 {
        let _ = rig
            .gateway
            .invoke(call(&token, "security.log_search", json!({"i": i})))
            .await;
        let _ = rig
            .gateway
            .invoke(call(&token, "trading.market_data_fetch", json!({})))
            .await;
    }
    let report = verify(&rig).await;
    assert!(report.ok, "{report:?}");
    let n = report.records;
    // The mission's start and its token, then the eight calls.
    assert_eq!(n, 10);

    // The database itself refuses changes to the log.
    let repo_url = db.url.clone();
    let refused = if repo_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&repo_url).await.expect("connect");
        sqlx::query("UPDATE audit_log SET reason = 'x' WHERE seq = 1")
            .execute(&pool)
            .await
            .is_err()
    } else {
        let pool = sqlx::SqlitePool::connect(&repo_url).await.expect("connect");
        sqlx::query("UPDATE audit_log SET reason = 'x' WHERE seq = 1")
            .execute(&pool)
            .await
            .is_err()
    };
    assert!(refused, "the append-only trigger must refuse updates");

    // Someone with full database access goes around the triggers.
    if db.url.starts_with("postgres") {
        sql(&db, &["DROP TRIGGER audit_log_append_only ON audit_log"]).await;
    } else {
        sql(
            &db,
            &[
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
            ],
        )
        .await;
    }
    sql(&db, &["CREATE TABLE audit_copy AS SELECT * FROM audit_log"]).await;
    let bad_seq = |report: mission_core::audit::VerifyReport| {
        assert!(!report.ok);
        report.first_bad.expect("first bad").seq
    };

    for k in 1..=n {
        // Edit: one field of record k.
        sql(
            &db,
            &[&format!(
                "UPDATE audit_log SET cost_cents = cost_cents + 1 WHERE seq = {k}"
            )],
        )
        .await;
        assert_eq!(bad_seq(verify(&rig).await), k, "edit of #{k}");
        sql(
            &db,
            &[&format!(
                "UPDATE audit_log SET cost_cents = cost_cents - 1 WHERE seq = {k}"
            )],
        )
        .await;
        // Delete record k.
        sql(&db, &[&format!("DELETE FROM audit_log WHERE seq = {k}")]).await;
        assert_eq!(bad_seq(verify(&rig).await), k, "deletion of #{k}");
        sql(
            &db,
            &[&format!(
                "INSERT INTO audit_log SELECT * FROM audit_copy WHERE seq = {k}"
            )],
        )
        .await;
        // Swap record k with the next one.
        if k < n {
            sql(
                &db,
                &[
                    &format!("UPDATE audit_log SET seq = -1 WHERE seq = {k}"),
                    &format!("UPDATE audit_log SET seq = {k} WHERE seq = {}", k + 1),
                    &format!("UPDATE audit_log SET seq = {} WHERE seq = -1", k + 1),
                ],
            )
            .await;
            assert_eq!(bad_seq(verify(&rig).await), k, "swap of #{k}");
            sql(
                &db,
                &[
                    &format!("UPDATE audit_log SET seq = -1 WHERE seq = {k}"),
                    &format!("UPDATE audit_log SET seq = {k} WHERE seq = {}", k + 1),
                    &format!("UPDATE audit_log SET seq = {} WHERE seq = -1", k + 1),
                ],
            )
            .await;
        }
        assert!(verify(&rig).await.ok, "restored after #{k}");
    }

    // An export verifies elsewhere with the public key, and a changed line does not.
    let mut out = Vec::new();
    AuditLog::new(rig.core.repository().clone())
        .export(&mut out, "2026-11-25T10:00:00.000000Z")
        .await
        .expect("export");
    let key = mission_core::audit::public_key(&test_sealer().public_key_hex()).expect("key");
    let report =
        mission_core::audit::verify_export(out.as_slice(), Some(std::slice::from_ref(&key)))
            .expect("verify export");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, n);
    let text = String::from_utf8(out).expect("utf8");
    let tampered = text.replacen("\"cost_cents\":1", "\"cost_cents\":0", 1);
    assert_ne!(tampered, text);
    let report =
        mission_core::audit::verify_export(tampered.as_bytes(), Some(&[key])).expect("verify");
    assert!(!report.ok);
    // Another key: nothing verifies.
    let stranger = Sealer::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let other = mission_core::audit::public_key(&stranger.public_key_hex()).expect("key");
    let report =
        mission_core::audit::verify_export(text.as_bytes(), Some(&[other])).expect("verify");
    assert_eq!(report.first_bad.expect("bad").seq, 1);
}
