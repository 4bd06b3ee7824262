//! Kafka through librdkafka. With no brokers configured the bus starts librdkafka's own
//! in-process mock cluster, so the same producers and consumers run on a desktop with nothing
//! else installed; with `bootstrap_servers` set it talks to real brokers.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

mod config;
mod credentials;
mod embedded;
mod envelope;

pub use config::{keep_topics_hours, KafkaMode, BOOTSTRAP_ENV};
pub use credentials::{store_sasl_password, CredentialError, KafkaSecurity, KEYCHAIN_SERVICE};
pub use embedded::EmbeddedCluster;
pub use envelope::{belongs_to, dept_topic, mission_topic, Envelope, Received};

/// How long a publish may wait for the broker before it is reported as failed
/// (`message.timeout.ms`).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The bus could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Kafka refused or failed.
    #[error("Kafka ({mode}): {source}")]
    Kafka {
        /// Which Kafka.
        mode: String,
        /// What librdkafka said.
        source: KafkaError,
    },
    /// The brokers' credentials could not be used.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// An event that is not an envelope, or whose headers disagree with it.
    #[error("malformed event on {topic} at offset {offset}: {problem}")]
    Malformed {
        /// Topic.
        topic: String,
        /// Offset.
        offset: i64,
        /// What is wrong.
        problem: String,
    },
}

