//! The gateway's writes. Every change the gateway makes — a step counted and a cost reserved,
//! a reservation settled, an approval opened, used or decided — goes through one writer task
//! together with its audit record, in one transaction. The writer takes whatever calls are
//! waiting and commits them together, so concurrent calls share one commit; the chain head's
//! row lock keeps the log in one order even with several app instances on one Postgres.

use crate::units::Cents;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strum::{EnumString, IntoStaticStr};
use tokio::sync::{mpsc, oneshot};

use super::store::GatewayStore;
use super::{ApprovalKind, ApprovalRecord, ApprovalStatus, RefusalCode};
use crate::audit::{AuditDraft, Sealer};
use crate::store::DbError;

/// A call that needs a human before it runs, as the reservation sees it.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Id a new approval request gets.
    pub approval_id: String,
    /// Department of the caller.
    pub dept: i64,
    /// Job the call belongs to.
    pub job_id: Option<String>,
    /// Tool.
    pub tool_id: String,
    /// SHA-256 of the canonical arguments.
    pub args_hash: String,
    /// Canonical arguments, for the reviewer to read.
    pub args: String,
    /// Why the call waits.
    pub reason: String,
    /// When a new request expires.
    pub expires_at: String,
}

/// A call's row in the journal, written with its reservation.
#[derive(Debug, Clone)]
pub struct CallKey {
    /// The caller's idempotency key (stored as `key:…`), or a fresh id (`call:…`).
    pub key: String,
    /// Whether the caller sent the key: then the row keeps the outcome, and the same key
    /// returns it instead of running the tool again.
    pub keyed: bool,
    /// Tool.
    pub tool_id: String,
    /// SHA-256 of the canonical arguments.
    pub args_hash: String,
}

/// Where a journalled call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoStaticStr, EnumString)]
pub enum CallState {
    /// Reserved; the tool runs or ran and the outcome is not recorded yet.
    Running,
    /// The tool ran and its result is recorded.
    Done,
    /// The tool was called and failed.
    Failed,
    /// The process stopped while the tool ran: its effect is unknown, its estimate was charged.
    Interrupted,
}

crate::store::stored_word!(CallState, "call state");

/// A settled call's outcome, as the journal keeps it for a repeated key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecordedOutcome {
    /// The tool ran.
    Done {
        /// The tool's result.
        output: Value,
        /// Cents charged.
        cost_cents: Cents,
        /// Whether a simulated executor produced the result.
        simulated: bool,
        /// What authorized it, in words.
        authorized_by: String,
        /// The deciding policy ids.
        policy_ids: Vec<String>,
    },
    /// The tool failed; nothing was charged.
    Failed {
        /// Why.
        message: String,
    },
    /// The process stopped while the tool ran.
    Interrupted {
        /// What is known.
        message: String,
    },
}

impl RecordedOutcome {
    /// The journal state this outcome settles a call in.
    pub fn state(&self) -> CallState {
        match self {
            Self::Done { .. } => CallState::Done,
            Self::Failed { .. } => CallState::Failed,
            Self::Interrupted { .. } => CallState::Interrupted,
        }
    }
}

/// A call's journal row as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallRecord {
    /// Key (`key:…` or `call:…`).
    pub call_key: String,
    /// Mission.
    pub mission_id: String,
    /// Whether the caller sent the key.
    pub keyed: bool,
    /// Tool.
    pub tool_id: String,
    /// SHA-256 of the canonical arguments.
    pub args_hash: String,
    /// The mission step the call used.
    pub step: i64,
    /// Cents held for it.
    pub reserved_cents: Cents,
    /// When it was reserved.
    pub reserved_at: String,
    /// Where it stands.
    #[sqlx(try_from = "String")]
    pub state: CallState,
    /// The recorded outcome (JSON of [`RecordedOutcome`]), once settled.
    pub outcome: Option<String>,
    /// The audit record of the outcome, once settled.
    pub audit_seq: Option<i64>,
}

