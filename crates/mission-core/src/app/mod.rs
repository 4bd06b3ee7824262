//! The one API every shell uses. [`Core::open`] opens the database once from [`Settings`] and
//! owns the registry, missions, imports, gateway, audit log and squad engine; each operation a
//! person or agent can perform is one method here. The desktop's commands, the agent API's
//! handlers and `missionctl`'s subcommands only translate their transport to these calls.
//! Every operation that changes something runs through the gateway's dispatcher
//! ([`crate::gateway::Gateway::audited`]) and leaves a signed audit record, whatever its
//! outcome.

mod approvals;
mod audit;
mod files;
mod library;
mod missions;
mod settings;
mod squads;

use std::sync::Arc;

use tokio::sync::OnceCell;

pub use approvals::ApprovalNotice;
pub use audit::verify_audit_file;
pub use files::{rehash_manifest, validate_files};
pub use missions::{DeployRequest, FollowEnd, MissionDetail};
pub use settings::{
    default_sqlite_path, redact, KafkaSetting, KeyStore, Settings, API_LISTEN_ENV, DATABASE_ENV,
};
pub use squads::{configured_kafka, kafka_probe, store_kafka_password, KafkaInfo, KafkaProbe};

use crate::audit::AuditLog;
use crate::db::Repository;
use crate::error::{CoreError, ErrorCode};
use crate::gateway::{Gateway, GatewayParts};
use crate::perimeter::Missions;
use crate::registry::{ImportStage, Registry};
use audit::audit_unavailable;

/// The core, opened once per process. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    repo: Arc<dyn Repository>,
    database_url: String,
    registry: Registry,
    missions: Missions,
    imports: ImportStage,
    audit: AuditLog,
    gateway: OnceCell<Result<Gateway, CoreError>>,
    squads: OnceCell<Result<squads::Squads, CoreError>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("database", &redact(&self.inner.database_url))
            .finish_non_exhaustive()
    }
}

impl Core {
    /// Opens (creating if needed) the database the settings name, applies migrations and
    /// imports the bundled library when this database has not seen this build's copy. The
    /// signing key and Kafka are not touched until an operation needs them, so reading works
    /// without either.
    pub async fn open(settings: Settings) -> Result<Self, CoreError> {
        let url = settings.resolved_database_url()?;
        let repo = crate::db::open(&url).await.map_err(|e| {
            tracing::error!(error = %e, url = %redact(&url), "cannot open the library");
            CoreError::new(
                ErrorCode::Storage,
                format!(
                    "The mission library at {} could not be opened. Check that the disk is \
                     writable and the server answers, or set DATABASE_URL to another database, \
                     then try again.",
                    redact(&url)
                ),
            )
        })?;
        let registry = Registry::new(repo.clone(), Arc::clone(&settings.catalog));
        if settings.bundled_library {
            registry.ensure_bundled_library().await?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                audit: AuditLog::new(repo.clone()),
                missions: Missions::new(registry.clone(), repo.clone()),
                repo,
                imports: ImportStage::new(registry.clone()),
                registry,
                database_url: url,
                settings,
                gateway: OnceCell::new(),
                squads: OnceCell::new(),
            }),
        })
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The database it uses (with any password), for the shell's own diagnostics.
    pub fn database_url(&self) -> &str {
        &self.inner.database_url
    }

    /// The registry, for read-only tools (benchmarks, tests).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The storage, for tools that inspect it (tests, benchmarks).
    pub fn repository(&self) -> &Arc<dyn Repository> {
        &self.inner.repo
    }

    /// The gateway, started on first use: it signs audit records with the key from the key
    /// store, so a locked keychain fails here, and only for operations that change something.
    pub async fn gateway(&self) -> Result<&Gateway, CoreError> {
        self.inner
            .gateway
            .get_or_init(|| async {
                let keystore = self.inner.settings.keystore.clone();
                let sealer = tokio::task::spawn_blocking(move || keystore.load())
                    .await
                    .map_err(|e| CoreError::internal(&e))??;
                let settings = &self.inner.settings;
                // The key that signs from now on is trusted from outside the database.
                if let Some(anchor) = &settings.trust_anchor {
                    let public = crate::audit::ExportedKey {
                        key_id: sealer.key_id().to_owned(),
                        public_key: sealer.public_key_hex(),
                    };
                    let now = crate::gateway::timestamp(settings.clock.now());
                    if anchor.pin(&public, &now).map_err(audit_unavailable)? {
                        tracing::info!(key = %public.key_id, anchor = %anchor.path().display(), "pinned the audit signing key in the trust anchor");
                    }
                }
                Gateway::start(GatewayParts {
                    repo: self.inner.repo.clone(),
                    catalog: Arc::clone(&settings.catalog),
                    config: settings.gateway.clone(),
                    admin_policies: settings.admin_policies.clone(),
                    sealer,
                    clock: Arc::clone(&settings.clock),
                })
                .await
                .map_err(CoreError::from)
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Closes the database after stopping the squad engine, if it runs.
    pub async fn close(&self) {
        self.shutdown_squads(std::time::Duration::from_secs(5))
            .await;
        self.inner.repo.close().await;
    }
}

/// Reads a page cursor a caller hands back; one this app did not give out is refused, so a
/// mistyped cursor never silently shows the first page again.
fn cursor(after: Option<&str>) -> Result<Option<crate::store::After>, CoreError> {
    let Some(text) = after else {
        return Ok(None);
    };
    crate::store::After::parse(text).map(Some).ok_or_else(|| {
        CoreError::new(
            ErrorCode::InvalidRequest,
            format!(
                "\"{text}\" is not a page cursor this app gave out; reload the list to start \
                 from its first page"
            ),
        )
    })
}
