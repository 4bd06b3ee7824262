//! The squad engine: assembles each running mission's squad on Kafka, relays the outbox, runs
//! the orchestrator and the built-in department agents, and tears a squad down when its mission
//! ends. Every state change and the events it causes are one database transaction; Kafka only
//! carries them, so a lost broker or a crashed process delays a mission and never corrupts it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};
use tokio::task::{JoinHandle, JoinSet};

use super::bus::{dept_topic, mission_topic, Bus, BusError, Envelope, MissionStream};
use super::context::{ContextError, MissionContext};
use super::store::{EngineRepository, JobRow, JobStatus, SquadOp};
use crate::gateway::{
    timestamp, Actor, ApprovalStatus, CallOutcome, Gateway, GatewayError, RefusalCode, ToolCall,
};
use crate::perimeter::{MissionStatus, PerimeterError};
use crate::registry::{Perimeter, Template};
use crate::store::DbError;

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

/// The squad engine failed.
#[derive(Debug, thiserror::Error)]
pub enum SquadError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] DbError),
    /// Kafka failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The gateway failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// No mission has the id.
    #[error("no mission has the id {0}")]
    MissionNotFound(String),
    /// The mission is not in a state that allows this.
    #[error("mission {id} is {status}; {what}")]
    MissionState {
        /// Mission.
        id: String,
        /// Its status.
        status: String,
        /// What cannot be done.
        what: String,
    },
    /// The perimeter was refused.
    #[error(transparent)]
    Perimeter(#[from] PerimeterError),
}

impl SquadError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Storage(_) => "storage",
            Self::Bus(_) => "kafka",
            Self::Gateway(e) => e.code(),
            Self::MissionNotFound(_) => "mission_not_found",
            Self::MissionState { .. } => "mission_not_active",
            Self::Perimeter(e) => e.code(),
        }
    }
}

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

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// This engine's name in squad leases (unique per running process).
    pub owner: String,
    /// How long a claim on a mission holds without renewal; after a crash, another engine
    /// re-assembles the squad once it runs out.
    pub lease: Duration,
    /// How often leases are renewed, new missions picked up and time limits checked.
    pub tick: Duration,
    /// The gateway's HTTP address, told to agents in their context.
    pub gateway_url: Option<String>,
    /// Departments served by external agents: the engine sends them their context and jobs but
    /// starts no built-in agent for them.
    pub external_depts: Vec<i64>,
}

/// Environment variable listing departments served by external agents (comma-separated).
pub const EXTERNAL_DEPTS_ENV: &str = "MISSION_CONTROL_EXTERNAL_DEPTS";

/// Environment variable that shortens or lengthens the squad lease (seconds).
pub const LEASE_ENV: &str = "MISSION_CONTROL_SQUAD_LEASE_SECONDS";

impl Default for EngineOptions {
    fn default() -> Self {
        let lease = std::env::var(LEASE_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(15);
        // Departments handed to external agents, e.g. "3,8".
        let external_depts = std::env::var(EXTERNAL_DEPTS_ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(|d| d.trim().parse::<i64>().ok())
            .collect();
        Self {
            owner: format!("engine-{}", uuid::Uuid::now_v7()),
            lease: Duration::from_secs(lease),
            tick: Duration::from_millis(500),
            gateway_url: None,
            external_depts,
        }
    }
}

/// A mission's events changed (for views that follow it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquadNotice {
    /// Mission.
    pub mission_id: String,
}

/// Why a built-in agent stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExit {
    /// Its context did not verify; it acted on nothing and reported the refusal.
    ContextRefused(ContextError),
}

/// What an assembled mission runs on: its template version and perimeter.
#[derive(Debug)]
struct Plan {
    mission_id: String,
    template: Template,
    template_version: i64,
    logic_hash: String,
    perimeter: Perimeter,
}