impl CallRecord {
    /// The recorded outcome; None while the call runs.
    pub fn outcome(&self) -> Result<Option<RecordedOutcome>, DbError> {
        self.outcome
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| DbError::Corrupt(format!("recorded outcome of {}: {e}", self.call_key)))
    }
}

/// Count a step and reserve a call's estimated cost.
#[derive(Debug, Clone)]
pub struct Reserve {
    /// Mission.
    pub mission_id: String,
    /// The call's journal row.
    pub call: CallKey,
    /// Estimated cost to hold.
    pub cost_cents: Cents,
    /// Now, for approval expiry.
    pub now: String,
    /// Set when the approval mode holds this call for a human.
    pub gate: Option<Gate>,
    /// The record to write if the call is refused or waits.
    pub audit: AuditDraft,
    /// Id a budget-cap request gets if the budget is reached.
    pub budget_request_id: String,
}

/// Turn a reservation into spending, record the outcome and close the call's journal row.
#[derive(Debug, Clone)]
pub struct Settle {
    /// Mission.
    pub mission_id: String,
    /// What was reserved.
    pub reserved_cents: Cents,
    /// What the call cost (at most what was reserved).
    pub actual_cents: Cents,
    /// The record.
    pub audit: AuditDraft,
    /// The call's journal key.
    pub call_key: String,
    /// Whether the journal keeps the outcome (the caller sent the key).
    pub keyed: bool,
    /// The outcome to keep.
    pub outcome: RecordedOutcome,
}

/// Settle a call whose process stopped while the tool ran: charge its estimate, record it,
/// and mark it interrupted — unless it settled meanwhile.
#[derive(Debug, Clone)]
pub struct Interrupt {
    /// The journal row as read.
    pub call: CallRecord,
    /// The outcome to keep.
    pub outcome: RecordedOutcome,
    /// The record.
    pub audit: AuditDraft,
}

/// A reviewer's decision on an approval.
#[derive(Debug, Clone)]
pub struct Decide {
    /// Approval id.
    pub approval_id: String,
    /// Reviewer.
    pub by: String,
    /// Approve (run the call / raise the budget) or deny (refuse it / stop the mission).
    pub approve: bool,
    /// New budget for a budget-cap request.
    pub budget_cents: Option<Cents>,
    /// Largest budget the global policy allows.
    pub max_budget_cents: Cents,
    /// Now.
    pub now: String,
    /// How long an approved call stays usable.
    pub approved_until: String,
}

/// One write the gateway asks for.
#[derive(Debug, Clone)]
pub enum LedgerOp {
    /// Record a decision taken before anything was reserved.
    Audit(AuditDraft),
    /// Count a step, reserve the cost, and apply the approval gate (boxed: it is the largest).
    Reserve(Box<Reserve>),
    /// Turn a reservation into spending and record the outcome (boxed: it is large).
    Settle(Box<Settle>),
    /// Settle a call whose process stopped while the tool ran (boxed: it is large).
    Interrupt(Box<Interrupt>),
    /// A reviewer's decision.
    Decide(Decide),
}

/// An approval used by a call that goes ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalUse {
    /// Approval id.
    pub id: String,
    /// Who approved.
    pub decided_by: String,
}

/// What a reservation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveResult {
    /// Step counted and cost held: run the tool.
    Reserved {
        /// The step number this call used.
        step: i64,
        /// The approval it used, if it needed one.
        approval: Option<ApprovalUse>,
    },
    /// Nothing held; the call waits for a human.
    Waiting {
        /// Approval id.
        approval_id: String,
        /// When the request expires.
        expires_at: String,
        /// Audit seq.
        seq: i64,
    },
    /// The call's key was used before: nothing held, this is its journal row.
    Repeated(Box<CallRecord>),
    /// Refused; nothing held.
    Refused {
        /// Which check.
        code: RefusalCode,
        /// Why, in words.
        message: String,
        /// Audit seq.
        seq: i64,
    },
}

