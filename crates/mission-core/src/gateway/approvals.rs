//! The approvals queue: held calls and budget caps as reviewers see them, and their decisions.

use chrono::{DateTime, Utc};

use super::dispatch::{Actor, CallerError, Done, Request};
use super::ledger::{self, Decide, LedgerOp, LedgerResult};
use super::store::GatewayStore;
use super::{
    timestamp, ApprovalDecision, ApprovalItem, ApprovalKind, ApprovalPage, ApprovalStatus,
    DecideApproval, Gateway, GatewayError, GatewayEvent,
};
use crate::audit::Operation;
use crate::catalog::Catalog;
use crate::store::{page_size, split_page, After, DbError};

impl Gateway {
    pub(super) fn item(&self, row: ledger::ApprovalRow) -> ApprovalItem {
        approval_item(row, &self.inner.catalog, self.inner.clock.now())
    }

    /// One page of the approvals queue, newest first; only what still waits if asked.
    pub async fn approvals(
        &self,
        pending_only: bool,
        after: Option<&After>,
        limit: u32,
    ) -> Result<ApprovalPage, GatewayError> {
        approvals(
            self.inner.repo.as_ref(),
            &self.inner.catalog,
            self.inner.clock.now(),
            (pending_only, after, limit),
        )
        .await
    }

    /// One approval request as reviewers see it.
    pub async fn approval(&self, approval_id: &str) -> Result<Option<ApprovalItem>, GatewayError> {
        let row = self.inner.repo.approval(approval_id).await?;
        let now = self.inner.clock.now();
        Ok(row.map(|row| approval_item(row, &self.inner.catalog, now)))
    }

    /// A reviewer's decision, audited with their name. Approving a call lets exactly that call
    /// (same tool, same arguments) run once; approving a budget cap raises the budget within
    /// the global policy and resumes the mission; denying a budget cap stops it. It fails with
    /// the caller's error type so the audit record of a refusal travels with it.
    pub async fn decide<E>(
        &self,
        actor: &Actor,
        request: &DecideApproval,
    ) -> Result<ApprovalItem, E>
    where
        E: CallerError,
    {
        let audited = Request::new(actor, Operation::ApprovalDecide);
        let by = actor.name();
        let decision = async { self.apply_decision(request, &by).await.map_err(E::from) };
        self.audited(audited, decision, |(_, seq): &(ApprovalItem, i64)| {
            Done::recorded(*seq)
        })
        .await
        .map(|(item, _)| item)
    }

    pub(super) async fn apply_decision(
        &self,
        request: &DecideApproval,
        by: &str,
    ) -> Result<(ApprovalItem, i64), GatewayError> {
        let now = self.inner.clock.now();
        let result = self
            .inner
            .ledger
            .apply(LedgerOp::Decide(Decide {
                approval_id: request.approval_id.clone(),
                by: by.to_owned(),
                approve: request.decision == ApprovalDecision::Approve,
                budget_cents: request.budget_cents,
                max_budget_cents: self.inner.catalog.policy().hard_caps.budget_cents,
                now: timestamp(now),
                approved_until: timestamp(now + self.inner.config.approval_ttl_seconds.to_chrono()),
            }))
            .await?;
        match result {
            LedgerResult::Decided(decided) => match *decided {
                Ok((row, seq)) => {
                    self.forget_tokens();
                    self.emit(GatewayEvent::ApprovalDecided {
                        approval_id: row.record.id.clone(),
                    });
                    Ok((self.item(row), seq))
                }
                Err(e) => Err(e.into()),
            },
            other => Err(DbError::Corrupt(format!("unexpected ledger answer {other:?}")).into()),
        }
    }
}

/// One page of the approvals queue without a running gateway (it needs no signing key): what
/// `missionctl approvals list`, the window and the gateway itself show. `page` is whether
/// only waiting requests are listed, the cursor to start after, and the page size (see
/// [`page_size`]); the page also says exactly how many wait in all.
pub async fn approvals(
    repo: &dyn GatewayStore,
    catalog: &Catalog,
    now: DateTime<Utc>,
    (pending_only, after, limit): (bool, Option<&After>, u32),
) -> Result<ApprovalPage, GatewayError> {
    let size = page_size(limit);
    let at = timestamp(now);
    let rows = repo.approvals(pending_only, &at, after, size + 1).await?;
    let (rows, next) = split_page(rows, size, |row| After {
        at: row.record.requested_at.clone(),
        id: row.record.id.clone(),
    });
    let pending = repo.pending_approvals(&at).await?;
    Ok(ApprovalPage {
        items: rows
            .into_iter()
            .map(|row| approval_item(row, catalog, now))
            .collect(),
        next,
        pending: u32::try_from(pending).unwrap_or(u32::MAX),
    })
}

fn approval_item(row: ledger::ApprovalRow, catalog: &Catalog, now: DateTime<Utc>) -> ApprovalItem {
    let now = timestamp(now);
    let tool = row
        .record
        .tool_id
        .as_deref()
        .and_then(|id| catalog.tool(id));
    let mut status = row.status;
    if matches!(status, ApprovalStatus::Pending | ApprovalStatus::Approved)
        && row
            .record
            .expires_at
            .as_deref()
            .is_some_and(|at| at <= now.as_str())
    {
        status = ApprovalStatus::Expired;
    }
    let budget_cap = row.kind == ApprovalKind::BudgetCap;
    ApprovalItem {
        kind: row.kind,
        status,
        tool_name: tool.map(|t| t.name.clone()),
        risk: tool.map(|t| t.risk),
        budget_cents: budget_cap.then(|| {
            if status == ApprovalStatus::Pending {
                row.mission_budget_cents
            } else {
                row.budget_cents.unwrap_or(row.mission_budget_cents)
            }
        }),
        max_budget_cents: budget_cap.then_some(catalog.policy().hard_caps.budget_cents),
        record: row.record,
    }
}
