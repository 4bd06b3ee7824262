//! The invoke pipeline: every tool call passes these checks in order — token, mission state and
//! time to live, arguments, tool, sector authorization, host allowlist, price — then the
//! atomic reservation with the approval gate, execution, settlement and the audit record.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::authz::Authority;
use super::dispatch::{Actor, CallerError, Done, Request};
use super::ledger::{
    CallKey, CallRecord, CallState, Gate, Interrupt, LedgerOp, LedgerResult, RecordedOutcome,
    Reserve, ReserveResult, Settle,
};
use super::store::{MissionRow, TokenRow};
use super::tools::{self, Execution};
use super::types::refusal;
use super::{
    hash_token, timestamp, CallOutcome, Executed, Gateway, GatewayError, GatewayEvent, RefusalCode,
    ToolCall, Waiting,
};
use crate::audit::{AuditDecision, AuditDraft, Operation};
use crate::catalog::Tool;
use crate::perimeter::MissionStatus;
use crate::registry::{ApprovalMode, RiskLevel};
use crate::store::DbError;
use crate::units::Cents;

/// Largest accepted arguments, as canonical JSON.
pub const MAX_ARGS_BYTES: usize = 64 * 1024;

/// Longest tool, job or mission id (or idempotency key) a call may name.
pub const MAX_ID_CHARS: usize = 200;

/// Text with its control characters spelled out (`\u{0}`), and cut at `MAX_ID_CHARS`.
fn printable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_ID_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A refusal found before anything is reserved: its code and what to tell the caller.
type Refused = (RefusalCode, String);

/// The call's ids can be taken as they are, and the mission it names is its token's.
fn check_caller(call: &ToolCall, token: &TokenRow) -> Result<(), Refused> {
    if let Some(message) = malformed(call) {
        return Err((RefusalCode::MalformedCall, message));
    }
    match call
        .mission_id
        .as_deref()
        .filter(|m| *m != token.mission_id)
    {
        Some(claimed) => Err((
            RefusalCode::Unauthenticated,
            format!(
                "the token is bound to mission {}, not to mission {claimed}",
                token.mission_id
            ),
        )),
        None => Ok(()),
    }
}

/// The token's mission runs and its time to live has not passed at `now`.
fn check_running(token: &TokenRow, now: &str) -> Result<(), Refused> {
    if token.status != MissionStatus::Running {
        let message = format!("the mission is {}, not Running", token.status.as_str());
        return Err((RefusalCode::MissionNotActive, message));
    }
    match token.expires_at.as_deref().filter(|e| *e <= now) {
        Some(expires) => Err((
            RefusalCode::MissionExpired,
            format!("the mission's time to live ended at {expires}"),
        )),
        None => Ok(()),
    }
}

/// The arguments as canonical JSON: an object of at most `MAX_ARGS_BYTES`.
fn canonical_args(args: &Value) -> Result<String, Refused> {
    match serde_json_canonicalizer::to_string(args) {
        Ok(a) if a.len() <= MAX_ARGS_BYTES && args.is_object() => Ok(a),
        Ok(_) => Err((
            RefusalCode::InvalidArguments,
            format!("arguments must be a JSON object of at most {MAX_ARGS_BYTES} bytes"),
        )),
        Err(e) => Err((
            RefusalCode::InvalidArguments,
            format!("arguments cannot be canonicalised: {e}"),
        )),
    }
}

/// Why a call's ids cannot be taken as they are, checked before anything else looks at them:
/// longer than `MAX_ID_CHARS`, or holding a control character such as NUL, which one backend
/// would refuse to store and the other would keep; both refuse it here instead.
fn malformed(call: &ToolCall) -> Option<String> {
    let ids = [
        ("tool id", Some(call.tool_id.as_str())),
        ("job id", call.job_id.as_deref()),
        ("mission id", call.mission_id.as_deref()),
        ("idempotency key", call.idempotency_key.as_deref()),
    ];
    ids.into_iter().find_map(|(name, id)| {
        let id = id?;
        if id.chars().count() > MAX_ID_CHARS {
            return Some(format!(
                "the {name} is longer than {MAX_ID_CHARS} characters"
            ));
        }
        id.chars().find(|c| c.is_control()).map(|c| {
            format!(
                "the {name} {} holds the control character {}; ids are printable text",
                printable(id),
                c.escape_unicode()
            )
        })
    })
}

