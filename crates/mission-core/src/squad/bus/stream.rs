//! One department's view of its mission's events: a consumer of one partition whose events
//! are checked (envelope, headers, key) and handed out in order, never twice. In embedded
//! mode an idle stream pauses its partition, so a squad waiting on a human costs nothing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{BusError, Envelope, Received, SEND_TIMEOUT};

/// Embedded mode: how long a stream goes unread, or reads nothing, before it stops fetching.
/// The mock cluster answers an empty fetch only when its wait ends, so a stream that kept
/// fetching would cost a request every 2 ms for as long as its squad waits (hours, on a
/// human), whether its reader waits inside `next()` or is busy elsewhere (an agent waiting on
/// a reviewer between two events).
const IDLE_AFTER: Duration = Duration::from_millis(200);

/// Embedded mode: how often a paused stream asks the cluster for its partition's end offset
/// (one small request, not a fetch), for events produced outside this process (an external
/// agent publishing to the mock cluster's port).
const IDLE_HEARTBEAT: Duration = Duration::from_secs(5);

/// One department's view of its mission's events.
pub struct MissionStream {
    consumer: Arc<StreamConsumer>,
    topic: String,
    mode: String,
    /// Embedded mode: what lets an idle stream stop fetching and wake again.
    idle: Option<Idle>,
}

/// How an idle stream in embedded mode stops fetching: this process's publishes wake it, and
/// it resumes from the next event it has not read.
struct Idle {
    published: tokio::sync::watch::Receiver<u64>,
    state: Arc<Mutex<IdleState>>,
}

/// Where a stream in embedded mode stands; shared with the watch that pauses it when its
/// reader stays away.
struct IdleState {
    /// The first event not yet handed to the reader: where fetching resumes.
    next: Offset,
    /// Whether the partition is fetching (not paused).
    fetching: bool,
    /// Whether a `next()` call is under way (it watches for idleness itself).
    reading: bool,
    /// When the last `next()` call ended.
    last_read: Instant,
    /// Whether a watch task is waiting to pause the stream.
    watched: bool,
}

impl MissionStream {
    /// A stream over an assigned consumer, starting at `from`; with `published` (embedded
    /// mode) it pauses while idle and wakes on this process's publishes.
    pub(super) fn new(
        consumer: StreamConsumer,
        topic: String,
        mode: String,
        published: Option<tokio::sync::watch::Receiver<u64>>,
        from: Offset,
    ) -> Self {
        Self {
            consumer: Arc::new(consumer),
            mode,
            idle: published.map(|published| Idle {
                published,
                state: Arc::new(Mutex::new(IdleState {
                    next: from,
                    fetching: true,
                    reading: false,
                    last_read: Instant::now(),
                    watched: false,
                })),
            }),
            topic,
        }
    }
}

impl std::fmt::Debug for MissionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MissionStream")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl MissionStream {
    /// The next event, checked: its envelope parses and its headers and key agree with it.
    pub async fn next(&self) -> Result<Received, BusError> {
        let kafka = |source| BusError::Kafka {
            mode: self.mode.clone(),
            source,
        };
        let Some(idle) = &self.idle else {
            let message = self.consumer.recv().await.map_err(kafka)?;
            return received(&message);
        };
        // Until this call ends (also when its future is dropped), the stream is being read;
        // afterwards a watch pauses it if no call follows within the idle window.
        let _reading = Reading::start(self, idle);
        // How long to wait for an event before pausing: longer right after fetching resumes.
        let mut window = IDLE_AFTER;
        loop {
            let from = lock(&idle.state).filter(|s| !s.fetching).map(|s| s.next);
            if let Some(from) = from {
                // Paused: fetch again only once the partition holds an event past the last one
                // read (its end offset, asked whenever this process publishes anything, and at
                // the heartbeat for producers elsewhere), from that event, named explicitly so
                // nothing is skipped or read twice.
                let mut published = idle.published.clone();
                published.mark_unchanged();
                while !self.unread(from).await {
                    let _ = tokio::time::timeout(IDLE_HEARTBEAT, published.changed()).await;
                }
                self.consumer
                    .resume(&partition_of(&self.topic))
                    .map_err(kafka)?;
                if let Some(mut state) = lock(&idle.state) {
                    state.fetching = true;
                }
                // An event is known to wait, and fetching can take longer than the idle window
                // to start again (deep in a long partition, on the mock): give it time, or the
                // stream would pause again before every first event.
                window = IDLE_HEARTBEAT;
            }
            tokio::select! {
                message = self.consumer.recv() => {
                    let message = message.map_err(kafka)?;
                    let expected = lock(&idle.state).and_then(|s| match s.next {
                        Offset::Offset(n) => Some(n),
                        _ => None,
                    });
                    match expected {
                        // Read before: never handed out twice.
                        Some(n) if message.offset() < n => continue,
                        // The partition no longer holds the events in between (retention, or
                        // the embedded cluster's log cap): said, since they cannot be read.
                        Some(n) if message.offset() > n => tracing::warn!(
                            topic = %self.topic,
                            expected = n,
                            first_kept = message.offset(),
                            "events were removed from the topic before this stream read them"
                        ),
                        _ => {}
                    }
                    if let Some(mut state) = lock(&idle.state) {
                        state.next = Offset::Offset(message.offset() + 1);
                    }
                    return received(&message);
                }
                () = tokio::time::sleep(window) => {}
            }
            // Nothing came: stop fetching. Pausing keeps the partition assigned at the last
            // event handed out; resuming fetches from the one after it.
            if let Some(mut state) = lock(&idle.state) {
                self.consumer
                    .pause(&partition_of(&self.topic))
                    .map_err(kafka)?;
                state.fetching = false;
            }
        }
    }

    /// Whether the partition holds events past `from`: its end offset, asked of the cluster (a
    /// failed answer counts as yes, so nothing waits on it).
    async fn unread(&self, from: Offset) -> bool {
        let next = match from {
            Offset::Offset(n) => n,
            _ => 0,
        };
        let consumer = Arc::clone(&self.consumer);
        let topic = self.topic.clone();
        match tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, 0, SEND_TIMEOUT)
        })
        .await
        {
            Ok(Ok((_, high))) => high > next,
            _ => true,
        }
    }

    /// The topic it reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// The stream's state, or None if a holder panicked (then the stream just keeps fetching).
