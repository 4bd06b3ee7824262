//! A mission's life in the store: ending it (with its `mission.ended` event and run record),
//! and the jobs and events the orchestrator writes.

use serde_json::json;

use super::bus::{dept_topic, mission_topic, Envelope};
use super::contract::{kind, Assignment, ORCHESTRATOR_DEPT};
use super::engine::SquadError;
use super::store::{EngineRepository, JobRow, JobStatus, SquadOp};
use crate::gateway::{timestamp, Clock, GatewayError};
use crate::perimeter::MissionStatus;
use crate::units::Cents;

/// Ends a mission now (stopped by a person): its run record is written and its squad is torn
/// down by the engine that runs it.
pub async fn stop_mission(
    repo: &dyn EngineRepository,
    clock: &dyn Clock,
    mission_id: &str,
    by: &str,
) -> Result<(), SquadError> {
    let usage = repo
        .mission_usage(mission_id)
        .await?
        .ok_or_else(|| SquadError::MissionNotFound(mission_id.to_owned()))?;
    let reason = format!("stopped by {by}");
    if !end_mission(
        repo,
        clock,
        mission_id,
        MissionStatus::Stopped,
        Some(reason),
    )
    .await?
    {
        return Err(GatewayError::MissionState {
            id: mission_id.to_owned(),
            status: usage.status,
            what: "only a mission that has not ended can be stopped".to_owned(),
        }
        .into());
    }
    Ok(())
}

/// Ends a mission with its `mission.ended` event; false if it had ended already.
pub(super) async fn end_mission(
    repo: &dyn EngineRepository,
    clock: &dyn Clock,
    mission_id: &str,
    status: MissionStatus,
    reason: Option<String>,
) -> Result<bool, SquadError> {
    let jobs = repo.jobs(mission_id).await?;
    let at = now(clock);
    let mut ops = Vec::new();
    let job_id = match jobs.iter().find(|j| j.step == 0) {
        Some(j) => j.job_id.clone(),
        None => {
            let job = orchestration_job(mission_id, &at);
            let id = job.job_id.clone();
            ops.push(SquadOp::InsertJob(job));
            id
        }
    };
    ops.extend(ending(mission_id, &job_id, status, reason, &at));
    Ok(repo.squad_commit(ops).await?)
}

/// Now, as stored, on the engine's clock.
pub(super) fn now(clock: &dyn Clock) -> String {
    timestamp(clock.now())
}

pub(super) fn orchestration_job(mission_id: &str, at: &str) -> JobRow {
    new_job(
        mission_id,
        0,
        ORCHESTRATOR_DEPT,
        "Sequence the plan's jobs across departments",
        None,
        at,
    )
}

pub(super) fn new_job(
    mission_id: &str,
    step: i64,
    dept: i64,
    action: &str,
    tool: Option<String>,
    at: &str,
) -> JobRow {
    JobRow {
        job_id: uuid::Uuid::now_v7().to_string(),
        mission_id: mission_id.to_owned(),
        step,
        dept,
        action: action.to_owned(),
        tool_id: tool,
        status: JobStatus::Assigned,
        report_event_id: None,
        report: None,
        cost_cents: Cents::ZERO,
        value_cents: Cents::ZERO,
        assigned_at: at.to_owned(),
        finished_at: None,
    }
}

/// The ops that end a mission and announce it.
pub(super) fn ending(
    mission_id: &str,
    orchestration_job: &str,
    status: MissionStatus,
    reason: Option<String>,
    at: &str,
) -> Vec<SquadOp> {
    let event = Envelope::new(
        mission_id,
        orchestration_job,
        ORCHESTRATOR_DEPT,
        kind::MISSION_ENDED,
        json!({ "status": status.as_str(), "reason": reason }),
    );
    vec![
        SquadOp::EndMission {
            mission_id: mission_id.to_owned(),
            status,
            reason,
            at: at.to_owned(),
        },
        SquadOp::Publish {
            topic: mission_topic(mission_id),
            envelope: event,
        },
    ]
}

pub(super) fn assignment_ops(job: JobRow, orchestration: bool) -> Vec<SquadOp> {
    let event = Envelope::new(
        &job.mission_id,
        &job.job_id,
        ORCHESTRATOR_DEPT,
        kind::JOB_ASSIGNED,
        json!(Assignment {
            step: job.step,
            dept: job.dept,
            action: job.action.clone(),
            tool: job.tool_id.clone(),
        }),
    );
    let topic = dept_topic(&job.mission_id, job.dept);
    let mut ops = Vec::new();
    if orchestration {
        ops.push(SquadOp::InsertJob(job));
    }
    ops.push(SquadOp::Publish {
        topic,
        envelope: event,
    });
    ops
}
