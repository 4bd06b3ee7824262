//! Canonical hashing: RFC 8785 (JCS) JSON, then SHA-256 as lowercase hex.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of the JCS canonical form of `value`.
pub fn canonical_sha256<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let bytes = serde_json_canonicalizer::to_vec(value)?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// The `logic_hash` of a ruleset, as written in a manifest or as parsed into the model (the
/// model keeps every field, so both give the same canonical form).
pub fn logic_hash<T: Serialize>(ruleset: &T) -> Result<String, serde_json::Error> {
    canonical_sha256(ruleset)
}
