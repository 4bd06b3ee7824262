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
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a publish may wait for the broker before it is reported as failed.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Which Kafka the bus talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaMode {
    /// librdkafka's in-process mock cluster (the default: nothing to install).
    Embedded,
    /// Real brokers.
    Brokers {
        /// `host:port,…`.
        bootstrap_servers: String,
    },
}

/// The bundled Kafka settings (`config/kafka.json`).
const KAFKA_JSON: &str = include_str!("../../../../config/kafka.json");

/// Environment variable naming real brokers; it wins over `config/kafka.json`.
pub const BOOTSTRAP_ENV: &str = "KAFKA_BOOTSTRAP_SERVERS";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KafkaSettings {
    bootstrap_servers: String,
    #[serde(default)]
    security_protocol: Option<String>,
    #[serde(default)]
    sasl_mechanism: Option<String>,
    #[serde(default)]
    sasl_username: Option<String>,
    #[serde(default)]
    ssl_ca_location: Option<String>,
}

fn settings() -> Result<KafkaSettings, serde_json::Error> {
    serde_json::from_str(KAFKA_JSON)
}

/// The keychain service under which Kafka SASL passwords are kept (one entry per user name).
pub const KEYCHAIN_SERVICE: &str = "mission-control-kafka";

/// How the bus authenticates to real brokers. The password never sits in a file: it is read
/// from the OS keychain when the bus starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` (SASL only).
    pub sasl_mechanism: Option<String>,
    /// SASL user name; its password is in the keychain under [`KEYCHAIN_SERVICE`].
    pub sasl_username: Option<String>,
    /// CA bundle that signs the brokers' certificates (TLS), if not the system's.
    pub ssl_ca_location: Option<String>,
}

impl Default for KafkaSecurity {
    fn default() -> Self {
        Self {
            protocol: "plaintext".to_owned(),
            sasl_mechanism: None,
            sasl_username: None,
            ssl_ca_location: None,
        }
    }
}

/// Credentials for Kafka could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The settings are inconsistent.
    #[error("Kafka security settings: {0}")]
    Settings(String),
    /// The keychain has no password for the user.
    #[error(
        "the OS keychain has no Kafka password for \"{0}\"; store it with \
         `missionctl kafka set-password --user {0}`"
    )]
    NoPassword(String),
    /// The keychain could not be read.
    #[error("the OS keychain could not be read: {0}")]
    Keychain(#[from] keyring::Error),
}

impl KafkaSecurity {
    /// The configured security: `KAFKA_SECURITY_PROTOCOL`, `KAFKA_SASL_MECHANISM`,
    /// `KAFKA_SASL_USERNAME` and `KAFKA_SSL_CA_LOCATION` win over `config/kafka.json`.
    pub fn configured() -> Result<Self, CredentialError> {
        let file = settings().map_err(|e| CredentialError::Settings(e.to_string()))?;
        let pick = |env: &str, configured: Option<String>| {
            std::env::var(env)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .or(configured)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let security = Self {
            protocol: pick("KAFKA_SECURITY_PROTOCOL", file.security_protocol)
                .unwrap_or_else(|| "plaintext".to_owned())
                .to_ascii_lowercase(),
            sasl_mechanism: pick("KAFKA_SASL_MECHANISM", file.sasl_mechanism),
            sasl_username: pick("KAFKA_SASL_USERNAME", file.sasl_username),
            ssl_ca_location: pick("KAFKA_SSL_CA_LOCATION", file.ssl_ca_location),
        };
        security.check()?;
        Ok(security)
    }

    fn check(&self) -> Result<(), CredentialError> {
        if !matches!(
            self.protocol.as_str(),
            "plaintext" | "ssl" | "sasl_plaintext" | "sasl_ssl"
        ) {
            return Err(CredentialError::Settings(format!(
                "security_protocol \"{}\" is not one of plaintext, ssl, sasl_plaintext, sasl_ssl",
                self.protocol
            )));
        }
        if self.uses_sasl() && self.sasl_username.is_none() {
            return Err(CredentialError::Settings(format!(
                "{} needs sasl_username (its password goes in the OS keychain)",
                self.protocol
            )));
        }
        Ok(())
    }

    /// Whether the brokers want a SASL login.
    pub fn uses_sasl(&self) -> bool {
        self.protocol.starts_with("sasl_")
    }

    /// librdkafka's settings for this security, with the SASL password read from the keychain.
    pub fn client_settings(&self) -> Result<Vec<(String, String)>, CredentialError> {
        self.check()?;
        let mut out = vec![("security.protocol".to_owned(), self.protocol.clone())];
        if let Some(ca) = &self.ssl_ca_location {
            out.push(("ssl.ca.location".to_owned(), ca.clone()));
        }
        if let Some(user) = self.sasl_username.as_ref().filter(|_| self.uses_sasl()) {
            let password = match keyring::Entry::new(KEYCHAIN_SERVICE, user)?.get_password() {
                Ok(p) => p,
                Err(keyring::Error::NoEntry) => {
                    return Err(CredentialError::NoPassword(user.clone()))
                }
                Err(e) => return Err(e.into()),
            };
            out.push((
                "sasl.mechanism".to_owned(),
                self.sasl_mechanism
                    .clone()
                    .unwrap_or_else(|| "PLAIN".to_owned()),
            ));
            out.push(("sasl.username".to_owned(), user.clone()));
            out.push(("sasl.password".to_owned(), password));
        }
        Ok(out)
    }
}

/// Keeps a Kafka SASL password in the OS keychain.
pub fn store_sasl_password(username: &str, password: &str) -> Result<(), CredentialError> {
    keyring::Entry::new(KEYCHAIN_SERVICE, username)?.set_password(password)?;
    Ok(())
}

impl KafkaMode {
    /// The mode the settings ask for: brokers when `bootstrap_servers` names any, else
    /// embedded.
    pub fn from_bootstrap_servers(servers: &str) -> Self {
        let servers = servers.trim();
        if servers.is_empty() {
            Self::Embedded
        } else {
            Self::Brokers {
                bootstrap_servers: servers.to_owned(),
            }
        }
    }

