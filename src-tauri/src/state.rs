//! What the commands share: the core services over one database, opened once in the
//! background so the window can load while migrations and the first-start import run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use std::sync::Arc;

use mission_core::audit::{AuditLog, KeyVault};
use mission_core::gateway::Gateway;
use mission_core::perimeter::Missions;
use mission_core::registry::ImportStage;
use mission_core::squad::{Bus, EngineOptions, SquadEngine};
use mission_core::Registry;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::error::{AppError, ErrorCode};

/// The core services.
#[derive(Debug, Clone)]
pub struct Services {
    /// Templates: search, show, import.
    pub registry: Registry,
    /// Active missions.
    pub missions: Missions,
    /// Imports waiting for Confirm.
    pub imports: ImportStage,
    /// The audit log, for reading and verifying (needs no signing key).
    pub audit: AuditLog,
}

/// Which Kafka the squads run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, specta::Type)]
pub struct KafkaInfo {
    /// In words: embedded (librdkafka's in-process mock cluster) or the brokers' addresses.
    pub mode: String,
    /// Whether it is the embedded mock cluster.
    pub embedded: bool,
    /// The bootstrap servers the clients use.
    pub bootstrap_servers: String,
}

/// The squad engine and its Kafka.
#[derive(Debug)]
pub struct Squads {
    /// The engine: assembles, runs and tears down each running mission's squad.
    pub engine: SquadEngine,
    /// Which Kafka.
    pub kafka: KafkaInfo,
}

/// State managed by the app.
#[derive(Debug)]
pub struct AppState {
    database_url: String,
    services: OnceCell<Result<Services, AppError>>,
    gateway: OnceCell<Result<Gateway, AppError>>,
    squads: OnceCell<Result<Squads, AppError>>,
    started: Instant,
    rendered: AtomicBool,
}

impl AppState {
    /// State for the database at this URL; nothing is opened yet.
    pub fn new(database_url: String, started: Instant) -> Self {
        Self {
            database_url,
            services: OnceCell::new(),
            gateway: OnceCell::new(),
            squads: OnceCell::new(),
            started,
            rendered: AtomicBool::new(false),
        }
    }

    /// The services, opening the database on first use. A failure to open is kept and
    /// returned to every caller, so the UI can say what is wrong instead of hanging.
    pub async fn services(&self) -> Result<&Services, AppError> {
        self.services
            .get_or_init(|| async {
                let registry = Registry::open(&self.database_url).await.map_err(|e| {
                    tracing::error!(error = %e, url = %redact(&self.database_url), "cannot open the library");
                    AppError::new(
                        ErrorCode::Storage,
                        format!(
                            "The mission library at {} could not be opened. Check that the disk \
                             is writable, or set DATABASE_URL to another database, then restart.",
                            redact(&self.database_url)
                        ),
                    )
                })?;
                tracing::info!(
                    ms = self.started.elapsed().as_millis() as u64,
                    "library database ready"
                );
                Ok(Services {
                    audit: AuditLog::new(Arc::clone(registry.repository())),
                    missions: Missions::new(registry.clone()),
                    imports: ImportStage::new(registry.clone()),
                    registry,
                })
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The tool gateway, started on first use: it signs audit records with the key from the OS
    /// keychain, so a locked or missing keychain fails here, and only here, with a message that
    /// says so; the library and missions keep working.
    pub async fn gateway(&self) -> Result<&Gateway, AppError> {
        let services = self.services().await?;
        self.gateway
            .get_or_init(|| async {
                let unavailable = |what: String| {
                    tracing::error!(error = %what, "the tool gateway cannot start");
                    AppError::new(ErrorCode::AuditUnavailable, what)
                };
                let vault = KeyVault::default();
                let sealer = tokio::task::spawn_blocking(move || vault.load_or_create())
                    .await
                    .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?
                    .map_err(|e| {
                        unavailable(format!(
                            "The audit signing key could not be loaded: {e}. Tool calls and \
                             approval decisions are refused until it can be."
                        ))
                    })?;
                Gateway::start_bundled(&services.registry, sealer)
                    .await
                    .map_err(AppError::from)
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The squad engine on the configured Kafka, started on first use (after the gateway).
    pub async fn squads(&self) -> Result<&Squads, AppError> {
        let gateway = self.gateway().await?.clone();
        let repo = Arc::clone(self.services().await?.registry.repository());
        self.squads
            .get_or_init(|| async {
                // Reading the SASL password may wait on the OS keychain.
                let bus = tokio::task::spawn_blocking(Bus::start_configured)
                    .await
                    .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?
                    .map_err(|e| {
                        tracing::error!(error = %e, "Kafka did not start");
                        AppError::new(
                            ErrorCode::KafkaUnavailable,
                            format!(
                                "Kafka did not start: {e}. Missions are saved but no squad runs \
                                 until it does; fix config/kafka.json (or KAFKA_BOOTSTRAP_SERVERS) \
                                 and restart."
                            ),
                        )
                    })?;
                let kafka = KafkaInfo {
                    mode: bus.mode().describe(),
                    embedded: bus.mock_cluster().is_some(),
                    bootstrap_servers: bus.bootstrap_servers().to_owned(),
                };
                tracing::info!(kafka = %kafka.mode, "squad engine starting");
                let engine = SquadEngine::start(
                    repo,
                    gateway,
                    Arc::new(bus),
                    EngineOptions {
                        gateway_url: crate::api_listen_address()
                            .ok()
                            .map(|addr| format!("http://{addr}")),
                        ..EngineOptions::default()
                    },
                );
                Ok(Squads { engine, kafka })
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Records the first time the window shows the library; later calls are ignored.
    pub fn library_rendered(&self, count: u32) {
        if !self.rendered.swap(true, Ordering::SeqCst) {
            tracing::info!(
                templates = count,
                ms = self.started.elapsed().as_millis() as u64,
                "library rendered"
            );
        }
    }
}

/// A database URL without its password, for messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
