//! Which Kafka the squads use: the embedded mock cluster unless brokers are named in
//! `KAFKA_BOOTSTRAP_SERVERS` or `config/kafka.json`.

use serde::Deserialize;

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
const KAFKA_JSON: &str = include_str!("../../../../../config/kafka.json");

/// Environment variable naming real brokers; it wins over `config/kafka.json`.
pub const BOOTSTRAP_ENV: &str = "KAFKA_BOOTSTRAP_SERVERS";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KafkaSettings {
    pub(super) bootstrap_servers: String,
    #[serde(default)]
    pub(super) security_protocol: Option<String>,
    #[serde(default)]
    pub(super) sasl_mechanism: Option<String>,
    #[serde(default)]
    pub(super) sasl_username: Option<String>,
    #[serde(default)]
    pub(super) ssl_ca_location: Option<String>,
    #[serde(default)]
    pub(super) keep_topics_hours: u64,
}

pub(super) fn settings() -> Result<KafkaSettings, serde_json::Error> {
    serde_json::from_str(KAFKA_JSON)
}

/// How many hours an ended mission's topics are kept before they are deleted.
pub fn keep_topics_hours() -> u64 {
    settings().map(|s| s.keep_topics_hours).unwrap_or(0)
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
