//! The audit log's trust anchor: `audit verify` trusts the keys pinned outside the database,
//! so a log rewritten and re-signed by whoever controls the database fails; and an export's
//! signed checkpoint shows whether a later copy only appended to an earlier one.

use ed25519_dalek::SigningKey;
use mission_core::audit::{AuditHead, ExportHeader, SignedEntry, TrustAnchor};

use super::*;

crate::on_both_backends!(
    a_log_re_signed_through_the_database_fails_against_the_pinned_keys,
    a_later_export_is_checked_against_an_earlier_ones_signed_checkpoint,
);

/// Some audited calls.
async fn calls(rig: &Rig, token: &str, n: usize) {
    for i in 0..n {
        executed(
            rig.gateway
                .invoke(call(token, "security.log_search", json!({ "i": i })))
                .await,
        );
    }
}

/// Re-seals `records` from the first with `sealer`, editing the reason of record `edit`; returns
/// the new records and their signed head, as a forger with that key would write them.
fn reseal(records: &[SignedEntry], sealer: &Sealer, edit: i64) -> (Vec<SignedEntry>, AuditHead) {
    let mut prev = mission_core::audit::GENESIS_HASH.to_owned();
    let mut out = Vec::new();
    for r in records {
        let mut draft = r.entry.record.clone();
        if r.entry.seq == edit {
            draft.reason = "nothing happened here".to_owned();
        }
        let sealed = sealer.seal(draft, r.entry.seq, &prev);
        prev.clone_from(&sealed.entry.hash);
        out.push(sealed);
    }
    let seq = out.last().map_or(0, |r| r.entry.seq);
    let head = AuditHead {
        seq,
        hash: prev.clone(),
        key_id: Some(sealer.key_id().to_owned()),
        signature: Some(sealer.sign_head(seq, &prev)),
    };
    (out, head)
}

/// An export's header and records.
fn read_export(path: &std::path::Path) -> (ExportHeader, Vec<SignedEntry>) {
    let text = std::fs::read_to_string(path).expect("export");
    let mut lines = text.lines();
    let header = serde_json::from_str(lines.next().expect("header")).expect("header");
    let records = lines
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    (header, records)
}

fn write_export(path: &std::path::Path, header: &ExportHeader, records: &[SignedEntry]) {
    let mut out = Vec::new();
    mission_core::audit::export(&mut out, header, records).expect("write");
    std::fs::write(path, out).expect("write export");
}

