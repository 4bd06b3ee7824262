//! The storage the gateway needs: tokens, running-mission counters, approvals and the ledger
//! that commits each change together with its signed audit record. `db` implements it for
//! SQLite and Postgres.

use crate::units::{Cents, Seconds};
use async_trait::async_trait;
use serde::Serialize;

use super::ledger::{ApprovalRow, CallRecord, LedgerOp, LedgerResult};
use crate::audit::store::AuditStore;
use crate::audit::Sealer;
use crate::perimeter::MissionStatus;
use crate::registry::store::RegistryStore;
use crate::registry::ApprovalMode;
use crate::store::{After, DbError};

/// A token's mission and department, with the mission's state.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenRow {
    /// Mission the token is bound to.
    pub mission_id: String,
    /// Department the token is bound to.
    pub dept: i64,
    /// The mission's status now.
    #[sqlx(try_from = "String")]
    pub status: MissionStatus,
    /// When the mission's time to live ends.
    pub expires_at: Option<String>,
}

/// A token to store: only its hash, never the token itself.
#[derive(Debug, Clone, Copy)]
pub struct NewToken<'a> {
    /// SHA-256 of the token.
    pub hash: &'a str,
    /// Mission the token is bound to.
    pub mission_id: &'a str,
    /// Department the token is bound to.
    pub dept: i64,
    /// Who asked for it.
    pub issued_by: &'a str,
    /// When.
    pub issued_at: &'a str,
}

/// A one-time token exchange code to store: only its hash, never the code itself.
#[derive(Debug, Clone, Copy)]
pub struct NewTokenCode<'a> {
    /// SHA-256 of the code.
    pub hash: &'a str,
    /// Mission the token will be bound to.
    pub mission_id: &'a str,
    /// Department the token will be bound to.
    pub dept: i64,
    /// When.
    pub issued_at: &'a str,
    /// When it stops working.
    pub expires_at: &'a str,
}

/// A granted sector connection: which sector, who ticked it, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Grant {
    /// Connected sector.
    pub sector: String,
    /// Who granted it.
    pub granted_by: String,
    /// When (RFC 3339 UTC).
    pub granted_at: String,
}

impl Grant {
    /// How an audit record names the grant.
    pub fn describe(&self) -> String {
        format!(
            "connection to {} granted by {} at {}",
            self.sector, self.granted_by, self.granted_at
        )
    }
}

/// What the gateway needs to know about a mission to decide on its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissionRow {
    /// Id.
    pub id: String,
    /// Template id.
    pub template_id: String,
    /// Pinned version.
    pub template_version: i64,
    /// Template name.
    pub template_name: String,
    /// Sector.
    pub sector: String,
    /// Approval mode.
    pub approval_mode: ApprovalMode,
    /// Threshold (Threshold mode).
    pub threshold_cents: Option<Cents>,
    /// Status.
    pub status: MissionStatus,
    /// End of its time to live, once started.
    pub expires_at: Option<String>,
    /// Granted connections.
    pub grants: Vec<Grant>,
}

/// How much of its perimeter a mission has used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MissionUsage {
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: MissionStatus,
    /// Steps counted.
    pub steps_used: i64,
    /// Step cap.
    pub max_steps: i64,
    /// Cents held by calls in flight.
    pub reserved_cents: Cents,
    /// Cents spent.
    pub spent_cents: Cents,
    /// Budget cap.
    pub budget_cents: Cents,
    /// Time to live in seconds.
    pub ttl_seconds: Seconds,
    /// When it started.
    pub started_at: Option<String>,
    /// When its time to live ends.
    pub expires_at: Option<String>,
}

/// The gateway's storage: tokens, running-mission counters, approvals, and the ledger that
/// writes each change with its audit record.
#[async_trait]
pub trait GatewayStore: Send + Sync + std::fmt::Debug {
    /// Applies ops in order in one transaction, sealing their audit records into the chain.
    async fn ledger(
        &self,
        ops: Vec<LedgerOp>,
        sealer: &Sealer,
    ) -> Result<Vec<LedgerResult>, DbError>;
    /// The token with this hash.
    async fn token(&self, token_hash: &str) -> Result<Option<TokenRow>, DbError>;
    /// Stores a token's hash.
    async fn insert_token(&self, token: &NewToken<'_>) -> Result<(), DbError>;
    /// Stores a token exchange code's hash.
    async fn insert_token_code(&self, code: &NewTokenCode<'_>) -> Result<(), DbError>;
    /// Uses a token exchange code, once: its mission and department if it was unused and not
    /// expired at `now`; None otherwise. Atomic, so two exchanges of one code get one token.
    async fn use_token_code(
        &self,
        code_hash: &str,
        now: &str,
    ) -> Result<Option<(String, i64)>, DbError>;
    /// A mission with its grants.
    async fn mission_row(&self, id: &str) -> Result<Option<MissionRow>, DbError>;
    /// Moves a Ready mission to Running with its clock started; false if it was not Ready.
    async fn start_mission(
        &self,
        id: &str,
        started_at: &str,
        expires_at: &str,
    ) -> Result<bool, DbError>;
    /// A mission's counters.
    async fn mission_usage(&self, id: &str) -> Result<Option<MissionUsage>, DbError>;
    /// Approvals, newest first, after `after`; only those waiting at `now` (Pending and not
    /// past their expiry) if asked.
    async fn approvals(
        &self,
        pending_only: bool,
        now: &str,
        after: Option<&After>,
        limit: u32,
    ) -> Result<Vec<ApprovalRow>, DbError>;
    /// One approval.
    async fn approval(&self, approval_id: &str) -> Result<Option<ApprovalRow>, DbError>;
    /// How many requests wait now: Pending and not past their expiry at `now` (RFC 3339 UTC,
    /// the form the expiry is stored in), however many there are.
    async fn pending_approvals(&self, now: &str) -> Result<i64, DbError>;
    /// A call's journal row by mission and stored key.
    async fn call_record(&self, mission_id: &str, key: &str)
        -> Result<Option<CallRecord>, DbError>;
    /// Calls still Running that were reserved before `before`, oldest first, at most `limit`.
    async fn stale_calls(&self, before: &str, limit: u32) -> Result<Vec<CallRecord>, DbError>;
}

/// Everything the gateway reads and writes: its own storage, the pinned template versions and
/// the audit keys.
pub trait GatewayRepository: GatewayStore + RegistryStore + AuditStore {}

impl<T: GatewayStore + RegistryStore + AuditStore + ?Sized> GatewayRepository for T {}
