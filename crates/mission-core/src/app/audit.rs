//! Reading and checking the audit log. None of this needs the signing key, so it works on any
//! machine that can read the database (or an exported copy).

use std::path::Path;

use super::Core;
use crate::audit::{self, AuditPage, AuditQuery, ExportedKey, VerifyReport};
use crate::error::{CoreError, ErrorCode};
use crate::gateway::timestamp;

/// Public keys given as hex, with their ids.
fn pinned_keys(public_keys: &[String]) -> Result<Option<Vec<ExportedKey>>, CoreError> {
    let keys = public_keys
        .iter()
        .map(|k| audit::public_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!keys.is_empty()).then_some(keys))
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

    /// Checks the whole log: chain, signatures and signed head. With `public_keys` (hex), only
    /// those are trusted; otherwise the keys recorded with the log are, and the report lists
    /// their ids to compare.
    pub async fn verify_audit(&self, public_keys: &[String]) -> Result<VerifyReport, CoreError> {
        let pinned = pinned_keys(public_keys)?;
        Ok(self.inner.audit.verify(pinned.as_deref()).await?)
    }

    /// Writes a copy of the log that [`verify_audit_file`] checks anywhere; returns how many
    /// records it holds.
    pub async fn export_audit(&self, output: &Path) -> Result<i64, CoreError> {
        let file = std::fs::File::create(output).map_err(|e| file_error(output, "creating", &e))?;
        let mut out = std::io::BufWriter::new(file);
        let now = timestamp(self.inner.settings.clock.now());
        let written = self.inner.audit.export(&mut out, &now).await?;
        std::io::Write::flush(&mut out).map_err(|e| file_error(output, "writing", &e))?;
        Ok(written)
    }

    /// The public half of this machine's signing key (the key is created on first use).
    pub async fn audit_public_key(&self) -> Result<ExportedKey, CoreError> {
        let gateway = self.gateway().await?;
        Ok(gateway.signing_key())
    }
}

/// Checks an exported log: its own key list, or only `public_keys` (hex) when given. Needs no
/// database.
pub fn verify_audit_file(path: &Path, public_keys: &[String]) -> Result<VerifyReport, CoreError> {
    let pinned = pinned_keys(public_keys)?;
    let file = std::fs::File::open(path).map_err(|e| file_error(path, "reading", &e))?;
    Ok(audit::verify_export(
        std::io::BufReader::new(file),
        pinned.as_deref(),
    )?)
}
