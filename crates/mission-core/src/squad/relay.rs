//! The outbox relay: publishes every event a transaction wrote, oldest first, with an
//! idempotent producer, and marks it sent. A broker outage delays events, never loses them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::bus::Envelope;
use super::engine::{Inner, SquadNotice};
use super::lifecycle::*;

/// Publishes the outbox: events of missions this engine runs (or nobody runs), oldest first.
pub(super) async fn relay(inner: Arc<Inner>) {
    loop {
        let batch = match inner.repo.unpublished(&inner.options.owner, 500).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay could not read the outbox");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            let _ =
                tokio::time::timeout(Duration::from_millis(200), inner.relay_wake.notified()).await;
            continue;
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
                }
            }
        }
        if !sent.is_empty() {
            if let Err(e) = inner.repo.mark_published(&sent, &now()).await {
                tracing::warn!(error = %e, "outbox relay could not mark events published");
            }
            for mission in missions {
                let _ = inner.notices.send(SquadNotice {
                    mission_id: mission,
                });
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
