//! Secrets stay secret: an external agent's one-time exchange code opens one token, once and
//! only until it expires, and `Debug` never prints a token or a code.

use super::*;

crate::on_both_backends!(an_exchange_code_opens_one_token_once_and_only_until_it_expires);

async fn an_exchange_code_opens_one_token_once_and_only_until_it_expires(db: TestDb) {
    let rig = rig(&db).await;
    let (mission, token) = running(&rig, Spec::auto("finance")).await;
    let alice = operator("alice");
    let code = rig
        .gateway
        .issue_token_code::<GatewayError>(&alice, &mission, 1)
        .await
        .expect("code");
    assert!(!format!("{code:?}").contains(&code.code));
    let exchanged = rig
        .gateway
        .exchange_token_code::<GatewayError>(&code.code)
        .await
        .expect("exchange");
    assert!(!format!("{exchanged:?}").contains(&exchanged.token));
    assert_eq!(
        (exchanged.mission_id.as_str(), exchanged.dept),
        (mission.as_str(), 1)
    );
    executed(
        rig.gateway
            .invoke(call(&exchanged.token, "finance.ledger_query", json!({})))
            .await,
    );
    // Used up: the same code again opens nothing, and is audited as refused.
    let again = rig
        .gateway
        .exchange_token_code::<GatewayError>(&code.code)
        .await
        .expect_err("used");
    assert_eq!(again.code(), mission_core::ErrorCode::Unauthenticated);

    // A code past its time opens nothing either.
    let late = rig
        .gateway
        .issue_token_code::<GatewayError>(&alice, &mission, 1)
        .await
        .expect("code");
    rig.clock.advance(Duration::seconds(601));
    let expired = rig
        .gateway
        .exchange_token_code::<GatewayError>(&late.code)
        .await
        .expect_err("expired");
    assert_eq!(expired.code(), mission_core::ErrorCode::Unauthenticated);
    let records = AuditLog::new(rig.core.repository().clone())
        .page(&AuditQuery {
            limit: 3,
            ..Default::default()
        })
        .await
        .expect("audit");
    let refused = records
        .entries
        .iter()
        .filter(|e| e.record.caller.starts_with("exchange code:"))
        .filter(|e| e.record.decision == AuditDecision::Denied)
        .count();
    assert_eq!(
        refused, 2,
        "the used and the expired exchange are on record"
    );
    let text = serde_json::to_string(&records.entries).expect("json");
    assert!(!text.contains(&late.code) && !text.contains(&exchanged.token));

    // A tool call's `Debug` (what a log line would show) never holds its token.
    let shown = format!("{:?}", call(&token, "finance.ledger_query", json!({})));
    assert!(!shown.contains(&token), "{shown}");
}