/// Producer and admin over one Kafka; owns the mock cluster in embedded mode.
pub struct Bus {
    mode: KafkaMode,
    bootstrap_servers: String,
    /// Servers and security, shared by every client this bus makes.
    base: ClientConfig,
    /// `message.timeout.ms`: how long a publish may wait for the broker.
    message_timeout: Duration,
    /// The idempotent producer, replaced when it keeps failing (see [`Bus::note_failure`]).
    producer: std::sync::RwLock<Producing>,
    /// Since when every publish has failed; None while they succeed.
    failing_since: std::sync::Mutex<Option<std::time::Instant>>,
    /// Counts this process's delivered publishes: wakes streams paused while idle.
    published: tokio::sync::watch::Sender<u64>,
    // Dropped last: the clients above talk to it.
    mock: Option<EmbeddedCluster>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("mode", &self.mode)
            .field("bootstrap_servers", &self.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Starts the bus as configured: the mode from `KAFKA_BOOTSTRAP_SERVERS` or
    /// `config/kafka.json`, and for real brokers the security settings with the SASL password
    /// from the OS keychain.
    pub fn start_configured() -> Result<Self, BusError> {
        let mode = KafkaMode::configured()
            .map_err(|e| CredentialError::Settings(format!("config/kafka.json: {e}")))?;
        let security = match mode {
            KafkaMode::Embedded => KafkaSecurity::default(),
            KafkaMode::Brokers { .. } => KafkaSecurity::configured()?,
        };
        Self::start_secured(mode, &security)
    }

    /// Starts the bus: the mock cluster in embedded mode, and an idempotent producer.
    pub fn start(mode: KafkaMode) -> Result<Self, BusError> {
        Self::start_secured(mode, &KafkaSecurity::default())
    }

    /// Starts the bus with these security settings (real brokers only; the embedded cluster
    /// speaks plaintext in process).
    pub fn start_secured(mode: KafkaMode, security: &KafkaSecurity) -> Result<Self, BusError> {
        Self::start_with(mode, security, SEND_TIMEOUT)
    }

    /// Starts the bus with a message timeout of its own (fault tests shorten it so an outage
    /// longer than it takes seconds, not minutes).
    pub fn start_with(
        mode: KafkaMode,
        security: &KafkaSecurity,
        message_timeout: Duration,
    ) -> Result<Self, BusError> {
        let kafka = |source| BusError::Kafka {
            mode: mode.describe(),
            source,
        };
        let (mock, bootstrap_servers) = match &mode {
            KafkaMode::Embedded => {
                let mock = EmbeddedCluster::start().map_err(kafka)?;
                let servers = mock.bootstrap_servers.clone();
                (Some(mock), servers)
            }
            KafkaMode::Brokers { bootstrap_servers } => (None, bootstrap_servers.clone()),
        };
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", &bootstrap_servers);
        if mock.is_none() {
            for (key, value) in security.client_settings()? {
                base.set(key, value);
            }
        }
        let producer = new_producer(&base, message_timeout).map_err(kafka)?;
        Ok(Self {
            mode,
            bootstrap_servers,
            base,
            message_timeout,
            producer: std::sync::RwLock::new(Producing {
                producer,
                generation: 0,
            }),
            failing_since: std::sync::Mutex::new(None),
            published: tokio::sync::watch::Sender::new(0),
            mock,
        })
    }

    /// Which Kafka this is.
    pub fn mode(&self) -> &KafkaMode {
        &self.mode
    }

    /// The bootstrap servers (the mock cluster's listeners in embedded mode).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// The mock cluster, in embedded mode (fault tests take its brokers down and up).
    pub fn mock_cluster(&self) -> Option<&EmbeddedCluster> {
        self.mock.as_ref()
    }

    /// How many times the producer was replaced because it kept failing.
    pub fn producers_replaced(&self) -> u64 {
        self.producer.read().map_or(0, |p| p.generation)
    }

    /// The current producer and its generation.
    fn producing(&self) -> Producing {
        match self.producer.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A publish of `generation`'s producer failed. A producer in a fatal state, fenced, or
    /// holding a stale view of a topic never recovers on its own (an idempotent producer
    /// whose messages timed out bumps its epoch, which a broker may refuse for good); one
    /// that has failed for two message timeouts in a row is not trusted either. Either is
    /// replaced by a fresh one: its unsent messages fail and stay in the outbox, which the
    /// relay publishes again.
    fn note_failure(&self, generation: u64, error: &KafkaError) {
        let current = self.producing();
        if current.generation != generation {
            // An older producer's leftovers: its replacement is already in place.
            return;
        }
        let broken = current.producer.client().fatal_error().is_some() || is_broken(error);
        let Ok(mut since) = self.failing_since.lock() else {
            return;
        };
        let started = *since.get_or_insert_with(std::time::Instant::now);
        if !broken && started.elapsed() < self.message_timeout * 2 {
            return;
        }
        let fresh = match new_producer(&self.base, self.message_timeout) {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::warn!(error = %e, "could not create a new Kafka producer");
                return;
            }
        };
        let old = match self.producer.write() {
            Ok(mut slot) if slot.generation == generation => std::mem::replace(
                &mut *slot,
                Producing {
                    producer: fresh,
                    generation: generation + 1,
                },
            ),
            _ => return,
        };
        // The next replacement needs another full window of failures.
        *since = Some(std::time::Instant::now());
        tracing::warn!(error = %error, broken, "replaced a Kafka producer that kept failing");
        // Dropping a producer purges and waits for its queue: not on the caller's task.
        std::thread::spawn(move || drop(old));
    }

    fn note_success(&self) {
        if let Ok(mut since) = self.failing_since.lock() {
            *since = None;
        }
    }

    fn error(&self, source: KafkaError) -> BusError {
        BusError::Kafka {
            mode: self.mode.describe(),
            source,
        }
    }

    /// Creates the mission's topic (one partition keeps its events in order); an existing one
    /// is fine.
    pub async fn ensure_mission_topic(&self, mission_id: &str) -> Result<String, BusError> {
        self.ensure_topic(mission_topic(mission_id)).await
    }

    /// Creates a topic with one partition; an existing one is fine.
    pub async fn ensure_topic(&self, topic: String) -> Result<String, BusError> {
        if let Some(mock) = &self.mock {
            // The mock cluster has no CreateTopics; it creates topics through its own API.
            mock.create_topic(&topic).map_err(|e| self.error(e))?;
            return Ok(topic);
        }
        let admin: AdminClient<DefaultClientContext> =
            self.base.create().map_err(|e| self.error(e))?;
        // Bounded, so a relay pass during an outage ends and backs off instead of hanging.
        let options = AdminOptions::new().request_timeout(Some(self.message_timeout));
        let results = admin
            .create_topics(
                [&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &options,
            )
            .await
            .map_err(|e| self.error(e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(self.error(KafkaError::AdminOp(code))),
            }
        }
        Ok(topic)
    }

    /// Deletes a mission's topics (its own and its departments'), found in the brokers'
    /// metadata; returns how many. The embedded mock cluster cannot delete topics (librdkafka
    /// gives it no API for that): there they live in this process's memory and end with it,
    /// so this deletes nothing.
    pub async fn delete_mission_topics(&self, mission_id: &str) -> Result<usize, BusError> {
        if self.mock.is_some() {
            return Ok(0);
        }
        let producer = self.producing().producer;
        let timeout = self.message_timeout;
        let metadata =
            tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout))
                .await
                .map_err(|_| self.error(KafkaError::Canceled))?
                .map_err(|e| self.error(e))?;
        let topics: Vec<String> = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .filter(|t| belongs_to(t, mission_id))
            .collect();
        if topics.is_empty() {
            return Ok(0);
        }
        let admin: AdminClient<DefaultClientContext> =
            self.base.create().map_err(|e| self.error(e))?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let results = admin
            .delete_topics(&names, &AdminOptions::new())
            .await
            .map_err(|e| self.error(e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((_, code)) => return Err(self.error(KafkaError::AdminOp(code))),
            }
        }
        Ok(topics.len())
    }

