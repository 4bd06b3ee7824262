//! The storage the audit log needs to be read, checked and exported: pages, the chain in
//! order, the signed head and the public keys. Records are written by the gateway's ledger, in
//! the same transaction as the change they describe.

use async_trait::async_trait;

use super::verify::ExportedKey;
use super::{AuditHead, AuditPage, AuditQuery, SignedEntry};
use crate::store::DbError;

/// The audit log's storage.
#[async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// A page of the audit log, newest first.
    async fn audit_page(&self, query: &AuditQuery) -> Result<AuditPage, DbError>;
    /// Records after a seq, in order, with signatures.
    async fn audit_range(&self, after_seq: i64, limit: u32) -> Result<Vec<SignedEntry>, DbError>;
    /// The chain head.
    async fn audit_head(&self) -> Result<AuditHead, DbError>;
    /// Every public key that signed records.
    async fn audit_keys(&self) -> Result<Vec<ExportedKey>, DbError>;
    /// Records a public key (once).
    async fn register_key(&self, key: &ExportedKey, now: &str) -> Result<(), DbError>;
}
