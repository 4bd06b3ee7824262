//! The invoke pipeline: every tool call passes these checks in order — token, mission state and
//! time to live, arguments, tool, sector authorization, host allowlist, price — then the
//! atomic reservation with the approval gate, execution, settlement and the audit record.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::authz::Authority;
use super::dispatch::{Actor, CallerError, Done, Request};
use super::ledger::{Gate, LedgerOp, LedgerResult, Reserve, ReserveResult};
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

/// Longest tool, job or mission id a call may name.
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
        let checked = check_caller(&call, &token)
            .and_then(|()| check_running(&token, &draft.ts))
            .and_then(|()| canonical_args(&call.args));
        let args = match checked {
            Ok(args) => args,
            Err((code, message)) => return self.refuse(draft, code, message).await,
        };
        let args_hash = hex::encode(Sha256::digest(args.as_bytes()));
        draft.args_hash = Some(args_hash.clone());
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
                Cents::ZERO,
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
}
