//! The built-in department agent: verifies its context, then does each job given to its
//! department by calling the gateway, and reports the outcome.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::bus::{mission_topic, BusError, Envelope, MissionStream};
use super::context::{ContextError, MissionContext};
use super::contract::{kind, Assignment};
use super::engine::{AgentExit, Inner, SquadError};
use super::store::{JobStatus, SquadOp};
use crate::gateway::{ApprovalStatus, CallOutcome, GatewayError, RefusalCode, ToolCall};
use crate::perimeter::MissionStatus;
use crate::units::Cents;

/// A built-in department agent: verifies its context, then does each job given to its
/// department by calling the gateway, and reports the outcome.
pub(super) struct Agent {
    inner: Arc<Inner>,
    mission_id: String,
    dept: i64,
    /// The department's gateway token, handed over in process (never through Kafka).
    token: String,
    context: Option<MissionContext>,
    seen: HashSet<String>,
}

/// How a job came out, as reported.
pub(super) enum Outcome {
    Done {
        report: Value,
        cost_cents: Cents,
        value_cents: Cents,
    },
    Failed {
        code: String,
        message: String,
    },
    /// The mission ended while the job waited; nothing to report.
    Abandoned,
}

impl Agent {
    pub(super) fn new(inner: Arc<Inner>, mission_id: &str, dept: i64, token: String) -> Self {
        Self {
            inner,
            mission_id: mission_id.to_owned(),
            dept,
            token,
            context: None,
            seen: HashSet::new(),
        }
    }

