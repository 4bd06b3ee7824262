//! The squad engine: assembles each running mission's squad on Kafka, relays the outbox, runs
//! the orchestrator and the built-in department agents, and tears a squad down when its mission
//! ends. Every state change and the events it causes are one database transaction; Kafka only
//! carries them, so a lost broker or a crashed process delays a mission and never corrupts it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;

use super::agent::Agent;
use super::bus::{Bus, BusError};
use super::context::ContextError;
use super::lifecycle::*;
use super::relay::{relay, relay_batch, RelayPass};
use super::store::{EngineRepository, SquadOp};
use crate::codes::ErrorCode;
use crate::gateway::{timestamp, Clock, Gateway, GatewayError, SystemClock};
use crate::perimeter::{MissionStatus, PerimeterError};
use crate::registry::{Perimeter, Template};
use crate::store::DbError;

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
    /// The perimeter was refused.
    #[error(transparent)]
    Perimeter(#[from] PerimeterError),
}

impl SquadError {
    /// The error's code from the core's closed list.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Storage(_) => ErrorCode::Storage,
            Self::Bus(_) => ErrorCode::KafkaUnavailable,
            Self::Gateway(e) => e.code(),
            Self::MissionNotFound(_) => ErrorCode::MissionNotFound,
            Self::Perimeter(e) => e.code(),
        }
    }
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
    /// Where the engine reads the time (leases, time to live, event times); tests move it.
    pub clock: Arc<dyn Clock>,
    /// How long an ended mission's Kafka topics are kept before they are deleted
    /// (`keep_topics_hours` in `config/kafka.json`; 0 deletes them at the next sweep).
    pub keep_topics: chrono::Duration,
    /// Whether the supervisor and the outbox relay run on their own. When false, nothing
    /// happens until the caller steps the engine: [`SquadEngine::poke`] for one round of
    /// supervision, [`SquadEngine::relay_once`] for one batch of the outbox.
    pub autonomous: bool,
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
            // Starting a mission pokes the engine at once; the tick renews claims and notices
            // what other processes changed.
            tick: Duration::from_secs(2),
            gateway_url: None,
            external_depts,
            clock: Arc::new(SystemClock),
            keep_topics: chrono::Duration::hours(
                i64::try_from(super::bus::keep_topics_hours()).unwrap_or(i64::MAX / 3600),
            ),
            autonomous: true,
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
pub(super) struct Plan {
    pub(super) mission_id: String,
    pub(super) template: Template,
    pub(super) template_version: i64,
    pub(super) logic_hash: String,
    pub(super) perimeter: Perimeter,
}

pub(super) struct Inner {
    pub(super) repo: Arc<dyn EngineRepository>,
    pub(super) gateway: Gateway,
    pub(super) bus: Arc<Bus>,
    pub(super) options: EngineOptions,
    pub(super) squads: Mutex<HashMap<String, JoinHandle<()>>>,
    pub(super) topics: Mutex<HashSet<String>>,
    pub(super) relay_wake: Notify,
    pub(super) notices: broadcast::Sender<SquadNotice>,
    /// When the housekeeping sweeps last ran (on the engine's clock).
    pub(super) swept: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
}

/// How often (on the engine's clock) supervision also settles interrupted tool calls and
/// deletes the topics of missions past their keeping time: rarely, so a waiting squad costs
/// next to nothing.
const SWEEP_EVERY: chrono::Duration = chrono::Duration::seconds(30);

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
            swept: Mutex::new(None),
        });
        let tasks = if inner.options.autonomous {
            vec![
                tokio::spawn(supervise(Arc::clone(&inner))),
                tokio::spawn(relay(Arc::clone(&inner))),
            ]
        } else {
            Vec::new()
        };
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

    /// Publishes one batch of the outbox now (the relay's own loop does this when the engine is
    /// autonomous).
    pub async fn relay_once(&self) -> Result<RelayPass, SquadError> {
        relay_batch(&self.inner).await
    }

    /// Picks up newly started missions now instead of at the next tick.
    pub async fn poke(&self) -> Result<(), SquadError> {
        self.inner.tick().await
    }

    /// Runs a built-in agent for one department, with the department's token, from
    /// `from_offset` of its topic, until it stops (as the engine does for each department it
    /// serves).
    pub async fn run_agent(
        &self,
        mission_id: &str,
        dept: i64,
        token: String,
        from_offset: Option<i64>,
    ) -> Result<AgentExit, SquadError> {
        let stream = self.inner.bus.dept_stream(mission_id, dept, from_offset)?;
        Agent::new(Arc::clone(&self.inner), mission_id, dept, token)
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

impl Inner {
    pub(super) fn notify(&self, mission_id: &str) {
        self.relay_wake.notify_one();
        let _ = self.notices.send(SquadNotice {
            mission_id: mission_id.to_owned(),
        });
    }

    pub(super) async fn commit(
        &self,
        mission_id: &str,
        ops: Vec<SquadOp>,
    ) -> Result<bool, SquadError> {
        let applied = self.repo.squad_commit(ops).await?;
        if applied {
            self.notify(mission_id);
        }
        Ok(applied)
    }

    /// One round of supervision: renew and claim, expire, assemble, tear down.
    pub(super) async fn tick(self: &Arc<Self>) -> Result<(), SquadError> {
        let now = self.options.clock.now();
        self.sweep(now).await?;
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
                if end_mission(
                    &*self.repo,
                    &*self.options.clock,
                    &id,
                    MissionStatus::Expired,
                    Some(reason),
                )
                .await?
                {
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

    /// Housekeeping, every [`SWEEP_EVERY`]: calls whose process died between reservation and
    /// settlement hold no cents for good, and ended missions' topics are deleted once kept for
    /// `keep_topics` (Kafka would otherwise keep their events until retention runs out).
    async fn sweep(&self, now: chrono::DateTime<chrono::Utc>) -> Result<(), SquadError> {
        let due = self.swept.lock().map(|mut last| {
            let due = last.is_none_or(|at| now - at >= SWEEP_EVERY);
            if due {
                *last = Some(now);
            }
            due
        });
        if !due.unwrap_or(true) {
            return Ok(());
        }
        self.gateway.recover_calls().await?;
        let kept_until = timestamp(now - self.options.keep_topics);
        for mission in self.repo.topics_to_delete(&kept_until, 50).await? {
            let deleted = self.bus.delete_mission_topics(&mission).await?;
            self.repo.topics_deleted(&mission, &timestamp(now)).await?;
            tracing::info!(mission = %mission, deleted, "ended mission's topics deleted");
        }
        Ok(())
    }

    /// A finished mission's squad: its tokens are revoked and the claim released.
    pub(super) async fn teardown(&self, mission_id: &str) -> Result<(), SquadError> {
        self.repo.revoke_tokens(mission_id, None).await?;
        // Revoked means refused from now on, also by this process's gateway, which keeps
        // nothing more about the mission.
        self.gateway.forget_tokens();
        self.gateway.forget_mission(mission_id);
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
                        &*self.options.clock,
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
}

pub(super) async fn supervise(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(inner.options.tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = inner.tick().await {
            tracing::warn!(error = %e, "squad supervisor");
        }
    }
}
