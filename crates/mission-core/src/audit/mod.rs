//! The audit log: append-only, hash-chained and signed. Every gateway decision and every human
//! decision on an approval becomes one record; `verify` names the first record that was
//! edited, deleted or moved.

pub mod anchor;
mod keys;
pub mod store;
mod verify;

pub use anchor::{fingerprint, AnchorError, TrustAnchor, Trusted, ANCHOR_ENV};
pub use keys::{select_keystore_from_env, KeyError, KeyVault, Sealer, KEYSTORE_ENV};
pub use verify::{export, verify, ExportHeader, ExportedKey, Verifier, EXPORT_FORMAT};

use crate::units::Cents;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strum::{EnumString, IntoStaticStr};

/// The hash the first record points back to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened to a call or a request.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString,
)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum AuditDecision {
    /// The tool ran.
    Allowed,
    /// The gateway refused the call; the reason says which check. A draft is a refusal until
    /// something decides otherwise, so a record never claims more than was decided.
    #[default]
    Denied,
    /// The call waits for a human in the approvals queue.
    Waiting,
    /// A human approved a waiting call or raised a budget.
    Approved,
    /// A human denied a waiting call or stopped a mission at its budget.
    Rejected,
    /// The tool was called and failed; nothing was charged.
    Failed,
    /// A call repeated with the same idempotency key got the first call's recorded outcome;
    /// the tool did not run again and nothing was charged.
    Replayed,
}

crate::store::stored_word!(AuditDecision, "audit decision");

/// The operations the log records, one per thing a person or agent can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum Operation {
    /// A tool call through the gateway.
    #[strum(serialize = "tool.invoke")]
    ToolInvoke,
    /// A reviewer's decision on a held tool call.
    #[strum(serialize = "approval.decide")]
    ApprovalDecide,
    /// A reviewer's decision on a mission paused at its budget: raise it, or stop the mission.
    #[strum(serialize = "budget.decide")]
    BudgetDecide,
    /// A configured perimeter saved as an active mission.
    #[strum(serialize = "mission.save")]
    MissionSave,
    /// A saved mission started.
    #[strum(serialize = "mission.start")]
    MissionStart,
    /// A mission stopped by a person.
    #[strum(serialize = "mission.stop")]
    MissionStop,
    /// A template saved and started as a mission in one step.
    #[strum(serialize = "mission.deploy")]
    MissionDeploy,
    /// A previewed import written to the library.
    #[strum(serialize = "import.confirm")]
    ImportConfirm,
    /// Manifests imported without a preview (the command line).
    #[strum(serialize = "import")]
    Import,
    /// A gateway token issued for one department of a mission.
    #[strum(serialize = "token.issue")]
    TokenIssue,
}

impl Operation {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a record says: who did what, and how it came out. Before it takes its place in the
/// chain it is a draft; sealed, it is the body of an [`AuditEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditDraft {
    /// When it happened (RFC 3339 UTC, microseconds).
    pub ts: String,
    /// The mission, when the caller could be tied to one.
    pub mission_id: Option<String>,
    /// The job the call belongs to, when the caller named one.
    pub job_id: Option<String>,
    /// The caller's department.
    pub dept: Option<i64>,
    /// Who acted: an agent's token reference, a reviewer's or an operator's name.
    pub caller: String,
    /// The operation, e.g. `tool.invoke`, `mission.save`, `approval.decide` (absent on records
    /// written before operations were named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The tool called.
    pub tool_id: Option<String>,
    /// SHA-256 of the canonical JSON arguments.
    pub args_hash: Option<String>,
    /// Decision.
    #[sqlx(try_from = "String")]
    pub decision: AuditDecision,
    /// Why, in words.
    pub reason: String,
    /// The sector that authorized the call, or that would have had to.
    pub sector: Option<String>,
    /// The connection grant that authorized a cross-sector call.
    #[sqlx(rename = "grant_text")]
    pub grant: Option<String>,
    /// Ids of the policies that decided.
    #[sqlx(json)]
    pub policy_ids: Vec<String>,
    /// Cents charged.
    pub cost_cents: Cents,
    /// Whether the result came from a simulated executor.
    pub simulated: bool,
}

impl AuditDraft {
    /// The same record with a decision and reason filled in.
    pub fn decided(mut self, decision: AuditDecision, reason: impl Into<String>) -> Self {
        self.decision = decision;
        self.reason = reason.into();
        self
    }
}

/// One record of the log, as stored and shown: its place in the chain and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// What it says.
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub record: AuditDraft,
    /// Hash of the previous record.
    pub prev_hash: String,
    /// SHA-256 over this record's canonical form.
    pub hash: String,
    /// Which signing key signed it.
    pub key_id: String,
}

