//! The gateway's decisions as plain functions: why a reservation was refused, and what a
//! reviewer's decision does to an approval request. The storage applies what these return
//! inside its transaction; nothing here reads or writes a database.

use super::ledger::{ApprovalRow, Decide, DecideError};
use super::{ApprovalKind, ApprovalStatus, RefusalCode};
use crate::perimeter::MissionStatus;
use crate::units::Cents;

/// A mission's counters, as read when a reservation did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Its status.
    pub status: MissionStatus,
    /// Steps counted.
    pub steps_used: i64,
    /// Step cap.
    pub max_steps: i64,
    /// Cents spent.
    pub spent_cents: Cents,
    /// Cents held by calls in flight.
    pub reserved_cents: Cents,
    /// Budget cap.
    pub budget_cents: Cents,
}

/// Why a call could not reserve its step and cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRefused {
    /// Which check.
    pub code: RefusalCode,
    /// Why, in words (also the audit record's reason).
    pub message: String,
    /// Set when the budget cap itself is reached: the mission pauses and a budget-cap request
    /// opens for a human, with this reason.
    pub pause: Option<String>,
}

/// Why a call costing `cost_cents` does not fit the mission now. Called only when the atomic
/// reservation did not apply, so one of these holds.
pub fn refuse_reservation(c: &Counters, cost_cents: Cents) -> ReservationRefused {
    let left = c.budget_cents - c.spent_cents;
    let refused = |code, message| ReservationRefused {
        code,
        message,
        pause: None,
    };
    if c.status != MissionStatus::Running {
        refused(
            RefusalCode::MissionNotActive,
            format!("the mission is {}, not Running", c.status.as_str()),
        )
    } else if c.steps_used >= c.max_steps {
        refused(
            RefusalCode::StepsExhausted,
            format!("the mission has used all {} of its steps", c.max_steps),
        )
    } else if c.spent_cents + cost_cents > c.budget_cents {
        ReservationRefused {
            code: RefusalCode::BudgetExhausted,
            message: format!(
                "the call would cost {cost_cents} cents and the mission has {left} of its {} \
                 left; the mission is paused until a human raises the budget",
                c.budget_cents
            ),
            pause: Some(format!(
                "the mission spent {} of its {} cents and a call costing {cost_cents} would pass \
                 the cap; raise the budget or stop the mission",
                c.spent_cents, c.budget_cents
            )),
        }
    } else {
        refused(
            RefusalCode::BudgetReserved,
            format!(
                "calls in flight hold {} cents of the {left} left; try again when they finish",
                c.reserved_cents
            ),
        )
    }
}

/// What a decision does to the mission behind a budget-cap request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissionChange {
    /// Nothing (a decision on a tool call).
    None,
    /// Raise the budget to this many cents and run again.
    RaiseBudget(Cents),
    /// Stop the mission.
    Stop,
}

/// An approval request's next state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Approved or Denied.
    pub status: ApprovalStatus,
    /// What happened, in words (the audit record's reason).
    pub reason: String,
    /// The request's budget afterwards.
    pub budget_cents: Option<Cents>,
    /// Until when an approved call may run (for a tool call), or the request's old expiry.
    pub expires_at: Option<String>,
    /// What happens to the mission.
    pub mission: MissionChange,
}

