//! Dept 1, the orchestrator: hands out one job per plan step and applies each department's
//! report exactly once, ending the mission when the plan is done or a step fails.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::bus::{mission_topic, BusError, Envelope, MissionStream};
use super::contract::kind;
use super::engine::{Inner, Plan, SquadError};
use super::lifecycle::*;
use super::store::{JobStatus, SquadOp};
use crate::perimeter::MissionStatus;
use crate::units::Cents;

/// Dept 1: sequences the plan's jobs, one department task at a time, and ends the mission.
pub(super) struct Orchestrator {
    pub(super) inner: Arc<Inner>,
    pub(super) plan: Arc<Plan>,
    pub(super) orchestration: String,
    pub(super) consumer: String,
}

impl Orchestrator {
    pub(super) fn mission(&self) -> &str {
        &self.plan.mission_id
    }

    /// Now, on the engine's clock.
    fn at(&self) -> String {
        now(&*self.inner.options.clock)
    }

    /// The job for plan step `step` (from 1), or the mission's completion if there is none.
    pub(super) fn next(&self, step: i64) -> Vec<SquadOp> {
        let index = usize::try_from(step - 1).unwrap_or(usize::MAX);
        match self.plan.template.ruleset.plan.get(index) {
            Some(s) => assignment_ops(
                new_job(
                    self.mission(),
                    step,
                    i64::from(s.dept),
                    &s.action,
                    s.tool.clone(),
                    &self.at(),
                ),
                true,
            ),
            None => ending(
                self.mission(),
                &self.orchestration,
                MissionStatus::Completed,
                None,
                &self.at(),
            ),
        }
    }

    pub(super) async fn first_job(&self) -> Result<(), SquadError> {
        self.inner.commit(self.mission(), self.next(1)).await?;
        Ok(())
    }

    /// After a restart: apply reports already stored, and hand out again every job still
    /// waiting for its department (its earlier assignment may have been lost with the broker).
    pub(super) async fn resume(&self) -> Result<(), SquadError> {
        let jobs = self.inner.repo.jobs(self.mission()).await?;
        for job in jobs.iter().filter(|j| j.step > 0) {
            match job.status {
                JobStatus::Reported => {
                    if let (Some(event_id), Some(report)) = (&job.report_event_id, &job.report) {
                        let envelope = Envelope {
                            event_id: event_id.clone(),
                            mission_id: job.mission_id.clone(),
                            job_id: job.job_id.clone(),
                            dept: job.dept,
                            kind: kind::JOB_RESULT.to_owned(),
                            ts: self.at(),
                            payload: report.clone(),
                        };
                        self.handle(&envelope).await?;
                    }
                }
                JobStatus::Assigned => {
                    self.inner
                        .commit(self.mission(), assignment_ops(job.clone(), false))
                        .await?;
                }
                JobStatus::Done | JobStatus::Failed => {}
            }
        }
        if jobs.len() == 1 {
            // The squad was assembled but no job was handed out before the crash.
            self.first_job().await?;
        }
        Ok(())
    }

    pub(super) async fn run(self, stream: MissionStream) -> Result<(), SquadError> {
        loop {
            match stream.next().await {
                Ok(received) => self.handle(&received.envelope).await?,
                Err(e @ BusError::Malformed { .. }) => {
                    tracing::warn!(error = %e, "orchestrator dropped a malformed event");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "orchestrator could not read its topic");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Applies one report, exactly once.
    pub(super) async fn handle(&self, event: &Envelope) -> Result<(), SquadError> {
        if event.mission_id != self.mission() {
            return Ok(());
        }
        let mut ops = vec![
            SquadOp::Inbox {
                consumer: self.consumer.clone(),
                event_id: event.event_id.clone(),
            },
            SquadOp::Record {
                topic: mission_topic(self.mission()),
                envelope: event.clone(),
                at: self.at(),
            },
        ];
        match event.kind.as_str() {
            kind::JOB_RESULT | kind::JOB_FAILED => {
                let jobs = self.inner.repo.jobs(self.mission()).await?;
                let Some(job) = jobs.iter().find(|j| j.job_id == event.job_id && j.step > 0) else {
                    tracing::warn!(job = %event.job_id, "report for a job this mission does not have");
                    return Ok(());
                };
                if job.dept != event.dept {
                    tracing::warn!(job = %job.job_id, dept = event.dept, "report from a department the job was not given to");
                    return Ok(());
                }
                let cents = |field: &str| {
                    Cents(
                        event
                            .payload
                            .get(field)
                            .and_then(Value::as_i64)
                            .unwrap_or(0),
                    )
                };
                if event.kind == kind::JOB_RESULT {
                    ops.push(SquadOp::FinishJob {
                        job_id: job.job_id.clone(),
                        status: JobStatus::Done,
                        report: Some(event.payload.clone()),
                        cost_cents: cents("cost_cents"),
                        value_cents: cents("value_cents"),
                        at: self.at(),
                    });
                    ops.extend(self.next(job.step + 1));
                } else {
                    let code = event
                        .payload
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("tool_failed");
                    let message = event
                        .payload
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given");
                    let status = match code {
                        "steps_exhausted" | "budget_exhausted" | "approval_denied" => {
                            MissionStatus::Stopped
                        }
                        "mission_expired" => MissionStatus::Expired,
                        _ => MissionStatus::Failed,
                    };
                    ops.push(SquadOp::FinishJob {
                        job_id: job.job_id.clone(),
                        status: JobStatus::Failed,
                        report: Some(event.payload.clone()),
                        cost_cents: Cents::ZERO,
                        value_cents: Cents::ZERO,
                        at: self.at(),
                    });
                    let reason = format!(
                        "step {} ({}) by dept {}: {code}: {message}",
                        job.step,
                        job.tool_id.as_deref().unwrap_or("no tool"),
                        job.dept
                    );
                    ops.extend(ending(
                        self.mission(),
                        &self.orchestration,
                        status,
                        Some(reason),
                        &self.at(),
                    ));
                }
            }
            kind::CONTEXT_REFUSED => {
                let why = event
                    .payload
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("its context did not verify");
                ops.extend(ending(
                    self.mission(),
                    &self.orchestration,
                    MissionStatus::Failed,
                    Some(format!("dept {} refused its context: {why}", event.dept)),
                    &self.at(),
                ));
            }
            kind::JOB_WAITING => {}
            // The orchestrator's own announcements.
            _ => return Ok(()),
        }
        self.inner.commit(self.mission(), ops).await?;
        Ok(())
    }
}