struct Inner {
    repo: Arc<dyn EngineRepository>,
    gateway: Gateway,
    bus: Arc<Bus>,
    options: EngineOptions,
    squads: Mutex<HashMap<String, JoinHandle<()>>>,
    topics: Mutex<HashSet<String>>,
    relay_wake: Notify,
    notices: broadcast::Sender<SquadNotice>,
}

/// The running engine. Dropping it (or [`SquadEngine::abandon`]) stops every task at once, as
/// a crash would; [`SquadEngine::shutdown`] hands its missions back first.
pub struct SquadEngine {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for SquadEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SquadEngine")
            .field("owner", &self.inner.options.owner)
            .finish_non_exhaustive()
    }
}

impl Drop for SquadEngine {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}

impl SquadEngine {
    /// Starts the supervisor (claims running missions and assembles their squads) and the
    /// outbox relay.
    pub fn start(
        repo: Arc<dyn EngineRepository>,
        gateway: Gateway,
        bus: Arc<Bus>,
        options: EngineOptions,
    ) -> Self {
        let (notices, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            repo,
            gateway,
            bus,
            options,
            squads: Mutex::new(HashMap::new()),
            topics: Mutex::new(HashSet::new()),
            relay_wake: Notify::new(),
            notices,
        });
        let tasks = vec![
            tokio::spawn(supervise(Arc::clone(&inner))),
            tokio::spawn(relay(Arc::clone(&inner))),
        ];
        Self {
            inner,
            tasks: Mutex::new(tasks),
        }
    }

    /// The bus it runs on.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.inner.bus
    }

    /// This engine's lease name.
    pub fn owner(&self) -> &str {
        &self.inner.options.owner
    }

    /// Notices of changed missions.
    pub fn subscribe(&self) -> broadcast::Receiver<SquadNotice> {
        self.inner.notices.subscribe()
    }

    /// Picks up newly started missions now instead of at the next tick.
    pub async fn poke(&self) -> Result<(), SquadError> {
        self.inner.tick().await
    }

    /// Runs a built-in agent for one department from `from_offset` of its topic, until it
    /// stops (as the engine does for each department it serves).
    pub async fn run_agent(
        &self,
        mission_id: &str,
        dept: i64,
        from_offset: Option<i64>,
    ) -> Result<AgentExit, SquadError> {
        let stream = self.inner.bus.dept_stream(mission_id, dept, from_offset)?;
        Agent::new(Arc::clone(&self.inner), mission_id, dept)
            .run(stream)
            .await
    }

    /// Aborts every squad; returns the missions they ran.
    fn stop_squads(&self) -> Vec<String> {
        self.inner
            .squads
            .lock()
            .map(|mut squads| {
                squads
                    .drain()
                    .map(|(id, squad)| {
                        squad.abort();
                        id
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn stop_tasks(&self) {
        // A panic elsewhere cannot leave the list half-written, so a poisoned lock is usable.
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
        self.stop_squads();
    }

    /// Stops everything at once without handing missions back, as a crash would: another
    /// engine re-assembles them when the lease runs out.
    pub fn abandon(self) {
        self.stop_tasks();
    }

    /// Stops the squads, publishes what the outbox still holds (for up to `drain`), and hands
    /// the missions back so the next engine re-assembles them at once. The engine does nothing
    /// afterwards.
    pub async fn shutdown(&self, drain: Duration) {
        // The supervisor first (it would assemble them again), the relay last.
        if let Some(supervisor) = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).first() {
            supervisor.abort();
        }
        let owned = self.stop_squads();
        let deadline = tokio::time::Instant::now() + drain;
        while tokio::time::Instant::now() < deadline {
            match self
                .inner
                .repo
                .unpublished(&self.inner.options.owner, 1)
                .await
            {
                Ok(rows) if rows.is_empty() => break,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        for id in owned {
            let _ = self.inner.repo.revoke_tokens(&id, None).await;
            let _ = self
                .inner
                .repo
                .release_squad(&id, &self.inner.options.owner)
                .await;
        }
        self.stop_tasks();
    }
}

/// Ends a mission now (stopped by a person): its run record is written and its squad is torn
/// down by the engine that runs it.
pub async fn stop_mission(
    repo: &dyn EngineRepository,
    mission_id: &str,
    by: &str,
) -> Result<(), SquadError> {
    let usage = repo
        .mission_usage(mission_id)
        .await?
        .ok_or_else(|| SquadError::MissionNotFound(mission_id.to_owned()))?;
    let reason = format!("stopped by {by}");
    if !end_mission(repo, mission_id, MissionStatus::Stopped, Some(reason)).await? {
        return Err(SquadError::MissionState {
            id: mission_id.to_owned(),
            status: usage.status.as_str().to_owned(),
            what: "only a mission that has not ended can be stopped".to_owned(),
        });
    }
    Ok(())
}

/// Ends a mission with its `mission.ended` event; false if it had ended already.
async fn end_mission(
    repo: &dyn EngineRepository,
    mission_id: &str,
    status: MissionStatus,
    reason: Option<String>,
) -> Result<bool, SquadError> {
    let jobs = repo.jobs(mission_id).await?;
    let mut ops = Vec::new();
    let job_id = match jobs.iter().find(|j| j.step == 0) {
        Some(j) => j.job_id.clone(),
        None => {
            let job = orchestration_job(mission_id);
            let id = job.job_id.clone();
            ops.push(SquadOp::InsertJob(job));
            id
        }
    };
    ops.extend(ending(mission_id, &job_id, status, reason));
    Ok(repo.squad_commit(ops).await?)
}

fn now() -> String {
    timestamp(Utc::now())
}

fn orchestration_job(mission_id: &str) -> JobRow {
    new_job(
        mission_id,
        0,
        ORCHESTRATOR_DEPT,
        "Sequence the plan's jobs across departments",
        None,
    )
}

fn new_job(mission_id: &str, step: i64, dept: i64, action: &str, tool: Option<String>) -> JobRow {
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
        cost_cents: 0,
        value_cents: 0,
        assigned_at: now(),
        finished_at: None,
    }
}

/// The ops that end a mission and announce it.
fn ending(
    mission_id: &str,
    orchestration_job: &str,
    status: MissionStatus,
    reason: Option<String>,
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
            at: now(),
        },
        SquadOp::Publish {
            topic: mission_topic(mission_id),
            envelope: event,
        },
    ]
}

fn assignment_ops(job: JobRow, orchestration: bool) -> Vec<SquadOp> {
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

impl Inner {
    fn notify(&self, mission_id: &str) {
        self.relay_wake.notify_one();
        let _ = self.notices.send(SquadNotice {
            mission_id: mission_id.to_owned(),
        });
    }

    async fn commit(&self, mission_id: &str, ops: Vec<SquadOp>) -> Result<bool, SquadError> {
        let applied = self.repo.squad_commit(ops).await?;
        if applied {
            self.notify(mission_id);
        }
        Ok(applied)
    }

    /// One round of supervision: renew and claim, expire, assemble, tear down.
    async fn tick(self: &Arc<Self>) -> Result<(), SquadError> {
        let now = Utc::now();
        let until = now
            + chrono::Duration::from_std(self.options.lease)
                .unwrap_or_else(|_| chrono::Duration::seconds(15));
        let claimed = self
            .repo
            .claim_squads(&self.options.owner, &timestamp(now), &timestamp(until))
            .await?;
        let claimed_set: HashSet<&String> = claimed.iter().collect();
        let gone: Vec<String> = self
            .squads
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|(id, task)| !claimed_set.contains(id) || task.is_finished())
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for id in gone {
            let finished = !claimed_set.contains(&id);
            if let Some(task) = self.squads.lock().ok().and_then(|mut s| s.remove(&id)) {
                task.abort();
            }
            if finished {
                self.teardown(&id).await?;
            }
        }
        let now_text = timestamp(now);
        for id in claimed {
            let usage = self.repo.mission_usage(&id).await?;
            if usage
                .as_ref()
                .and_then(|u| u.expires_at.as_deref())
                .is_some_and(|at| at <= now_text.as_str())
            {
                let reason = "its time to live ran out".to_owned();
                if end_mission(&*self.repo, &id, MissionStatus::Expired, Some(reason)).await? {
                    self.notify(&id);
                }
                continue;
            }
            // Checked and claimed under one lock: a poke and the ticker may run at once.
            if let Ok(mut squads) = self.squads.lock() {
                if !squads.contains_key(&id) {
                    let inner = Arc::clone(self);
                    let mission = id.clone();
                    squads.insert(
                        id,
                        tokio::spawn(async move {
                            if let Err(e) = inner.run_squad(&mission).await {
                                tracing::warn!(mission = %mission, error = %e, "squad stopped; it is re-assembled at the next tick");
                            }
                        }),
                    );
                }
            }
        }
        Ok(())
    }

    /// A finished mission's squad: its tokens are revoked and the claim released.
    async fn teardown(&self, mission_id: &str) -> Result<(), SquadError> {
        self.repo.revoke_tokens(mission_id, None).await?;
        // A mission ended outside the squad (a reviewer refused more budget) still gets its
        // run record.
        if self.repo.run_record(mission_id).await?.is_none() {
            if let Some(usage) = self.repo.mission_usage(mission_id).await? {
                if matches!(
                    usage.status,
                    MissionStatus::Stopped | MissionStatus::Failed | MissionStatus::Expired
                ) {
                    let reason = match usage.status {
                        MissionStatus::Stopped => "stopped at its budget cap by a reviewer",
                        MissionStatus::Expired => "its time to live ran out",
                        _ => "failed outside the squad",
                    };
                    end_mission(
                        &*self.repo,
                        mission_id,
                        usage.status,
                        Some(reason.to_owned()),
                    )
                    .await?;
                }
            }
        }
        self.repo
            .release_squad(mission_id, &self.options.owner)
            .await?;
        self.notify(mission_id);
        tracing::info!(mission = %mission_id, "squad torn down");
        Ok(())
    }

    async fn plan(&self, mission_id: &str) -> Result<Plan, SquadError> {
        let row = self
            .repo
            .mission_row(mission_id)
            .await?
            .ok_or_else(|| SquadError::MissionNotFound(mission_id.to_owned()))?;
        let usage = self
            .repo
            .mission_usage(mission_id)
            .await?
            .ok_or_else(|| SquadError::MissionNotFound(mission_id.to_owned()))?;
        let content = self
            .repo
            .version_content(&row.template_id, row.template_version)
            .await?
            .ok_or_else(|| DbError::Corrupt(format!("mission {mission_id} lost its template")))?;
        let template: Template = serde_json::from_value(content)
            .map_err(|e| DbError::Corrupt(format!("stored template: {e}")))?;
        Ok(Plan {
            mission_id: mission_id.to_owned(),
            logic_hash: template.logic_hash.clone(),
            template_version: row.template_version,
            perimeter: Perimeter {
                budget_cents: usage.budget_cents,
                ttl_seconds: usage.ttl_seconds,
                max_steps: usage.max_steps,
                approval_mode: row.approval_mode,
                threshold_cents: row.threshold_cents,
            },
            template,
        })
    }

    async fn ensure_topic(&self, topic: String) -> Result<(), SquadError> {
        if self
            .topics
            .lock()
            .map(|t| t.contains(&topic))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let topic = self.bus.ensure_topic(topic).await?;
        if let Ok(mut topics) = self.topics.lock() {
            topics.insert(topic);
        }
        Ok(())
    }

    /// Assembles one mission's squad and runs it until the mission ends.
    async fn run_squad(self: &Arc<Self>, mission_id: &str) -> Result<(), SquadError> {
        let plan = Arc::new(self.plan(mission_id).await?);
        let mut depts: Vec<i64> = plan
            .template
            .required_depts
            .iter()
            .map(|d| i64::from(*d))
            .collect();
        if !depts.contains(&ORCHESTRATOR_DEPT) {
            depts.insert(0, ORCHESTRATOR_DEPT);
        }
        self.ensure_topic(mission_topic(mission_id)).await?;
        for dept in &depts {
            self.ensure_topic(dept_topic(mission_id, *dept)).await?;
        }

        // The orchestration job names the mission-level events; it exists once per mission.
        let mut jobs = self.repo.jobs(mission_id).await?;
        let resumed = !jobs.is_empty();
        if !resumed {
            let job = orchestration_job(mission_id);
            let started = Envelope::new(
                mission_id,
                &job.job_id,
                ORCHESTRATOR_DEPT,
                kind::MISSION_STARTED,
                json!({
                    "template_id": plan.template.id,
                    "template_version": plan.template_version,
                    "depts": depts,
                }),
            );
            self.commit(
                mission_id,
                vec![
                    SquadOp::InsertJob(job),
                    SquadOp::Publish {
                        topic: mission_topic(mission_id),
                        envelope: started,
                    },
                ],
            )
            .await?;
            jobs = self.repo.jobs(mission_id).await?;
        }
        let orchestration = jobs
            .iter()
            .find(|j| j.step == 0)
            .map(|j| j.job_id.clone())
            .ok_or_else(|| {
                DbError::Corrupt(format!("mission {mission_id} has no orchestration job"))
            })?;

        // Fresh tokens and contexts: whatever an earlier assembly handed out stops working.
        self.repo.revoke_tokens(mission_id, None).await?;
        let mut squad = JoinSet::new();
        for dept in &depts {
            let token = self
                .gateway
                .issue_token(&Actor::Engine, mission_id, *dept)
                .await?;
            let context = MissionContext {
                mission_id: mission_id.to_owned(),
                dept: *dept,
                template_id: plan.template.id.clone(),
                template_version: plan.template_version,
                goal: plan.template.goal.clone(),
                ruleset: plan.template.ruleset.clone(),
                perimeter: plan.perimeter.clone(),
                logic_hash: plan.logic_hash.clone(),
                allowed_tools: plan.template.ruleset.allowed_tools.clone(),
                gateway_token: token,
                gateway_url: self.options.gateway_url.clone(),
            };
            let topic = dept_topic(mission_id, *dept);
            let event = Envelope::new(
                mission_id,
                &orchestration,
                ORCHESTRATOR_DEPT,
                kind::CONTEXT,
                serde_json::to_value(&context)
                    .map_err(|e| DbError::Corrupt(format!("context: {e}")))?,
            );
            // The context goes straight to the department's topic (the token must never be
            // stored); the history keeps a copy without the token.
            let offset = self.bus.publish_to(&topic, &event).await?;
            let mut kept = event.clone();
            kept.payload = serde_json::to_value(context.redacted())
                .map_err(|e| DbError::Corrupt(format!("context: {e}")))?;
            self.commit(
                mission_id,
                vec![SquadOp::Record {
                    topic: topic.clone(),
                    envelope: kept,
                    at: now(),
                }],
            )
            .await?;
            if !self.options.external_depts.contains(dept) {
                let stream = self.bus.dept_stream(mission_id, *dept, Some(offset))?;
                let agent = Agent::new(Arc::clone(self), mission_id, *dept);
                squad.spawn(async move {
                    match agent.run(stream).await {
                        Ok(exit) => tracing::warn!(?exit, "agent stopped"),
                        Err(e) => tracing::warn!(error = %e, "agent failed"),
                    }
                });
            }
        }

        let orchestrator = Orchestrator {
            inner: Arc::clone(self),
            plan: Arc::clone(&plan),
            orchestration: orchestration.clone(),
            consumer: format!("orchestrator:{mission_id}"),
        };
        if resumed {
            orchestrator.resume().await?;
        } else {
            orchestrator.first_job().await?;
        }
        let stream = self.bus.mission_stream(mission_id, ORCHESTRATOR_DEPT)?;
        squad.spawn(async move {
            if let Err(e) = orchestrator.run(stream).await {
                tracing::warn!(error = %e, "orchestrator failed");
            }
        });
        tracing::info!(mission = %mission_id, resumed, "squad assembled");
        // Runs until torn down (the supervisor aborts this task, which aborts the squad).
        while squad.join_next().await.is_some() {}
        Ok(())
    }
}

/// Publishes the outbox: events of missions this engine runs (or nobody runs), oldest first.
async fn relay(inner: Arc<Inner>) {
    loop {
        let batch = match inner.repo.unpublished(&inner.options.owner, 500).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay could not read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            let _ =
                tokio::time::timeout(Duration::from_millis(200), inner.relay_wake.notified()).await;
            continue;
        }
        let mut failed = false;
        let topics: HashSet<String> = batch.iter().map(|e| e.topic.clone()).collect();
        for topic in topics {
            if let Err(e) = inner.ensure_topic(topic).await {
                tracing::warn!(error = %e, "outbox relay could not create a topic");
                failed = true;
            }
        }
        let events: Vec<(String, Envelope)> = batch
            .iter()
            .map(|e| (e.topic.clone(), e.envelope.clone()))
            .collect();
        let outcomes = inner.bus.publish_all(&events).await;
        let mut sent = Vec::new();
        let mut missions = HashSet::new();
        for (event, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Ok(_) => {
                    sent.push(event.seq);
                    missions.insert(event.envelope.mission_id.clone());
                }
                Err(e) => {
                    if !failed {
                        tracing::warn!(error = %e, "outbox relay: Kafka is unreachable; events wait in the outbox");
                    }
                    failed = true;
                }
            }
        }
        if !sent.is_empty() {
            if let Err(e) = inner.repo.mark_published(&sent, &now()).await {
                tracing::warn!(error = %e, "outbox relay could not mark events published");
            }
            for mission in missions {
                let _ = inner.notices.send(SquadNotice {
                    mission_id: mission,
                });
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn supervise(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(inner.options.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = inner.tick().await {
            tracing::warn!(error = %e, "squad supervisor");
        }
    }
}

/// Dept 1: sequences the plan's jobs, one department task at a time, and ends the mission.
struct Orchestrator {
    inner: Arc<Inner>,
    plan: Arc<Plan>,
    orchestration: String,
    consumer: String,
}

impl Orchestrator {
    fn mission(&self) -> &str {
        &self.plan.mission_id
    }

    /// The job for plan step `step` (from 1), or the mission's completion if there is none.
    fn next(&self, step: i64) -> Vec<SquadOp> {
        let index = usize::try_from(step - 1).unwrap_or(usize::MAX);
        match self.plan.template.ruleset.plan.get(index) {
            Some(s) => assignment_ops(
                new_job(
                    self.mission(),
                    step,
                    i64::from(s.dept),
                    &s.action,
                    s.tool.clone(),
                ),
                true,
            ),
            None => ending(
                self.mission(),
                &self.orchestration,
                MissionStatus::Completed,
                None,
            ),
        }
    }

    async fn first_job(&self) -> Result<(), SquadError> {
        self.inner.commit(self.mission(), self.next(1)).await?;
        Ok(())
    }

    /// After a restart: apply reports already stored, and hand out again every job still
    /// waiting for its department (its earlier assignment may have been lost with the broker).
    async fn resume(&self) -> Result<(), SquadError> {
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
                            ts: now(),
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

    async fn run(self, stream: MissionStream) -> Result<(), SquadError> {
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
    async fn handle(&self, event: &Envelope) -> Result<(), SquadError> {
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
                at: now(),
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
                let cents = |field: &str| event.payload.get(field).and_then(Value::as_i64);
                if event.kind == kind::JOB_RESULT {
                    ops.push(SquadOp::FinishJob {
                        job_id: job.job_id.clone(),
                        status: JobStatus::Done,
                        report: Some(event.payload.clone()),
                        cost_cents: cents("cost_cents").unwrap_or(0),
                        value_cents: cents("value_cents").unwrap_or(0),
                        at: now(),
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
                        cost_cents: 0,
                        value_cents: 0,
                        at: now(),
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

/// A built-in department agent: verifies its context, then does each job given to its
/// department by calling the gateway, and reports the outcome.
struct Agent {
    inner: Arc<Inner>,
    mission_id: String,
    dept: i64,
    context: Option<MissionContext>,
    seen: HashSet<String>,
}

/// How a job came out, as reported.
enum Outcome {
    Done {
        report: Value,
        cost_cents: i64,
        value_cents: i64,
    },
    Failed {
        code: String,
        message: String,
    },
    /// The mission ended while the job waited; nothing to report.
    Abandoned,
}

impl Agent {
    fn new(inner: Arc<Inner>, mission_id: &str, dept: i64) -> Self {
        Self {
            inner,
            mission_id: mission_id.to_owned(),
            dept,
            context: None,
            seen: HashSet::new(),
        }
    }

    async fn run(mut self, stream: MissionStream) -> Result<AgentExit, SquadError> {
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

    async fn refuse(&self, event: &Envelope, error: &ContextError) -> Result<(), SquadError> {
        tracing::warn!(mission = %self.mission_id, dept = self.dept, error = %error, "agent refused its context");
        let report = Envelope::new(
            &self.mission_id,
            &event.job_id,
            self.dept,
            kind::CONTEXT_REFUSED,
            json!({ "code": error.code(), "reason": error.to_string(), "context_event_id": event.event_id }),
        );
        self.inner
            .commit(
                &self.mission_id,
                vec![SquadOp::Publish {
                    topic: mission_topic(&self.mission_id),
                    envelope: report,
                }],
            )
            .await?;
        Ok(())
    }

    async fn publish(&self, job_id: &str, kind: &str, payload: Value) -> Result<(), SquadError> {
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

    async fn work(
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

    async fn execute(
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
                cost_cents: 0,
                value_cents: 0,
            });
        };
        if !context.allowed_tools.contains(tool) {
            return Ok(Outcome::Failed {
                code: "tool_not_allowed".to_owned(),
                message: format!("{tool} is not among the ruleset's allowed tools"),
            });
        }
        let call = ToolCall {
            token: context.gateway_token.clone(),
            tool_id: tool.clone(),
            args: json!({ "step": job.step, "action": job.action }),
            job_id: Some(job_id.to_owned()),
            mission_id: Some(self.mission_id.clone()),
        };
        let mut waiting_for: Option<String> = None;
        loop {
            match self.inner.gateway.invoke(call.clone()).await {
                Ok(CallOutcome::Executed(done)) => {
                    let value_cents = done
                        .output
                        .get("value_cents")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
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
    async fn still_on(&self) -> Result<Option<MissionStatus>, SquadError> {
        let usage = self.inner.repo.mission_usage(&self.mission_id).await?;
        Ok(usage
            .map(|u| u.status)
            .filter(|s| matches!(s, MissionStatus::Running | MissionStatus::Paused)))
    }

    /// Waits for a reviewer; None if the mission ended meanwhile.
    async fn await_approval(
        &self,
        approval_id: &str,
    ) -> Result<Option<ApprovalStatus>, SquadError> {
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
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the mission to run again; false if it ended.
    async fn await_running(&self) -> Result<bool, SquadError> {
        loop {
            match self.still_on().await? {
                Some(MissionStatus::Running) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Ok(true);
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                None => return Ok(false),
            }
        }
    }
}