fn lock(state: &Mutex<IdleState>) -> Option<MutexGuard<'_, IdleState>> {
    state.lock().ok()
}

/// Marks a `next()` call under way; when it ends, starts the watch that pauses the stream if
/// no other call follows in time.
struct Reading {
    consumer: Arc<StreamConsumer>,
    topic: String,
    state: Arc<Mutex<IdleState>>,
}

impl Reading {
    fn start(stream: &MissionStream, idle: &Idle) -> Self {
        if let Some(mut state) = lock(&idle.state) {
            state.reading = true;
        }
        Self {
            consumer: Arc::clone(&stream.consumer),
            topic: stream.topic.clone(),
            state: Arc::clone(&idle.state),
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let Some(mut state) = lock(&self.state) else {
            return;
        };
        state.reading = false;
        state.last_read = Instant::now();
        if !state.fetching || state.watched {
            return;
        }
        // Outside a runtime (a stream read to its end while shutting down) nobody waits on it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.watched = true;
        runtime.spawn(pause_when_unread(
            Arc::clone(&self.consumer),
            self.topic.clone(),
            Arc::clone(&self.state),
        ));
    }
}

/// A stream's one partition, to pause and resume.
fn partition_of(topic: &str) -> TopicPartitionList {
    let mut partition = TopicPartitionList::new();
    partition.add_partition(topic, 0);
    partition
}

/// Pauses a stream nobody has read for [`IDLE_AFTER`]; ends early when a reader comes back
/// (its own `next()` call watches from then on). One such watch per stream at a time, so a
/// busy stream starts at most one every [`IDLE_AFTER`].
async fn pause_when_unread(
    consumer: Arc<StreamConsumer>,
    topic: String,
    state: Arc<Mutex<IdleState>>,
) {
    loop {
        let wait = {
            let Some(mut s) = lock(&state) else { return };
            if s.reading || !s.fetching {
                s.watched = false;
                return;
            }
            let unread = s.last_read.elapsed();
            if unread >= IDLE_AFTER {
                let paused = consumer.pause(&partition_of(&topic));
                if paused.is_ok() {
                    s.fetching = false;
                }
                s.watched = false;
                return;
            }
            IDLE_AFTER - unread
        };
        tokio::time::sleep(wait).await;
    }
}

fn received(message: &BorrowedMessage<'_>) -> Result<Received, BusError> {
    let malformed = |problem: String| BusError::Malformed {
        topic: message.topic().to_owned(),
        offset: message.offset(),
        problem,
    };
    let envelope: Envelope = serde_json::from_slice(message.payload().unwrap_or_default())
        .map_err(|e| malformed(format!("not an envelope: {e}")))?;
    let header = |name: &str| -> Result<String, BusError> {
        let headers = message
            .headers()
            .ok_or_else(|| malformed("no headers".to_owned()))?;
        headers
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .ok_or_else(|| malformed(format!("no {name} header")))
    };
    let header_mission_id = header("mission_id")?;
    let header_job_id = header("job_id")?;
    let key = message
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    if header_mission_id != envelope.mission_id || key != envelope.mission_id {
        return Err(malformed(format!(
            "the envelope names mission {} but the header says {header_mission_id} and the \
             key {key}",
            envelope.mission_id
        )));
    }
    if header_job_id != envelope.job_id {
        return Err(malformed(format!(
            "the envelope names job {} but the header says {header_job_id}",
            envelope.job_id
        )));
    }
    Ok(Received {
        envelope,
        header_mission_id,
        header_job_id,
        key,
        offset: message.offset(),
    })
}
