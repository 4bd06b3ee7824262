//! The approvals queue: what waits for a human, the decisions on it, and a watch that tells a
//! shell when the queue changed and whether a reviewer should hear about it.

use std::time::Duration;

use tokio::sync::{broadcast, mpsc};

use super::Core;
use crate::error::CoreError;
use crate::gateway::{Actor, ApprovalItem, ApprovalPage, DecideApproval, GatewayEvent};

/// How often the queue is recounted for requests this process's gateway did not open (an
/// agent API served by another process on the same database) and for requests that expired.
const RECOUNT: Duration = Duration::from_secs(10);

/// Something a reviewer-facing shell should know about the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalNotice {
    /// The gateway of this process reported an event; `pending` is the count after it.
    Event {
        /// What happened.
        event: GatewayEvent,
        /// Requests waiting now.
        pending: u32,
    },
    /// A recount found a different number waiting (requests opened by another process on the
    /// same database, or requests that expired).
    Recounted {
        /// Requests waiting at the last count.
        before: u32,
        /// Requests waiting now.
        pending: u32,
    },
}

impl ApprovalNotice {
    /// Requests waiting now.
    pub fn pending(&self) -> u32 {
        match self {
            Self::Event { pending, .. } | Self::Recounted { pending, .. } => *pending,
        }
    }

    /// Requests a recount found that no event announced (0 for events and shrinking queues).
    pub fn unannounced(&self) -> u32 {
        match self {
            Self::Recounted { before, pending } => pending.saturating_sub(*before),
            Self::Event { .. } => 0,
        }
    }
}

impl Core {
    /// One page of the approvals queue, newest first; only what still waits if asked: the
    /// page after `after` (a cursor from the previous page), at most `limit` (1 to 200). Needs
    /// no signing key.
    pub async fn approvals(
        &self,
        pending_only: bool,
        after: Option<&str>,
        limit: u32,
    ) -> Result<ApprovalPage, CoreError> {
        let after = super::cursor(after)?;
        Ok(crate::gateway::approvals(
            self.inner.repo.as_ref(),
            &self.inner.settings.catalog,
            self.inner.settings.clock.now(),
            (pending_only, after.as_ref(), limit),
        )
        .await?)
    }

    /// How many requests wait now, counted in the database (exact however many wait; a
    /// request past its expiry no longer waits).
    pub async fn pending_approvals(&self) -> Result<u32, CoreError> {
        let now = crate::gateway::timestamp(self.inner.settings.clock.now());
        let waiting = self.inner.repo.pending_approvals(&now).await?;
        Ok(u32::try_from(waiting).unwrap_or(u32::MAX))
    }

    /// A reviewer's decision: approving a call lets exactly that call run once; approving a
    /// budget cap raises the budget within the global policy; denying refuses the call or
    /// stops the mission. Audited with the reviewer's name, refusals included.
    pub async fn decide_approval(
        &self,
        actor: &Actor,
        request: &DecideApproval,
    ) -> Result<ApprovalItem, CoreError> {
        self.gateway().await?.decide(actor, request).await
    }

    /// Watches the queue: a notice for every gateway event (with the count after it), and one
    /// whenever a recount finds a different number. The first notice carries the count at the
    /// start. Ends when the receiver is dropped.
    pub async fn watch_approvals(&self) -> Result<mpsc::Receiver<ApprovalNotice>, CoreError> {
        let mut events = self.gateway().await?.subscribe();
        let (sender, receiver) = mpsc::channel(64);
        let core = self.clone();
        tokio::spawn(async move {
            let mut last = core.count_or_log().await.unwrap_or(0);
            let first = ApprovalNotice::Recounted {
                before: last,
                pending: last,
            };
            if sender.send(first).await.is_err() {
                return;
            }
            let mut recount = tokio::time::interval(RECOUNT);
            recount.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let notice = tokio::select! {
                    received = events.recv() => match received {
                        Ok(event) => {
                            let pending = core.count_or_log().await.unwrap_or(last);
                            Some(ApprovalNotice::Event { event, pending })
                        }
                        // Missed events only mean the count is stale; recount now.
                        Err(broadcast::error::RecvError::Lagged(_)) => core
                            .count_or_log()
                            .await
                            .map(|pending| ApprovalNotice::Recounted { before: last, pending }),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = recount.tick() => core
                        .count_or_log()
                        .await
                        .filter(|pending| *pending != last)
                        .map(|pending| ApprovalNotice::Recounted { before: last, pending }),
                };
                if let Some(notice) = notice {
                    last = notice.pending();
                    if sender.send(notice).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(receiver)
    }

    async fn count_or_log(&self) -> Option<u32> {
        match self.pending_approvals().await {
            Ok(count) => Some(count),
            Err(e) => {
                tracing::warn!(error = %e, "could not count the waiting approvals");
                None
            }
        }
    }
}