async fn a_log_re_signed_through_the_database_fails_against_the_pinned_keys(db: TestDb) {
    let rig = rig(&db).await;
    let (_, token) = running(&rig, Spec::auto("security")).await;
    calls(&rig, &token, 3).await;
    // The signing key was pinned outside the database when it was first used.
    let anchor = TrustAnchor::at(&rig.app.anchor);
    let pinned = anchor.keys().expect("anchor");
    assert_eq!(pinned.len(), 1);
    assert_eq!(pinned[0].key.key_id, test_sealer().key_id());
    let report = rig.core.verify_audit(&[]).await.expect("verify");
    assert!(report.ok, "{report:?}");
    assert!(
        report
            .anchor
            .contains(&rig.app.anchor.display().to_string()),
        "{}",
        report.anchor
    );

    // Someone with the database edits record 1 and re-signs the whole chain with a key of
    // their own, which they add to the key list the database keeps.
    let dir = tempfile::tempdir().expect("dir");
    let copy = dir.path().join("log.jsonl");
    rig.core.export_audit(&copy).await.expect("export");
    let (_, records) = read_export(&copy);
    let forger = Sealer::new(SigningKey::from_bytes(&[9; 32]));
    let (forged, head) = reseal(&records, &forger, 1);
    let mut statements = match db.kind {
        crate::helpers::Kind::Postgres => {
            vec!["DROP TRIGGER audit_log_append_only ON audit_log".to_owned()]
        }
        crate::helpers::Kind::Sqlite => vec![
            "DROP TRIGGER audit_log_no_update".to_owned(),
            "DROP TRIGGER audit_log_no_delete".to_owned(),
        ],
    };
    for r in &forged {
        statements.push(format!(
            "UPDATE audit_log SET reason = '{}', prev_hash = '{}', hash = '{}', key_id = '{}', \
             signature = '{}' WHERE seq = {}",
            r.entry.record.reason.replace('\'', "''"),
            r.entry.prev_hash,
            r.entry.hash,
            r.entry.key_id,
            r.signature,
            r.entry.seq
        ));
    }
    statements.push(format!(
        "INSERT INTO audit_keys (key_id, public_key, created_at) VALUES ('{}', '{}', 'now')",
        forger.key_id(),
        forger.public_key_hex()
    ));
    statements.push(format!(
        "UPDATE audit_head SET hash = '{}', key_id = '{}', signature = '{}' WHERE id = 1",
        head.hash,
        forger.key_id(),
        head.signature.clone().expect("signed")
    ));
    db.sql(&statements.iter().map(String::as_str).collect::<Vec<_>>())
        .await;

    // Checked against the keys the database keeps, the forgery passes: that list is no anchor.
    let inside = AuditLog::new(rig.core.repository().clone())
        .verify(None)
        .await
        .expect("verify");
    assert!(inside.ok, "{inside:?}");
    assert!(
        inside.anchor.contains("database itself"),
        "{}",
        inside.anchor
    );
    // Against the pinned keys it fails at the first forged record, and says why.
    let report = rig.core.verify_audit(&[]).await.expect("verify");
    let bad = report.first_bad.expect("the forgery is caught");
    assert_eq!(bad.seq, 1);
    assert!(bad.problem.contains("does not pin"), "{}", bad.problem);
}

async fn a_later_export_is_checked_against_an_earlier_ones_signed_checkpoint(db: TestDb) {
    let rig = rig(&db).await;
    let (_, token) = running(&rig, Spec::auto("security")).await;
    calls(&rig, &token, 2).await;
    let dir = tempfile::tempdir().expect("dir");
    let (earlier, later) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let kept = rig.core.export_audit(&earlier).await.expect("export");
    calls(&rig, &token, 2).await;
    rig.core.export_audit(&later).await.expect("export");
    let anchor = TrustAnchor::at(&rig.app.anchor);
    let (header, records) = read_export(&later);
    // The header carries the pinned keys, their fingerprint and the signed checkpoint.
    assert_eq!(header.keys.len(), 1);
    assert!(header
        .anchor
        .contains(&mission_core::audit::fingerprint(&header.keys)));
    assert_eq!(header.head.seq, kept + 2);

    let check = |copy: &std::path::Path, since: &std::path::Path| {
        mission_core::app::verify_audit_file(copy, &[], Some(&anchor), Some(since)).expect("verify")
    };
    let report = check(&later, &earlier);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.extends, Some(kept));

    // The key holder rewrites record 2 and re-signs everything: the copy verifies on its own,
    // but not as a continuation of the earlier one.
    let rewritten = dir.path().join("c.jsonl");
    let (resealed, head) = reseal(&records, &test_sealer(), 2);
    write_export(
        &rewritten,
        &ExportHeader {
            head,
            ..header.clone()
        },
        &resealed,
    );
    let alone =
        mission_core::app::verify_audit_file(&rewritten, &[], Some(&anchor), None).expect("verify");
    assert!(alone.ok, "{alone:?}");
    let report = check(&rewritten, &earlier);
    let bad = report.first_bad.expect("caught");
    assert!(bad.problem.contains("rewritten"), "{}", bad.problem);
    assert_eq!(report.extends, None);

    // A copy that lost records since the checkpoint fails too.
    let report = check(&earlier, &later);
    let bad = report.first_bad.expect("caught");
    assert!(bad.problem.contains("removed"), "{}", bad.problem);
}
