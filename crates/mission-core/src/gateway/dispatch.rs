//! The dispatcher: every operation that changes something runs through [`Gateway::audited`]
//! and leaves one signed audit record naming who asked, what, and how it came out — success,
//! refusal, or a failure half-way. It lives beside the ledger because the ledger holds the
//! signing key; the core API and the squad engine both reach it through the gateway.

use std::future::Future;

use super::{timestamp, Gateway, GatewayError};
use crate::audit::{AuditDecision, AuditDraft, Operation};
use crate::codes::ErrorCode;

/// Who asks for an operation, as the audit log names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person at this machine (the OS user), saving, starting, stopping or importing.
    Operator(String),
    /// A person deciding in the approvals queue.
    Reviewer(String),
    /// A department agent, known by the start of its token's hash.
    Agent(String),
    /// An external agent exchanging its one-time code, known by the start of the code's hash.
    CodeHolder(String),
    /// The squad engine acting for the missions it runs.
    Engine,
}

impl Actor {
    /// The OS user at the keyboard.
    pub fn operator() -> Self {
        Self::Operator(operator_name())
    }

    /// How the audit record's caller column names the actor.
    pub fn describe(&self) -> String {
        match self {
            Self::Operator(name) | Self::Reviewer(name) => name.clone(),
            Self::Agent(token) => format!("token:{token}"),
            Self::CodeHolder(code) => format!("exchange code:{code}"),
            Self::Engine => "squad engine".to_owned(),
        }
    }

    /// The name recorded as grantor or reviewer.
    pub fn name(&self) -> String {
        self.describe()
    }
}

/// What the dispatcher needs to know about an operation's error to record it.
pub trait AuditedError {
    /// The stable code, as in the record's reason.
    fn code(&self) -> ErrorCode;
    /// True when the caller was refused; false when the core failed.
    fn is_refusal(&self) -> bool;
    /// The record the operation wrote itself before failing, if it did.
    fn audit_seq(&self) -> Option<i64>;
    /// Remembers the record the dispatcher wrote for it.
    fn set_audit_seq(&mut self, seq: i64);
}

impl AuditedError for GatewayError {
    fn code(&self) -> ErrorCode {
        GatewayError::code(self)
    }

    fn is_refusal(&self) -> bool {
        !matches!(self, Self::Storage(_) | Self::Policy(_))
    }

    fn audit_seq(&self) -> Option<i64> {
        match self {
            Self::Refused(refusal) => Some(refusal.audit_seq),
            _ => None,
        }
    }

    fn set_audit_seq(&mut self, _seq: i64) {}
}

/// What a finished operation did, for its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Done {
    /// The mission it concerned, when it concerned one.
    pub mission_id: Option<String>,
    /// The department it concerned.
    pub dept: Option<i64>,
    /// What happened, in words.
    pub reason: String,
    /// Set when the operation wrote its own record in its own transaction (a tool call, an
    /// approval decision): the dispatcher then writes no second one.
    pub recorded: Option<i64>,
}

impl Done {
    /// An outcome described in words.
    pub fn said(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            ..Self::default()
        }
    }

    /// The same outcome about one mission.
    pub fn on(mut self, mission_id: &str) -> Self {
        self.mission_id = Some(mission_id.to_owned());
        self
    }

    /// An outcome whose record the operation wrote itself.
    pub fn recorded(seq: i64) -> Self {
        Self {
            recorded: Some(seq),
            ..Self::default()
        }
    }
}

/// The operation being dispatched: what it is, who asks, and what it concerns before it runs.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Who asks.
    pub actor: &'a Actor,
    /// What.
    pub operation: Operation,
    /// The mission it concerns, when known before it runs (named in a failure's record).
    pub mission_id: Option<&'a str>,
    /// The department it concerns.
    pub dept: Option<i64>,
}

impl<'a> Request<'a> {
    /// An operation concerning no mission known before it runs.
    pub fn new(actor: &'a Actor, operation: Operation) -> Self {
        Self {
            actor,
            operation,
            mission_id: None,
            dept: None,
        }
    }

    /// The same request concerning a mission (when one is named).
    pub fn on(mut self, mission_id: Option<&'a str>) -> Self {
        self.mission_id = mission_id;
        self
    }

    /// The same request concerning one of the mission's departments.
    pub fn by_dept(mut self, dept: i64) -> Self {
        self.dept = Some(dept);
        self
    }
}

/// The error type a caller of an audited gateway operation gets back: it keeps the seq of the
/// record the failure wrote.
pub trait CallerError: AuditedError + std::fmt::Display + From<GatewayError> {}

impl<E: AuditedError + std::fmt::Display + From<GatewayError>> CallerError for E {}

impl Gateway {
    /// Appends one record to the signed log; returns its seq.
    pub async fn record(&self, draft: AuditDraft) -> Result<i64, GatewayError> {
        self.audit(draft).await
    }

    /// Runs one operation and records its outcome, whatever it is. A refusal and a failure are
    /// recorded with their code; an error the operation recorded itself is not recorded twice.
    /// If the record cannot be written, that is logged: the operation's own answer stands.
    pub async fn audited<T, E, F>(
        &self,
        request: Request<'_>,
        run: F,
        done: impl FnOnce(&T) -> Done,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: AuditedError + std::fmt::Display,
    {
        let result = run.await;
        let now = timestamp(self.inner.clock.now());
        let mut draft = AuditDraft {
            ts: now,
            mission_id: request.mission_id.map(str::to_owned),
            dept: request.dept,
            caller: request.actor.describe(),
            action: Some(request.operation.as_str().to_owned()),
            ..AuditDraft::default()
        };
        match result {
            Ok(value) => {
                let outcome = done(&value);
                if outcome.recorded.is_some() {
                    return Ok(value);
                }
                if outcome.mission_id.is_some() {
                    draft.mission_id = outcome.mission_id;
                }
                draft.dept = outcome.dept.or(draft.dept);
                let draft = draft.decided(AuditDecision::Allowed, outcome.reason);
                if let Err(e) = self.audit(draft).await {
                    tracing::error!(error = %e, operation = request.operation.as_str(), "an operation succeeded but its audit record could not be written");
                }
                Ok(value)
            }
            Err(mut error) => {
                if error.audit_seq().is_some() {
                    return Err(error);
                }
                let decision = if error.is_refusal() {
                    AuditDecision::Denied
                } else {
                    AuditDecision::Failed
                };
                let reason = format!("{}: {error}", error.code().as_str());
                match self.audit(draft.decided(decision, reason)).await {
                    Ok(seq) => error.set_audit_seq(seq),
                    Err(e) => {
                        tracing::error!(error = %e, operation = request.operation.as_str(), "an operation failed and its audit record could not be written either");
                    }
                }
                Err(error)
            }
        }
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
