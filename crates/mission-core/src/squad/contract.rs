//! The squad's event contract: the kinds of events a mission's topics carry, who orchestrates,
//! and what a job assignment says. External agents speak exactly this.

use serde::{Deserialize, Serialize};

/// Event kinds of the squad contract.
pub mod kind {
    /// The mission context (first message on a department's topic).
    pub const CONTEXT: &str = "context";
    /// An agent refused its context.
    pub const CONTEXT_REFUSED: &str = "context.refused";
    /// The squad started work.
    pub const MISSION_STARTED: &str = "mission.started";
    /// The mission ended.
    pub const MISSION_ENDED: &str = "mission.ended";
    /// A job given to a department.
    pub const JOB_ASSIGNED: &str = "job.assigned";
    /// A department finished its job.
    pub const JOB_RESULT: &str = "job.result";
    /// A department's job waits (for a human, or for budget).
    pub const JOB_WAITING: &str = "job.waiting";
    /// A department's job failed.
    pub const JOB_FAILED: &str = "job.failed";
}

/// Who does the orchestrating: Dept 1.
pub const ORCHESTRATOR_DEPT: i64 = 1;

/// What a job assignment says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Plan step (from 1).
    pub step: i64,
    /// Department that does it.
    pub dept: i64,
    /// What to do.
    pub action: String,
    /// The tool to call, if any.
    pub tool: Option<String>,
}
