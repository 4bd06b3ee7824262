//! Active missions: drafting and saving a perimeter, starting, deploying, stopping, following a
//! mission's events, and the tokens external agents use.

use crate::units::{Cents, Seconds};
use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::Core;
use crate::audit::Operation;
use crate::error::CoreError;
use crate::gateway::{Actor, Done, ExchangedToken, Request};
use crate::ids::MissionId;
use crate::perimeter::{ActiveMission, MissionDraft, MissionList, SaveMissionRequest, SaveOutcome};
use crate::registry::ApprovalMode;
use crate::squad::store::{JobRow, RunRecord};
use crate::squad::{self, MissionEvent, MissionPage, MissionView};

/// A deployment as the command line states it: anything left out takes the template's
/// default (within the global policy's caps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployRequest {
    /// Template id.
    pub template_id: String,
    /// Budget cap in cents.
    pub budget_cents: Option<Cents>,
    /// Time to live in seconds.
    pub ttl_seconds: Option<Seconds>,
    /// Maximum tool-call steps.
    pub max_steps: Option<i64>,
    /// Approval mode.
    pub approval_mode: Option<ApprovalMode>,
    /// Threshold in cents (Threshold mode).
    pub threshold_cents: Option<Cents>,
    /// Sector connections to grant.
    pub connections: Vec<String>,
}

/// One mission with its jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissionDetail {
    /// The mission, its usage, progress and run record.
    pub mission: MissionView,
    /// Its jobs by step.
    pub jobs: Vec<JobRow>,
}

/// How following a mission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowEnd {
    /// The mission ended with this run record.
    Ended(RunRecord),
    /// The follower stopped first; the mission keeps running for the next engine.
    Interrupted,
}

/// How long a stopping engine keeps publishing what its outbox still holds.
const DRAIN: Duration = Duration::from_secs(10);
/// How often a follower looks for new events when no notice arrives.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

fn said_mission(mission: &ActiveMission, verb: &str) -> Done {
    let p = &mission.perimeter;
    Done::said(format!(
        "{verb} {} v{} (budget {} ¢, {} s, {} steps, {} mode{})",
        mission.template_id,
        mission.template_version,
        p.budget_cents,
        p.ttl_seconds,
        p.max_steps,
        p.approval_mode.as_str(),
        if mission.connections.is_empty() {
            String::new()
        } else {
            format!("; connections {}", mission.connections.join(", "))
        }
    ))
    .on(&mission.id)
}

impl Core {
    /// What the configurator offers for a template's current version.
    pub async fn mission_draft(&self, template_id: &str) -> Result<MissionDraft, CoreError> {
        Ok(self.inner.missions.draft(template_id).await?)
    }

    /// Saves a configured perimeter as an active mission; refuses anything beyond a cap.
    /// Audited, with the actor recorded as the grantor of its connections.
    pub async fn save_mission(
        &self,
        actor: &Actor,
        request: &SaveMissionRequest,
    ) -> Result<SaveOutcome, CoreError> {
        let gateway = self.gateway().await?;
        let audited = Request::new(actor, Operation::MissionSave);
        let save =
            async { Ok::<_, CoreError>(self.inner.missions.save(request, &actor.name()).await?) };
        gateway
            .audited(audited, save, |saved| {
                said_mission(
                    &saved.mission,
                    if saved.created {
                        "saved"
                    } else {
                        "returned the mission already saved for this request:"
                    },
                )
            })
            .await
    }

