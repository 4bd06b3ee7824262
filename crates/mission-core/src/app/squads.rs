//! The squad engine and its Kafka, started on first use; the agent API served over the core;
//! and the Kafka checks that need no database.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::settings::KafkaSetting;
use super::Core;
use crate::error::{CoreError, ErrorCode};
use crate::gateway::{CallOutcome, ToolCall};
use crate::squad::{store_sasl_password, Bus, EngineOptions, Envelope, KafkaMode, SquadEngine};

/// Which Kafka the squads run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct KafkaInfo {
    /// In words: embedded (librdkafka's in-process mock cluster) or the brokers' addresses.
    pub mode: String,
    /// Whether it is the embedded mock cluster.
    pub embedded: bool,
    /// The bootstrap servers the clients use.
    pub bootstrap_servers: String,
}

impl KafkaInfo {
    fn of(bus: &Bus) -> Self {
        Self {
            mode: bus.mode().describe(),
            embedded: bus.mock_cluster().is_some(),
            bootstrap_servers: bus.bootstrap_servers().to_owned(),
        }
    }
}

/// The running squad engine and its Kafka.
pub(super) struct Squads {
    pub(super) engine: SquadEngine,
    kafka: KafkaInfo,
}

/// How long `kafka_probe` waits for a broker before saying it does not answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

fn kafka_unavailable(e: &dyn std::fmt::Display) -> CoreError {
    tracing::error!(error = %e, "Kafka did not start");
    CoreError::new(
        ErrorCode::KafkaUnavailable,
        format!(
            "Kafka did not start: {e}. Missions are saved but no squad runs until it does; fix \
             config/kafka.json (or KAFKA_BOOTSTRAP_SERVERS) and restart."
        ),
    )
}

async fn configured_bus() -> Result<Bus, CoreError> {
    // Reading the SASL password may wait on the OS keychain.
    tokio::task::spawn_blocking(Bus::start_configured)
        .await
        .map_err(|e| CoreError::internal(&e))?
        .map_err(|e| kafka_unavailable(&e))
}