    pub(super) async fn run(mut self, stream: MissionStream) -> Result<AgentExit, SquadError> {
        loop {
            let event = match stream.next().await {
                Ok(received) => received.envelope,
                Err(e @ BusError::Malformed { .. }) => {
                    tracing::warn!(error = %e, "agent dropped a malformed event");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "agent could not read its topic");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            // Redelivered events are dropped by id.
            if !self.seen.insert(event.event_id.clone()) {
                continue;
            }
            match event.kind.as_str() {
                kind::CONTEXT => {
                    let checked = serde_json::from_value::<MissionContext>(event.payload.clone())
                        .map_err(|e| ContextError::Malformed(e.to_string()))
                        .and_then(|c| c.verify(&self.mission_id, self.dept).map(|()| c));
                    match checked {
                        Ok(context) => self.context = Some(context),
                        Err(e) => {
                            self.refuse(&event, &e).await?;
                            return Ok(AgentExit::ContextRefused(e));
                        }
                    }
                }
                kind::JOB_ASSIGNED => {
                    // Nothing is acted on before a context verifies.
                    let Some(context) = self.context.clone() else {
                        continue;
                    };
                    let Ok(job) = serde_json::from_value::<Assignment>(event.payload.clone())
                    else {
                        continue;
                    };
                    if job.dept == self.dept {
                        self.work(&context, &event.job_id, &job).await?;
                    }
                }
                _ => {}
            }
        }
    }

    pub(super) async fn refuse(
        &self,
        event: &Envelope,
        error: &ContextError,
    ) -> Result<(), SquadError> {
        tracing::warn!(mission = %self.mission_id, dept = self.dept, error = %error, "agent refused its context");
        self.publish(
            &event.job_id,
            kind::CONTEXT_REFUSED,
            json!({ "code": error.code(), "reason": error.to_string(), "context_event_id": event.event_id }),
        )
        .await
    }

    pub(super) async fn publish(
        &self,
        job_id: &str,
        kind: &str,
        payload: Value,
    ) -> Result<(), SquadError> {
        let event = Envelope::new(&self.mission_id, job_id, self.dept, kind, payload);
        self.inner
            .commit(
                &self.mission_id,
                vec![SquadOp::Publish {
                    topic: mission_topic(&self.mission_id),
                    envelope: event,
                }],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn work(
        &self,
        context: &MissionContext,
        job_id: &str,
        job: &Assignment,
    ) -> Result<(), SquadError> {
        // A job already reported (before a restart, or assigned twice) is not done again.
        let stored = self.inner.repo.jobs(&self.mission_id).await?;
        if !stored
            .iter()
            .any(|j| j.job_id == job_id && j.status == JobStatus::Assigned)
        {
            return Ok(());
        }
        match self.execute(context, job_id, job).await? {
            Outcome::Done {
                report,
                cost_cents,
                value_cents,
            } => {
                let event = Envelope::new(
                    &self.mission_id,
                    job_id,
                    self.dept,
                    kind::JOB_RESULT,
                    report.clone(),
                );
                self.inner
                    .commit(
                        &self.mission_id,
                        vec![
                            SquadOp::ReportJob {
                                job_id: job_id.to_owned(),
                                event_id: event.event_id.clone(),
                                report,
                                cost_cents,
                                value_cents,
                            },
                            SquadOp::Publish {
                                topic: mission_topic(&self.mission_id),
                                envelope: event,
                            },
                        ],
                    )
                    .await?;
            }
            Outcome::Failed { code, message } => {
                self.publish(
                    job_id,
                    kind::JOB_FAILED,
                    json!({ "step": job.step, "tool": job.tool, "code": code, "message": message }),
                )
                .await?;
            }
            Outcome::Abandoned => {}
        }
        Ok(())
    }

    pub(super) async fn execute(
        &self,
        context: &MissionContext,
        job_id: &str,
        job: &Assignment,
    ) -> Result<Outcome, SquadError> {
        let Some(tool) = &job.tool else {
            return Ok(Outcome::Done {
                report: json!({ "step": job.step, "action": job.action, "tool": null,
                                "note": "done by the department without a tool call",
                                "cost_cents": 0, "value_cents": 0 }),
                cost_cents: Cents::ZERO,
                value_cents: Cents::ZERO,
            });
        };
        if !context.allowed_tools.contains(tool) {
            return Ok(Outcome::Failed {
                code: "tool_not_allowed".to_owned(),
                message: format!("{tool} is not among the ruleset's allowed tools"),
            });
        }
        let call = ToolCall {
            token: self.token.clone(),
            tool_id: tool.clone(),
            args: json!({ "step": job.step, "action": job.action }),
            job_id: Some(job_id.to_owned()),
            mission_id: Some(self.mission_id.clone()),
            // A job calls its tool once: after a crash, the job done again gets the recorded
            // outcome instead of a second run and charge.
            idempotency_key: Some(format!("job:{job_id}")),
        };
        let mut waiting_for: Option<String> = None;
        loop {
            match self.inner.gateway.invoke(call.clone()).await {
                Ok(CallOutcome::Executed(done)) => {
                    let value_cents = Cents(
                        done.output
                            .get("value_cents")
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                    );
                    return Ok(Outcome::Done {
                        report: json!({
                            "step": job.step, "action": job.action, "tool": tool,
                            "output": done.output, "cost_cents": done.cost_cents,
                            "value_cents": value_cents, "mission_step": done.step,
                            "authorized_by": done.authorized_by, "audit_seq": done.audit_seq,
                        }),
                        cost_cents: done.cost_cents,
                        value_cents,
                    });
                }
                Ok(CallOutcome::Waiting(waiting)) => {
                    self.publish(
                        job_id,
                        kind::JOB_WAITING,
                        json!({ "step": job.step, "tool": tool, "approval_id": waiting.approval_id,
                                "reason": waiting.reason, "expires_at": waiting.expires_at }),
                    )
                    .await?;
                    match self.await_approval(&waiting.approval_id).await? {
                        Some(ApprovalStatus::Approved) => continue,
                        Some(ApprovalStatus::Denied) => {
                            return Ok(Outcome::Failed {
                                code: "approval_denied".to_owned(),
                                message: format!("a reviewer denied the call to {tool}"),
                            })
                        }
                        Some(_) => {
                            return Ok(Outcome::Failed {
                                code: "approval_expired".to_owned(),
                                message: format!(
                                    "the approval request for {tool} expired before a decision"
                                ),
                            })
                        }
                        None => return Ok(Outcome::Abandoned),
                    }
                }
                Err(GatewayError::Refused(refusal))
                    if matches!(
                        refusal.code,
                        RefusalCode::BudgetExhausted
                            | RefusalCode::MissionNotActive
                            | RefusalCode::BudgetReserved
                    ) =>
                {
                    // Paused (at the budget cap, for a human) or briefly short of budget:
                    // wait for the mission to run again, or for it to end.
                    if waiting_for.as_deref() != Some(refusal.message.as_str()) {
                        self.publish(
                            job_id,
                            kind::JOB_WAITING,
                            json!({ "step": job.step, "tool": tool, "reason": refusal.message }),
                        )
                        .await?;
                        waiting_for = Some(refusal.message.clone());
                    }
                    if !self.await_running().await? {
                        return Ok(Outcome::Abandoned);
                    }
                }
                Err(GatewayError::Refused(refusal))
                    if refusal.code == RefusalCode::CallInProgress =>
                {
                    // The job's call from before a restart is still settling (or is about to
                    // be recovered): ask again for its outcome.
                    if waiting_for.as_deref() != Some(refusal.message.as_str()) {
                        waiting_for = Some(refusal.message.clone());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(GatewayError::Refused(refusal)) => {
                    return Ok(Outcome::Failed {
                        code: refusal.code.as_str().to_owned(),
                        message: refusal.message,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether the mission has not ended.
    pub(super) async fn still_on(&self) -> Result<Option<MissionStatus>, SquadError> {
        let usage = self.inner.repo.mission_usage(&self.mission_id).await?;
        Ok(usage
            .map(|u| u.status)
            .filter(|s| matches!(s, MissionStatus::Running | MissionStatus::Paused)))
    }

    /// Waits for a reviewer; None if the mission ended meanwhile.
    pub(super) async fn await_approval(
        &self,
        approval_id: &str,
    ) -> Result<Option<ApprovalStatus>, SquadError> {
        let mut decisions = self.inner.gateway.subscribe();
        loop {
            match self
                .inner
                .gateway
                .approval(approval_id)
                .await?
                .map(|a| a.status)
            {
                Some(ApprovalStatus::Pending) => {}
                Some(status) => return Ok(Some(status)),
                None => return Ok(Some(ApprovalStatus::Expired)),
            }
            if self.still_on().await?.is_none() {
                return Ok(None);
            }
            wait_for_news(&mut decisions).await;
        }
    }

    /// Waits for the mission to run again; false if it ended.
    pub(super) async fn await_running(&self) -> Result<bool, SquadError> {
        let mut decisions = self.inner.gateway.subscribe();
        loop {
            match self.still_on().await? {
                Some(MissionStatus::Running) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Ok(true);
                }
                Some(_) => wait_for_news(&mut decisions).await,
                None => return Ok(false),
            }
        }
    }
}

/// How long a waiting agent goes without looking again when nothing is announced: decisions
/// taken in this process wake it at once; one taken by another process on the same database
/// is seen within this.
const RECHECK: Duration = Duration::from_secs(5);

/// Waits until the gateway announces something (a decision, a budget) or [`RECHECK`] passes.
async fn wait_for_news(
    events: &mut tokio::sync::broadcast::Receiver<crate::gateway::GatewayEvent>,
) {
    let _ = tokio::time::timeout(RECHECK, events.recv()).await;
}
