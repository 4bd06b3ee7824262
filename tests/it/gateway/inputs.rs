//! Inputs a database would refuse: an id with a NUL (or any control character) is refused
//! before anything runs, with the same answer on both backends, audited, and never harms the
//! calls of another mission committed in the same batch.

use super::*;

crate::on_both_backends!(a_nul_in_a_call_is_refused_before_anything_runs);

async fn a_nul_in_a_call_is_refused_before_anything_runs(db: TestDb) {
    let rig = rig(&db).await;
    let (attacked, token) = running(&rig, Spec::auto("finance")).await;
    let (bystander, other) = running(&rig, Spec::auto("finance")).await;
    let client = reqwest::Client::new();
    let base = rig.app.api.clone();
    // Each call is its own task, so they reach the gateway together.
    let send = |tool: &str, token: &str, body: Value| {
        let request = client
            .post(format!("{base}/v1/tools/{tool}/invoke"))
            .bearer_auth(token)
            .json(&body)
            .send();
        tokio::spawn(async move {
            let response = request.await.expect("send");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        })
    };
    let long = "j".repeat(201);
    let malformed = [
        ("finance.ledger%00query", json!({"args": {}})),
        (
            "finance.ledger_query",
            json!({"args": {}, "job_id": "job\u{0}1"}),
        ),
        (
            "finance.ledger_query",
            json!({"args": {}, "job_id": "job\n1"}),
        ),
        ("finance.ledger_query", json!({"args": {}, "job_id": long})),
        (
            "finance.ledger_query",
            json!({"args": {}, "mission_id": "m\u{0}"}),
        ),
    ];
    // A NUL inside the arguments is data: it is stored escaped, and the call runs on both.
    let data = [
        json!({"args": {"q": "a\u{0}b"}}),
        json!({"args": {"k\u{0}": 1}}),
    ];
    let records_before = audit_count(&rig).await;

    // The attacks and a bystander's calls go in together, so they share write batches.
    let attacks: Vec<_> = malformed
        .iter()
        .map(|(tool, body)| send(tool, &token, body.clone()))
        .collect();
    let datas: Vec<_> = data
        .iter()
        .map(|body| send("finance.ledger_query", &token, body.clone()))
        .collect();
    let bystanders: Vec<_> = (0..20)
        .map(|_| send("finance.ledger_query", &other, json!({"args": {}})))
        .collect();
    let answers = |tasks: Vec<tokio::task::JoinHandle<(u16, Value)>>| async move {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.expect("call"));
        }
        out
    };
    let (attacks, datas, bystanders) = (
        answers(attacks).await,
        answers(datas).await,
        answers(bystanders).await,
    );

    for ((status, body), (tool, sent)) in attacks.iter().zip(&malformed) {
        let what = format!("{tool} {sent}: {body}");
        assert_eq!(
            (*status, &body["code"]),
            (400, &json!("malformed_call")),
            "{what}"
        );
        let entry = record(&rig, body["audit_seq"].as_i64().expect("audit seq")).await;
        assert_eq!(entry.record.decision, AuditDecision::Denied, "{what}");
        assert_eq!(
            entry.record.mission_id.as_deref(),
            Some(attacked.as_str()),
            "{what}"
        );
        assert!(
            !entry.record.job_id.unwrap_or_default().contains('\u{0}')
                && !entry.record.tool_id.unwrap_or_default().contains('\u{0}'),
            "{what}: the record kept a NUL"
        );
    }
    let mut spent = 0;
    for ((status, body), sent) in datas.iter().zip(&data) {
        assert_eq!(
            (*status, &body["status"]),
            (200, &json!("executed")),
            "{sent}: {body}"
        );
        spent += body["cost_cents"].as_i64().expect("cost");
    }
    let mut bystander_spent = 0;
    for (status, body) in &bystanders {
        assert_eq!(*status, 200, "a bystander's call failed: {body}");
        bystander_spent += body["cost_cents"].as_i64().expect("cost");
    }

    // Only what ran counted: no step, cent or reservation for the refused calls, and every
    // call has its record.
    let usage = rig.gateway.usage(&attacked).await.expect("usage");
    assert_eq!(usage.steps_used, 2);
    assert_eq!(usage.spent_cents, Cents(spent));
    assert_eq!(usage.reserved_cents, Cents::ZERO);
    let usage = rig.gateway.usage(&bystander).await.expect("usage");
    assert_eq!(usage.steps_used, 20);
    assert_eq!(usage.spent_cents, Cents(bystander_spent));
    assert_eq!(usage.reserved_cents, Cents::ZERO);
    assert_eq!(
        audit_count(&rig).await,
        records_before + malformed.len() + data.len() + 20
    );
    assert!(verify(&rig).await.ok);
}

// One write batch with one op the database refuses: the others still commit. A current-thread
// runtime makes the batch deterministic: every op is queued before the writer runs.
#[tokio::test(flavor = "current_thread")]
async fn one_refused_write_does_not_fail_its_batch_on_sqlite() {
    one_refused_write_does_not_fail_its_batch(TestDb::new(crate::helpers::Kind::Sqlite).await)
        .await;
}

#[tokio::test(flavor = "current_thread")]
async fn one_refused_write_does_not_fail_its_batch_on_postgres() {
    one_refused_write_does_not_fail_its_batch(TestDb::new(crate::helpers::Kind::Postgres).await)
        .await;
}

async fn one_refused_write_does_not_fail_its_batch(db: TestDb) {
    use mission_core::gateway::ledger::{Ledger, LedgerOp, LedgerResult};
    let rig = rig(&db).await;
    let before = audit_count(&rig).await;
    let repo: Arc<dyn mission_core::gateway::store::GatewayStore> = rig.core.repository().clone();
    let ledger = Ledger::start(repo, test_sealer());
    let draft = |reason: &str| mission_core::audit::AuditDraft {
        ts: "2026-12-01T00:00:00.000000Z".to_owned(),
        caller: "batch test".to_owned(),
        reason: reason.to_owned(),
        ..Default::default()
    };
    let apply = |reason: &str| ledger.apply(LedgerOp::Audit(draft(reason)));
    // Postgres refuses a NUL in text; SQLite keeps it. Either way the rest commit.
    let (a, bad, b, c) = tokio::join!(
        apply("first"),
        apply("bad\u{0}"),
        apply("second"),
        apply("third")
    );
    for good in [a, b, c] {
        assert!(matches!(good, Ok(LedgerResult::Audited(_))), "{good:?}");
    }
    let refused = match db.kind {
        crate::helpers::Kind::Postgres => {
            assert!(bad.is_err(), "Postgres took a NUL: {bad:?}");
            1
        }
        crate::helpers::Kind::Sqlite => {
            assert!(bad.is_ok(), "{bad:?}");
            0
        }
    };
    assert_eq!(audit_count(&rig).await, before + 4 - refused);
    assert!(verify(&rig).await.ok);
}