    /// The configured mode: `KAFKA_BOOTSTRAP_SERVERS` if set, else `config/kafka.json`.
    pub fn configured() -> Result<Self, serde_json::Error> {
        if let Ok(servers) = std::env::var(BOOTSTRAP_ENV) {
            if !servers.trim().is_empty() {
                return Ok(Self::from_bootstrap_servers(&servers));
            }
        }
        Ok(Self::from_bootstrap_servers(&settings()?.bootstrap_servers))
    }

    /// In words, for the UI and `missionctl`.
    pub fn describe(&self) -> String {
        match self {
            Self::Embedded => "embedded (librdkafka's in-process mock cluster)".to_owned(),
            Self::Brokers { bootstrap_servers } => format!("brokers at {bootstrap_servers}"),
        }
    }
}

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

/// Every event on the bus: who it belongs to, what it is, and its content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// UUID v7: unique, and ordered by creation time; consumers drop duplicates by it.
    pub event_id: String,
    /// The mission.
    pub mission_id: String,
    /// The job (one per department task, assigned by the orchestrator).
    pub job_id: String,
    /// The department that sent it.
    pub dept: i64,
    /// What happened, e.g. `context`, `step.result`.
    pub kind: String,
    /// When (RFC 3339, UTC).
    pub ts: String,
    /// The content.
    pub payload: Value,
}

impl Envelope {
    /// A new event, stamped now with a fresh id.
    pub fn new(mission_id: &str, job_id: &str, dept: i64, kind: &str, payload: Value) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().to_string(),
            mission_id: mission_id.to_owned(),
            job_id: job_id.to_owned(),
            dept,
            kind: kind.to_owned(),
            ts: crate::gateway::timestamp(chrono::Utc::now()),
            payload,
        }
    }
}

/// The topic that carries one mission's reports to its orchestrator, and nothing else.
pub fn mission_topic(mission_id: &str) -> String {
    format!("mission.{mission_id}")
}

/// The topic that carries one department's context and jobs within one mission: each agent's
/// gateway token travels only on its own department's topic.
pub fn dept_topic(mission_id: &str, dept: i64) -> String {
    format!("mission.{mission_id}.dept-{dept}")
}

/// Whether a topic is one of this mission's.
pub fn belongs_to(topic: &str, mission_id: &str) -> bool {
    let own = mission_topic(mission_id);
    topic == own
        || topic
            .strip_prefix(&own)
            .and_then(|rest| rest.strip_prefix(".dept-"))
            .is_some_and(|dept| !dept.is_empty() && dept.bytes().all(|b| b.is_ascii_digit()))
}

/// An event as consumed, with what its Kafka headers and key said.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The envelope.
    pub envelope: Envelope,
    /// The `mission_id` header.
    pub header_mission_id: String,
    /// The `job_id` header.
    pub header_job_id: String,
    /// The message key.
    pub key: String,
    /// Offset in the mission's topic.
    pub offset: i64,
}

