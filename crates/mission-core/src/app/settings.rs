//! What the core is opened with: the database, the key store, the clock, Kafka and the squad
//! engine's options. Shells build it from their environment with [`Settings::from_env`] and
//! change nothing else; tests build it by hand.

use std::path::PathBuf;
use std::sync::Arc;

use crate::audit::{KeyVault, Sealer, TrustAnchor, KEYSTORE_ENV};
use crate::catalog::Catalog;
use crate::error::{CoreError, ErrorCode};
use crate::gateway::{Clock, GatewayConfig, SystemClock, BUNDLED_ADMIN_POLICIES};
use crate::squad::{Bus, EngineOptions};
use crate::store::{DbError, APP_IDENTIFIER};

/// Environment variable naming the database (a SQLite path or URL, or `postgres://…`).
pub const DATABASE_ENV: &str = "DATABASE_URL";
/// Environment variable moving the agent API to another address.
pub const API_LISTEN_ENV: &str = "MISSION_CONTROL_API_LISTEN";

/// Where the audit signing key comes from.
#[derive(Debug, Clone)]
pub enum KeyStore {
    /// The OS keychain (created there on first use).
    Os,
    /// A key that lives only as long as the process (end-to-end tests, throwaway demos); the
    /// database still keeps its public half, so its records verify later.
    Ephemeral,
    /// This key (tests).
    Key(Box<Sealer>),
}

impl KeyStore {
    /// A store holding this key (tests and benchmarks).
    pub fn key(sealer: Sealer) -> Self {
        Self::Key(Box::new(sealer))
    }

    /// The store [`KEYSTORE_ENV`] names: unset or `os`, or `ephemeral`.
    pub fn from_env() -> Result<Self, CoreError> {
        match std::env::var(KEYSTORE_ENV).ok().as_deref().map(str::trim) {
            None | Some("" | "os") => Ok(Self::Os),
            Some("ephemeral") => Ok(Self::Ephemeral),
            Some(other) => Err(CoreError::new(
                ErrorCode::Config,
                format!(
                    "{KEYSTORE_ENV}={other} is not a key store; use `os` (the default) or \
                     `ephemeral`"
                ),
            )),
        }
    }

    /// Loads (or creates) the signing key; may wait on the OS keychain, so call it off the
    /// async threads.
    pub(crate) fn load(&self) -> Result<Sealer, CoreError> {
        match self {
            Self::Key(sealer) => Ok(Sealer::clone(sealer)),
            Self::Ephemeral => Ok(Sealer::generate()),
            Self::Os => KeyVault::default().load_or_create().map_err(|e| {
                CoreError::new(
                    ErrorCode::AuditUnavailable,
                    format!(
                        "The audit signing key could not be loaded: {e}. Nothing that changes \
                         missions, approvals or the library can run until it can, because each \
                         change is signed into the audit log."
                    ),
                )
            }),
        }
    }
}

/// Which Kafka the squads use.
#[derive(Debug, Clone)]
pub enum KafkaSetting {
    /// As configured: `KAFKA_BOOTSTRAP_SERVERS` or `config/kafka.json`, else the embedded
    /// mock cluster.
    Configured,
    /// This bus (tests share one mock cluster).
    Bus(Arc<Bus>),
}

/// Everything [`super::Core::open`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database; `None` is the SQLite file in the OS app-data folder.
    pub database_url: Option<String>,
    /// Where the signing key comes from.
    pub keystore: KeyStore,
    /// Where the gateway reads the time.
    pub clock: Arc<dyn Clock>,
    /// Sectors, departments, tools and policy.
    pub catalog: Arc<Catalog>,
    /// The gateway's settings.
    pub gateway: GatewayConfig,
    /// Admin-written Cedar policies.
    pub admin_policies: String,
    /// Which Kafka.
    pub kafka: KafkaSetting,
    /// How the squad engine runs.
    pub engine: EngineOptions,
    /// Where the agent API listens; `None` is `config/gateway.json`'s address.
    pub api_listen: Option<String>,
    /// Import the bundled template library when this database has not seen this build's copy.
    pub bundled_library: bool,
    /// The audit trust anchor: the file, outside the database, that pins the public keys
    /// `audit verify` trusts. This machine's signing key is pinned there when first used.
    /// `None`: no anchor (verifying then needs the keys given).
    pub trust_anchor: Option<TrustAnchor>,
}

impl Settings {
    /// The bundled configuration, the OS keychain and the system clock, on this database.
    pub fn bundled(database_url: Option<String>) -> Result<Self, CoreError> {
        Ok(Self {
            database_url,
            keystore: KeyStore::Os,
            clock: Arc::new(SystemClock),
            catalog: Arc::new(Catalog::bundled().map_err(|e| {
                CoreError::new(ErrorCode::Config, format!("the bundled catalogues: {e}"))
            })?),
            gateway: GatewayConfig::bundled().map_err(|e| {
                CoreError::new(ErrorCode::Config, format!("config/gateway.json: {e}"))
            })?,
            admin_policies: BUNDLED_ADMIN_POLICIES.to_owned(),
            kafka: KafkaSetting::Configured,
            engine: EngineOptions::default(),
            api_listen: None,
            bundled_library: true,
            trust_anchor: None,
        })
    }

    /// What a shell runs with: [`Settings::bundled`] with the database, key store and API
    /// address the environment names ([`DATABASE_ENV`], [`KEYSTORE_ENV`], [`API_LISTEN_ENV`]),
    /// and the trust anchor in the app's config folder (or at `MISSION_CONTROL_TRUST_ANCHOR`).
    /// A database given by the shell (a command-line flag) wins over the environment.
    pub fn from_env(database_url: Option<String>) -> Result<Self, CoreError> {
        let nonempty = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.trim().is_empty())
        };
        let mut settings = Self::bundled(database_url.or_else(|| nonempty(DATABASE_ENV)))?;
        settings.keystore = KeyStore::from_env()?;
        settings.api_listen = nonempty(API_LISTEN_ENV);
        settings.trust_anchor = TrustAnchor::default_location().map(TrustAnchor::at);
        Ok(settings)
    }

    /// The database URL, the app-data file when none is named.
    pub fn resolved_database_url(&self) -> Result<String, CoreError> {
        match &self.database_url {
            Some(url) => Ok(url.clone()),
            None => Ok(default_sqlite_path()?.display().to_string()),
        }
    }

    /// Where the agent API listens.
    pub fn api_address(&self) -> String {
        self.api_listen
            .clone()
            .unwrap_or_else(|| self.gateway.listen.clone())
    }
}

/// Where the embedded database lives when no URL is given: the OS app-data folder (the folder
/// the desktop app uses for its own data too, on every system).
pub fn default_sqlite_path() -> Result<PathBuf, CoreError> {
    let base = directories::BaseDirs::new().ok_or(DbError::NoDataDir)?;
    Ok(base
        .data_dir()
        .join(APP_IDENTIFIER)
        .join("mission-control.sqlite3"))
}

/// A database URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://mc:hunter2@db.example:5432/mc"),
            "postgres://mc:***@db.example:5432/mc"
        );
        assert_eq!(redact("/tmp/library.sqlite3"), "/tmp/library.sqlite3");
        assert_eq!(
            redact("postgres://mc@db.example/mc"),
            "postgres://mc@db.example/mc"
        );
    }
}
