//! The tool gateway: the one function every tool call passes, whoever makes it. In order:
//! authenticate the caller's token, check the mission is running and inside its time to live,
//! authorize the tool's sector, count the step and reserve the cost atomically, apply the
//! approval mode, execute, settle, and audit. Refusals are audited too, with their reason.

pub mod authz;
pub mod dispatch;
pub mod ledger;
pub mod rules;
pub mod store;
// Private: the executors are reachable only through `Gateway::invoke`, the one path to a tool.
mod tools;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::audit::{AuditDecision, AuditDraft, ExportedKey, Operation, Sealer};
use crate::catalog::{Catalog, Tool};
use crate::perimeter::MissionStatus;
use crate::registry::{ApprovalMode, RiskLevel, Template};
use crate::store::DbError;
use store::{GatewayRepository, GatewayStore, MissionRow, MissionUsage, TokenRow};

pub use authz::{Authority, AuthzDecision, PolicyError, SectorAuthorizer, BUNDLED_ADMIN_POLICIES};
pub use dispatch::{Actor, AuditedError, Done, Request};
pub use ledger::DecideError;
pub use tools::GatewayConfig;

use ledger::{Decide, Gate, Ledger, LedgerOp, LedgerResult, Reserve, ReserveResult};
use tools::Execution;

/// Largest accepted arguments, as canonical JSON.
pub const MAX_ARGS_BYTES: usize = 64 * 1024;

/// Where the gateway reads the time; tests move it by hand.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How times are stored: RFC 3339, UTC, microseconds, `Z` (text order is time order).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A stored time in the local time zone, for people (the text unchanged if it does not parse).
pub fn local_time(stored: &str) -> String {
    DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_owned(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    )
}

/// SHA-256 (hex) of a token: the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Why a call was refused; the audit log has the same reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// No valid token.
    Unauthenticated,
    /// The mission is not running (ready, paused, stopped, finished).
    MissionNotActive,
    /// The mission's time to live has passed.
    MissionExpired,
    /// No tool has the id.
    UnknownTool,
    /// The arguments cannot be priced or are too large.
    InvalidArguments,
    /// The tool's sector is neither the mission's nor connected to it, or a policy forbids it.
    SectorDenied,
    /// An `http` tool's host is not on the allowlist.
    HostNotAllowed,
    /// Max steps reached.
    StepsExhausted,
    /// The budget cap is reached; the mission is paused for a human.
    BudgetExhausted,
    /// Calls in flight hold the rest of the budget.
    BudgetReserved,
    /// A human denied this exact call.
    ApprovalDenied,
    /// The approval for this exact call expired or was already used.
    ApprovalExpired,
    /// The tool ran and failed.
    ToolFailed,
}

impl RefusalCode {
    /// The code's text, as in API errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::MissionNotActive => "mission_not_active",
            Self::MissionExpired => "mission_expired",
            Self::UnknownTool => "unknown_tool",
            Self::InvalidArguments => "invalid_arguments",
            Self::SectorDenied => "sector_denied",
            Self::HostNotAllowed => "host_not_allowed",
            Self::StepsExhausted => "steps_exhausted",
            Self::BudgetExhausted => "budget_exhausted",
            Self::BudgetReserved => "budget_reserved",
            Self::ApprovalDenied => "approval_denied",
            Self::ApprovalExpired => "approval_expired",
            Self::ToolFailed => "tool_failed",
        }
    }
}

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
    #[error("mission {id} is {status}; {what}")]
    MissionState {
        /// Mission id.
        id: String,
        /// Its status.
        status: String,
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
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(r) => r.code.as_str(),
            Self::MissionNotFound(_) => "mission_not_found",
            Self::MissionState { .. } => "mission_not_active",
            Self::UnknownDepartment { .. } => "unknown_department",
            Self::Approval(DecideError::NotFound(_)) => "approval_not_found",
            Self::Approval(DecideError::AlreadyDecided(_)) => "approval_decided",
            Self::Approval(DecideError::Expired(_)) => "approval_expired",
            Self::Approval(DecideError::BudgetOutOfRange { .. }) => "budget_out_of_range",
            Self::Approval(DecideError::Invalid(_)) => "invalid_request",
            Self::Storage(_) => "storage",
            Self::Policy(_) => "config",
        }
    }
}

