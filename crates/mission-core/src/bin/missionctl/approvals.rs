//! `approvals`: the queue, and decisions on it.

use std::process::ExitCode;

use mission_core::gateway::{operator_name, Actor, ApprovalDecision, DecideApproval};
use mission_core::Core;

use crate::args::ApprovalsCommand;
use crate::render::{self, outln};

pub async fn run(core: &Core, cmd: ApprovalsCommand) -> anyhow::Result<ExitCode> {
    let (id, decision, budget_cents, reviewer) = match cmd {
        ApprovalsCommand::List {
            all,
            limit,
            after,
            json,
        } => {
            let page = core.approvals(!all, after.as_deref(), limit).await?;
            let items = page.items;
            if json {
                render::json(&items)?;
            } else if items.is_empty() {
                outln!("Nothing waits for approval.");
            } else {
                for a in &items {
                    let what = match (&a.record.tool_id, a.budget_cents) {
                        (Some(tool), _) => {
                            format!(
                                "{tool} args {}",
                                a.record.args.as_deref().unwrap_or_default()
                            )
                        }
                        (None, Some(budget)) => format!("budget cap reached at {budget} cents"),
                        (None, None) => "budget cap reached".to_owned(),
                    };
                    outln!(
                        "{}  {:<8} {} [{}]  {}  expires {}\n    {}",
                        a.record.id,
                        format!("{:?}", a.status),
                        a.record.mission_name,
                        a.record.sector,
                        what,
                        a.record.expires_at.as_deref().unwrap_or("never"),
                        a.record.reason
                    );
                }
            }
            let all = if all { " --all" } else { "" };
            render::more(
                &format!("missionctl approvals list{all} --limit {limit}"),
                page.next.as_deref(),
                json,
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Approve {
            id,
            budget_cents,
            reviewer,
        } => (id, ApprovalDecision::Approve, budget_cents, reviewer),
        ApprovalsCommand::Deny { id, reviewer } => (id, ApprovalDecision::Deny, None, reviewer),
    };
    let reviewer = Actor::Reviewer(reviewer.unwrap_or_else(operator_name));
    let item = core
        .decide_approval(
            &reviewer,
            &DecideApproval {
                approval_id: id,
                decision,
                budget_cents,
            },
        )
        .await?;
    outln!(
        "{} is now {:?} (decided by {}).",
        item.record.id,
        item.status,
        item.record.decided_by.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