/// A stored record with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct SignedEntry {
    /// The record.
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub entry: AuditEntry,
    /// ed25519 signature over the hash, hex.
    pub signature: String,
}

impl AuditEntry {
    /// SHA-256 (hex) of the canonical (RFC 8785) JSON of every field but the hash itself. The
    /// record's own serialisation is what is hashed, so a field added to it is covered at once;
    /// `action` is left out when absent, so records written before operations were named keep
    /// their hash.
    pub fn compute_hash(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            fields.remove("hash");
        }
        // Serialising plain strings, integers and booleans cannot fail.
        let bytes = serde_json_canonicalizer::to_vec(&value).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }
}

/// What the head signature covers: the chain's length and last hash.
pub fn head_message(seq: i64, hash: &str) -> Vec<u8> {
    format!("mission-control-audit-head:{seq}:{hash}").into_bytes()
}

/// The chain's head as stored: last seq and hash, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditHead {
    /// Seq of the last record (0 when empty).
    pub seq: i64,
    /// Hash of the last record.
    pub hash: String,
    /// Key that signed the head.
    pub key_id: Option<String>,
    /// Signature over [`head_message`].
    pub signature: Option<String>,
}

/// Filters for reading the log, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditQuery {
    /// Only this mission's records.
    pub mission_id: Option<String>,
    /// Only records naming this sector.
    pub sector: Option<String>,
    /// Only records older than this seq (paging).
    pub before_seq: Option<i64>,
    /// Most records to return.
    pub limit: u32,
}

/// A page of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct AuditPage {
    /// Records, newest first.
    pub entries: Vec<AuditEntry>,
    /// Whether older records match too.
    pub has_more: bool,
}

/// The first record that does not check out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct BadRecord {
    /// Its seq (for a missing tail, the seq the head names).
    pub seq: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// The outcome of checking the whole log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct VerifyReport {
    /// Records checked.
    pub records: i64,
    /// Whether the chain, every signature and the head check out.
    pub ok: bool,
    /// The first problem, if any.
    pub first_bad: Option<BadRecord>,
    /// Fingerprints of the public keys the records were checked against.
    pub keys: Vec<String>,
    /// The trust anchor those keys came from, with the set's fingerprint.
    pub anchor: String,
    /// When checked against an earlier copy's signed checkpoint and the log extends it: the
    /// checkpoint's record count.
    pub extends: Option<i64>,
}

/// Reading the log: pages for people, and the whole chain for verify and export. Needs no
/// signing key, so it works on any machine that can read the database.
#[derive(Debug, Clone)]
pub struct AuditLog {
    repo: std::sync::Arc<dyn store::AuditStore>,
}

/// Records read per round trip while walking the whole chain.
const WALK_CHUNK: u32 = 5000;

/// The log could not be read or checked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::store::DbError),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An export or a key is malformed.
    #[error("{0}")]
    Format(String),
}

impl AuditLog {
    /// The log in a repository.
    pub fn new(repo: std::sync::Arc<dyn store::AuditStore>) -> Self {
        Self { repo }
    }

    /// A page, newest first.
    pub async fn page(&self, query: &AuditQuery) -> Result<AuditPage, AuditError> {
        Ok(self.repo.audit_page(query).await?)
    }

    async fn walk(
        &self,
        mut each: impl FnMut(&SignedEntry) -> Result<bool, AuditError>,
    ) -> Result<(), AuditError> {
        let mut after = 0;
        loop {
            let chunk = self.repo.audit_range(after, WALK_CHUNK).await?;
            let Some(last) = chunk.last() else {
                return Ok(());
            };
            after = last.entry.seq;
            for record in &chunk {
                if !each(record)? {
                    return Ok(());
                }
            }
        }
    }

    /// Checks the whole chain. With `pinned` keys, only those are trusted; otherwise the keys
    /// recorded in the database are (and are listed in the report to be compared).
    pub async fn verify(&self, trusted: Option<&Trusted>) -> Result<VerifyReport, AuditError> {
        // Read the head first: records appended while walking are then simply beyond it.
        let head = self.repo.audit_head().await?;
        let trusted = match trusted {
            Some(trusted) => trusted.clone(),
            None => Trusted::new(
                self.repo.audit_keys().await?,
                "the keys recorded in the database itself (no independent anchor)",
            ),
        };
        let mut verifier = Verifier::new(&trusted).map_err(AuditError::Format)?;
        self.walk(|record| Ok(record.entry.seq <= head.seq && verifier.check(record)))
            .await?;
        Ok(verifier.finish(&head))
    }

