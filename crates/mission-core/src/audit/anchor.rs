//! The trust anchor: the audit public keys this machine trusts, kept outside the database the
//! log lives in (a file in the app's config folder). Whoever can rewrite the database can also
//! rewrite the key list stored beside the records and re-sign everything; they cannot change
//! this file on the operator's machine, so `audit verify` checks against it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::verify::ExportedKey;
use crate::store::APP_IDENTIFIER;

/// File name of the anchor in the app's config folder.
pub const ANCHOR_FILE: &str = "audit-trust.json";

/// Environment variable that moves the anchor file (tests, or a shared read-only copy).
pub const ANCHOR_ENV: &str = "MISSION_CONTROL_TRUST_ANCHOR";

/// The anchor file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// Reading or writing the file failed.
    #[error("the audit trust anchor {path} could not be {what}: {source}")]
    Io {
        /// The file.
        path: String,
        /// "read" or "written".
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an anchor.
    #[error("the audit trust anchor {path} is damaged ({problem}); restore it from a backup or pin the keys again")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// A key pinned in the anchor, with when it was pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedKey {
    /// The key.
    #[serde(flatten)]
    pub key: ExportedKey,
    /// When it was pinned (RFC 3339 UTC).
    pub pinned_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorFile {
    keys: Vec<PinnedKey>,
}

/// The anchor file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    path: PathBuf,
}

/// Which keys a check trusts, and where they came from (the report names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// The keys.
    pub keys: Vec<ExportedKey>,
    /// Where they came from, in words.
    pub source: String,
}

impl Trusted {
    /// Keys from a named source.
    pub fn new(keys: Vec<ExportedKey>, source: impl Into<String>) -> Self {
        Self {
            keys,
            source: source.into(),
        }
    }

    /// How a report names the anchor: its source and the keys' fingerprint.
    pub fn describe(&self) -> String {
        format!(
            "{} ({} key{}, fingerprint {})",
            self.source,
            self.keys.len(),
            if self.keys.len() == 1 { "" } else { "s" },
            fingerprint(&self.keys)
        )
    }
}

/// One short text that stands for a set of keys, to compare by eye or by script: the first 16
/// bytes (hex) of the SHA-256 over the sorted `key_id:public_key` lines.
pub fn fingerprint(keys: &[ExportedKey]) -> String {
    let mut lines: Vec<String> = keys
        .iter()
        .map(|k| format!("{}:{}\n", k.key_id, k.public_key))
        .collect();
    lines.sort();
    lines.dedup();
    hex::encode(&Sha256::digest(lines.concat().as_bytes())[..16])
}

impl TrustAnchor {
    /// The anchor at this path.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the anchor lives by default: [`ANCHOR_ENV`], else the app's config folder
    /// (`~/.config/app.missioncontrol.desktop` on Linux, `~/Library/Application Support/…` on
    /// macOS, `%APPDATA%\…` on Windows, as `directories` knows them).
    pub fn default_location() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(ANCHOR_ENV).filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(path));
        }
        directories::BaseDirs::new().map(|b| b.config_dir().join(APP_IDENTIFIER).join(ANCHOR_FILE))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<AnchorFile, AnchorError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AnchorFile::default()),
            Err(source) => {
                return Err(AnchorError::Io {
                    path: self.path.display().to_string(),
                    what: "read",
                    source,
                })
            }
        };
        serde_json::from_str(&text).map_err(|e| AnchorError::Damaged {
            path: self.path.display().to_string(),
            problem: e.to_string(),
        })
    }

    /// The pinned keys (none when the file does not exist yet).
    pub fn keys(&self) -> Result<Vec<PinnedKey>, AnchorError> {
        Ok(self.read()?.keys)
    }

    /// The pinned keys as a check trusts them.
    pub fn trusted(&self) -> Result<Trusted, AnchorError> {
        let keys = self.keys()?.into_iter().map(|k| k.key).collect();
        Ok(Trusted::new(
            keys,
            format!("the keys pinned in {}", self.path.display()),
        ))
    }

    /// Pins a key (once); true if it was new. The file is replaced whole through a temporary
    /// file beside it, so a crash leaves the old or the new list, never half of one.
    pub fn pin(&self, key: &ExportedKey, at: &str) -> Result<bool, AnchorError> {
        let mut file = self.read()?;
        if file.keys.iter().any(|k| k.key == *key) {
            return Ok(false);
        }
        file.keys.push(PinnedKey {
            key: key.clone(),
            pinned_at: at.to_owned(),
        });
        let written = |source| AnchorError::Io {
            path: self.path.display().to_string(),
            what: "written",
            source,
        };
        if let Some(folder) = self.path.parent() {
            std::fs::create_dir_all(folder).map_err(written)?;
        }
        let text = serde_json::to_string_pretty(&file).map_err(|e| AnchorError::Damaged {
            path: self.path.display().to_string(),
            problem: e.to_string(),
        })?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, text).map_err(written)?;
        std::fs::rename(&temporary, &self.path).map_err(written)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ExportedKey {
        ExportedKey {
            key_id: format!("id{n}"),
            public_key: format!("{n:02x}").repeat(32),
        }
    }

    #[test]
    fn a_key_is_pinned_once_and_the_fingerprint_ignores_order() {
        let dir = tempfile::tempdir().expect("dir");
        let anchor = TrustAnchor::at(dir.path().join("nested").join(ANCHOR_FILE));
        assert!(anchor.keys().expect("empty").is_empty());
        assert!(anchor.pin(&key(1), "t1").expect("pin"));
        assert!(!anchor.pin(&key(1), "t2").expect("again"));
        assert!(anchor.pin(&key(2), "t3").expect("pin"));
        let keys = anchor.keys().expect("keys");
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].pinned_at, "t1");
        assert_eq!(
            fingerprint(&[key(1), key(2)]),
            fingerprint(&[key(2), key(1)])
        );
        assert_ne!(fingerprint(&[key(1)]), fingerprint(&[key(2)]));
        std::fs::write(anchor.path(), "{").expect("damage");
        assert!(matches!(anchor.keys(), Err(AnchorError::Damaged { .. })));
    }
}
