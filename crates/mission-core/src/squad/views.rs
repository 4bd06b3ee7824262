//! What the Active Missions view and `missionctl missions` show: each mission with its usage,
//! progress and run record, and its event history in words.

use serde::Serialize;
use serde_json::Value;

use super::contract::kind;
use super::engine::SquadError;
use super::store::{EngineRepository, JobStatus, RunRecord, StoredEvent};
use super::Envelope;
use crate::gateway::store::MissionUsage;
use crate::perimeter::store::MissionStore;
use crate::perimeter::ActiveMission;
use crate::store::{page_size, split_page, After};

/// One mission as the Active Missions view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MissionView {
    /// The saved mission.
    pub mission: ActiveMission,
    /// Steps, spend and time used.
    pub usage: MissionUsage,
    /// Plan steps finished.
    pub steps_done: i64,
    /// Plan steps in the template.
    pub plan_steps: i64,
    /// The outcome, once it ended.
    pub run: Option<RunRecord>,
}

/// One event of a mission's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MissionEvent {
    /// Order of writing.
    pub seq: i64,
    /// Topic.
    pub topic: String,
    /// The event as sent.
    #[serde(flatten)]
    pub event: Envelope,
    /// In words.
    pub summary: String,
    /// False while it waits in the outbox for Kafka.
    pub published: bool,
}

/// A mission with its usage and progress.
pub async fn mission_view<R: EngineRepository + MissionStore + ?Sized>(
    repo: &R,
    mission: ActiveMission,
) -> Result<MissionView, SquadError> {
    let usage = repo
        .mission_usage(&mission.id)
        .await?
        .ok_or_else(|| SquadError::MissionNotFound(mission.id.clone()))?;
    let jobs = repo.jobs(&mission.id).await?;
    let plan_steps = repo
        .version_content(&mission.template_id, mission.template_version)
        .await?
        .and_then(|t| {
            t.pointer("/ruleset/plan")
                .and_then(Value::as_array)
                .map(Vec::len)
        })
        .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    Ok(MissionView {
        steps_done: i64::try_from(
            jobs.iter()
                .filter(|j| j.step > 0 && j.status == JobStatus::Done)
                .count(),
        )
        .unwrap_or(i64::MAX),
        plan_steps,
        run: repo.run_record(&mission.id).await?,
        usage,
        mission,
    })
}

/// One page of the Active Missions list, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MissionPage {
    /// The missions with their usage and progress.
    pub items: Vec<MissionView>,
    /// Cursor of the next (older) page; None when this is the last.
    pub next: Option<String>,
}

/// The missions after `after` (the newest when None), at most `limit` (see
/// [`crate::store::page_size`]), in one query.
pub async fn mission_page<R: EngineRepository + ?Sized>(
    repo: &R,
    after: Option<&After>,
    limit: u32,
) -> Result<MissionPage, SquadError> {
    let size = page_size(limit);
    let rows = repo.mission_views(after, size + 1).await?;
    let (items, next) = split_page(rows, size, |v| After {
        at: v.mission.created_at.clone(),
        id: v.mission.id.clone(),
    });
    Ok(MissionPage { items, next })
}

/// One mission by id.
pub async fn find_mission<R: EngineRepository + MissionStore + ?Sized>(
    repo: &R,
    id: &str,
) -> Result<MissionView, SquadError> {
    let mission = repo
        .mission(id)
        .await?
        .ok_or_else(|| SquadError::MissionNotFound(id.to_owned()))?;
    mission_view(repo, mission).await
}

/// A mission's events after `after_seq`, oldest first.
pub async fn mission_events<R: EngineRepository + ?Sized>(
    repo: &R,
    mission_id: &str,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<MissionEvent>, SquadError> {
    Ok(repo
        .mission_events(mission_id, after_seq, limit)
        .await?
        .into_iter()
        .map(event_view)
        .collect())
}

fn event_view(stored: StoredEvent) -> MissionEvent {
    MissionEvent {
        summary: summarize(&stored.envelope.kind, &stored.envelope.payload),
        seq: stored.seq,
        topic: stored.topic,
        published: stored.published_at.is_some(),
        event: stored.envelope,
    }
}

/// An event in one line.
pub fn summarize(event_kind: &str, payload: &Value) -> String {
    let text = |field: &str| payload.get(field).and_then(Value::as_str).unwrap_or("");
    let number = |field: &str| payload.get(field).and_then(Value::as_i64).unwrap_or(0);
    let tool = match payload.get("tool").and_then(Value::as_str) {
        Some(t) => format!(" with {t}"),
        None => String::new(),
    };
    match event_kind {
        kind::CONTEXT => format!(
            "context for dept {} (logic_hash {})",
            number("dept"),
            text("logic_hash").get(..12).unwrap_or("")
        ),
        kind::CONTEXT_REFUSED => format!("context refused: {}", text("reason")),
        kind::MISSION_STARTED => "squad assembled; the mission started".to_owned(),
        kind::MISSION_ENDED => match payload.get("reason").and_then(Value::as_str) {
            Some(reason) => format!("mission {}: {reason}", text("status")),
            None => format!("mission {}", text("status")),
        },
        kind::JOB_ASSIGNED => format!(
            "step {} to dept {}: {}{tool}",
            number("step"),
            number("dept"),
            text("action").trim_end_matches('.')
        ),
        kind::JOB_RESULT => format!(
            "step {} done{tool}: cost {} ¢, value {} ¢",
            number("step"),
            number("cost_cents"),
            number("value_cents")
        ),
        kind::JOB_WAITING => format!("step {} waits{tool}: {}", number("step"), text("reason")),
        kind::JOB_FAILED => format!(
            "step {} failed{tool}: {}: {}",
            number("step"),
            text("code"),
            text("message")
        ),
        other => other.to_owned(),
    }
}
