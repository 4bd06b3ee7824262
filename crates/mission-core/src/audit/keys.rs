//! The signing key: ed25519, kept in the OS keychain through the keyring crate. Only its
//! public half ever reaches the database, so records can be checked anywhere.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{head_message, AuditDraft, AuditEntry, SignedEntry};

/// The keychain service entries of this app are filed under.
pub const KEYCHAIN_SERVICE: &str = crate::store::APP_IDENTIFIER;
/// The keychain entry holding the audit signing key.
pub const SIGNING_KEY_ENTRY: &str = "audit-signing-key";

/// The keychain could not give or keep the signing key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keychain refused.
    #[error(
        "the OS keychain could not be used for the audit signing key: {0}; unlock the keychain \
         (or start its service) and try again"
    )]
    Keychain(#[from] keyring::Error),
    /// The stored key is not a key.
    #[error("the audit signing key in the OS keychain is damaged: {0}")]
    Damaged(String),
    /// The key store setting names no key store.
    #[error("{0}")]
    Setting(String),
}

/// Where the signing key lives: an entry in the OS keychain.
#[derive(Debug, Clone)]
pub struct KeyVault {
    service: String,
    entry: String,
}

impl Default for KeyVault {
    fn default() -> Self {
        Self::new(KEYCHAIN_SERVICE, SIGNING_KEY_ENTRY)
    }
}

impl KeyVault {
    /// A vault over one keychain entry.
    pub fn new(service: &str, entry: &str) -> Self {
        Self {
            service: service.to_owned(),
            entry: entry.to_owned(),
        }
    }

    /// The signing key, created and stored on first use.
    pub fn load_or_create(&self) -> Result<Sealer, KeyError> {
        let entry = keyring::Entry::new(&self.service, &self.entry)?;
        let key = match entry.get_password() {
            Ok(hex_seed) => {
                let seed: [u8; 32] = hex::decode(hex_seed.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| KeyError::Damaged("not 32 hex-encoded bytes".into()))?;
                SigningKey::from_bytes(&seed)
            }
            Err(keyring::Error::NoEntry) => {
                let mut seed = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut seed);
                entry.set_password(&hex::encode(seed))?;
                tracing::info!("created a new audit signing key in the key store");
                SigningKey::from_bytes(&seed)
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Sealer::new(key))
    }
}

/// The id of a public key: the first 16 bytes of its SHA-256, hex.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..16])
}

/// Seals drafts into the chain: computes each record's hash and signs it.
#[derive(Clone)]
pub struct Sealer {
    key: SigningKey,
    key_id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Sealer {
    /// A sealer over a key.
    pub fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        Self { key, key_id }
    }

    /// A fresh key held only in memory: records it signs verify through the public half the
    /// database keeps, but nothing can sign with it once the process ends.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::new(SigningKey::from_bytes(&seed))
    }

    /// The public key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().as_bytes())
    }

    /// Gives a draft its place after `prev_hash` at `seq`, its hash and its signature.
    pub fn seal(&self, draft: AuditDraft, seq: i64, prev_hash: &str) -> SignedEntry {
        let entry = AuditEntry {
            seq,
            record: draft,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
            key_id: self.key_id.clone(),
        };
        let hash = entry.compute_hash();
        let signature = self.sign_hash(&hash);
        SignedEntry {
            entry: AuditEntry { hash, ..entry },
            signature,
        }
    }

    /// Signs a record hash (its hex text), hex signature.
    fn sign_hash(&self, hash: &str) -> String {
        hex::encode(self.key.sign(hash.as_bytes()).to_bytes())
    }

    /// Signs the chain head.
    pub fn sign_head(&self, seq: i64, hash: &str) -> String {
        hex::encode(self.key.sign(&head_message(seq, hash)).to_bytes())
    }
}

/// Environment variable that selects the key store: unset or `os` for the OS keychain,
/// `ephemeral` for a store that lives only as long as the process (end-to-end tests and
/// throwaway demos: each start signs with a new key, whose public half the database keeps).
pub const KEYSTORE_ENV: &str = "MISSION_CONTROL_KEYSTORE";

/// Applies [`KEYSTORE_ENV`]; call once at startup, before the first key is loaded.
pub fn select_keystore_from_env() -> Result<(), KeyError> {
    match std::env::var(KEYSTORE_ENV).ok().as_deref().map(str::trim) {
        None | Some("" | "os") => Ok(()),
        Some("ephemeral") => {
            keyring::set_default_credential_builder(keyring::mock::default_credential_builder());
            tracing::warn!("the audit signing key is ephemeral: it is not kept after this process");
            Ok(())
        }
        Some(other) => Err(KeyError::Setting(format!(
            "{KEYSTORE_ENV}={other} is not a key store; use `os` (the default) or `ephemeral`"
        ))),
    }
}
