//! The tool gateway: the one function every tool call passes, whoever makes it. In order:
//! authenticate the caller's token, check the mission is running and inside its time to live,
//! authorize the tool's sector, count the step and reserve the cost atomically, apply the
//! approval mode, execute, settle, and audit. Refusals are audited too, with their reason.

mod approvals;
pub mod authz;
mod clock;
pub mod dispatch;
mod invoke;
pub mod ledger;
pub mod rules;
pub mod store;
mod tokens;
// Private: the executors are reachable only through `Gateway::invoke`, the one path to a tool.
mod tools;
mod types;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::audit::{AuditDraft, ExportedKey, Operation, Sealer};
use crate::catalog::Catalog;
use crate::perimeter::MissionStatus;
use crate::store::DbError;
use store::{GatewayRepository, MissionRow, MissionUsage, TokenRow};

pub use approvals::approvals;
pub use authz::{Authority, AuthzDecision, PolicyError, SectorAuthorizer, BUNDLED_ADMIN_POLICIES};
pub use clock::{local_time, timestamp, Clock, SystemClock};
pub use dispatch::operator_name;
pub use dispatch::{Actor, AuditedError, CallerError, Done, Request};
pub use invoke::MAX_ARGS_BYTES;
pub use ledger::DecideError;
pub use tokens::{hash_token, ExchangedToken, TokenCode};
pub use tools::GatewayConfig;
pub use types::{
    ApprovalDecision, ApprovalItem, ApprovalKind, ApprovalPage, ApprovalRecord, ApprovalStatus,
    CallOutcome, DecideApproval, Executed, GatewayError, GatewayEvent, Refusal, RefusalCode,
    ToolCall, Waiting,
};

use ledger::{Ledger, LedgerOp, LedgerResult};

/// A mission as the gateway decides on its calls: its row and what its pinned template version
/// allows (the tools of its ruleset, the departments of its squad).
#[derive(Debug)]
pub(super) struct Mission {
    row: MissionRow,
    /// `ruleset.allowed_tools` of the pinned version.
    pub(super) allowed_tools: HashSet<String>,
    /// `required_depts` of the pinned version.
    pub(super) required_depts: Vec<i64>,
}

impl std::ops::Deref for Mission {
    type Target = MissionRow;

    fn deref(&self) -> &MissionRow {
        &self.row
    }
}

struct Inner {
    repo: Arc<dyn GatewayRepository>,
    catalog: Arc<Catalog>,
    config: GatewayConfig,
    authz: SectorAuthorizer,
    ledger: Ledger,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    missions: Mutex<HashMap<String, Arc<Mission>>>,
    tokens: Mutex<HashMap<String, (TokenRow, std::time::Instant)>>,
    events: broadcast::Sender<GatewayEvent>,
    /// The public half of the signing key.
    key: ExportedKey,
}

/// The gateway. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// What the gateway is built from.
#[derive(Debug, Clone)]
pub struct GatewayParts {
    /// Storage.
    pub repo: Arc<dyn GatewayRepository>,
    /// Sectors, tools and policy.
    pub catalog: Arc<Catalog>,
    /// Gateway settings.
    pub config: GatewayConfig,
    /// Admin-written Cedar policies.
    pub admin_policies: String,
    /// The audit signing key.
    pub sealer: Sealer,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

impl Gateway {
    /// Builds the policies, registers the signing key's public half and starts the writer.
    pub async fn start(parts: GatewayParts) -> Result<Self, GatewayError> {
        let authz = SectorAuthorizer::new(&parts.catalog, &parts.admin_policies)?;
        let now = timestamp(parts.clock.now());
        let key = ExportedKey {
            key_id: parts.sealer.key_id().to_owned(),
            public_key: parts.sealer.public_key_hex(),
        };
        parts.repo.register_key(&key, &now).await?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DbError::Corrupt(format!("http client: {e}")))?;
        let (events, _) = broadcast::channel(256);
        Ok(Self {
            inner: Arc::new(Inner {
                ledger: Ledger::start(parts.repo.clone(), parts.sealer),
                repo: parts.repo,
                catalog: parts.catalog,
                config: parts.config,
                authz,
                clock: parts.clock,
                http,
                missions: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
                events,
                key,
            }),
        })
    }

    /// The public half of the key it signs audit records with.
    pub fn signing_key(&self) -> ExportedKey {
        self.inner.key.clone()
    }

