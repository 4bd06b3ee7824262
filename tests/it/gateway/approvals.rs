//! The approval modes: what Strict, Threshold and Auto hold, and an approval covering one
//! exact call until it expires.

use super::*;
use mission_core::gateway::ApprovalItem;
use mission_core::units::Cents;

crate::on_both_backends!(
    strict_threshold_and_auto_hold_exactly_the_calls_they_state,
    an_approval_covers_one_exact_call_and_expires,
    the_waiting_count_is_exact_however_many_wait,
);

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
        record(&rig, w.audit_seq).await.record.decision,
        AuditDecision::Waiting
    );

    // Threshold 100: at or above the threshold waits, and High risk waits at any cost.
    let (threshold_mission, threshold) = running(&rig, Spec::threshold("wealth", 100)).await;
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
        (2, Cents(20 + 98), Cents::ZERO)
    );

    // Auto: nothing waits, High-risk side effects included.
    let (_, auto) = running(&rig, Spec::auto("wealth")).await;
    let ran = executed(
        rig.gateway
            .invoke(call(&auto, "wealth.rebalance_execute", json!({"items": 2})))
            .await,
    );
    assert_eq!(ran.cost_cents, Cents(80));

    let queue = waiting_queue(&rig).await;
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
        .decide::<GatewayError>(
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
    assert_eq!(approved.record.decided_by.as_deref(), Some("bob"));

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
    assert!(
        entry.record.reason.contains("approved by bob"),
        "{}",
        entry.record.reason
    );
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
        .any(|e| e.record.decision == AuditDecision::Approved && e.record.caller == "bob"));

    // An approval that expires before use is refused.
    rig.gateway
        .decide::<GatewayError>(
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
        .decide::<GatewayError>(
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
        .decide::<GatewayError>(
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

async fn the_waiting_count_is_exact_however_many_wait(db: TestDb) {
    let rig = rig(&db).await;
    // Threshold 0: every call waits, and each different call opens its own request.
    let (_, token) = running(&rig, Spec::threshold("wealth", 0)).await;
    const WAITING: u32 = 501;
    for n in 0..WAITING {
        waiting(
            rig.gateway
                .invoke(call(&token, "wealth.portfolio_snapshot", json!({ "n": n })))
                .await,
        );
    }
    assert_eq!(rig.core.pending_approvals().await.expect("count"), WAITING);
    // The queue in pages: every request once, newest first, and the exact count on each page.
    let waiting_pages = approval_pages(&rig.core, true).await;
    assert_eq!(
        waiting_pages
            .iter()
            .map(|(items, _)| items.len())
            .collect::<Vec<_>>(),
        [200, 200, 101]
    );
    assert!(waiting_pages.iter().all(|(_, pending)| *pending == WAITING));
    let ids: Vec<&str> = waiting_pages
        .iter()
        .flat_map(|(items, _)| items.iter().map(|a| a.record.id.as_str()))
        .collect();
    let distinct: std::collections::HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "no request on two pages");
    let times: Vec<&str> = waiting_pages
        .iter()
        .flat_map(|(items, _)| items.iter().map(|a| a.record.requested_at.as_str()))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let refused = rig
        .core
        .approvals(true, Some("yesterday|0"), 200)
        .await
        .expect_err("a cursor the app never gave out");
    assert_eq!(refused.code, mission_core::ErrorCode::InvalidRequest);
    // Past their expiry they no longer wait, though their rows still say Pending.
    rig.clock.advance(Duration::seconds(901));
    assert_eq!(rig.core.pending_approvals().await.expect("count"), 0);
    assert!(approval_pages(&rig.core, true)
        .await
        .iter()
        .all(|(items, pending)| items.is_empty() && *pending == 0));
    let every = approval_pages(&rig.core, false).await;
    assert_eq!(
        every.iter().map(|(items, _)| items.len()).sum::<usize>(),
        501
    );
    assert!(every
        .iter()
        .flat_map(|(items, _)| items)
        .all(|a| a.status == ApprovalStatus::Expired));
}

/// Every page of the approvals queue from the first: each page's requests and its count of
/// waiting ones.
async fn approval_pages(core: &Core, pending_only: bool) -> Vec<(Vec<ApprovalItem>, u32)> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = core
            .approvals(pending_only, after.as_deref(), 200)
            .await
            .expect("page");
        assert!(page.items.len() <= 200);
        pages.push((page.items, page.pending));
        match page.next {
            Some(next) => after = Some(next),
            None => return pages,
        }
    }
}
