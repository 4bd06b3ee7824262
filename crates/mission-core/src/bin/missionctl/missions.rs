//! `deploy`, `missions` and `serve`.

use std::process::ExitCode;

use mission_core::app::{DeployRequest, FollowEnd};
use mission_core::gateway::{local_time, Actor};
use mission_core::perimeter::MissionStatus;
use mission_core::{Core, Settings};

use crate::args::{DeployArgs, MissionsCommand};
use crate::render::{self, outln};

/// Exit code of a follower stopped by Ctrl+C.
const INTERRUPTED: u8 = 130;

pub async fn serve(url: Option<String>, listen: Option<String>) -> anyhow::Result<ExitCode> {
    let mut settings = Settings::from_env(url)?;
    if listen.is_some() {
        settings.api_listen = listen;
    }
    let core = Core::open(settings).await?;
    let listener = mission_core::api::bind(&core).await?;
    let local = listener.local_addr()?;
    outln!("Agent API on http://{local} (OpenAPI document at /v1/openapi.json). Ctrl+C stops it.");
    mission_core::api::serve(listener, core.clone(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn deploy(core: &Core, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let request = DeployRequest {
        template_id: args.template_id,
        budget_cents: args.budget_cents,
        ttl_seconds: args.ttl_seconds,
        max_steps: args.max_steps,
        approval_mode: args.approval,
        threshold_cents: args.threshold_cents,
        connections: args.connections,
    };
    let mission = core.deploy(&Actor::operator(), &request).await?;
    let p = &mission.perimeter;
    outln!(
        "Mission {} deployed: {} v{}, budget {} ¢, {} s, {} steps, {} mode.",
        mission.id,
        mission.template_name,
        mission.template_version,
        p.budget_cents,
        p.ttl_seconds,
        p.max_steps,
        p.approval_mode.as_str()
    );
    if args.detach {
        outln!(
            "Detached: the desktop app or `missionctl missions follow {}` runs its squad.",
            mission.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    follow(core, &mission.id).await
}

/// Runs the squad engine here and prints one mission's events until it ends. Ctrl+C hands the
/// mission back (it keeps running for the next engine).
async fn follow(core: &Core, id: &str) -> anyhow::Result<ExitCode> {
    outln!("Kafka: {}", core.kafka_info().await?.mode);
    let mut closed = None;
    let end = core
        .follow(
            id,
            |event| {
                if closed.is_none() {
                    closed = render::line(format_args!("{}", render::event_line(event))).err();
                }
            },
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    if let Some(e) = closed {
        return Err(e);
    }
    match end {
        FollowEnd::Ended(run) => {
            outln!("{}", render::run_line(&run));
            Ok(if run.status == MissionStatus::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        FollowEnd::Interrupted => {
            eprintln!(
                "Interrupted: mission {id} keeps running; the desktop app or `missionctl \
                 missions follow {id}` picks its squad up again."
            );
            Ok(ExitCode::from(INTERRUPTED))
        }
    }
}

pub async fn run(core: &Core, cmd: MissionsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        MissionsCommand::List { limit, after, json } => {
            let page = core.mission_views(after.as_deref(), limit).await?;
            let views = page.items;
            if json {
                render::json(&views)?;
            } else if views.is_empty() {
                outln!("No missions yet: `missionctl deploy TEMPLATE_ID` deploys one.");
            } else {
                for v in &views {
                    outln!(
                        "{}  {:<9} {:<40} steps {}/{}  spent {}/{} ¢  plan {}/{}",
                        v.mission.id,
                        v.usage.status.as_str(),
                        v.mission.template_name,
                        v.usage.steps_used,
                        v.usage.max_steps,
                        v.usage.spent_cents,
                        v.usage.budget_cents,
                        v.steps_done,
                        v.plan_steps
                    );
                }
            }
            render::more(
                &format!("missionctl missions list --limit {limit}"),
                page.next.as_deref(),
                json,
            )?;
        }
        MissionsCommand::Show { id, json } => {
            let detail = core.mission_detail(&id).await?;
            if json {
                render::json(&detail)?;
                return Ok(ExitCode::SUCCESS);
            }
            let view = &detail.mission;
            let (m, u) = (&view.mission, &view.usage);
            outln!(
                "Mission {}: {} v{} ({})",
                m.id,
                m.template_name,
                m.template_version,
                m.sector
            );
            outln!("Status:  {}", u.status.as_str());
            outln!("Steps:   {} of {}", u.steps_used, u.max_steps);
            outln!(
                "Spent:   {} ¢ of {} ¢ ({} ¢ held by calls in flight)",
                u.spent_cents,
                u.budget_cents,
                u.reserved_cents
            );
            if let Some(expires) = &u.expires_at {
                outln!("Ends by: {}", local_time(expires));
            }
            outln!(
                "Plan:    {} of {} steps done",
                view.steps_done,
                view.plan_steps
            );
            for j in &detail.jobs {
                outln!(
                    "  step {:<2} dept {:<2} {:<8} job {}  {}{}",
                    j.step,
                    j.dept,
                    j.status.as_str(),
                    j.job_id,
                    j.action,
                    j.tool_id
                        .as_deref()
                        .map(|t| format!(" [{t}]"))
                        .unwrap_or_default()
                );
            }
            if let Some(run) = &view.run {
                outln!("{}", render::run_line(run));
            }
        }
        MissionsCommand::Events { id, after, json } => {
            core.mission_view(&id).await?;
            let mut events = Vec::new();
            let mut after = after;
            loop {
                let page = core.mission_events(&id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                if json {
                    events.extend(page);
                } else {
                    for e in &page {
                        outln!("{}", render::event_line(e));
                    }
                }
            }
            if json {
                render::json(&events)?;
            }
        }
        MissionsCommand::Follow { id } => return follow(core, &id).await,
        MissionsCommand::Stop { id } => {
            let view = core.stop_mission(&Actor::operator(), &id).await?;
            if let Some(run) = &view.run {
                outln!("{}", render::run_line(run));
            }
        }
        MissionsCommand::Start { id } => {
            let view = core.start_mission(&Actor::operator(), &id).await?;
            outln!(
                "Mission {id} is running until {}.",
                view.usage.expires_at.unwrap_or_default()
            );
        }
        MissionsCommand::Token { id, dept } => {
            let token = core.issue_token(&Actor::operator(), &id, dept).await?;
            eprintln!("Token for department {dept} of mission {id} (shown once; keep it secret):");
            outln!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
