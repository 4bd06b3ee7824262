//! The pinned ruleset, not only the sector: over HTTP, every tool of a sector with a token of
//! every department, against a template that allows two of the sector's tools to a squad of
//! two departments.

use super::*;
use mission_core::error::ErrorCode;
use mission_core::gateway::hash_token;
use mission_core::gateway::store::NewToken;

crate::on_both_backends!(only_the_rulesets_tools_and_the_squads_departments_get_through);

const TEMPLATE: &str = "finance.ruleset-probe";
const SQUAD: [i64; 2] = [1, 3];

async fn only_the_rulesets_tools_and_the_squads_departments_get_through(db: TestDb) {
    let rig = rig(&db).await;
    let finance: Vec<_> = rig
        .catalog
        .tools()
        .iter()
        .filter(|t| t.sector == "finance")
        .collect();
    // Two read-only tools, so an allowed call runs at once in Auto mode.
    let allowed: Vec<&str> = finance
        .iter()
        .filter(|t| !t.side_effects && t.kind == "builtin" && t.risk.as_str() != "High")
        .take(2)
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(allowed.len(), 2, "finance has two read-only tools");
    rig.registry
        .import(&[crate::helpers::input(
            "ruleset.json",
            &crate::helpers::manifest(vec![with_hash(json!({
                "id": TEMPLATE,
                "name": "Ruleset probe",
                "sector": "finance",
                "category": rig.catalog.sector("finance").expect("finance").categories[0],
                "goal": "Call two of the sector's tools from two departments.",
                "required_depts": SQUAD,
                "ruleset": {
                    "allowed_tools": allowed,
                    "plan": [
                        {"dept": 1, "action": "First tool.", "tool": allowed[0]},
                        {"dept": 3, "action": "Second tool.", "tool": allowed[1]}
                    ],
                    "forbidden_actions": ["Anything else"]
                },
                "default_perimeter": {
                    "budget_cents": 100000, "ttl_seconds": 86400, "max_steps": 1000,
                    "approval_mode": "Auto"
                },
                "risk_level": "Low",
                "logic_hash": ""
            }))]),
        )])
        .await
        .expect("import the probe template");
    let (mission, _) = running(
        &rig,
        Spec {
            template: Some(TEMPLATE),
            ..Spec::auto("finance")
        },
    )
    .await;

    // A token for every department: the core issues them only to the squad; a token held for
    // another department (as an older version issued them) is stored directly.
    let mut tokens = Vec::new();
    for dept in rig.catalog.departments().iter().map(|d| i64::from(d.id)) {
        let issued = rig
            .core
            .issue_token(&operator("alice"), &mission, dept)
            .await;
        let token = if SQUAD.contains(&dept) {
            issued.expect("a squad department gets a token")
        } else {
            let refused = issued.expect_err("only the squad gets tokens");
            assert_eq!(refused.code, ErrorCode::UnknownDepartment);
            let token = format!("mct_outside_{dept}_{}", Uuid::now_v7().simple());
            rig.core
                .repository()
                .insert_token(&NewToken {
                    hash: &hash_token(&token),
                    mission_id: &mission,
                    dept,
                    issued_by: "an earlier version",
                    issued_at: "2026-12-01T00:00:00.000000Z",
                })
                .await
                .expect("store a token");
            token
        };
        tokens.push((dept, token));
    }
    assert!(tokens.len() > SQUAD.len());

    let records_before = audit_count(&rig).await;
    let client = reqwest::Client::new();
    let (mut ran, mut spent, mut calls) = (0, 0, 0);
    for tool in &finance {
        for (dept, token) in &tokens {
            let response = client
                .post(format!("{}/v1/tools/{}/invoke", rig.app.api, tool.id))
                .bearer_auth(token)
                .json(&json!({"args": {}}))
                .send()
                .await
                .expect("send");
            calls += 1;
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            let what = format!("{} by dept {dept}: {body}", tool.id);
            if !SQUAD.contains(dept) {
                assert_eq!(
                    (status, &body["code"]),
                    (403, &json!("dept_not_in_squad")),
                    "{what}"
                );
            } else if !allowed.contains(&tool.id.as_str()) {
                assert_eq!(
                    (status, &body["code"]),
                    (403, &json!("tool_not_in_ruleset")),
                    "{what}"
                );
            } else {
                assert_eq!(
                    (status, &body["status"]),
                    (200, &json!("executed")),
                    "{what}"
                );
                ran += 1;
                spent += body["cost_cents"].as_i64().expect("cost");
                continue;
            }
            // A refusal is audited as a denial naming the department and the tool.
            let entry = record(&rig, body["audit_seq"].as_i64().expect("audit seq")).await;
            assert_eq!(entry.record.decision, AuditDecision::Denied, "{what}");
            assert_eq!(entry.record.dept, Some(*dept), "{what}");
            assert_eq!(
                entry.record.tool_id.as_deref(),
                Some(tool.id.as_str()),
                "{what}"
            );
        }
    }
    assert_eq!(
        ran,
        2 * allowed.len(),
        "each allowed tool ran once per squad department"
    );

    // Every call has one record; only the allowed calls counted a step or spent a cent.
    assert_eq!(audit_count(&rig).await, records_before + calls);
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(usage.steps_used, i64::try_from(ran).expect("count"));
    assert_eq!(usage.spent_cents, Cents(spent));
    assert_eq!(usage.reserved_cents, Cents::ZERO);
    assert!(verify(&rig).await.ok);
}
