//! What goes in and out of the gateway: calls, outcomes, refusals, approvals and its errors.

use crate::units::Cents;
use std::sync::Arc;
use strum::{EnumString, IntoStaticStr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::authz::PolicyError;
use super::ledger::DecideError;
use crate::perimeter::MissionStatus;
use crate::registry::RiskLevel;
use crate::store::DbError;

use crate::codes::ErrorCode;
pub use crate::codes::RefusalCode;

/// A refused call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which check refused it.
    pub code: RefusalCode,
    /// Why, in words (also in the audit record).
    pub message: String,
    /// The audit record's seq.
    pub audit_seq: i64,
}

/// Errors of the gateway and its queue.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The call was refused and audited.
    #[error("{}: {}", .0.code.as_str(), .0.message)]
    Refused(Refusal),
    /// No mission has the id.
    #[error("no mission has the id {0}")]
    MissionNotFound(String),
    /// The mission is not in a state that allows this.
    #[error("mission {id} is {}; {what}", status.as_str())]
    MissionState {
        /// Mission id.
        id: String,
        /// Its status.
        status: MissionStatus,
        /// What cannot be done.
        what: String,
    },
    /// The department is not one the mission's template requires.
    #[error("department {dept} is not part of mission {mission}'s squad (it needs {required})")]
    UnknownDepartment {
        /// Department asked for.
        dept: i64,
        /// Mission.
        mission: String,
        /// The departments it has.
        required: String,
    },
    /// A token exchange code that is unknown, used or expired.
    #[error("{0}")]
    CodeRefused(String),
    /// A decision on an approval was not applied.
    #[error(transparent)]
    Approval(#[from] DecideError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] Arc<DbError>),
    /// The authorization policies are broken.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl From<DbError> for GatewayError {
    fn from(e: DbError) -> Self {
        Self::Storage(Arc::new(e))
    }
}

impl GatewayError {
    /// The error's code from the core's closed list.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused(r) => r.code.into(),
            Self::MissionNotFound(_) => ErrorCode::MissionNotFound,
            Self::MissionState { .. } => ErrorCode::MissionNotActive,
            Self::UnknownDepartment { .. } => ErrorCode::UnknownDepartment,
            Self::CodeRefused(_) => ErrorCode::Unauthenticated,
            Self::Approval(DecideError::NotFound(_)) => ErrorCode::ApprovalNotFound,
            Self::Approval(DecideError::AlreadyDecided(_)) => ErrorCode::ApprovalDecided,
            Self::Approval(DecideError::Expired(_)) => ErrorCode::ApprovalExpired,
            Self::Approval(DecideError::BudgetOutOfRange { .. }) => ErrorCode::BudgetOutOfRange,
            Self::Approval(DecideError::Invalid(_)) => ErrorCode::InvalidRequest,
            Self::Storage(_) => ErrorCode::Storage,
            Self::Policy(_) => ErrorCode::Config,
        }
    }
}

/// One tool call as an agent sends it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The agent's bearer token.
    pub token: String,
    /// Tool id.
    pub tool_id: String,
    /// Arguments (a JSON object).
    pub args: Value,
    /// The job this call belongs to, as the orchestrator assigned it.
    pub job_id: Option<String>,
    /// The mission the agent acts for; when given, it must be the token's mission.
    pub mission_id: Option<String>,
    /// Makes the call happen at most once: a repeat with the same key (in the same mission)
    /// gets the first call's recorded outcome and runs and charges nothing. Built-in agents
    /// send their job id.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// The token is a secret: `Debug` never prints it.
impl std::fmt::Debug for ToolCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolCall")
            .field("token", &"(withheld)")
            .field("tool_id", &self.tool_id)
            .field("args", &self.args)
            .field("job_id", &self.job_id)
            .field("mission_id", &self.mission_id)
            .field("idempotency_key", &self.idempotency_key)
            .finish()
    }
}

/// A call that went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Executed {
    /// The tool's result.
    pub output: Value,
    /// Cents charged.
    pub cost_cents: Cents,
    /// Whether a simulated executor produced the result.
    pub simulated: bool,
    /// The mission step this call used.
    pub step: i64,
    /// What authorized it, in words.
    pub authorized_by: String,
    /// The deciding policy ids.
    pub policy_ids: Vec<String>,
    /// The audit record's seq.
    pub audit_seq: i64,
    /// Whether this is the recorded outcome of an earlier call with the same idempotency key:
    /// the tool did not run again and nothing was charged.
    pub replayed: bool,
}