/// One tool call as an agent sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
}

/// A call that went through.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Executed {
    /// The tool's result.
    pub output: Value,
    /// Cents charged.
    pub cost_cents: i64,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum ApprovalKind {
    /// A tool call held by the approval mode.
    ToolCall,
    /// A mission paused at its budget cap.
    BudgetCap,
}

/// Where an approval request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// An approvals-queue entry as reviewers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ApprovalItem {
    /// Id.
    pub id: String,
    /// Kind.
    pub kind: ApprovalKind,
    /// Status (a pending request past its expiry shows as Expired).
    pub status: ApprovalStatus,
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
    /// Tool name.
    pub tool_name: Option<String>,
    /// SHA-256 of the exact arguments.
    pub args_hash: Option<String>,
    /// The exact arguments (canonical JSON).
    pub args: Option<String>,
    /// Estimated cost of the call (for a budget cap: of the call that hit it).
    pub cost_cents: i64,
    /// The tool's risk.
    pub risk: Option<RiskLevel>,
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
    /// For a budget cap: the mission's budget now (or the budget granted).
    pub budget_cents: Option<i64>,
    /// For a budget cap: the largest budget the global policy allows.
    pub max_budget_cents: Option<i64>,
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
    pub budget_cents: Option<i64>,
}

struct Inner {
    repo: Arc<dyn GatewayRepository>,
    catalog: Arc<Catalog>,
    config: GatewayConfig,
    authz: SectorAuthorizer,
    ledger: Ledger,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    missions: Mutex<HashMap<String, Arc<MissionRow>>>,
    tokens: Mutex<HashMap<String, (TokenRow, std::time::Instant)>>,
    events: broadcast::Sender<GatewayEvent>,
    /// The public half of the signing key.
    key: ExportedKey,
}

/// How long a token of a Running mission is trusted without reading it again. A mission this
/// process pauses or stops drops its tokens at once; one stopped by another process on the
/// same database is still refused by the budget reservation, which checks Running atomically.
const TOKEN_FRESHNESS: Duration = Duration::from_secs(1);

/// The gateway. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// What the gateway is built from.
#[derive(Debug, Clone)]
pub struct GatewayParts {
    /// Storage.
    pub repo: Arc<dyn GatewayRepository>,
    /// Sectors, tools and policy.
    pub catalog: Arc<Catalog>,
    /// Gateway settings.
    pub config: GatewayConfig,
    /// Admin-written Cedar policies.
    pub admin_policies: String,
    /// The audit signing key.
    pub sealer: Sealer,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

fn refusal(code: RefusalCode, message: String, audit_seq: i64) -> GatewayError {
    GatewayError::Refused(Refusal {
        code,
        message,
        audit_seq,
    })
}

impl Gateway {
    /// Builds the policies, registers the signing key's public half and starts the writer.
    pub async fn start(parts: GatewayParts) -> Result<Self, GatewayError> {
        let authz = SectorAuthorizer::new(&parts.catalog, &parts.admin_policies)?;
        let now = timestamp(parts.clock.now());
        let key = ExportedKey {
            key_id: parts.sealer.key_id().to_owned(),
            public_key: parts.sealer.public_key_hex(),
        };
        parts.repo.register_key(&key, &now).await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DbError::Corrupt(format!("http client: {e}")))?;
        let (events, _) = broadcast::channel(256);
        Ok(Self {
            inner: Arc::new(Inner {
                ledger: Ledger::start(parts.repo.clone(), parts.sealer),
                repo: parts.repo,
                catalog: parts.catalog,
                config: parts.config,
                authz,
                clock: parts.clock,
                http,
                missions: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                events,
                key,
            }),
        })
    }

    /// The public half of the key it signs audit records with.
    pub fn signing_key(&self) -> ExportedKey {
        self.inner.key.clone()
    }

