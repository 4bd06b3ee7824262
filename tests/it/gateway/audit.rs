//! The audit chain: any edit, deletion or reordering of a record is detected, in the database
//! and in an export.

use mission_core::audit::Trusted;

use super::*;

crate::on_both_backends!(editing_deleting_or_reordering_any_audit_record_is_detected,);

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
        db.sql(&["DROP TRIGGER audit_log_append_only ON audit_log"])
            .await;
    } else {
        db.sql(&[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ])
        .await;
    }
    db.sql(&["CREATE TABLE audit_copy AS SELECT * FROM audit_log"])
        .await;
    let bad_seq = |report: mission_core::audit::VerifyReport| {
        assert!(!report.ok);
        report.first_bad.expect("first bad").seq
    };

    for k in 1..=n {
        // Edit: one field of record k.
        db.sql(&[&format!(
            "UPDATE audit_log SET cost_cents = cost_cents + 1 WHERE seq = {k}"
        )])
        .await;
        assert_eq!(bad_seq(verify(&rig).await), k, "edit of #{k}");
        db.sql(&[&format!(
            "UPDATE audit_log SET cost_cents = cost_cents - 1 WHERE seq = {k}"
        )])
        .await;
        // Delete record k.
        db.sql(&[&format!("DELETE FROM audit_log WHERE seq = {k}")])
            .await;
        assert_eq!(bad_seq(verify(&rig).await), k, "deletion of #{k}");
        db.sql(&[&format!(
            "INSERT INTO audit_log SELECT * FROM audit_copy WHERE seq = {k}"
        )])
        .await;
        // Swap record k with the next one.
        if k < n {
            db.sql(&[
                &format!("UPDATE audit_log SET seq = -1 WHERE seq = {k}"),
                &format!("UPDATE audit_log SET seq = {k} WHERE seq = {}", k + 1),
                &format!("UPDATE audit_log SET seq = {} WHERE seq = -1", k + 1),
            ])
            .await;
            assert_eq!(bad_seq(verify(&rig).await), k, "swap of #{k}");
            db.sql(&[
                &format!("UPDATE audit_log SET seq = -1 WHERE seq = {k}"),
                &format!("UPDATE audit_log SET seq = {k} WHERE seq = {}", k + 1),
                &format!("UPDATE audit_log SET seq = {} WHERE seq = -1", k + 1),
            ])
            .await;
        }
        assert!(verify(&rig).await.ok, "restored after #{k}");
    }

    // An export verifies elsewhere with the public key, and a changed line does not.
    let key = mission_core::audit::public_key(&test_sealer().public_key_hex()).expect("key");
    let pinned = |key: &mission_core::audit::ExportedKey| Trusted::new(vec![key.clone()], "test");
    let mut out = Vec::new();
    AuditLog::new(rig.core.repository().clone())
        .export(&mut out, "2026-11-25T10:00:00.000000Z", &pinned(&key))
        .await
        .expect("export");
    let report = mission_core::audit::verify_export(out.as_slice(), Some(&pinned(&key)), None)
        .expect("verify export");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, n);
    let text = String::from_utf8(out).expect("utf8");
    let tampered = text.replacen("\"cost_cents\":1", "\"cost_cents\":0", 1);
    assert_ne!(tampered, text);
    let report = mission_core::audit::verify_export(tampered.as_bytes(), Some(&pinned(&key)), None)
        .expect("verify");
    assert!(!report.ok);
    // Another key: nothing verifies.
    let stranger = Sealer::new(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
    let other = mission_core::audit::public_key(&stranger.public_key_hex()).expect("key");
    let report = mission_core::audit::verify_export(text.as_bytes(), Some(&pinned(&other)), None)
        .expect("verify");
    assert_eq!(report.first_bad.expect("bad").seq, 1);
}
