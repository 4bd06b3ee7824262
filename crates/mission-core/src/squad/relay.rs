//! The outbox relay: publishes every event a transaction wrote, oldest first, with an
//! idempotent producer, and marks it sent. A broker outage delays events, never loses them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::bus::Envelope;
use super::engine::{Inner, SquadError, SquadNotice};
use super::lifecycle::*;

/// What one pass of the relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Events published and marked sent.
    pub published: usize,
    /// Events that stay in the outbox because Kafka did not take them.
    pub waiting: usize,
}

/// How often an idle relay reads the outbox without being woken.
const IDLE_RECHECK: Duration = Duration::from_secs(2);

/// Publishes the outbox on its own: a batch whenever something was written (or every
/// [`IDLE_RECHECK`]), backing off while Kafka is unreachable.
pub(super) async fn relay(inner: Arc<Inner>) {
    loop {
        match relay_batch(&inner).await {
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay could not read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(pass) if pass.waiting > 0 => tokio::time::sleep(Duration::from_millis(500)).await,
            // Every commit in this process wakes the relay; the timeout is for events written
            // by another process on the same database.
            Ok(pass) if pass.published == 0 => {
                let _ = tokio::time::timeout(IDLE_RECHECK, inner.relay_wake.notified()).await;
            }
            Ok(_) => {}
        }
    }
}

/// Publishes one batch of the outbox: events of missions this engine runs (or nobody runs),
/// oldest first.
pub(super) async fn relay_batch(inner: &Inner) -> Result<RelayPass, SquadError> {
    let batch = inner.repo.unpublished(&inner.options.owner, 500).await?;
    let mut pass = RelayPass::default();
    if batch.is_empty() {
        return Ok(pass);
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
    // Topics whose events did not get through: a broker may have come back without them, so
    // the next pass creates them again (an existing topic is left as it is).
    let mut lost = HashSet::new();
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
                pass.waiting += 1;
                lost.insert(event.topic.clone());
            }
        }
    }
    if !sent.is_empty() {
        if let Err(e) = inner
            .repo
            .mark_published(&sent, &now(&*inner.options.clock))
            .await
        {
            tracing::warn!(error = %e, "outbox relay could not mark events published");
        }
        pass.published = sent.len();
        for mission in missions {
            let _ = inner.notices.send(SquadNotice {
                mission_id: mission,
            });
        }
    }
    if let Ok(mut known) = inner.topics.lock() {
        for topic in &lost {
            known.remove(topic);
        }
    }
    if failed && pass.waiting == 0 {
        // A topic could not be created: nothing was lost, everything waits.
        pass.waiting = batch.len() - pass.published;
    }
    Ok(pass)
}