    /// Saved missions, newest first: the page after `after` (a cursor from the previous page;
    /// the first page when None), at most `limit` (1 to 200).
    pub async fn missions(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<MissionList, CoreError> {
        let after = super::cursor(after)?;
        Ok(self.inner.missions.list(after.as_ref(), limit).await?)
    }

    /// Missions, newest first, with usage, plan progress and run record: the page after
    /// `after`, at most `limit` (1 to 200), read in one query.
    pub async fn mission_views(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<MissionPage, CoreError> {
        let after = super::cursor(after)?;
        Ok(squad::mission_page(self.inner.repo.as_ref(), after.as_ref(), limit).await?)
    }

    /// One mission with usage, progress and run record.
    pub async fn mission_view(&self, mission_id: &str) -> Result<MissionView, CoreError> {
        let mission_id = MissionId::parse(mission_id)?;
        let mission_id = mission_id.as_str();
        Ok(squad::find_mission(self.inner.repo.as_ref(), mission_id).await?)
    }

    /// One mission with its jobs.
    pub async fn mission_detail(&self, mission_id: &str) -> Result<MissionDetail, CoreError> {
        let mission_id = MissionId::parse(mission_id)?;
        let mission_id = mission_id.as_str();
        let mission = self.mission_view(mission_id).await?;
        let jobs = self.inner.repo.jobs(mission_id).await?;
        Ok(MissionDetail { mission, jobs })
    }

    /// A mission's events after `after_seq`, oldest first, at most `limit`.
    pub async fn mission_events(
        &self,
        mission_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<MissionEvent>, CoreError> {
        let mission_id = MissionId::parse(mission_id)?;
        let mission_id = mission_id.as_str();
        Ok(squad::mission_events(self.inner.repo.as_ref(), mission_id, after_seq, limit).await?)
    }

    /// Starts a saved (Ready) mission: its time to live counts from now, and a running squad
    /// engine assembles its squad at once. Audited.
    pub async fn start_mission(
        &self,
        actor: &Actor,
        mission_id: &str,
    ) -> Result<MissionView, CoreError> {
        self.gateway()
            .await?
            .start_mission::<CoreError>(actor, mission_id)
            .await?;
        self.poke_squads().await;
        self.mission_view(mission_id).await
    }

    /// Ends a mission now: its run record is written and its squad torn down. Audited.
    pub async fn stop_mission(
        &self,
        actor: &Actor,
        mission_id: &str,
    ) -> Result<MissionView, CoreError> {
        let gateway = self.gateway().await?;
        let request = Request::new(actor, Operation::MissionStop).on(Some(mission_id));
        let repo = &self.inner.repo;
        let stop = async {
            let mission_id = MissionId::parse(mission_id)?;
            let mission_id = mission_id.as_str();
            squad::stop_mission(
                repo.as_ref(),
                &*self.inner.settings.clock,
                mission_id,
                &actor.name(),
            )
            .await?;
            Ok::<_, CoreError>(repo.run_record(mission_id).await?)
        };
        gateway
            .audited(request, stop, |run| {
                Done::said(match run {
                    Some(run) => format!(
                        "stopped after {} steps, gas {} ¢, profit {} ¢",
                        run.steps, run.gas_cents, run.profit_cents
                    ),
                    None => "stopped".to_owned(),
                })
            })
            .await?;
        gateway.forget_mission(mission_id);
        self.poke_squads().await;
        self.mission_view(mission_id).await
    }

    /// Saves a perimeter for a template (unset values take its defaults) and starts it, in one
    /// audited step; the squad engine that runs assembles its squad.
    pub async fn deploy(
        &self,
        actor: &Actor,
        deploy: &DeployRequest,
    ) -> Result<ActiveMission, CoreError> {
        let gateway = self.gateway().await?;
        let request = Request::new(actor, Operation::MissionDeploy);
        let run = async {
            let save = self.deploy_request(deploy).await?;
            let mut mission = self
                .inner
                .missions
                .save(&save, &actor.name())
                .await?
                .mission;
            mission.status = gateway.start_clock(&mission.id).await?.status;
            Ok::<_, CoreError>(mission)
        };
        let mission = gateway
            .audited(request, run, |mission| said_mission(mission, "deployed"))
            .await?;
        self.poke_squads().await;
        Ok(mission)
    }

    /// The save request a deployment stands for: the template's current version and its
    /// defaults for every value left out.
    async fn deploy_request(
        &self,
        deploy: &DeployRequest,
    ) -> Result<SaveMissionRequest, CoreError> {
        let draft = self.inner.missions.draft(&deploy.template_id).await?;
        let d = &draft.defaults;
        let approval_mode = deploy.approval_mode.unwrap_or(d.approval_mode);
        Ok(SaveMissionRequest {
            request_id: uuid::Uuid::now_v7().to_string(),
            template_id: deploy.template_id.clone(),
            template_version: draft.template.version,
            budget_cents: deploy.budget_cents.unwrap_or(d.budget_cents),
            ttl_seconds: deploy.ttl_seconds.unwrap_or(d.ttl_seconds),
            max_steps: deploy.max_steps.unwrap_or(d.max_steps),
            approval_mode,
            threshold_cents: match approval_mode {
                ApprovalMode::Threshold => deploy.threshold_cents.or(d.threshold_cents),
                _ => deploy.threshold_cents,
            },
            connections: deploy.connections.clone(),
        })
    }

    /// Issues a bearer token for one department of a mission (returned once; only its hash is
    /// kept). Audited, without the token.
    pub async fn issue_token(
        &self,
        actor: &Actor,
        mission_id: &str,
        dept: i64,
    ) -> Result<String, CoreError> {
        self.gateway()
            .await?
            .issue_token(actor, mission_id, dept)
            .await
    }

    /// Exchanges an external agent's one-time code (from its department's context) for its
    /// bearer token. Audited, refusals included.
    pub async fn exchange_token_code(&self, code: &str) -> Result<ExchangedToken, CoreError> {
        self.gateway().await?.exchange_token_code(code).await
    }

    /// Runs the squad engine in this process and hands each of one mission's events to
    /// `on_event` as it is written, until the mission ends or `interrupted` resolves. Either
    /// way the engine then stops and hands its missions back, so another process (or this one
    /// later) picks the squad up again.
    pub async fn follow(
        &self,
        mission_id: &str,
        mut on_event: impl FnMut(&MissionEvent),
        interrupted: impl Future<Output = ()>,
    ) -> Result<FollowEnd, CoreError> {
        self.mission_view(mission_id).await?;
        let mut notices = self.squads().await?.engine.subscribe();
        self.poke_squads().await;
        tokio::pin!(interrupted);
        let repo = &self.inner.repo;
        let mut after = 0;
        let end = loop {
            for event in self.mission_events(mission_id, after, 1000).await? {
                after = event.seq;
                on_event(&event);
            }
            if let Some(run) = repo.run_record(mission_id).await? {
                break FollowEnd::Ended(run);
            }
            tokio::select! {
                () = &mut interrupted => break FollowEnd::Interrupted,
                _ = notices.recv() => {}
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        };
        self.shutdown_squads(DRAIN).await;
        Ok(end)
    }

    /// The run record of a finished mission.
    pub async fn run_record(&self, mission_id: &str) -> Result<Option<RunRecord>, CoreError> {
        let mission_id = MissionId::parse(mission_id)?;
        let mission_id = mission_id.as_str();
        let run = self.inner.repo.run_record(mission_id).await?;
        if run.is_none() {
            // Tell "no such mission" apart from "not finished".
            self.mission_view(mission_id).await?;
        }
        Ok(run)
    }
}