/// A call held for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// The approval request; send the exact same call again once it is approved.
    pub approval_id: String,
    /// When the request expires.
    pub expires_at: String,
    /// Why it waits.
    pub reason: String,
    /// The audit record's seq.
    pub audit_seq: i64,
}

/// What a call came to, unless refused.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The tool ran.
    Executed(Executed),
    /// The call waits for a human.
    Waiting(Waiting),
}

/// Something reviewers should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// A call waits for approval.
    ApprovalRequested {
        /// Approval id.
        approval_id: String,
        /// Mission.
        mission_id: String,
        /// Tool.
        tool_id: String,
    },
    /// A mission reached its budget and is paused.
    BudgetCapReached {
        /// Mission.
        mission_id: String,
    },
    /// A reviewer decided.
    ApprovalDecided {
        /// Approval id.
        approval_id: String,
    },
}

/// Kind of an approvals-queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum ApprovalKind {
    /// A tool call held by the approval mode.
    ToolCall,
    /// A mission paused at its budget cap.
    BudgetCap,
}

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum ApprovalStatus {
    /// Waiting for a reviewer.
    Pending,
    /// Approved (a call: usable once, until it expires).
    Approved,
    /// Denied.
    Denied,
    /// Expired before a decision or before use.
    Expired,
    /// The approved call ran.
    Used,
}

crate::store::stored_word!(ApprovalKind, "approval kind");

crate::store::stored_word!(ApprovalStatus, "approval status");

/// What an approval request is about, as stored: the mission, the held call, why it waits and
/// who decided it. The stored row and the reviewers' view both carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ApprovalRecord {
    /// Id.
    pub id: String,
    /// Mission.
    pub mission_id: String,
    /// The mission's template name.
    pub mission_name: String,
    /// The mission's sector.
    pub sector: String,
    /// Calling department.
    pub dept: Option<i64>,
    /// Tool id.
    pub tool_id: Option<String>,
    /// SHA-256 of the exact arguments.
    pub args_hash: Option<String>,
    /// The exact arguments (canonical JSON).
    pub args: Option<String>,
    /// Estimated cost of the call (for a budget cap: of the call that hit it).
    pub cost_cents: Cents,
    /// Why it waits.
    pub reason: String,
    /// Requested at.
    pub requested_at: String,
    /// Expires at.
    pub expires_at: Option<String>,
    /// Reviewer.
    pub decided_by: Option<String>,
    /// Decided at.
    pub decided_at: Option<String>,
}

/// One page of the approvals queue, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ApprovalPage {
    /// The requests.
    pub items: Vec<ApprovalItem>,
    /// Cursor of the next (older) page; None when this is the last.
    pub next: Option<String>,
    /// How many requests wait now in all, counted exactly.
    pub pending: u32,
}

/// An approvals-queue entry as reviewers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ApprovalItem {
    /// The request.
    #[serde(flatten)]
    pub record: ApprovalRecord,
    /// Kind.
    pub kind: ApprovalKind,
    /// Status (a pending request past its expiry shows as Expired).
    pub status: ApprovalStatus,
    /// Tool name.
    pub tool_name: Option<String>,
    /// The tool's risk.
    pub risk: Option<RiskLevel>,
    /// For a budget cap: the mission's budget now (or the budget granted).
    pub budget_cents: Option<Cents>,
    /// For a budget cap: the largest budget the global policy allows.
    pub max_budget_cents: Option<Cents>,
}

/// A reviewer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum ApprovalDecision {
    /// Run the call / raise the budget.
    Approve,
    /// Refuse the call / stop the mission.
    Deny,
}

/// A decision as a shell sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    /// Approval id.
    pub approval_id: String,
    /// The decision.
    pub decision: ApprovalDecision,
    /// New budget in cents, when approving a budget cap.
    pub budget_cents: Option<Cents>,
}

/// A refusal, as the gateway returns it after auditing it.
pub(super) fn refusal(code: RefusalCode, message: String, audit_seq: i64) -> GatewayError {
    GatewayError::Refused(Refusal {
        code,
        message,
        audit_seq,
    })
}
