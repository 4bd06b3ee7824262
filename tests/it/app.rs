//! The test app: one helper that gives a test a fresh database, the core opened over it with
//! an in-memory keychain and a clock the test moves, and the agent API on a free port. Squad
//! engines built from it run on that clock and can be driven step by step.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mission_core::app::{KafkaSetting, KeyStore};
use mission_core::audit::{KeyVault, Sealer};
use mission_core::gateway::{Clock, Gateway, GatewayConfig};
use mission_core::squad::{Bus, EngineOptions, SquadEngine};
use mission_core::{Catalog, Core, Settings};
use serde_json::Value;

use crate::helpers::{input, manifest, TestDb};

/// A keychain for tests: keyring's own extension point with an in-memory store, so the
/// gateway's key handling runs as in the app without touching the user's keychain.
type Secrets = Arc<Mutex<HashMap<(String, String), Vec<u8>>>>;

#[derive(Debug, Default)]
struct MemoryKeychain(Secrets);

#[derive(Debug)]
struct MemoryCredential {
    key: (String, String),
    store: Secrets,
}

impl keyring::credential::CredentialApi for MemoryCredential {
    fn set_secret(&self, secret: &[u8]) -> keyring::Result<()> {
        self.store
            .lock()
            .expect("keychain lock")
            .insert(self.key.clone(), secret.to_vec());
        Ok(())
    }
    fn get_secret(&self) -> keyring::Result<Vec<u8>> {
        self.store
            .lock()
            .expect("keychain lock")
            .get(&self.key)
            .cloned()
            .ok_or(keyring::Error::NoEntry)
    }
    fn delete_credential(&self) -> keyring::Result<()> {
        self.store.lock().expect("keychain lock").remove(&self.key);
        Ok(())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl keyring::credential::CredentialBuilderApi for MemoryKeychain {
    fn build(
        &self,
        _target: Option<&str>,
        service: &str,
        user: &str,
    ) -> keyring::Result<Box<keyring::credential::Credential>> {
        Ok(Box::new(MemoryCredential {
            key: (service.to_owned(), user.to_owned()),
            store: Arc::clone(&self.0),
        }))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Routes every keyring entry of this test process to the in-memory keychain.
pub fn isolated_keychain() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| keyring::set_default_credential_builder(Box::new(MemoryKeychain::default())));
}

/// The signing key as the app gets it (through keyring), from the isolated keychain.
pub fn test_sealer() -> Sealer {
    isolated_keychain();
    KeyVault::new("mission-control-tests", "audit-signing-key")
        .load_or_create()
        .expect("signing key")
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    /// A clock stopped at an RFC 3339 time.
    pub fn at(time: &str) -> Self {
        Self(Mutex::new(
            DateTime::parse_from_rfc3339(time)
                .expect("time")
                .with_timezone(&Utc),
        ))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

/// How a test app is set up.
pub struct AppOptions {
    /// Sectors, tools and policy.
    pub catalog: Catalog,
    /// The gateway's settings.
    pub gateway: GatewayConfig,
    /// Templates imported before the test starts (the bundled library is not).
    pub manifests: Vec<Value>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            catalog: Catalog::bundled().expect("catalog"),
            gateway: GatewayConfig::bundled().expect("gateway config"),
            manifests: Vec::new(),
        }
    }
}

/// The core over a fresh database, as the app runs it, with the test's clock and key.
pub struct TestApp {
    /// The core.
    pub core: Core,
    /// The clock the gateway and every engine built here read; the test moves it.
    pub clock: Arc<TestClock>,
    /// The agent API's base URL (`http://127.0.0.1:PORT`).
    pub api: String,
    /// The audit trust anchor file, in a config folder of the test's own.
    pub anchor: std::path::PathBuf,
    _config: tempfile::TempDir,
}

/// How long a squad engine's claim on a mission holds in tests (on the test's clock).
pub const LEASE: Duration = Duration::from_secs(15);

/// How long a test waits for something the squad is expected to do before it fails. A bound
/// for failure, not a pause: waits end as soon as what they wait for has happened.
pub const PATIENCE: Duration = Duration::from_secs(30);

impl TestApp {
    /// The app over `db` with `options`: its templates imported, the agent API listening.
    pub async fn spawn_with(db: &TestDb, options: AppOptions) -> Self {
        crate::helpers::init_tracing();
        let clock = Arc::new(TestClock::at("2026-11-25T09:00:00Z"));
        let mut settings = Settings::bundled(Some(db.url.clone())).expect("settings");
        settings.catalog = Arc::new(options.catalog);
        settings.gateway = options.gateway;
        settings.keystore = KeyStore::key(test_sealer());
        settings.clock = Arc::clone(&clock) as Arc<dyn Clock>;
        settings.bundled_library = false;
        settings.kafka = KafkaSetting::Bus(Arc::new(crate::squad::bus()));
        let config = tempfile::tempdir().expect("config folder");
        let anchor = config.path().join("audit-trust.json");
        settings.trust_anchor = Some(mission_core::audit::TrustAnchor::at(&anchor));
        let core = Core::open(settings).await.expect("open the core");
        if !options.manifests.is_empty() {
            core.registry()
                .import(&[input("test.json", &manifest(options.manifests))])
                .await
                .expect("import the test templates");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let api = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(mission_core::api::serve(
            listener,
            core.clone(),
            std::future::pending(),
        ));
        Self {
            core,
            clock,
            api,
            anchor,
            _config: config,
        }
    }

    /// The app with the bundled catalogue and these templates.
    pub async fn with_templates(db: &TestDb, templates: Vec<Value>) -> Self {
        Self::spawn_with(
            db,
            AppOptions {
                manifests: templates,
                ..AppOptions::default()
            },
        )
        .await
    }

    /// The gateway the core runs.
    pub async fn gateway(&self) -> Gateway {
        self.core.gateway().await.expect("gateway").clone()
    }

    /// Engine options for tests: the test's clock, a quick supervisor, and the app's lease.
    pub fn engine_options(&self) -> EngineOptions {
        EngineOptions {
            lease: LEASE,
            tick: Duration::from_millis(100),
            clock: Arc::clone(&self.clock) as Arc<dyn Clock>,
            ..EngineOptions::default()
        }
    }

    /// A squad engine over this app's storage and gateway, on `bus`. With `autonomous` false
    /// it does nothing on its own: the test steps it (see [`drive_until`]).
    pub async fn engine(&self, bus: Arc<Bus>, options: EngineOptions) -> SquadEngine {
        SquadEngine::start(
            self.core.repository().clone(),
            self.gateway().await,
            bus,
            options,
        )
    }
}

/// Steps `engine` — one round of supervision and one batch of the outbox — until `probe`
/// finds what it looks for. Between rounds that published nothing it waits for the squad to
/// write something (its agents react to what Kafka delivered) or for the gateway to announce
/// something, never for a fixed time; it fails after [`PATIENCE`] without news.
pub async fn drive_until<T, F, Fut>(
    engine: &SquadEngine,
    gateway: &Gateway,
    what: &str,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let mut notices = engine.subscribe();
    let mut events = gateway.subscribe();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        engine.poke().await.expect("a round of supervision");
        let pass = engine.relay_once().await.expect("a batch of the outbox");
        if let Some(found) = probe().await {
            return found;
        }
        // Published events may have moved the squad; events Kafka did not take yet are
        // offered again at once (the relay waits on Kafka itself, so this does not spin).
        if pass.published > 0 || pass.waiting > 0 {
            continue;
        }
        news(&mut notices, &mut events, what).await;
    }
}

/// Waits, with an engine that runs on its own, until `probe` finds what it looks for: it
/// looks again whenever the squad writes something or the gateway announces something.
pub async fn until<T, F, Fut>(
    engine: &SquadEngine,
    gateway: &Gateway,
    what: &str,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let mut notices = engine.subscribe();
    let mut events = gateway.subscribe();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        news(&mut notices, &mut events, what).await;
    }
}

/// The next thing the squad wrote or the gateway announced; fails after [`PATIENCE`] of
/// silence.
async fn news(
    notices: &mut tokio::sync::broadcast::Receiver<mission_core::squad::SquadNotice>,
    events: &mut tokio::sync::broadcast::Receiver<mission_core::gateway::GatewayEvent>,
    what: &str,
) {
    tokio::select! {
        _ = notices.recv() => {}
        _ = events.recv() => {}
        () = tokio::time::sleep(PATIENCE) => panic!("nothing happened for {} s while waiting for {what}", PATIENCE.as_secs()),
    }
}