    /// Publishes an event to its mission's topic: keyed by the mission id, with `mission_id`,
    /// `job_id` and `event_id` headers as well as the envelope.
    pub async fn publish(&self, envelope: &Envelope) -> Result<i64, BusError> {
        self.publish_to(&mission_topic(&envelope.mission_id), envelope)
            .await
    }

    /// Publishes an event to one of its mission's topics (refusing any other mission's).
    pub async fn publish_to(&self, topic: &str, envelope: &Envelope) -> Result<i64, BusError> {
        let pending = self.enqueue(topic, envelope)?;
        self.delivered(pending).await
    }

    /// Publishes events in order and waits for all of them; each gets its own outcome. Their
    /// order within a topic is kept: the producer is idempotent, so retries never reorder.
    pub async fn publish_all(&self, events: &[(String, Envelope)]) -> Vec<Result<i64, BusError>> {
        let mut pending = Vec::with_capacity(events.len());
        for (topic, envelope) in events {
            pending.push(self.enqueue(topic, envelope));
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for p in pending {
            outcomes.push(match p {
                Ok(p) => self.delivered(p).await,
                Err(e) => Err(e),
            });
        }
        outcomes
    }

    async fn delivered(
        &self,
        (pending, generation): (DeliveryFuture, u64),
    ) -> Result<i64, BusError> {
        let error = match pending.await {
            Ok(Ok(delivery)) => {
                self.note_success();
                self.published.send_modify(|n| *n = n.wrapping_add(1));
                return Ok(delivery.offset);
            }
            Ok(Err((e, _))) => e,
            Err(_) => KafkaError::Canceled,
        };
        self.note_failure(generation, &error);
        Err(self.error(error))
    }

    /// Hands one event to the producer's queue; returns its delivery and the producer's
    /// generation.
    fn enqueue(&self, topic: &str, envelope: &Envelope) -> Result<(DeliveryFuture, u64), BusError> {
        let malformed = |problem: String| BusError::Malformed {
            topic: topic.to_owned(),
            offset: -1,
            problem,
        };
        if !belongs_to(topic, &envelope.mission_id) {
            return Err(malformed(format!(
                "an event of mission {} cannot go to {topic}",
                envelope.mission_id
            )));
        }
        let payload = serde_json::to_vec(envelope).map_err(|e| malformed(e.to_string()))?;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "mission_id",
                value: Some(envelope.mission_id.as_str()),
            })
            .insert(Header {
                key: "job_id",
                value: Some(envelope.job_id.as_str()),
            })
            .insert(Header {
                key: "event_id",
                value: Some(envelope.event_id.as_str()),
            });
        let mut record = FutureRecord::to(topic)
            .key(envelope.mission_id.as_str())
            .payload(&payload)
            .headers(headers);
        let started = std::time::Instant::now();
        let Producing {
            producer,
            generation,
        } = self.producing();
        loop {
            match producer.send_result(record) {
                Ok(pending) => return Ok((pending, generation)),
                // A full local queue drains as deliveries complete; anything else is final.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < self.message_timeout =>
                {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    self.note_failure(generation, &e);
                    return Err(self.error(e));
                }
            }
        }
    }

    /// A consumer of one mission's topic, from its first event. It reads that topic only: no
    /// other mission's events can reach it.
    pub fn mission_stream(&self, mission_id: &str, dept: i64) -> Result<MissionStream, BusError> {
        self.stream(
            mission_topic(mission_id),
            format!("squad.{mission_id}.dept-{dept}"),
            Offset::Beginning,
        )
    }

    /// A consumer of one department's topic within one mission, from `offset` (where its
    /// latest context was published) or from the beginning.
    pub fn dept_stream(
        &self,
        mission_id: &str,
        dept: i64,
        from_offset: Option<i64>,
    ) -> Result<MissionStream, BusError> {
        self.stream(
            dept_topic(mission_id, dept),
            format!("squad.{mission_id}.dept-{dept}.inbox"),
            from_offset.map_or(Offset::Beginning, Offset::Offset),
        )
    }

    fn stream(
        &self,
        topic: String,
        group: String,
        from: Offset,
    ) -> Result<MissionStream, BusError> {
        // Real brokers answer a waiting fetch as soon as an event lands, so the default long
        // wait costs nothing in latency. The mock cluster answers only when the wait ends: a
        // 2 ms wait keeps its latency low, at one small request per 2 ms per idle consumer.
        let fetch_wait = if self.mock.is_some() { "2" } else { "500" };
        let consumer: StreamConsumer = self
            .base
            .clone()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // A topic the broker lost and the relay made again starts from offset 0: read it
            // from there (agents drop what they have seen by event id) rather than skip to
            // its end.
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", fetch_wait)
            .create()
            .map_err(|e| self.error(e))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, from)
            .map_err(|e| self.error(e))?;
        consumer.assign(&assignment).map_err(|e| self.error(e))?;
        Ok(MissionStream {
            consumer: std::sync::Arc::new(consumer),
            mode: self.mode.describe(),
            idle: self.mock.as_ref().map(|_| Idle {
                published: self.published.subscribe(),
                state: std::sync::Arc::new(std::sync::Mutex::new(IdleState {
                    next: from,
                    fetching: true,
                    reading: false,
                    last_read: std::time::Instant::now(),
                    watched: false,
                })),
            }),
            topic,
        })
    }
}