impl Core {
    /// The squad engine on the configured Kafka, started on first use (after the gateway). It
    /// re-assembles every mission that was running when the last engine stopped.
    pub(super) async fn squads(&self) -> Result<&Squads, CoreError> {
        let gateway = self.gateway().await?.clone();
        self.inner
            .squads
            .get_or_init(|| async {
                let bus = match &self.inner.settings.kafka {
                    KafkaSetting::Bus(bus) => Arc::clone(bus),
                    KafkaSetting::Configured => Arc::new(configured_bus().await?),
                };
                let kafka = KafkaInfo::of(&bus);
                tracing::info!(kafka = %kafka.mode, "squad engine starting");
                // One clock for the gateway and the engine: time to live and leases agree.
                let options = EngineOptions {
                    gateway_url: Some(format!("http://{}", self.inner.settings.api_address())),
                    clock: Arc::clone(&self.inner.settings.clock),
                    ..self.inner.settings.engine.clone()
                };
                let engine = SquadEngine::start(self.inner.repo.clone(), gateway, bus, options);
                Ok(Squads { engine, kafka })
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Starts the squad engine now (the desktop does at startup); returns which Kafka it runs on.
    pub async fn start_squads(&self) -> Result<KafkaInfo, CoreError> {
        Ok(self.squads().await?.kafka.clone())
    }

    /// Which Kafka the squads use; an error if it could not be started.
    pub async fn kafka_info(&self) -> Result<KafkaInfo, CoreError> {
        self.start_squads().await
    }

    /// Notices of missions whose state or events changed, from the running engine.
    pub async fn mission_notices(
        &self,
    ) -> Result<tokio::sync::broadcast::Receiver<crate::squad::SquadNotice>, CoreError> {
        Ok(self.squads().await?.engine.subscribe())
    }

    /// Has a running engine pick up newly started or stopped missions now instead of at its
    /// next tick; nothing when no engine runs in this process.
    pub(super) async fn poke_squads(&self) {
        if let Some(Ok(squads)) = self.inner.squads.get() {
            if let Err(e) = squads.engine.poke().await {
                tracing::warn!(error = %e, "the squad engine picks the mission up at its next tick");
            }
        }
    }

    /// Stops the squad engine if it runs: it publishes what its outbox holds (for up to
    /// `drain`) and hands its missions back for the next engine.
    pub async fn shutdown_squads(&self, drain: Duration) {
        if let Some(Ok(squads)) = self.inner.squads.get() {
            squads.engine.shutdown(drain).await;
        }
    }

    /// One tool call from an agent, through every check of the gateway; audited whatever
    /// happens.
    pub async fn invoke(&self, call: ToolCall) -> Result<CallOutcome, CoreError> {
        self.gateway().await?.invoke_as(call).await
    }

    /// Where the agent API listens: the settings' address, or `config/gateway.json`'s
    /// loopback one.
    pub fn api_address(&self) -> String {
        self.inner.settings.api_address()
    }
}

/// What `kafka_probe` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaProbe {
    /// Which Kafka.
    pub kafka: KafkaInfo,
    /// The topic it created to prove it answers.
    pub topic: String,
    /// The offset its record was written at and read back from.
    pub offset: i64,
    /// Milliseconds from producing the record to reading it back.
    pub round_trip_ms: u64,
}

/// Which Kafka is configured, in words, before anything connects to it.
pub fn configured_kafka() -> Result<String, CoreError> {
    KafkaMode::configured()
        .map(|mode| mode.describe())
        .map_err(|e| CoreError::new(ErrorCode::Config, format!("config/kafka.json: {e}")))
}

/// Starts the configured Kafka and proves it works end to end: creates a topic, produces one
/// record to it and consumes that record back; needs no database. On real brokers the topic
/// is deleted afterwards.
pub async fn kafka_probe() -> Result<KafkaProbe, CoreError> {
    configured_kafka()?;
    let bus = configured_bus().await?;
    let probe = format!("status-{}", uuid::Uuid::now_v7());
    let unanswered = |what: &str| {
        CoreError::new(
            ErrorCode::KafkaUnavailable,
            format!(
                "Kafka did not {what} within {} s; check the bootstrap servers and that the \
                 brokers are up",
                PROBE_TIMEOUT.as_secs()
            ),
        )
    };
    let topic = tokio::time::timeout(PROBE_TIMEOUT, bus.ensure_mission_topic(&probe))
        .await
        .map_err(|_| unanswered("create a topic"))??;
    let record = Envelope::new(&probe, "probe", 0, "kafka.probe", serde_json::json!({}));
    let started = std::time::Instant::now();
    let written = tokio::time::timeout(PROBE_TIMEOUT, bus.publish(&record))
        .await
        .map_err(|_| unanswered("take a record"))??;
    let stream = bus.mission_stream(&probe, 0)?;
    let read = tokio::time::timeout(PROBE_TIMEOUT, stream.next())
        .await
        .map_err(|_| unanswered("hand back the record it took"))??;
    let round_trip_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if read.envelope.event_id != record.event_id || read.offset != written {
        return Err(CoreError::new(
            ErrorCode::KafkaUnavailable,
            format!(
                "Kafka handed back another record than the one written to {topic} at offset \
                 {written}"
            ),
        ));
    }
    drop(stream);
    if let Err(e) = bus.delete_mission_topics(&probe).await {
        tracing::warn!(error = %e, topic = %topic, "could not delete the probe topic");
    }
    Ok(KafkaProbe {
        kafka: KafkaInfo::of(&bus),
        topic,
        offset: written,
        round_trip_ms,
    })
}

/// Keeps a Kafka user's SASL password in the OS keychain.
pub fn store_kafka_password(user: &str, password: &str) -> Result<(), CoreError> {
    if password.is_empty() {
        return Err(CoreError::new(
            ErrorCode::InvalidRequest,
            "no password was given; pass it on standard input",
        ));
    }
    store_sasl_password(user, password).map_err(|e| {
        CoreError::new(
            ErrorCode::Config,
            format!("the OS keychain did not keep the password: {e}"),
        )
    })
}