    /// The sector authorizer (also used on its own by the benchmark).
    pub fn authorizer(&self) -> &SectorAuthorizer {
        &self.inner.authz
    }

    /// Reviewer-facing events: approvals opened and decided, budgets reached.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: GatewayEvent) {
        // Nobody listening is fine: the queue itself is the record.
        let _ = self.inner.events.send(event);
    }

    async fn mission(&self, id: &str) -> Result<Arc<MissionRow>, GatewayError> {
        if let Some(found) = self
            .inner
            .missions
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
        {
            return Ok(found);
        }
        let row = self
            .inner
            .repo
            .mission_row(id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(id.to_owned()))?;
        let row = Arc::new(row);
        // Only what never changes once a mission runs is read from this cache: sector, mode,
        // threshold, grants and time to live. Status and counters are read per call.
        if row.status != MissionStatus::Ready {
            if let Ok(mut cache) = self.inner.missions.lock() {
                cache.insert(id.to_owned(), Arc::clone(&row));
            }
        }
        Ok(row)
    }

    /// The token's mission and department, from memory while fresh.
    async fn token(&self, token_hash: &str) -> Result<Option<TokenRow>, GatewayError> {
        if let Some(row) = self.inner.tokens.lock().ok().and_then(|cache| {
            cache
                .get(token_hash)
                .filter(|(_, read)| read.elapsed() < TOKEN_FRESHNESS)
                .map(|(row, _)| row.clone())
        }) {
            return Ok(Some(row));
        }
        let row = self.inner.repo.token(token_hash).await?;
        if let Some(row) = row.as_ref().filter(|r| r.status == MissionStatus::Running) {
            if let Ok(mut cache) = self.inner.tokens.lock() {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(
                    token_hash.to_owned(),
                    (row.clone(), std::time::Instant::now()),
                );
            }
        }
        Ok(row)
    }

    /// Forgets cached tokens after a mission's status changed here.
    fn forget_tokens(&self) {
        if let Ok(mut cache) = self.inner.tokens.lock() {
            cache.clear();
        }
    }

    async fn audit(&self, draft: AuditDraft) -> Result<i64, GatewayError> {
        match self.inner.ledger.apply(LedgerOp::Audit(draft)).await? {
            LedgerResult::Audited(seq) => Ok(seq),
            other => Err(DbError::Corrupt(format!("unexpected ledger answer {other:?}")).into()),
        }
    }

    async fn refuse(
        &self,
        draft: AuditDraft,
        code: RefusalCode,
        message: String,
    ) -> Result<CallOutcome, GatewayError> {
        let seq = self
            .audit(draft.decided(AuditDecision::Denied, message.clone()))
            .await?;
        Err(refusal(code, message, seq))
    }

    /// Starts a Ready mission's clock: it runs, and its time to live counts from now. Audited.
    pub async fn start_mission(
        &self,
        actor: &Actor,
        mission_id: &str,
    ) -> Result<MissionUsage, GatewayError> {
        self.start_mission_as(actor, mission_id).await
    }

    /// [`Gateway::start_mission`], failing with the caller's error type so the audit record
    /// of a failure travels with it.
    pub async fn start_mission_as<E>(
        &self,
        actor: &Actor,
        mission_id: &str,
    ) -> Result<MissionUsage, E>
    where
        E: AuditedError + std::fmt::Display + From<GatewayError>,
    {
        let request = Request {
            actor,
            operation: Operation::MissionStart,
            mission_id: Some(mission_id),
            dept: None,
        };
        let start = async { self.start_clock(mission_id).await.map_err(E::from) };
        self.audited(request, start, |usage: &MissionUsage| {
            Done::said(format!(
                "started; its time to live ends at {}",
                usage.expires_at.as_deref().unwrap_or("an unknown time")
            ))
        })
        .await
    }

    /// Starts the clock without an audit record of its own: for operations that record
    /// themselves (a deployment).
    pub(crate) async fn start_clock(&self, mission_id: &str) -> Result<MissionUsage, GatewayError> {
        let repo = &self.inner.repo;
        let usage = repo
            .mission_usage(mission_id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(mission_id.to_owned()))?;
        let row = self.mission(mission_id).await?;
        let now = self.inner.clock.now();
        let expires = now + chrono::Duration::seconds(usage.ttl_seconds);
        if !repo
            .start_mission(&row.id, &timestamp(now), &timestamp(expires))
            .await?
        {
            return Err(GatewayError::MissionState {
                id: mission_id.to_owned(),
                status: usage.status.as_str().to_owned(),
                what: "only a Ready mission can be started".to_owned(),
            });
        }
        if let Ok(mut cache) = self.inner.missions.lock() {
            cache.remove(mission_id);
        }
        repo.mission_usage(mission_id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(mission_id.to_owned()))
    }

    /// Issues a token for one department of one mission. The token is returned once; only its
    /// hash is stored. Audited (without the token).
    pub async fn issue_token(
        &self,
        actor: &Actor,
        mission_id: &str,
        dept: i64,
    ) -> Result<String, GatewayError> {
        self.issue_token_as(actor, mission_id, dept).await
    }

    /// [`Gateway::issue_token`], failing with the caller's error type so the audit record of
    /// a failure travels with it.
    pub async fn issue_token_as<E>(
        &self,
        actor: &Actor,
        mission_id: &str,
        dept: i64,
    ) -> Result<String, E>
    where
        E: AuditedError + std::fmt::Display + From<GatewayError>,
    {
        let request = Request {
            actor,
            operation: Operation::TokenIssue,
            mission_id: Some(mission_id),
            dept: Some(dept),
        };
        let issue = async {
            self.new_token(mission_id, dept, actor.name())
                .await
                .map_err(E::from)
        };
        self.audited(request, issue, |token: &String| {
            Done::said(format!(
                "issued a token for dept {dept} (hash {})",
                &hash_token(token)[..12]
            ))
        })
        .await
    }

    async fn new_token(
        &self,
        mission_id: &str,
        dept: i64,
        issued_by: String,
    ) -> Result<String, GatewayError> {
        let row = self.mission(mission_id).await?;
        if matches!(
            row.status,
            MissionStatus::Completed
                | MissionStatus::Failed
                | MissionStatus::Expired
                | MissionStatus::Stopped
        ) {
            return Err(GatewayError::MissionState {
                id: mission_id.to_owned(),
                status: row.status.as_str().to_owned(),
                what: "a finished mission gets no new tokens".to_owned(),
            });
        }
        let content = self
            .inner
            .repo
            .version_content(&row.template_id, row.template_version)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("mission {mission_id} lost its template")))?;
        let template: Template = serde_json::from_value(content)
            .map_err(|e| DbError::Corrupt(format!("stored template: {e}")))?;
        if !template
            .required_depts
            .iter()
            .any(|d| i64::from(*d) == dept)
        {
            return Err(GatewayError::UnknownDepartment {
                dept,
                mission: mission_id.to_owned(),
                required: template
                    .required_depts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        let token = format!("mct_{}", hex::encode(secret));
        self.inner
            .repo
            .insert_token(
                &hash_token(&token),
                &row.id,
                dept,
                &issued_by,
                &timestamp(self.inner.clock.now()),
            )
            .await?;
        Ok(token)
    }

    /// A mission's counters.
    pub async fn usage(&self, mission_id: &str) -> Result<MissionUsage, GatewayError> {
        self.inner
            .repo
            .mission_usage(mission_id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(mission_id.to_owned()))
    }

    /// Why the mission's approval mode holds this call for a human, if it does.
    fn gate_reason(mission: &MissionRow, tool: &Tool, cost: i64) -> Option<String> {
        match mission.approval_mode {
            ApprovalMode::Strict if tool.side_effects => {
                Some(format!("Strict mode: {} has side effects", tool.name))
            }
            ApprovalMode::Threshold => {
                let threshold = mission.threshold_cents.unwrap_or(0);
                if cost >= threshold {
                    Some(format!(
                        "Threshold mode: the call costs {cost} cents, at or above the \
                         threshold of {threshold}"
                    ))
                } else if tool.risk == RiskLevel::High {
                    Some(format!("Threshold mode: {} is a High-risk tool", tool.name))
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Passes one tool call through every check, runs it, and audits the outcome. This is the
    /// only way to a tool. A failure inside the gateway (storage, policies) is audited too.
    pub async fn invoke(&self, call: ToolCall) -> Result<CallOutcome, GatewayError> {
        self.invoke_as(call).await
    }

    /// [`Gateway::invoke`], failing with the caller's error type so the audit record of a
    /// failure travels with it.
    pub async fn invoke_as<E>(&self, call: ToolCall) -> Result<CallOutcome, E>
    where
        E: AuditedError + std::fmt::Display + From<GatewayError>,
    {
        let token_hash = hash_token(&call.token);
        let actor = Actor::Agent(token_hash[..12].to_owned());
        let claimed = call.mission_id.clone();
        let request = Request {
            actor: &actor,
            operation: Operation::ToolInvoke,
            mission_id: claimed.as_deref(),
            dept: None,
        };
        let checked = async { self.checked_call(call, token_hash).await.map_err(E::from) };
        self.audited(request, checked, |outcome: &CallOutcome| {
            Done::recorded(match outcome {
                CallOutcome::Executed(e) => e.audit_seq,
                CallOutcome::Waiting(w) => w.audit_seq,
            })
        })
        .await
    }

    async fn checked_call(
        &self,
        call: ToolCall,
        token_hash: String,
    ) -> Result<CallOutcome, GatewayError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let mut draft = AuditDraft {
            ts: timestamp(now),
            job_id: call.job_id.clone(),
            caller: format!("token:{}", &token_hash[..12]),
            action: Some(Operation::ToolInvoke.as_str().to_owned()),
            tool_id: Some(call.tool_id.clone()),
            ..Default::default()
        };

        // 1. Who is calling: a token bound to one mission and one department.
        let Some(token) = self.token(&token_hash).await? else {
            return self
                .refuse(
                    draft,
                    RefusalCode::Unauthenticated,
                    "the bearer token is not one the gateway issued".to_owned(),
                )
                .await;
        };
        draft.mission_id = Some(token.mission_id.clone());
        draft.dept = Some(token.dept);
        draft.caller = format!("dept {} (token:{})", token.dept, &token_hash[..12]);
        if let Some(claimed) = call
            .mission_id
            .as_deref()
            .filter(|m| *m != token.mission_id)
        {
            let message = format!(
                "the token is bound to mission {}, not to mission {claimed}",
                token.mission_id
            );
            return self
                .refuse(draft, RefusalCode::Unauthenticated, message)
                .await;
        }

        // 2. The mission runs and its time to live has not passed.
        if token.status != MissionStatus::Running {
            let message = format!("the mission is {}, not Running", token.status.as_str());
            return self
                .refuse(draft, RefusalCode::MissionNotActive, message)
                .await;
        }
        if let Some(expires) = token
            .expires_at
            .as_deref()
            .filter(|e| *e <= draft.ts.as_str())
        {
            let message = format!("the mission's time to live ended at {expires}");
            return self
                .refuse(draft, RefusalCode::MissionExpired, message)
                .await;
        }
        let args = match serde_json_canonicalizer::to_string(&call.args) {
            Ok(a) if a.len() <= MAX_ARGS_BYTES && call.args.is_object() => a,
            Ok(_) => {
                let message =
                    format!("arguments must be a JSON object of at most {MAX_ARGS_BYTES} bytes");
                return self
                    .refuse(draft, RefusalCode::InvalidArguments, message)
                    .await;
            }
            Err(e) => {
                let message = format!("arguments cannot be canonicalised: {e}");
                return self
                    .refuse(draft, RefusalCode::InvalidArguments, message)
                    .await;
            }
        };
        let args_hash = hex::encode(Sha256::digest(args.as_bytes()));
        draft.args_hash = Some(args_hash.clone());
        let Some(tool) = inner.catalog.tool(&call.tool_id) else {
            let message = format!("no tool has the id {}", call.tool_id);
            return self.refuse(draft, RefusalCode::UnknownTool, message).await;
        };
        draft.sector = Some(tool.sector.clone());

        // 3. Sector authorization, deny by default.
        let mission = self.mission(&token.mission_id).await?;
        let decision = inner.authz.decide(&mission, tool)?;
        draft.policy_ids.clone_from(&decision.policy_ids);
        if !decision.allowed {
            let message = if decision.policy_ids.is_empty() {
                format!(
                    "{} belongs to sector {}; this {} mission is not connected to {}, so only \
                     a connection to {} could authorize it",
                    tool.id, tool.sector, mission.sector, tool.sector, tool.sector
                )
            } else {
                format!(
                    "{} is forbidden by policy {}",
                    tool.id,
                    decision.policy_ids.join(", ")
                )
            };
            return self.refuse(draft, RefusalCode::SectorDenied, message).await;
        }
        let authorized_by = match &decision.authority {
            Some(Authority::Connection(grant)) => {
                draft.grant = Some(grant.describe());
                format!("sector {} through the {}", tool.sector, grant.describe())
            }
            _ => format!("sector {} (the mission's own)", tool.sector),
        };
        if let Some(endpoint) = &tool.endpoint {
            if let Err(message) = tools::host_allowed(endpoint, &inner.config.http_allowlist) {
                return self
                    .refuse(draft, RefusalCode::HostNotAllowed, message)
                    .await;
            }
        }
        let estimate = match tools::estimate_cents(tool, &call.args) {
            Ok(cents) => cents,
            Err(e) => return self.refuse(draft, RefusalCode::InvalidArguments, e.0).await,
        };
        draft.cost_cents = 0;

        // 4–6. Count the step, reserve the cost, and apply the approval mode, atomically.
        let gate = Self::gate_reason(&mission, tool, estimate).map(|reason| Gate {
            approval_id: Uuid::now_v7().to_string(),
            dept: token.dept,
            job_id: call.job_id.clone(),
            tool_id: tool.id.clone(),
            args_hash: args_hash.clone(),
            args,
            reason,
            expires_at: timestamp(
                now + chrono::Duration::seconds(inner.config.approval_ttl_seconds),
            ),
        });
        let reserved = inner
            .ledger
            .apply(LedgerOp::Reserve(Box::new(Reserve {
                mission_id: mission.id.clone(),
                cost_cents: estimate,
                now: draft.ts.clone(),
                gate,
                audit: draft.clone(),
                budget_request_id: Uuid::now_v7().to_string(),
            })))
            .await?;
        let (step, approval) = match reserved {
            LedgerResult::Reserve(ReserveResult::Reserved { step, approval }) => (step, approval),
            LedgerResult::Reserve(ReserveResult::Waiting {
                approval_id,
                expires_at,
                seq,
            }) => {
                self.emit(GatewayEvent::ApprovalRequested {
                    approval_id: approval_id.clone(),
                    mission_id: mission.id.clone(),
                    tool_id: tool.id.clone(),
                });
                return Ok(CallOutcome::Waiting(Waiting {
                    reason: Self::gate_reason(&mission, tool, estimate).unwrap_or_default(),
                    approval_id,
                    expires_at,
                    audit_seq: seq,
                }));
            }
            LedgerResult::Reserve(ReserveResult::Refused { code, message, seq }) => {
                if matches!(
                    code,
                    RefusalCode::BudgetExhausted | RefusalCode::MissionNotActive
                ) {
                    self.forget_tokens();
                }
                if code == RefusalCode::BudgetExhausted {
                    self.emit(GatewayEvent::BudgetCapReached {
                        mission_id: mission.id.clone(),
                    });
                }
                return Err(refusal(code, message, seq));
            }
            other => {
                return Err(DbError::Corrupt(format!("unexpected ledger answer {other:?}")).into())
            }
        };

        // 7. Execute.
        let execution = match &tool.endpoint {
            Some(endpoint) => {
                tools::call_http(
                    &inner.http,
                    endpoint,
                    Duration::from_millis(inner.config.http_timeout_ms),
                    &mission.id,
                    &call.args,
                    estimate,
                )
                .await
            }
            None => {
                let seed = format!("{}:{}:{}", mission.id, step, args_hash);
                tools::simulate(tool, estimate, seed.as_bytes())
            }
        };

        // 8–9. Settle the reservation and audit the outcome.
        let approved = approval
            .as_ref()
            .map(|a| format!("; approved by {} (approval {})", a.decided_by, a.id))
            .unwrap_or_default();
        let (actual, audit, result) = match execution {
            Execution::Done {
                output,
                cost_cents,
                simulated,
            } => {
                let cost = cost_cents.min(estimate);
                let mut audit = draft.decided(
                    AuditDecision::Allowed,
                    format!(
                        "step {step}: authorized by {authorized_by}{approved}{}",
                        if simulated { "; simulated result" } else { "" }
                    ),
                );
                audit.cost_cents = cost;
                audit.simulated = simulated;
                (cost, audit, Ok((output, simulated)))
            }
            Execution::Failed { message } => (
                0,
                draft.decided(
                    AuditDecision::Failed,
                    format!("step {step}: authorized by {authorized_by}{approved}; {message}"),
                ),
                Err(message),
            ),
        };
        let seq = match inner
            .ledger
            .apply(LedgerOp::Settle {
                mission_id: mission.id.clone(),
                reserved_cents: estimate,
                actual_cents: actual,
                audit,
            })
            .await?
        {
            LedgerResult::Audited(seq) => seq,
            other => {
                return Err(DbError::Corrupt(format!("unexpected ledger answer {other:?}")).into())
            }
        };
        match result {
            Ok((output, simulated)) => Ok(CallOutcome::Executed(Executed {
                output,
                cost_cents: actual,
                simulated,
                step,
                authorized_by,
                policy_ids: decision.policy_ids,
                audit_seq: seq,
            })),
            Err(message) => Err(refusal(RefusalCode::ToolFailed, message, seq)),
        }
    }

    fn item(&self, row: ledger::ApprovalRow) -> ApprovalItem {
        approval_item(row, &self.inner.catalog, self.inner.clock.now())
    }

    /// The approvals queue, newest first; only what still waits if asked.
    pub async fn approvals(&self, pending_only: bool) -> Result<Vec<ApprovalItem>, GatewayError> {
        approvals(
            self.inner.repo.as_ref(),
            &self.inner.catalog,
            self.inner.clock.now(),
            pending_only,
        )
        .await
    }

    /// One approval request as reviewers see it.
    pub async fn approval(&self, approval_id: &str) -> Result<Option<ApprovalItem>, GatewayError> {
        let row = self.inner.repo.approval(approval_id).await?;
        let now = self.inner.clock.now();
        Ok(row.map(|row| approval_item(row, &self.inner.catalog, now)))
    }

    /// A reviewer's decision, audited with their name. Approving a call lets exactly that call
    /// (same tool, same arguments) run once; approving a budget cap raises the budget within
    /// the global policy and resumes the mission; denying a budget cap stops it.
    pub async fn decide(
        &self,
        actor: &Actor,
        request: &DecideApproval,
    ) -> Result<ApprovalItem, GatewayError> {
        self.decide_as(actor, request).await
    }

    /// [`Gateway::decide`], failing with the caller's error type so the audit record of a
    /// refusal travels with it.
    pub async fn decide_as<E>(
        &self,
        actor: &Actor,
        request: &DecideApproval,
    ) -> Result<ApprovalItem, E>
    where
        E: AuditedError + std::fmt::Display + From<GatewayError>,
    {
        let audited = Request {
            actor,
            operation: Operation::ApprovalDecide,
            mission_id: None,
            dept: None,
        };
        let by = actor.name();
        let decision = async { self.apply_decision(request, &by).await.map_err(E::from) };
        self.audited(audited, decision, |(_, seq): &(ApprovalItem, i64)| {
            Done::recorded(*seq)
        })
        .await
        .map(|(item, _)| item)
    }

    async fn apply_decision(
        &self,
        request: &DecideApproval,
        by: &str,
    ) -> Result<(ApprovalItem, i64), GatewayError> {
        let now = self.inner.clock.now();
        let result = self
            .inner
            .ledger
            .apply(LedgerOp::Decide(Decide {
                approval_id: request.approval_id.clone(),
                by: by.to_owned(),
                approve: request.decision == ApprovalDecision::Approve,
                budget_cents: request.budget_cents,
                max_budget_cents: self.inner.catalog.policy().hard_caps.budget_cents,
                now: timestamp(now),
                approved_until: timestamp(
                    now + chrono::Duration::seconds(self.inner.config.approval_ttl_seconds),
                ),
            }))
            .await?;
        match result {
            LedgerResult::Decided(decided) => match *decided {
                Ok((row, seq)) => {
                    self.forget_tokens();
                    self.emit(GatewayEvent::ApprovalDecided {
                        approval_id: row.id.clone(),
                    });
                    Ok((self.item(row), seq))
                }
                Err(e) => Err(e.into()),
            },
            other => Err(DbError::Corrupt(format!("unexpected ledger answer {other:?}")).into()),
        }
    }
}

/// The approvals queue without a running gateway (it needs no signing key): what
/// `missionctl approvals list` and the gateway itself show.
pub async fn approvals(
    repo: &dyn GatewayStore,
    catalog: &Catalog,
    now: DateTime<Utc>,
    pending_only: bool,
) -> Result<Vec<ApprovalItem>, GatewayError> {
    let rows = repo.approvals(pending_only, 500).await?;
    Ok(rows
        .into_iter()
        .map(|row| approval_item(row, catalog, now))
        .filter(|item| !pending_only || item.status == ApprovalStatus::Pending)
        .collect())
}

fn approval_item(row: ledger::ApprovalRow, catalog: &Catalog, now: DateTime<Utc>) -> ApprovalItem {
    let now = timestamp(now);
    let tool = row.tool_id.as_deref().and_then(|id| catalog.tool(id));
    let mut status = match row.status.as_str() {
        "Approved" => ApprovalStatus::Approved,
        "Denied" => ApprovalStatus::Denied,
        "Expired" => ApprovalStatus::Expired,
        "Used" => ApprovalStatus::Used,
        _ => ApprovalStatus::Pending,
    };
    if matches!(status, ApprovalStatus::Pending | ApprovalStatus::Approved)
        && row
            .expires_at
            .as_deref()
            .is_some_and(|at| at <= now.as_str())
    {
        status = ApprovalStatus::Expired;
    }
    let budget_cap = row.kind == "BudgetCap";
    ApprovalItem {
        kind: if budget_cap {
            ApprovalKind::BudgetCap
        } else {
            ApprovalKind::ToolCall
        },
        status,
        tool_name: tool.map(|t| t.name.clone()),
        risk: tool.map(|t| t.risk),
        budget_cents: budget_cap.then(|| {
            if status == ApprovalStatus::Pending {
                row.mission_budget_cents
            } else {
                row.budget_cents.unwrap_or(row.mission_budget_cents)
            }
        }),
        max_budget_cents: budget_cap.then_some(catalog.policy().hard_caps.budget_cents),
        id: row.id,
        mission_id: row.mission_id,
        mission_name: row.mission_name,
        sector: row.sector,
        dept: row.dept,
        tool_id: row.tool_id,
        args_hash: row.args_hash,
        args: row.args,
        cost_cents: row.cost_cents,
        reason: row.reason,
        requested_at: row.requested_at,
        expires_at: row.expires_at,
        decided_by: row.decided_by,
        decided_at: row.decided_at,
    }
}

/// Who is at the keyboard, for grants and decisions: the OS user name.
pub fn operator_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "operator".to_owned())
}
