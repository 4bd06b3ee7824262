//! Sector isolation: the specification's manual check, the whole sector-pair matrix, and a
//! token bound to its mission, time to live and step cap.

use super::*;
use mission_core::units::Cents;

crate::on_both_backends!(
    a_security_mission_calling_a_trading_tool_is_refused_and_the_audit_names_trading,
    every_sector_pair_is_allowed_only_for_the_same_sector_or_an_explicit_connection,
    a_token_acts_only_for_its_mission_and_ttl_and_steps_are_exact,
);

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
    assert_eq!(entry.record.decision, AuditDecision::Denied);
    assert_eq!(entry.record.mission_id.as_deref(), Some(mission.as_str()));
    assert_eq!(
        entry.record.tool_id.as_deref(),
        Some("trading.market_data_fetch")
    );
    // The sector that would have had to authorize it, and no policy permitted it.
    assert_eq!(entry.record.sector.as_deref(), Some("trading"));
    assert!(
        entry.record.policy_ids.is_empty(),
        "{:?}",
        entry.record.policy_ids
    );
    assert_eq!(entry.record.grant, None);
    assert_eq!(entry.record.cost_cents, Cents(0));
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!((usage.steps_used, usage.spent_cents), (0, Cents::ZERO));

    // Its own sector's tool runs, and the record names the authorizing sector and policy.
    let ran = executed(
        rig.gateway
            .invoke(call(&token, "security.log_search", json!({"items": 2})))
            .await,
    );
    assert!(ran.simulated);
    assert_eq!(ran.cost_cents, Cents(2));
    let entry = record(&rig, ran.audit_seq).await;
    assert_eq!(entry.record.decision, AuditDecision::Allowed);
    assert_eq!(entry.record.sector.as_deref(), Some("security"));
    assert_eq!(entry.record.policy_ids, ["sector/security"]);
    assert!(entry.record.simulated);
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
                        assert_eq!(entry.record.sector.as_deref(), Some(target.as_str()));
                        if target == own {
                            assert_eq!(entry.record.policy_ids, [format!("sector/{own}")]);
                            assert_eq!(entry.record.grant, None);
                        } else {
                            assert!(entry.record.policy_ids[0].starts_with("connection/"));
                            let grant = entry.record.grant.expect("grant recorded");
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
    assert_eq!(
        record(&rig, seq).await.record.decision,
        AuditDecision::Denied
    );
    assert_eq!(rig.gateway.usage(&b).await.expect("usage").steps_used, 0);
    // A token nobody issued.
    let (code, _, seq) = refusal(
        rig.gateway
            .invoke(call("mct_forged", "wealth.portfolio_snapshot", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::Unauthenticated);
    assert_eq!(record(&rig, seq).await.record.mission_id, None);

    // Max steps is exact: three calls run, the fourth is refused.
    let token_b = rig
        .gateway
        .issue_token::<GatewayError>(&operator("alice"), &b, 1)
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