/// The approval state machine: a Pending request, not expired, becomes Approved or Denied;
/// approving a budget cap needs a budget above the current one and within the global cap; a
/// tool call takes no budget. Anything else is refused and changes nothing — except that a
/// request found past its expiry is refused as [`DecideError::Expired`], which the storage
/// records as Expired.
pub fn decide(a: &ApprovalRow, d: &Decide) -> Result<Transition, DecideError> {
    if a.status != ApprovalStatus::Pending {
        return Err(DecideError::AlreadyDecided(
            a.status.as_str().to_lowercase(),
        ));
    }
    if let Some(at) = a
        .record
        .expires_at
        .as_ref()
        .filter(|at| at.as_str() <= d.now.as_str())
    {
        return Err(DecideError::Expired(at.clone()));
    }
    let budget_cap = a.kind == ApprovalKind::BudgetCap;
    match (budget_cap, d.approve) {
        (false, _) if d.budget_cents.is_some() => Err(DecideError::Invalid(
            "a budget only goes with a budget-cap request".into(),
        )),
        (false, true) => Ok(Transition {
            status: ApprovalStatus::Approved,
            reason: format!(
                "{} approved this exact call (approval {}); usable once until {}",
                d.by, a.record.id, d.approved_until
            ),
            budget_cents: a.budget_cents,
            expires_at: Some(d.approved_until.clone()),
            mission: MissionChange::None,
        }),
        (false, false) => Ok(Transition {
            status: ApprovalStatus::Denied,
            reason: format!("{} denied this exact call (approval {})", d.by, a.record.id),
            budget_cents: a.budget_cents,
            expires_at: a.record.expires_at.clone(),
            mission: MissionChange::None,
        }),
        (true, true) => {
            let current = a.mission_budget_cents;
            let Some(new) = d.budget_cents else {
                return Err(DecideError::Invalid(
                    "raising the budget needs the new budget".into(),
                ));
            };
            if new <= current || new > d.max_budget_cents {
                return Err(DecideError::BudgetOutOfRange {
                    value: new,
                    current,
                    max: d.max_budget_cents,
                });
            }
            Ok(Transition {
                status: ApprovalStatus::Approved,
                reason: format!(
                    "{} raised the budget from {current} to {new} cents; the mission runs again",
                    d.by
                ),
                budget_cents: Some(new),
                expires_at: None,
                mission: MissionChange::RaiseBudget(new),
            })
        }
        (true, false) => Ok(Transition {
            status: ApprovalStatus::Denied,
            reason: format!("{} stopped the mission at its budget cap", d.by),
            budget_cents: a.budget_cents,
            expires_at: None,
            mission: MissionChange::Stop,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ApprovalRecord;

    fn counters(status: MissionStatus, steps: (i64, i64), spent: i64, reserved: i64) -> Counters {
        Counters {
            status,
            steps_used: steps.0,
            max_steps: steps.1,
            spent_cents: Cents(spent),
            reserved_cents: Cents(reserved),
            budget_cents: Cents(100),
        }
    }

    #[test]
    fn a_reservation_is_refused_for_the_first_rule_it_breaks() {
        let paused =
            refuse_reservation(&counters(MissionStatus::Paused, (10, 10), 100, 0), Cents(5));
        assert_eq!(paused.code, RefusalCode::MissionNotActive);
        let steps = refuse_reservation(
            &counters(MissionStatus::Running, (10, 10), 100, 0),
            Cents(5),
        );
        assert_eq!(steps.code, RefusalCode::StepsExhausted);
        assert_eq!(steps.pause, None);
        let cap = refuse_reservation(&counters(MissionStatus::Running, (3, 10), 96, 0), Cents(5));
        assert_eq!(cap.code, RefusalCode::BudgetExhausted);
        assert!(cap.pause.is_some(), "reaching the cap pauses the mission");
        assert!(cap.message.contains("4 of its 100"), "{}", cap.message);
        let held = refuse_reservation(&counters(MissionStatus::Running, (3, 10), 90, 8), Cents(5));
        assert_eq!(held.code, RefusalCode::BudgetReserved);
        assert_eq!(held.pause, None, "calls in flight never pause the mission");
    }

    fn row(kind: ApprovalKind, status: ApprovalStatus, expires_at: Option<&str>) -> ApprovalRow {
        ApprovalRow {
            record: ApprovalRecord {
                id: "a1".into(),
                mission_id: "m1".into(),
                mission_name: "M".into(),
                sector: "finance".into(),
                dept: Some(1),
                tool_id: (kind == ApprovalKind::ToolCall).then(|| "finance.ledger_query".into()),
                args_hash: None,
                args: None,
                cost_cents: Cents(5),
                reason: "waits".into(),
                requested_at: "2026-12-01T00:00:00.000000Z".into(),
                expires_at: expires_at.map(Into::into),
                decided_by: None,
                decided_at: None,
            },
            kind,
            job_id: None,
            status,
            budget_cents: None,
            mission_budget_cents: Cents(100),
        }
    }

    fn decision(approve: bool, budget: Option<i64>) -> Decide {
        Decide {
            approval_id: "a1".into(),
            by: "bob".into(),
            approve,
            budget_cents: budget.map(Cents),
            max_budget_cents: Cents(1000),
            now: "2026-12-01T01:00:00.000000Z".into(),
            approved_until: "2026-12-01T02:00:00.000000Z".into(),
        }
    }

    #[test]
    fn only_a_pending_request_inside_its_time_moves() {
        assert_eq!(
            decide(
                &row(ApprovalKind::ToolCall, ApprovalStatus::Approved, None),
                &decision(true, None)
            ),
            Err(DecideError::AlreadyDecided("approved".into()))
        );
        let late = row(
            ApprovalKind::ToolCall,
            ApprovalStatus::Pending,
            Some("2026-12-01T00:30:00.000000Z"),
        );
        assert!(matches!(
            decide(&late, &decision(true, None)),
            Err(DecideError::Expired(_))
        ));
    }

    #[test]
    fn an_approved_call_is_usable_until_its_own_expiry() {
        let t = decide(
            &row(ApprovalKind::ToolCall, ApprovalStatus::Pending, None),
            &decision(true, None),
        )
        .expect("ok");
        assert_eq!(t.status, ApprovalStatus::Approved);
        assert_eq!(t.expires_at.as_deref(), Some("2026-12-01T02:00:00.000000Z"));
        assert_eq!(t.mission, MissionChange::None);
        assert!(matches!(
            decide(
                &row(ApprovalKind::ToolCall, ApprovalStatus::Pending, None),
                &decision(true, Some(500))
            ),
            Err(DecideError::Invalid(_))
        ));
    }

    #[test]
    fn a_budget_cap_raises_within_the_policy_or_stops_the_mission() {
        let cap = row(ApprovalKind::BudgetCap, ApprovalStatus::Pending, None);
        for bad in [100, 50, 1001] {
            assert!(matches!(
                decide(&cap, &decision(true, Some(bad))),
                Err(DecideError::BudgetOutOfRange { .. })
            ));
        }
        assert!(matches!(
            decide(&cap, &decision(true, None)),
            Err(DecideError::Invalid(_))
        ));
        let raised = decide(&cap, &decision(true, Some(1000))).expect("raise");
        assert_eq!(raised.mission, MissionChange::RaiseBudget(Cents(1000)));
        assert_eq!(raised.budget_cents, Some(Cents(1000)));
        let stopped = decide(&cap, &decision(false, None)).expect("stop");
        assert_eq!(
            (stopped.status, stopped.mission),
            (ApprovalStatus::Denied, MissionChange::Stop)
        );
    }
}
