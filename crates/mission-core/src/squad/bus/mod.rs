//! Kafka through librdkafka. With no brokers configured the bus starts librdkafka's own
//! in-process mock cluster, so the same producers and consumers run on a desktop with nothing
//! else installed; with `bootstrap_servers` set it talks to real brokers.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

mod config;
mod credentials;
mod embedded;
mod envelope;
mod stream;

pub use config::{keep_topics_hours, KafkaMode, BOOTSTRAP_ENV};
pub use credentials::{store_sasl_password, CredentialError, KafkaSecurity, KEYCHAIN_SERVICE};
pub use embedded::EmbeddedCluster;
pub use envelope::{belongs_to, dept_topic, mission_topic, Envelope, Received};
pub use stream::MissionStream;

/// How long a publish may wait for the broker before it is reported as failed
/// (`message.timeout.ms`).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
        let producer = new_producer(&base, message_timeout, mock.is_some()).map_err(kafka)?;
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
        let fresh = match new_producer(&self.base, self.message_timeout, self.mock.is_some()) {
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
        // Embedded mode: this process's publishes wake a paused stream.
        let published = self.mock.as_ref().map(|_| self.published.subscribe());
        Ok(MissionStream::new(
            consumer,
            topic,
            self.mode.describe(),
            published,
            from,
        ))
    }
}

/// The producer in use and how many were replaced before it.
#[derive(Clone)]
struct Producing {
    producer: FutureProducer,
    generation: u64,
}

/// The bus's producer; `embedded` when it writes to the in-process mock cluster.
fn new_producer(
    base: &ClientConfig,
    message_timeout: Duration,
    embedded: bool,
) -> Result<FutureProducer, KafkaError> {
    let mut config = base.clone();
    if embedded {
        // The mock cluster does not check an idempotent producer's sequence numbers (it does
        // only for transactional ones), so with several requests in flight it can accept a
        // later batch after refusing an earlier one; librdkafka then takes the earlier one for
        // written (a real broker would have refused the later one) and reports it delivered.
        // One request at a time keeps every batch behind the one before it.
        config.set("max.in.flight.requests.per.connection", "1");
    }
    config
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