/// What the embedded cluster's thread is asked to do.
enum MockCommand {
    CreateTopic(String, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    BrokerDown(i32, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    BrokerUp(i32, std::sync::mpsc::Sender<Result<(), KafkaError>>),
    ProduceErrors(usize, std::sync::mpsc::Sender<Result<(), KafkaError>>),
}

/// librdkafka's mock cluster, on a thread of its own: the cluster handle may not move between
/// threads, and the bus is shared by every task. Dropping this stops the cluster.
pub struct EmbeddedCluster {
    commands: std::sync::mpsc::Sender<MockCommand>,
    bootstrap_servers: String,
}

impl EmbeddedCluster {
    /// Starts a one-broker cluster (broker id 1).
    fn start() -> Result<Self, KafkaError> {
        let (commands, inbox) = std::sync::mpsc::channel::<MockCommand>();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("kafka-mock-cluster".to_owned())
            .spawn(move || {
                let mock = match MockCluster::new(1) {
                    Ok(mock) => mock,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(mock.bootstrap_servers()));
                // Until the bus (the only sender) is dropped.
                while let Ok(command) = inbox.recv() {
                    match command {
                        MockCommand::CreateTopic(topic, reply) => {
                            let _ = reply.send(mock.create_topic(&topic, 1, 1));
                        }
                        MockCommand::BrokerDown(id, reply) => {
                            let _ = reply.send(mock.broker_down(id));
                        }
                        MockCommand::BrokerUp(id, reply) => {
                            let _ = reply.send(mock.broker_up(id));
                        }
                        MockCommand::ProduceErrors(count, reply) => {
                            // Retriable: the producer must retry without writing twice.
                            let errors = vec![
                                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
                                count
                            ];
                            mock.request_errors(rdkafka::types::RDKafkaApiKey::Produce, &errors);
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
            })
            .map_err(|e| KafkaError::ClientCreation(format!("mock cluster thread: {e}")))?;
        let bootstrap_servers = started
            .recv()
            .map_err(|_| KafkaError::ClientCreation("the mock cluster did not start".into()))??;
        Ok(Self {
            commands,
            bootstrap_servers,
        })
    }

    fn ask(
        &self,
        command: impl FnOnce(std::sync::mpsc::Sender<Result<(), KafkaError>>) -> MockCommand,
    ) -> Result<(), KafkaError> {
        let (reply, answer) = std::sync::mpsc::channel();
        let gone = || KafkaError::ClientCreation("the mock cluster has stopped".into());
        self.commands.send(command(reply)).map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Creates a topic with one partition.
    pub fn create_topic(&self, topic: &str) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::CreateTopic(topic.to_owned(), reply))
    }

    /// Takes a broker down (fault tests): clients see it as unreachable.
    pub fn broker_down(&self, broker_id: i32) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::BrokerDown(broker_id, reply))
    }

    /// Brings a broker back.
    pub fn broker_up(&self, broker_id: i32) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::BrokerUp(broker_id, reply))
    }

    /// Makes the next `count` produce requests fail with a retriable error (fault tests).
    pub fn fail_next_produce_requests(&self, count: usize) -> Result<(), KafkaError> {
        self.ask(|reply| MockCommand::ProduceErrors(count, reply))
    }
}

/// Producer and admin over one Kafka; owns the mock cluster in embedded mode.
pub struct Bus {
    mode: KafkaMode,
    bootstrap_servers: String,
    /// Servers and security, shared by every client this bus makes.
    base: ClientConfig,
    producer: FutureProducer,
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
        let producer = base
            .clone()
            // Exactly-once per partition from this producer: retries never duplicate.
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", SEND_TIMEOUT.as_millis().to_string())
            // Events are small and latency matters more than batching; under load, events
            // queued while a request is in flight still go out together.
            .set("linger.ms", "0")
            .create()
            .map_err(kafka)?;
        Ok(Self {
            mode,
            bootstrap_servers,
            base,
            producer,
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
        let results = admin
            .create_topics(
                [&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
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

    async fn delivered(&self, pending: DeliveryFuture) -> Result<i64, BusError> {
        match pending.await {
            Ok(Ok(delivery)) => Ok(delivery.offset),
            Ok(Err((e, _))) => Err(self.error(e)),
            Err(_) => Err(self.error(KafkaError::Canceled)),
        }
    }

    /// Hands one event to the producer's queue.
    fn enqueue(&self, topic: &str, envelope: &Envelope) -> Result<DeliveryFuture, BusError> {
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
        loop {
            match self.producer.send_result(record) {
                Ok(pending) => return Ok(pending),
                // A full local queue drains as deliveries complete; anything else is final.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if started.elapsed() < SEND_TIMEOUT =>
                {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(self.error(e)),
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
            .set("fetch.wait.max.ms", fetch_wait)
            .create()
            .map_err(|e| self.error(e))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, from)
            .map_err(|e| self.error(e))?;
        consumer.assign(&assignment).map_err(|e| self.error(e))?;
        Ok(MissionStream {
            consumer,
            topic,
            mode: self.mode.describe(),
        })
    }
}

/// One department's view of its mission's events.
pub struct MissionStream {
    consumer: StreamConsumer,
    topic: String,
    mode: String,
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
        let message = self
            .consumer
            .recv()
            .await
            .map_err(|source| BusError::Kafka {
                mode: self.mode.clone(),
                source,
            })?;
        received(&message)
    }

    /// The topic it reads.
    pub fn topic(&self) -> &str {
        &self.topic
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
