//! Manifest work that needs no database: validating files, and recomputing logic hashes after
//! a ruleset was edited.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::catalog::Catalog;
use crate::error::{CoreError, ErrorCode};
use crate::registry::service::read_manifests;
use crate::registry::{hash, validate, Problem};

/// Every problem in these manifests against the schema and the bundled catalogues (empty when
/// they are valid). Touches no database.
pub fn validate_files(paths: &[PathBuf]) -> Result<Vec<Problem>, CoreError> {
    let catalog = Catalog::bundled()
        .map_err(|e| CoreError::new(ErrorCode::Config, format!("the bundled catalogues: {e}")))?;
    Ok(match read_manifests(paths, &catalog) {
        Ok(inputs) => validate::validate(&inputs, &catalog).problems,
        Err(problems) => problems,
    })
}

/// Recomputes every template's logic_hash from its ruleset and rewrites the file; returns how
/// many changed.
pub fn rehash_manifest(file: &Path) -> Result<usize, CoreError> {
    let invalid = |what: String| CoreError::new(ErrorCode::InvalidManifest, what);
    let text = std::fs::read_to_string(file)
        .map_err(|e| invalid(format!("reading {} failed: {e}", file.display())))?;
    let mut manifest: Value = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("{} is not JSON: {e}", file.display())))?;
    let templates = manifest
        .get_mut("templates")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| invalid(format!("{} has no \"templates\" array", file.display())))?;
    let mut changed = 0;
    for t in templates.iter_mut() {
        let Some(ruleset) = t.get("ruleset") else {
            continue;
        };
        let h = hash::logic_hash(ruleset).map_err(|e| {
            invalid(format!(
                "a ruleset in {} cannot be hashed: {e}",
                file.display()
            ))
        })?;
        if t.get("logic_hash").and_then(Value::as_str) != Some(h.as_str()) {
            changed += 1;
            t["logic_hash"] = Value::String(h);
        }
    }
    let mut out = serde_json::to_string_pretty(&manifest).map_err(|e| CoreError::internal(&e))?;
    out.push('\n');
    std::fs::write(file, out).map_err(|e| {
        CoreError::new(
            ErrorCode::InvalidRequest,
            format!("writing {} failed: {e}", file.display()),
        )
    })?;
    Ok(changed)
}
