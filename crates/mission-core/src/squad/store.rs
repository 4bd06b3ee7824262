//! The storage the squad engine needs: jobs, the outbox of mission events, the inbox of applied
//! events, squad leases and run records. `db` implements it for SQLite and Postgres.

use crate::units::Cents;
use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use strum::{EnumString, IntoStaticStr};

use super::views::MissionView;
use super::Envelope;
use crate::gateway::store::GatewayRepository;
use crate::perimeter::MissionStatus;
use crate::store::{After, DbError};

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, IntoStaticStr, EnumString)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum JobStatus {
    /// Given to its department; no report yet.
    Assigned,
    /// Its department reported; the orchestrator has not applied the report yet.
    Reported,
    /// Finished and applied.
    Done,
    /// Failed, or ended with its mission before it finished.
    Failed,
}

crate::store::stored_word!(JobStatus, "job status");

/// One job: a unit of work given to one department of one mission.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct JobRow {
    /// Job id (UUID v7), assigned by the orchestrator.
    pub job_id: String,
    /// Mission.
    pub mission_id: String,
    /// 0 for the orchestration job; plan steps count from 1.
    pub step: i64,
    /// Department doing it.
    pub dept: i64,
    /// What the step does.
    pub action: String,
    /// The tool the step calls, if any.
    pub tool_id: Option<String>,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// The event that carried the department's report.
    pub report_event_id: Option<String>,
    /// The department's report.
    #[sqlx(json(nullable))]
    pub report: Option<Value>,
    /// What the step's tool call cost.
    pub cost_cents: Cents,
    /// Value the step produced, as its tool reported it.
    pub value_cents: Cents,
    /// When it was assigned.
    pub assigned_at: String,
    /// When it was finished.
    pub finished_at: Option<String>,
}

/// An event as stored: the outbox row and the mission's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StoredEvent {
    /// Order of writing.
    pub seq: i64,
    /// Topic it goes to.
    pub topic: String,
    /// The event.
    #[sqlx(flatten)]
    pub envelope: Envelope,
    /// When the relay published it (or when it was consumed, for events from outside).
    pub published_at: Option<String>,
}

/// The outcome of a finished mission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct RunRecord {
    /// Mission.
    pub mission_id: String,
    /// Template.
    pub template_id: String,
    /// Template version run.
    pub template_version: i64,
    /// Completed, Failed, Expired or Stopped.
    #[sqlx(try_from = "String")]
    pub status: MissionStatus,
    /// Value produced minus gas, in cents.
    pub profit_cents: Cents,
    /// What the mission's tool calls cost, in cents.
    pub gas_cents: Cents,
    /// Tool-call steps used.
    pub steps: i64,
    /// From start to end, in milliseconds.
    pub duration_ms: i64,
    /// Why it did not complete.
    pub failure_reason: Option<String>,
    /// Started at.
    pub started_at: Option<String>,
    /// Ended at.
    pub ended_at: String,
}

/// One write of a squad transaction. Guarded writes make the whole transaction a no-op when
/// their condition does not hold, so a replayed or late event changes nothing.
#[derive(Debug, Clone)]
pub enum SquadOp {
    /// Guard: this consumer has not applied this event before; records that it has.
    Inbox {
        /// Consumer name (mission and department).
        consumer: String,
        /// Event applied.
        event_id: String,
    },
    /// Guard: no job has this mission and step yet; inserts it.
    InsertJob(JobRow),
    /// Guard: the job is Assigned; stores its department's report.
    ReportJob {
        /// Job.
        job_id: String,
        /// The report's event.
        event_id: String,
        /// The report.
        report: Value,
        /// Its cost.
        cost_cents: Cents,
        /// Its value.
        value_cents: Cents,
    },
    /// Guard: the job is Assigned or Reported; finishes it.
    FinishJob {
        /// Job.
        job_id: String,
        /// Done or Failed.
        status: JobStatus,
        /// The report, when it came from outside (kept if one is stored).
        report: Option<Value>,
        /// Cost.
        cost_cents: Cents,
        /// Value.
        value_cents: Cents,
        /// When.
        at: String,
    },
    /// Guard: the mission has not ended; ends it, closes its open jobs and writes its run
    /// record.
    EndMission {
        /// Mission.
        mission_id: String,
        /// Completed, Failed, Expired or Stopped.
        status: MissionStatus,
        /// Why, unless it completed.
        reason: Option<String>,
        /// When.
        at: String,
    },
    /// An event for the relay to publish.
    Publish {
        /// Topic.
        topic: String,
        /// Event.
        envelope: Envelope,
    },
    /// An event that is already on the bus (consumed from outside), kept in the history.
    Record {
        /// Topic.
        topic: String,
        /// Event.
        envelope: Envelope,
        /// When it was consumed.
        at: String,
    },
}

/// The squad engine's storage: jobs, the outbox of mission events, the inbox of applied
/// events, squad leases and run records.
#[async_trait]
pub trait SquadStore: Send + Sync + std::fmt::Debug {
    /// Applies the ops in one transaction if every guard holds; returns false (and writes
    /// nothing) if one does not.
    async fn squad_commit(&self, ops: Vec<SquadOp>) -> Result<bool, DbError>;
    /// Claims every Running or Paused mission that has no live owner (or is this owner's) until
    /// `until`; returns their ids.
    async fn claim_squads(
        &self,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<Vec<String>, DbError>;
    /// Gives a mission's squad up.
    async fn release_squad(&self, mission_id: &str, owner: &str) -> Result<(), DbError>;
    /// A mission's jobs by step.
    async fn jobs(&self, mission_id: &str) -> Result<Vec<JobRow>, DbError>;
    /// Events waiting for the relay, oldest first, of missions this owner has or nobody has.
    async fn unpublished(&self, owner: &str, limit: u32) -> Result<Vec<StoredEvent>, DbError>;
    /// Marks events published.
    async fn mark_published(&self, seqs: &[i64], at: &str) -> Result<(), DbError>;
    /// A mission's events after a seq, oldest first.
    async fn mission_events(
        &self,
        mission_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, DbError>;
    /// A finished mission's run record.
    async fn run_record(&self, mission_id: &str) -> Result<Option<RunRecord>, DbError>;
    /// Missions newest first after `after`, each with its usage, plan progress and run record:
    /// one query whatever the page holds.
    async fn mission_views(
        &self,
        after: Option<&After>,
        limit: u32,
    ) -> Result<Vec<MissionView>, DbError>;
    /// Missions that ended at or before `before` whose Kafka topics are not deleted yet.
    async fn topics_to_delete(&self, before: &str, limit: u32) -> Result<Vec<String>, DbError>;
    /// Records that a mission's topics were deleted.
    async fn topics_deleted(&self, mission_id: &str, at: &str) -> Result<(), DbError>;
    /// Deletes a mission's tokens (one department's, or all); returns how many.
    async fn revoke_tokens(&self, mission_id: &str, dept: Option<i64>) -> Result<u64, DbError>;
}

/// Everything the squad engine reads and writes: its own storage and the gateway's.
pub trait EngineRepository: SquadStore + GatewayRepository {}

impl<T: SquadStore + GatewayRepository + ?Sized> EngineRepository for T {}
