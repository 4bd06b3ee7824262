//! Reading and checking the audit log. None of this needs the signing key, so it works on any
//! machine that can read the database (or an exported copy). Checks trust the keys pinned in
//! the trust anchor outside the database (or keys given), never the key list stored beside the
//! records: whoever can rewrite the database can rewrite that list too.

use std::path::Path;

use super::Core;
use crate::audit::{self, AnchorError, AuditPage, AuditQuery, ExportedKey, Trusted, VerifyReport};
use crate::error::{CoreError, ErrorCode};
use crate::gateway::timestamp;

/// The trust anchor could not be used.
pub(super) fn audit_unavailable(e: AnchorError) -> CoreError {
    CoreError::new(ErrorCode::AuditUnavailable, e.to_string())
}

/// Public keys given as hex, as a check trusts them; None when none are given.
fn given_keys(public_keys: &[String]) -> Result<Option<Trusted>, CoreError> {
    let keys = public_keys
        .iter()
        .map(|k| audit::public_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!keys.is_empty()).then(|| Trusted::new(keys, "the public keys given")))
}

fn file_error(path: &Path, what: &str, e: &std::io::Error) -> CoreError {
    CoreError::new(
        ErrorCode::InvalidRequest,
        format!("{what} {} failed: {e}", path.display()),
    )
}

impl Core {
    /// A page of the log, newest first.
    pub async fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, CoreError> {
        Ok(self.inner.audit.page(query).await?)
    }

    /// The keys a check trusts: those given (hex), else the anchor's. Never the database's.
    fn trusted(&self, public_keys: &[String]) -> Result<Trusted, CoreError> {
        if let Some(given) = given_keys(public_keys)? {
            return Ok(given);
        }
        match &self.inner.settings.trust_anchor {
            Some(anchor) => anchor.trusted().map_err(audit_unavailable),
            None => Err(CoreError::new(
                ErrorCode::AuditUnavailable,
                "no audit trust anchor is configured; give the public keys to trust \
                 (missionctl audit verify --public-key HEX)"
                    .to_owned(),
            )),
        }
    }

    /// Checks the whole log: chain, signatures and signed head, against the pinned keys (or
    /// `public_keys`, hex, when given). A record signed by a key the anchor does not pin fails
    /// the check; the report names the anchor used.
    pub async fn verify_audit(&self, public_keys: &[String]) -> Result<VerifyReport, CoreError> {
        let trusted = self.trusted(public_keys)?;
        Ok(self.inner.audit.verify(Some(&trusted)).await?)
    }

    /// Writes a copy of the log that [`verify_audit_file`] checks anywhere: the pinned keys
    /// and their fingerprint in its header, with the signed checkpoint (record count and head
    /// hash) a later copy is checked against; returns how many records it holds.
    pub async fn export_audit(&self, output: &Path) -> Result<i64, CoreError> {
        let trusted = self.trusted(&[])?;
        let file = std::fs::File::create(output).map_err(|e| file_error(output, "creating", &e))?;
        let mut out = std::io::BufWriter::new(file);
        let now = timestamp(self.inner.settings.clock.now());
        let written = self.inner.audit.export(&mut out, &now, &trusted).await?;
        std::io::Write::flush(&mut out).map_err(|e| file_error(output, "writing", &e))?;
        Ok(written)
    }

    /// The public half of this machine's signing key (the key is created, and pinned in the
    /// trust anchor, on first use).
    pub async fn audit_public_key(&self) -> Result<ExportedKey, CoreError> {
        let gateway = self.gateway().await?;
        Ok(gateway.signing_key())
    }

    /// Pins another public key (hex) in the trust anchor, for records signed elsewhere (another
    /// machine on the same Postgres). Returns whether it was new.
    pub fn trust_audit_key(&self, public_key: &str) -> Result<bool, CoreError> {
        let key = audit::public_key(public_key)?;
        let Some(anchor) = &self.inner.settings.trust_anchor else {
            return Err(CoreError::new(
                ErrorCode::AuditUnavailable,
                "no audit trust anchor is configured".to_owned(),
            ));
        };
        let now = timestamp(self.inner.settings.clock.now());
        anchor.pin(&key, &now).map_err(audit_unavailable)
    }
}

/// Checks an exported log, against `public_keys` (hex) when given, else the keys of `anchor`
/// when it pins any, else the export's own header (the report says which). With `since`, an
/// earlier export of the same log, it also checks that this copy only appended to it (the
/// earlier copy's signed checkpoint holds in this one). Needs no database.
pub fn verify_audit_file(
    path: &Path,
    public_keys: &[String],
    anchor: Option<&audit::TrustAnchor>,
    since: Option<&Path>,
) -> Result<VerifyReport, CoreError> {
    let trusted = match given_keys(public_keys)? {
        Some(given) => Some(given),
        None => match anchor {
            Some(anchor) => {
                Some(anchor.trusted().map_err(audit_unavailable)?).filter(|t| !t.keys.is_empty())
            }
            None => None,
        },
    };
    let open = |path: &Path| {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| file_error(path, "reading", &e))
    };
    let checkpoint = match since {
        Some(earlier) => Some(audit::export_header(open(earlier)?)?.head),
        None => None,
    };
    Ok(audit::verify_export(
        open(path)?,
        trusted.as_ref(),
        checkpoint,
    )?)
}