    /// Writes a copy that `verify_export` can check anywhere with the public keys; returns the
    /// number of records written.
    pub async fn export(
        &self,
        out: &mut impl std::io::Write,
        exported_at: &str,
        trusted: &Trusted,
    ) -> Result<i64, AuditError> {
        let head = self.repo.audit_head().await?;
        let header = ExportHeader {
            format: verify::EXPORT_FORMAT.to_owned(),
            exported_at: exported_at.to_owned(),
            keys: trusted.keys.clone(),
            anchor: trusted.describe(),
            head: head.clone(),
        };
        export(out, &header, std::iter::empty())?;
        let mut written = 0;
        self.walk(|record| {
            if record.entry.seq > head.seq {
                return Ok(false);
            }
            export_line(out, record)?;
            written += 1;
            Ok(true)
        })
        .await?;
        Ok(written)
    }
}

fn export_line(out: &mut impl std::io::Write, record: &SignedEntry) -> Result<(), AuditError> {
    serde_json::to_writer(&mut *out, record).map_err(|e| AuditError::Format(e.to_string()))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Reads an export's header line.
pub fn export_header(input: impl std::io::BufRead) -> Result<ExportHeader, AuditError> {
    let first = input
        .lines()
        .next()
        .ok_or_else(|| AuditError::Format("the export is empty".to_owned()))??;
    let header: ExportHeader = serde_json::from_str(&first)
        .map_err(|e| AuditError::Format(format!("the export's first line is not a header: {e}")))?;
    if header.format != verify::EXPORT_FORMAT {
        return Err(AuditError::Format(format!(
            "unknown export format {}; expected {}",
            header.format,
            verify::EXPORT_FORMAT
        )));
    }
    Ok(header)
}

/// Checks an export with the `trusted` keys (its own header's when none are given: then the
/// report says so, and only the fingerprint ties it to a key you trust). With `since`, an
/// earlier copy's signed checkpoint, it also checks that this copy only appended to it.
pub fn verify_export(
    mut input: impl std::io::BufRead,
    trusted: Option<&Trusted>,
    since: Option<AuditHead>,
) -> Result<VerifyReport, AuditError> {
    let mut first = String::new();
    input.read_line(&mut first)?;
    let header = export_header(first.as_bytes())?;
    let trusted = trusted.cloned().unwrap_or_else(|| {
        Trusted::new(
            header.keys.clone(),
            "the export's own header (compare its fingerprint with the one you trust)",
        )
    });
    let mut verifier = Verifier::new(&trusted).map_err(AuditError::Format)?;
    if let Some(checkpoint) = since {
        verifier = verifier.extending(checkpoint);
    }
    let lines = input.lines();
    for (n, line) in lines.enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record: SignedEntry = serde_json::from_str(&line).map_err(|e| {
            AuditError::Format(format!("line {} of the export is not a record: {e}", n + 2))
        })?;
        if !verifier.check(&record) {
            break;
        }
    }
    Ok(verifier.finish(&header.head))
}

/// A public key given as hex, with its id computed.
pub fn public_key(hex_key: &str) -> Result<ExportedKey, AuditError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AuditError::Format("a public key is 64 hex characters".to_owned()))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|e| AuditError::Format(format!("not an ed25519 public key: {e}")))?;
    Ok(ExportedKey {
        key_id: keys::key_id(&key),
        public_key: hex::encode(bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: Option<&str>) -> AuditEntry {
        AuditEntry {
            seq: 7,
            record: AuditDraft {
                ts: "2026-12-01T10:00:00.000000Z".into(),
                mission_id: Some("m-1".into()),
                job_id: None,
                dept: Some(2),
                caller: "agent:abc".into(),
                action: action.map(Into::into),
                tool_id: Some("finance.ledger_query".into()),
                args_hash: Some("ab".repeat(32)),
                decision: AuditDecision::Allowed,
                reason: "step 1: authorized by finance".into(),
                sector: Some("finance".into()),
                grant: None,
                policy_ids: vec!["sector-isolation".into()],
                cost_cents: Cents(25),
                simulated: true,
            },
            prev_hash: GENESIS_HASH.into(),
            hash: "not covered".into(),
            key_id: "k1".into(),
        }
    }

    /// Stored logs must keep verifying: these hashes were computed independently (sorted-key
    /// compact JSON, SHA-256) from the record format as first shipped.
    #[test]
    fn the_hash_of_a_record_is_stable_across_releases() {
        assert_eq!(
            entry(Some("tool.invoke")).compute_hash(),
            "6b9c963e2d321e3cf2bda224d339a5ce8765cf707ea4b7ec70797e3d766a19d7"
        );
        assert_eq!(
            entry(None).compute_hash(),
            "3e3f746bacc2b8fef00b746665d718a5f6b2a8e14a2fe2e3a4779c89206c004d"
        );
    }
}
