//! The budget: concurrent calls never overspend it, and reaching it pauses the mission for a
//! human to raise it or stop it.

use super::*;
use mission_core::units::Cents;

crate::on_both_backends!(
    two_hundred_concurrent_calls_never_overspend_a_budget_for_one_hundred,
    reaching_the_budget_pauses_the_mission_until_a_human_raises_it_or_stops_it,
);

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
    assert_eq!(usage.spent_cents, Cents(500));
    assert!(usage.spent_cents <= usage.budget_cents);
    assert_eq!(usage.reserved_cents, Cents(0));
    assert_eq!(usage.steps_used, 100);
    let report = verify(&rig).await;
    assert!(report.ok, "{report:?}");
    // The mission's start and its token, then the 200 calls.
    assert_eq!(report.records, 202);
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
    assert_eq!(usage.spent_cents, Cents(90));
    let (code, _, _) = refusal(
        rig.gateway
            .invoke(call(&token, "growth.audience_segment", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::MissionNotActive);

    let queue = waiting_queue(&rig).await;
    let cap = queue
        .iter()
        .find(|a| a.kind == ApprovalKind::BudgetCap && a.record.mission_id == mission)
        .expect("budget request");
    assert_eq!(cap.budget_cents, Some(Cents(100)));
    let max = rig.catalog.policy().hard_caps.budget_cents;
    assert_eq!(cap.max_budget_cents, Some(max));
    let decide = |budget: Option<Cents>, decision| DecideApproval {
        approval_id: cap.record.id.clone(),
        decision,
        budget_cents: budget,
    };
    // Beyond the global policy, or not a raise: refused, nothing changes.
    for bad in [max + Cents(1), Cents(100), Cents(50)] {
        let refused = rig
            .gateway
            .decide::<GatewayError>(
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
        .decide::<GatewayError>(
            &reviewer("bob"),
            &decide(Some(Cents(200)), ApprovalDecision::Approve),
        )
        .await
        .expect("raise");
    let usage = rig.gateway.usage(&mission).await.expect("usage");
    assert_eq!(
        (usage.status, usage.budget_cents),
        (MissionStatus::Running, Cents(200))
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
        .approvals(true, None, 200)
        .await
        .expect("queue")
        .items
        .into_iter()
        .find(|a| a.record.mission_id == second)
        .expect("second request");
    rig.gateway
        .decide::<GatewayError>(
            &reviewer("bob"),
            &DecideApproval {
                approval_id: cap2.record.id,
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