    /// The sector authorizer (also used on its own by the benchmark).
    pub fn authorizer(&self) -> &SectorAuthorizer {
        &self.inner.authz
    }

    /// Reviewer-facing events: approvals opened and decided, budgets reached.
    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.inner.events.subscribe()
    }

    pub(super) fn emit(&self, event: GatewayEvent) {
        // Nobody listening is fine: the queue itself is the record.
        let _ = self.inner.events.send(event);
    }

    pub(super) async fn mission(&self, id: &str) -> Result<Arc<Mission>, GatewayError> {
        if let Some(found) = self
            .inner
            .missions
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
        {
            return Ok(found);
        }
        let repo = &self.inner.repo;
        let row = repo
            .mission_row(id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(id.to_owned()))?;
        // A pinned version never changes, so its ruleset is read once per mission.
        let template = repo
            .pinned_template(id, &row.template_id, row.template_version)
            .await?;
        let mission = Arc::new(Mission {
            row,
            allowed_tools: template.ruleset.allowed_tools.into_iter().collect(),
            required_depts: template.required_depts.into_iter().map(i64::from).collect(),
        });
        // Only what never changes once a mission runs is read from this cache: sector, mode,
        // threshold, grants, time to live and the pinned ruleset. Status and counters are read
        // per call.
        if mission.status != MissionStatus::Ready {
            if let Ok(mut cache) = self.inner.missions.lock() {
                cache.insert(id.to_owned(), Arc::clone(&mission));
            }
        }
        Ok(mission)
    }

    /// Forgets what is cached about a mission that ended (its rules and its policy set), so
    /// the caches hold only missions that can still call.
    pub fn forget_mission(&self, mission_id: &str) {
        if let Ok(mut cache) = self.inner.missions.lock() {
            cache.remove(mission_id);
        }
        self.inner.authz.forget(mission_id);
    }

    /// How many missions the gateway holds in memory: (rules, policy sets).
    pub fn cached_missions(&self) -> (usize, usize) {
        let rules = self.inner.missions.lock().map_or(0, |cache| cache.len());
        (rules, self.inner.authz.cached_missions())
    }

    pub(super) async fn audit(&self, draft: AuditDraft) -> Result<i64, GatewayError> {
        match self.inner.ledger.apply(LedgerOp::Audit(draft)).await? {
            LedgerResult::Audited(seq) => Ok(seq),
            other => Err(DbError::Corrupt(format!("unexpected ledger answer {other:?}")).into()),
        }
    }

    /// Starts a Ready mission's clock: it runs, and its time to live counts from now. Audited;
    /// it fails with the caller's error type so the audit record of a failure travels with it.
    pub async fn start_mission<E>(&self, actor: &Actor, mission_id: &str) -> Result<MissionUsage, E>
    where
        E: CallerError,
    {
        let request = Request::new(actor, Operation::MissionStart).on(Some(mission_id));
        let start = async { self.start_clock(mission_id).await.map_err(E::from) };
        self.audited(request, start, |usage: &MissionUsage| {
            Done::said(format!(
                "started; its time to live ends at {}",
                usage.expires_at.as_deref().unwrap_or("an unknown time")
            ))
        })
        .await
    }

    /// Starts the clock without an audit record of its own: for operations that record
    /// themselves (a deployment).
    pub(crate) async fn start_clock(&self, mission_id: &str) -> Result<MissionUsage, GatewayError> {
        let repo = &self.inner.repo;
        let usage = repo
            .mission_usage(mission_id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(mission_id.to_owned()))?;
        let row = self.mission(mission_id).await?;
        let now = self.inner.clock.now();
        let expires = now + usage.ttl_seconds.to_chrono();
        if !repo
            .start_mission(&row.id, &timestamp(now), &timestamp(expires))
            .await?
        {
            return Err(GatewayError::MissionState {
                id: mission_id.to_owned(),
                status: usage.status,
                what: "only a Ready mission can be started".to_owned(),
            });
        }
        if let Ok(mut cache) = self.inner.missions.lock() {
            cache.remove(mission_id);
        }
        repo.mission_usage(mission_id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(mission_id.to_owned()))
    }

    /// A mission's counters.
    pub async fn usage(&self, mission_id: &str) -> Result<MissionUsage, GatewayError> {
        self.inner
            .repo
            .mission_usage(mission_id)
            .await?
            .ok_or_else(|| GatewayError::MissionNotFound(mission_id.to_owned()))
    }
}
