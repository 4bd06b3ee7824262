//! Checking the chain: every record in order, each hash recomputed, each signature checked
//! against its public key, and the signed head against the last record.

use std::collections::HashMap;
use std::io::Write;

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::anchor::Trusted;
use super::{head_message, AuditHead, BadRecord, SignedEntry, VerifyReport, GENESIS_HASH};

/// The format line of an export.
pub const EXPORT_FORMAT: &str = "mission-control-audit/1";

/// A public key as exported and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ExportedKey {
    /// Key id (first 16 bytes of the SHA-256 of the key, hex).
    pub key_id: String,
    /// ed25519 public key, hex.
    pub public_key: String,
}

/// The first line of an export: what is needed to check the rest anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// When the copy was written.
    pub exported_at: String,
    /// The public keys the exporting machine trusts (its pinned anchor).
    pub keys: Vec<ExportedKey>,
    /// Where those keys came from and their fingerprint, to compare with a copy of the anchor.
    #[serde(default)]
    pub anchor: String,
    /// The signed checkpoint: the head (record count and last hash) at export time, signed. A
    /// later copy must hold this exact record at this seq: the log was only appended to.
    pub head: AuditHead,
}

/// Walks records in seq order and stops at the first that does not check out.
#[derive(Debug)]
pub struct Verifier {
    keys: HashMap<String, VerifyingKey>,
    fingerprints: Vec<String>,
    anchor: String,
    /// An earlier copy's signed checkpoint this log must extend.
    since: Option<AuditHead>,
    prev_hash: String,
    next_seq: i64,
    checked: i64,
    first_bad: Option<BadRecord>,
}

fn parse_key(key: &ExportedKey) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(&key.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("public key {} is not 32 hex-encoded bytes", key.key_id))?;
    let public = VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("public key {} is not an ed25519 key: {e}", key.key_id))?;
    if super::keys::key_id(&public) != key.key_id {
        return Err(format!(
            "public key {} does not match its id; the key list was altered",
            key.key_id
        ));
    }
    Ok(public)
}