/// The producer in use and how many were replaced before it.
#[derive(Clone)]
struct Producing {
    producer: FutureProducer,
    generation: u64,
}

fn new_producer(
    base: &ClientConfig,
    message_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    base.clone()
        // Exactly-once per partition from this producer: retries never duplicate.
        .set("enable.idempotence", "true")
        // A message the broker refused for good (a stale epoch, a sequence gap) makes the
        // producer fail instead of bumping its epoch locally and carrying on with a gap; a
        // broker may refuse that bumped epoch forever. The bus then replaces the producer and
        // the relay sends the outbox again, in order.
        .set("enable.gapless.guarantee", "true")
        .set(
            "message.timeout.ms",
            message_timeout.as_millis().to_string(),
        )
        // Events are small and latency matters more than batching; under load, events
        // queued while a request is in flight still go out together.
        .set("linger.ms", "0")
        .create()
}

/// Whether a failure means the producer itself is done for: fenced, out of sequence, fatal,
/// or holding a topic the broker no longer knows.
fn is_broken(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MessageProduction(code) => *code,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::Fatal
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::OutOfOrderSequenceNumber
            | RDKafkaErrorCode::UnknownProducerId
            | RDKafkaErrorCode::InvalidProducerIdMapping
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownTopicOrPartition
    )
}