/// Why a reviewer's decision was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// No approval has the id.
    #[error("no approval request has the id {0}")]
    NotFound(String),
    /// Someone decided it already.
    #[error("this request was already {0}; refresh the queue")]
    AlreadyDecided(String),
    /// It expired before the decision.
    #[error("this request expired at {0}; the agent has to ask again")]
    Expired(String),
    /// The new budget is not above the current one or beyond the global policy.
    #[error(
        "the new budget must be above the current ${current} and at most ${max} (the global \
         policy's cap); {value} cents was refused", current = .current.get() / 100, max = .max.get() / 100
    )]
    BudgetOutOfRange {
        /// Cents asked for.
        value: Cents,
        /// Current budget.
        current: Cents,
        /// Largest allowed.
        max: Cents,
    },
    /// A budget decision without a budget, or a budget on a tool call.
    #[error("{0}")]
    Invalid(String),
}

/// An approvals-queue row as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApprovalRow {
    /// The request.
    #[sqlx(flatten)]
    pub record: ApprovalRecord,
    /// A held call or a budget cap.
    #[sqlx(try_from = "String")]
    pub kind: ApprovalKind,
    /// Job.
    pub job_id: Option<String>,
    /// Stored status (a request past its expiry may still read Pending or Approved).
    #[sqlx(try_from = "String")]
    pub status: ApprovalStatus,
    /// For budget caps: the budget asked for or granted; else none.
    pub budget_cents: Option<Cents>,
    /// The mission's budget now.
    pub mission_budget_cents: Cents,
}

/// The result of one op.
#[derive(Debug, Clone)]
pub enum LedgerResult {
    /// The record's seq.
    Audited(i64),
    /// The reservation's outcome.
    Reserve(ReserveResult),
    /// The decision's outcome (boxed: it is the largest).
    Decided(Box<Result<(ApprovalRow, i64), DecideError>>),
    /// An interrupted call settled (its record's seq), or None: it had settled already.
    Interrupted(Option<i64>),
}

type Job = (
    LedgerOp,
    oneshot::Sender<Result<LedgerResult, Arc<DbError>>>,
);

/// Handle to the writer task.
#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Job>,
}

/// Most ops committed together.
const MAX_BATCH: usize = 256;

impl Ledger {
    /// Starts the writer over a repository, sealing records with this key.
    pub fn start(repo: Arc<dyn GatewayStore>, sealer: Sealer) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
                let (ops, replies): (Vec<LedgerOp>, Vec<_>) = jobs.drain(..).unzip();
                let count = ops.len();
                // A batch holds the calls of many missions: when its transaction fails, each
                // op is written again alone, so one op the database refuses fails only itself.
                let retry = (count > 1).then(|| ops.clone());
                match repo.ledger(ops, &sealer).await {
                    Ok(results) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            // The caller may have gone away; its write is committed anyway.
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, ops = count, "gateway write failed");
                        let Some(ops) = retry else {
                            // A batch of one: its own error is the answer.
                            if let Some(reply) = replies.into_iter().next() {
                                let _ = reply.send(Err(Arc::new(e)));
                            }
                            continue;
                        };
                        for (op, reply) in ops.into_iter().zip(replies) {
                            let result = match repo.ledger(vec![op], &sealer).await {
                                Ok(mut results) => results.pop().ok_or_else(|| {
                                    Arc::new(DbError::Corrupt("a write gave no result".into()))
                                }),
                                Err(e) => {
                                    tracing::error!(error = %e, "gateway write failed alone");
                                    Err(Arc::new(e))
                                }
                            };
                            let _ = reply.send(result);
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Applies one op (committed with whatever else is waiting).
    pub async fn apply(&self, op: LedgerOp) -> Result<LedgerResult, Arc<DbError>> {
        let (reply, answer) = oneshot::channel();
        let closed = || Arc::new(DbError::Corrupt("the gateway writer has stopped".into()));
        self.tx.send((op, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}