fn signature_ok(key: &VerifyingKey, message: &[u8], signature: &str) -> bool {
    hex::decode(signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .is_some_and(|sig| key.verify(message, &sig).is_ok())
}

impl Verifier {
    /// A verifier trusting exactly these public keys.
    pub fn new(trusted: &Trusted) -> Result<Self, String> {
        let mut map = HashMap::new();
        for key in &trusted.keys {
            map.insert(key.key_id.clone(), parse_key(key)?);
        }
        Ok(Self {
            fingerprints: trusted.keys.iter().map(|k| k.key_id.clone()).collect(),
            anchor: trusted.describe(),
            since: None,
            keys: map,
            prev_hash: GENESIS_HASH.to_owned(),
            next_seq: 1,
            checked: 0,
            first_bad: None,
        })
    }

    /// Also checks that the log extends an earlier copy: its signed checkpoint must verify
    /// with the trusted keys, and the record at its seq must have its hash.
    pub fn extending(mut self, checkpoint: AuditHead) -> Self {
        self.since = Some(checkpoint);
        self
    }

    fn bad(&mut self, seq: i64, problem: String) -> bool {
        self.first_bad = Some(BadRecord { seq, problem });
        false
    }

    /// Checks the next record; false once a record is bad (later ones are not checked).
    pub fn check(&mut self, record: &SignedEntry) -> bool {
        if self.first_bad.is_some() {
            return false;
        }
        let e = &record.entry;
        if e.seq != self.next_seq {
            let problem = if e.seq > self.next_seq {
                format!(
                    "record #{} is missing: the log goes from #{} to #{}",
                    self.next_seq,
                    self.next_seq - 1,
                    e.seq
                )
            } else {
                format!(
                    "record #{} appears out of order after #{}",
                    e.seq,
                    self.next_seq - 1
                )
            };
            return self.bad(self.next_seq, problem);
        }
        if e.prev_hash != self.prev_hash {
            return self.bad(
                e.seq,
                format!(
                    "record #{} does not follow record #{}: its previous-hash link differs, so \
                     a record was removed, inserted or moved here",
                    e.seq,
                    e.seq - 1
                ),
            );
        }
        if e.compute_hash() != e.hash {
            return self.bad(
                e.seq,
                format!(
                    "record #{} was edited: its content no longer matches its hash",
                    e.seq
                ),
            );
        }
        let Some(key) = self.keys.get(&e.key_id) else {
            return self.bad(
                e.seq,
                format!(
                    "record #{} is signed by key {}, which the trust anchor does not pin",
                    e.seq, e.key_id
                ),
            );
        };
        if !signature_ok(key, e.hash.as_bytes(), &record.signature) {
            return self.bad(
                e.seq,
                format!("record #{} has a signature that does not verify", e.seq),
            );
        }
        if let Some(since) = self.since.as_ref().filter(|c| c.seq == e.seq) {
            if since.hash != e.hash {
                let problem = format!(
                    "record #{} differs from the earlier copy's signed checkpoint: the log \
                     was rewritten, not only appended to",
                    e.seq
                );
                return self.bad(e.seq, problem);
            }
        }
        self.prev_hash.clone_from(&e.hash);
        self.next_seq += 1;
        self.checked += 1;
        true
    }

    /// Whether a head (or an earlier copy's checkpoint) is signed by a trusted key.
    fn head_signed(&self, head: &AuditHead) -> bool {
        head.key_id
            .as_ref()
            .and_then(|id| self.keys.get(id))
            .is_some_and(|key| {
                signature_ok(
                    key,
                    &head_message(head.seq, &head.hash),
                    head.signature.as_deref().unwrap_or_default(),
                )
            })
    }

    /// Checks the signed head against the last record and reports.
    pub fn finish(mut self, head: &AuditHead) -> VerifyReport {
        if let Some(since) = self.since.clone().filter(|_| self.first_bad.is_none()) {
            if !self.head_signed(&since) {
                self.first_bad = Some(BadRecord {
                    seq: since.seq.max(1),
                    problem: "the earlier copy's checkpoint is not signed by a pinned key"
                        .to_owned(),
                });
            } else if self.next_seq - 1 < since.seq {
                self.first_bad = Some(BadRecord {
                    seq: self.next_seq,
                    problem: format!(
                        "the log ends at record #{}, before the earlier copy's checkpoint at \
                         #{}: records were removed",
                        self.next_seq - 1,
                        since.seq
                    ),
                });
            }
        }
        if self.first_bad.is_none() {
            let last = self.next_seq - 1;
            if head.seq > last {
                self.first_bad = Some(BadRecord {
                    seq: last + 1,
                    problem: format!(
                        "records #{} to #{} are missing: the signed head says the log has {} \
                         records",
                        last + 1,
                        head.seq,
                        head.seq
                    ),
                });
            } else if head.seq < last || head.hash != self.prev_hash {
                self.first_bad = Some(BadRecord {
                    seq: head.seq.max(1),
                    problem: format!(
                        "the signed head names record #{} with another hash; records were \
                         changed or added without the signing key",
                        head.seq
                    ),
                });
            } else if head.seq > 0 && !self.head_signed(head) {
                self.first_bad = Some(BadRecord {
                    seq: head.seq,
                    problem: "the head of the log is not signed by a pinned key".to_owned(),
                });
            }
        }
        VerifyReport {
            records: self.checked,
            ok: self.first_bad.is_none(),
            extends: self
                .since
                .map(|c| c.seq)
                .filter(|_| self.first_bad.is_none()),
            first_bad: self.first_bad,
            keys: self.fingerprints,
            anchor: self.anchor,
        }
    }
}

/// Checks records (in seq order) and the head with the given keys.
pub fn verify<'a>(
    trusted: &Trusted,
    records: impl IntoIterator<Item = &'a SignedEntry>,
    head: &AuditHead,
) -> Result<VerifyReport, String> {
    let mut verifier = Verifier::new(trusted)?;
    for record in records {
        if !verifier.check(record) {
            break;
        }
    }
    Ok(verifier.finish(head))
}

/// Writes an export: the header line, then one JSON record per line.
pub fn export<'a>(
    out: &mut impl Write,
    header: &ExportHeader,
    records: impl IntoIterator<Item = &'a SignedEntry>,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, header)?;
    out.write_all(b"\n")?;
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
