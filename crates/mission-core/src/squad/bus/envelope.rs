//! The squad's envelope: every event names its mission and job, and the topics that carry one
//! mission's events.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every event on the bus: who it belongs to, what it is, and its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// UUID v7: unique, and ordered by creation time; consumers drop duplicates by it.
    pub event_id: String,
    /// The mission.
    pub mission_id: String,
    /// The job (one per department task, assigned by the orchestrator).
    pub job_id: String,
    /// The department that sent it.
    pub dept: i64,
    /// What happened, e.g. `context`, `step.result`.
    pub kind: String,
    /// When (RFC 3339, UTC).
    pub ts: String,
    /// The content.
    #[sqlx(json)]
    pub payload: Value,
}

impl Envelope {
    /// A new event, stamped now with a fresh id.
    pub fn new(mission_id: &str, job_id: &str, dept: i64, kind: &str, payload: Value) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().to_string(),
            mission_id: mission_id.to_owned(),
            job_id: job_id.to_owned(),
            dept,
            kind: kind.to_owned(),
            ts: crate::gateway::timestamp(chrono::Utc::now()),
            payload,
        }
    }
}

/// The topic that carries one mission's reports to its orchestrator, and nothing else.
pub fn mission_topic(mission_id: &str) -> String {
    format!("mission.{mission_id}")
}

/// The topic that carries one department's context and jobs within one mission: each agent's
/// gateway token travels only on its own department's topic.
pub fn dept_topic(mission_id: &str, dept: i64) -> String {
    format!("mission.{mission_id}.dept-{dept}")
}

/// Whether a topic is one of this mission's.
pub fn belongs_to(topic: &str, mission_id: &str) -> bool {
    let own = mission_topic(mission_id);
    topic == own
        || topic
            .strip_prefix(&own)
            .and_then(|rest| rest.strip_prefix(".dept-"))
            .is_some_and(|dept| !dept.is_empty() && dept.bytes().all(|b| b.is_ascii_digit()))
}

/// An event as consumed, with what its Kafka headers and key said.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The envelope.
    pub envelope: Envelope,
    /// The `mission_id` header.
    pub header_mission_id: String,
    /// The `job_id` header.
    pub header_job_id: String,
    /// The message key.
    pub key: String,
    /// Offset in the mission's topic.
    pub offset: i64,
}
