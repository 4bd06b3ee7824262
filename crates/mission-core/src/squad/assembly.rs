//! Assembling one mission's squad: its topics, fresh tokens and contexts for every department,
//! the built-in agents, and the orchestrator, resumed where a crashed engine left off.

use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinSet;

use super::agent::Agent;
use super::bus::{dept_topic, mission_topic, Envelope};
use super::context::{Credential, MissionContext};
use super::contract::{kind, ORCHESTRATOR_DEPT};
use super::engine::{Inner, Plan, SquadError};
use super::lifecycle::*;
use super::orchestrator::Orchestrator;
use super::store::SquadOp;
use crate::gateway::{Actor, GatewayError};
use crate::registry::Perimeter;
use crate::store::DbError;

impl Inner {
    pub(super) async fn plan(&self, mission_id: &str) -> Result<Plan, SquadError> {
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
        let template = self
            .repo
            .pinned_template(mission_id, &row.template_id, row.template_version)
            .await?;
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

    pub(super) async fn ensure_topic(&self, topic: String) -> Result<(), SquadError> {
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
    pub(super) async fn run_squad(self: &Arc<Self>, mission_id: &str) -> Result<(), SquadError> {
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
            let job = orchestration_job(mission_id, &now(&*self.options.clock));
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
            // A built-in agent gets its token here, in process; an external one gets a one-time
            // code to exchange for it. Either way no token ever travels through Kafka.
            let external = self.options.external_depts.contains(dept);
            let (token, credential) = if external {
                let code = self
                    .gateway
                    .issue_token_code::<GatewayError>(&Actor::Engine, mission_id, *dept)
                    .await?;
                let credential = Credential::ExchangeCode {
                    code: code.code,
                    expires_at: code.expires_at,
                };
                (None, credential)
            } else {
                let token = self
                    .gateway
                    .issue_token::<GatewayError>(&Actor::Engine, mission_id, *dept)
                    .await?;
                (Some(token), Credential::InProcess)
            };
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
                credential,
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
            // The context goes straight to the department's topic (an exchange code must never
            // be stored); the history keeps a copy without the code.
            let offset = self.bus.publish_to(&topic, &event).await?;
            let mut kept = event.clone();
            kept.payload = serde_json::to_value(context.redacted())
                .map_err(|e| DbError::Corrupt(format!("context: {e}")))?;
            self.commit(
                mission_id,
                vec![SquadOp::Record {
                    topic: topic.clone(),
                    envelope: kept,
                    at: now(&*self.options.clock),
                }],
            )
            .await?;
            if let Some(token) = token {
                let stream = self.bus.dept_stream(mission_id, *dept, Some(offset))?;
                let agent = Agent::new(Arc::clone(self), mission_id, *dept, token);
                let (inner, mission) = (Arc::clone(self), mission_id.to_owned());
                squad.spawn(async move {
                    match agent.run(stream).await {
                        Ok(exit) => tracing::warn!(?exit, "agent stopped"),
                        Err(e) => tracing::warn!(error = %e, "agent failed"),
                    }
                    // Whoever follows the mission looks again: its squad is one agent short
                    // until the next assembly.
                    inner.notify(&mission);
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