impl Gateway {
    pub(super) async fn refuse(
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

    /// Why the mission's approval mode holds this call for a human, if it does.
    pub(super) fn gate_reason(mission: &MissionRow, tool: &Tool, cost: Cents) -> Option<String> {
        match mission.approval_mode {
            ApprovalMode::Strict if tool.side_effects => {
                Some(format!("Strict mode: {} has side effects", tool.name))
            }
            ApprovalMode::Threshold => {
                let threshold = mission.threshold_cents.unwrap_or(Cents::ZERO);
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
        E: CallerError,
    {
        let token_hash = hash_token(&call.token);
        let actor = Actor::Agent(token_hash[..12].to_owned());
        let claimed = call.mission_id.clone();
        let request = Request::new(&actor, Operation::ToolInvoke).on(claimed.as_deref());
        let checked = async { self.checked_call(call, token_hash).await.map_err(E::from) };
        self.audited(request, checked, |outcome: &CallOutcome| {
            Done::recorded(match outcome {
                CallOutcome::Executed(e) => e.audit_seq,
                CallOutcome::Waiting(w) => w.audit_seq,
            })
        })
        .await
    }

    pub(super) async fn checked_call(
        &self,
        call: ToolCall,
        token_hash: String,
    ) -> Result<CallOutcome, GatewayError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        // The record shows the ids as they came, control characters spelled out, so even a
        // malformed call's record is one every backend can store.
        let mut draft = AuditDraft {
            ts: timestamp(now),
            job_id: call.job_id.as_deref().map(printable),
            caller: format!("token:{}", &token_hash[..12]),
            action: Some(Operation::ToolInvoke.as_str().to_owned()),
            tool_id: Some(printable(&call.tool_id)),
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
        // 2. The call fits its token, the mission runs and its time to live has not passed. A
        //    mission that is over keeps nothing in the gateway's memory.
        if token.status.is_over() {
            self.forget_mission(&token.mission_id);
        }
        let args = match check_caller(&call, &token).and_then(|()| canonical_args(&call.args)) {
            Ok(args) => args,
            Err((code, message)) => return self.refuse(draft, code, message).await,
        };
        let args_hash = hex::encode(Sha256::digest(args.as_bytes()));
        draft.args_hash = Some(args_hash.clone());
        // A repeated key gets its first call's outcome whatever has changed since (the mission
        // may have ended meanwhile): it asks what happened, not for the tool to run.
        let call_key = match &call.idempotency_key {
            Some(key) => {
                let stored = format!("key:{key}");
                if let Some(record) = inner.repo.call_record(&token.mission_id, &stored).await? {
                    return self.replay(draft, record, &args_hash).await;
                }
                CallKey {
                    key: stored,
                    keyed: true,
                    tool_id: call.tool_id.clone(),
                    args_hash: args_hash.clone(),
                }
            }
            None => CallKey {
                key: format!("call:{}", Uuid::now_v7()),
                keyed: false,
                tool_id: call.tool_id.clone(),
                args_hash: args_hash.clone(),
            },
        };
        if let Err((code, message)) = check_running(&token, &draft.ts) {
            return self.refuse(draft, code, message).await;
        }
        let Some(tool) = inner.catalog.tool(&call.tool_id) else {
            let message = format!("no tool has the id {}", call.tool_id);
            return self.refuse(draft, RefusalCode::UnknownTool, message).await;
        };
        draft.sector = Some(tool.sector.clone());

        // 3. The caller is one of the mission's departments, the tool is one of its ruleset's
        //    (checked after the sector, whose refusal says more), and the sector authorizes it,
        //    deny by default.
        let mission = self.mission(&token.mission_id).await?;
        if !mission.required_depts.contains(&token.dept) {
            let message = format!(
                "department {} is not part of this mission's squad (departments {})",
                token.dept,
                mission
                    .required_depts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return self
                .refuse(draft, RefusalCode::DeptNotInSquad, message)
                .await;
        }
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
        if !mission.allowed_tools.contains(&tool.id) {
            let message = format!(
                "{} is not in the allowed_tools of {} version {}, which this mission runs",
                tool.id, mission.template_id, mission.template_version
            );
            return self
                .refuse(draft, RefusalCode::ToolNotInRuleset, message)
                .await;
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
        draft.cost_cents = Cents::ZERO;

        // 4–6. Count the step, reserve the cost, and apply the approval mode, atomically.
        let gate = Self::gate_reason(&mission, tool, estimate).map(|reason| Gate {
            approval_id: Uuid::now_v7().to_string(),
            dept: token.dept,
            job_id: call.job_id.clone(),
            tool_id: tool.id.clone(),
            args_hash: args_hash.clone(),
            args,
            reason,
            expires_at: timestamp(now + inner.config.approval_ttl_seconds.to_chrono()),
        });
        let reserved = inner
            .ledger
            .apply(LedgerOp::Reserve(Box::new(Reserve {
                mission_id: mission.id.clone(),
                call: call_key.clone(),
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
            LedgerResult::Reserve(ReserveResult::Repeated(record)) => {
                return self.replay(draft, *record, &args_hash).await;
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
        let (actual, audit, result, outcome) = match execution {
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
                let outcome = RecordedOutcome::Done {
                    output: output.clone(),
                    cost_cents: cost,
                    simulated,
                    authorized_by: authorized_by.clone(),
                    policy_ids: decision.policy_ids.clone(),
                };
                (cost, audit, Ok((output, simulated)), outcome)
            }
            Execution::Failed { message } => (
                Cents::ZERO,
                draft.decided(
                    AuditDecision::Failed,
                    format!("step {step}: authorized by {authorized_by}{approved}; {message}"),
                ),
                Err(message.clone()),
                RecordedOutcome::Failed { message },
            ),
        };
        let seq = match inner
            .ledger
            .apply(LedgerOp::Settle(Box::new(Settle {
                mission_id: mission.id.clone(),
                reserved_cents: estimate,
                actual_cents: actual,
                audit,
                call_key: call_key.key,
                keyed: call_key.keyed,
                outcome,
            })))
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
                replayed: false,
            })),
            Err(message) => Err(refusal(RefusalCode::ToolFailed, message, seq)),
        }
    }

    /// Answers a repeated idempotency key from its journal row: the recorded outcome (after
    /// settling a call whose process died), never a second run or charge. A key sent with
    /// another tool or other arguments is refused: it names one call.
    async fn replay(
        &self,
        draft: AuditDraft,
        record: CallRecord,
        args_hash: &str,
    ) -> Result<CallOutcome, GatewayError> {
        let key = record
            .call_key
            .strip_prefix("key:")
            .unwrap_or(&record.call_key)
            .to_owned();
        if draft.tool_id.as_deref() != Some(record.tool_id.as_str())
            || record.args_hash != args_hash
        {
            let message = format!(
                "the idempotency key {key} belongs to a call to {} with arguments {}…; a key \
                 names one call, so send a new key for a different one",
                record.tool_id,
                &record.args_hash[..record.args_hash.len().min(12)]
            );
            return self
                .refuse(draft, RefusalCode::IdempotencyKeyReused, message)
                .await;
        }
        let record = if record.state == CallState::Running {
            let now = self.inner.clock.now();
            if !self.presumed_dead(&record, now) {
                let message = format!(
                    "the call with idempotency key {key} (step {}) started at {} and has not \
                     finished; send it again for its outcome",
                    record.step, record.reserved_at
                );
                return self
                    .refuse(draft, RefusalCode::CallInProgress, message)
                    .await;
            }
            self.interrupt(record.clone()).await?;
            self.inner
                .repo
                .call_record(&record.mission_id, &record.call_key)
                .await?
                .ok_or_else(|| DbError::Corrupt(format!("call {key} vanished")))?
        } else {
            record
        };
        let outcome = record
            .outcome()?
            .ok_or_else(|| DbError::Corrupt(format!("call {key} settled without an outcome")))?;
        let first = record
            .audit_seq
            .map(|s| format!(" (audit record {s})"))
            .unwrap_or_default();
        let step = record.step;
        match outcome {
            RecordedOutcome::Done {
                output,
                cost_cents,
                simulated,
                authorized_by,
                policy_ids,
            } => {
                let reason = format!(
                    "repeat of idempotency key {key}: the outcome of step {step}{first} is \
                     returned; the tool did not run again and nothing more was charged"
                );
                let seq = self
                    .audit(draft.decided(AuditDecision::Replayed, reason))
                    .await?;
                Ok(CallOutcome::Executed(Executed {
                    output,
                    cost_cents,
                    simulated,
                    step,
                    authorized_by,
                    policy_ids,
                    audit_seq: seq,
                    replayed: true,
                }))
            }
            RecordedOutcome::Failed { message } | RecordedOutcome::Interrupted { message } => {
                let reason = format!(
                    "repeat of idempotency key {key}: step {step}{first} failed and is not run \
                     again: {message}"
                );
                let seq = self
                    .audit(draft.decided(AuditDecision::Replayed, reason.clone()))
                    .await?;
                Err(refusal(RefusalCode::ToolFailed, reason, seq))
            }
        }
    }

    /// Whether a Running call has outlived `call_recovery_seconds`: its process is taken for
    /// dead (a live one settles within the HTTP timeout).
    fn presumed_dead(&self, call: &CallRecord, now: chrono::DateTime<chrono::Utc>) -> bool {
        let deadline = now - self.inner.config.call_recovery_seconds.to_chrono();
        call.reserved_at.as_str() < timestamp(deadline).as_str()
    }

    /// Settles a call whose process stopped between its reservation and its settlement: the
    /// estimate is charged (the tool may have run), the journal says interrupted, and the
    /// audit log has a record. Nothing happens if it settled meanwhile.
    async fn interrupt(&self, call: CallRecord) -> Result<Option<i64>, GatewayError> {
        let now = self.inner.clock.now();
        let message = format!(
            "the process stopped while {} ran (step {}, reserved at {}): whether it took effect \
             is unknown, so its estimate of {} cents is charged and it is not run again",
            call.tool_id, call.step, call.reserved_at, call.reserved_cents
        );
        let sector = self
            .inner
            .catalog
            .tool(&call.tool_id)
            .map(|t| t.sector.clone());
        let audit = AuditDraft {
            ts: timestamp(now),
            mission_id: Some(call.mission_id.clone()),
            caller: "gateway (call recovery)".to_owned(),
            action: Some(Operation::ToolInvoke.as_str().to_owned()),
            tool_id: Some(call.tool_id.clone()),
            args_hash: Some(call.args_hash.clone()),
            sector,
            ..Default::default()
        }
        .decided(AuditDecision::Failed, message.clone());
        match self
            .inner
            .ledger
            .apply(LedgerOp::Interrupt(Box::new(Interrupt {
                call,
                outcome: RecordedOutcome::Interrupted { message },
                audit,
            })))
            .await?
        {
            LedgerResult::Interrupted(seq) => Ok(seq),
            other => Err(DbError::Corrupt(format!("unexpected ledger answer {other:?}")).into()),
        }
    }

    /// Settles every call whose process died between its reservation and its settlement
    /// (older than `call_recovery_seconds`): no cents stay reserved for good, and each has an
    /// audit record. Returns how many it settled. The squad engine runs it with its
    /// supervision; it is safe to run from several processes at once.
    pub async fn recover_calls(&self) -> Result<usize, GatewayError> {
        let now = self.inner.clock.now();
        let before = timestamp(now - self.inner.config.call_recovery_seconds.to_chrono());
        let mut settled = 0;
        loop {
            let stale = self.inner.repo.stale_calls(&before, 200).await?;
            let count = stale.len();
            for call in stale {
                if self.interrupt(call).await?.is_some() {
                    settled += 1;
                }
            }
            if count < 200 {
                return Ok(settled);
            }
        }
    }
}