/// One department's view of its mission's events.
pub struct MissionStream {
    consumer: std::sync::Arc<StreamConsumer>,
    topic: String,
    mode: String,
    /// Embedded mode: what lets an idle stream stop fetching and wake again.
    idle: Option<Idle>,
}

/// How an idle stream in embedded mode stops fetching: this process's publishes wake it, and
/// it resumes from the next event it has not read.
struct Idle {
    published: tokio::sync::watch::Receiver<u64>,
    state: std::sync::Arc<std::sync::Mutex<IdleState>>,
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
    last_read: std::time::Instant,
    /// Whether a watch task is waiting to pause the stream.
    watched: bool,
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
                self.consumer.resume(&self.partition()?).map_err(kafka)?;
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
                self.consumer.pause(&self.partition()?).map_err(kafka)?;
                state.fetching = false;
            }
        }
    }

    /// Its one partition, to pause and resume.
    fn partition(&self) -> Result<TopicPartitionList, BusError> {
        partition_of(&self.topic).map_err(|source| BusError::Kafka {
            mode: self.mode.clone(),
            source,
        })
    }

    /// Whether the partition holds events past `from`: its end offset, asked of the cluster (a
    /// failed answer counts as yes, so nothing waits on it).
    async fn unread(&self, from: Offset) -> bool {
        let next = match from {
            Offset::Offset(n) => n,
            _ => 0,
        };
        let consumer = std::sync::Arc::clone(&self.consumer);
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
fn lock(state: &std::sync::Mutex<IdleState>) -> Option<std::sync::MutexGuard<'_, IdleState>> {
    state.lock().ok()
}

/// Marks a `next()` call under way; when it ends, starts the watch that pauses the stream if
/// no other call follows in time.
struct Reading {
    consumer: std::sync::Arc<StreamConsumer>,
    topic: String,
    state: std::sync::Arc<std::sync::Mutex<IdleState>>,
}

impl Reading {
    fn start(stream: &MissionStream, idle: &Idle) -> Self {
        if let Some(mut state) = lock(&idle.state) {
            state.reading = true;
        }
        Self {
            consumer: std::sync::Arc::clone(&stream.consumer),
            topic: stream.topic.clone(),
            state: std::sync::Arc::clone(&idle.state),
        }
    }
}

impl Drop for Reading {
    fn drop(&mut self) {
        let Some(mut state) = lock(&self.state) else {
            return;
        };
        state.reading = false;
        state.last_read = std::time::Instant::now();
        if !state.fetching || state.watched {
            return;
        }
        // Outside a runtime (a stream read to its end while shutting down) nobody waits on it.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.watched = true;
        runtime.spawn(pause_when_unread(
            std::sync::Arc::clone(&self.consumer),
            self.topic.clone(),
            std::sync::Arc::clone(&self.state),
        ));
    }
}

/// A stream's one partition, to pause and resume.
fn partition_of(topic: &str) -> Result<TopicPartitionList, KafkaError> {
    let mut partition = TopicPartitionList::new();
    partition.add_partition(topic, 0);
    Ok(partition)
}

/// Pauses a stream nobody has read for [`IDLE_AFTER`]; ends early when a reader comes back
/// (its own `next()` call watches from then on). One such watch per stream at a time, so a
/// busy stream starts at most one every [`IDLE_AFTER`].
async fn pause_when_unread(
    consumer: std::sync::Arc<StreamConsumer>,
    topic: String,
    state: std::sync::Arc<std::sync::Mutex<IdleState>>,
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
                let paused = partition_of(&topic).and_then(|p| consumer.pause(&p));
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
