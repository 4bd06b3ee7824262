//! Test databases: a fresh SQLite file in a temp folder, or a throwaway Postgres database that
//! is dropped when the test ends. Nothing touches the real user's app-data folder.

use std::sync::{Arc, Once};

use mission_core::db::Repository;
use mission_core::registry::manifest::ManifestInput;
use mission_core::{Catalog, Registry};
use serde_json::{json, Value};

/// Server used for the Postgres half of the suite.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ))
            .with_test_writer()
            .try_init();
    });
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub kind: Kind,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(kind: Kind) -> Self {
        init_tracing();
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.sqlite3").display());
                Self {
                    url,
                    kind,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Kind::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("mc_test_{}", uuid::Uuid::now_v7().simple());
                let pool = sqlx::PgPool::connect(&admin).await.expect(
                    "Postgres must be reachable at TEST_POSTGRES_URL (default 127.0.0.1:5432)",
                );
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Self {
                    url: format!("{base}/{name}"),
                    kind,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Opens the registry (migrations and bundled library included) and the storage under it.
    pub async fn open(&self) -> (Registry, Arc<dyn Repository>) {
        let (registry, repo) = self.open_empty().await;
        registry
            .ensure_bundled_library()
            .await
            .expect("import the bundled library");
        (registry, repo)
    }

    /// Opens the registry (migrations and bundled library included).
    pub async fn registry(&self) -> Registry {
        self.open().await.0
    }

    /// Opens the storage without importing the bundled library.
    pub async fn open_empty(&self) -> (Registry, Arc<dyn Repository>) {
        let repo = mission_core::db::open(&self.url).await.expect("open db");
        let registry = Registry::new(repo.clone(), Arc::new(Catalog::bundled().expect("catalog")));
        (registry, repo)
    }

    /// Opens the registry without importing the bundled library.
    pub async fn empty_registry(&self) -> Registry {
        self.open_empty().await.0
    }

    /// One number read with SQL directly (a `SELECT COUNT(*) …`).
    pub async fn count(&self, sql: &str) -> i64 {
        use sqlx::Connection;
        match self.kind {
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("postgres");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql)
            }
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("sqlite");
                sqlx::query_scalar(sql)
                    .fetch_one(&mut conn)
                    .await
                    .expect(sql)
            }
        }
    }

    /// Runs SQL on the database directly, as someone with database access would (or as a
    /// test does to make the database refuse a write).
    pub async fn sql(&self, statements: &[&str]) {
        use sqlx::Connection;
        match self.kind {
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url)
                    .await
                    .expect("postgres");
                for s in statements {
                    sqlx::query(s).execute(&mut conn).await.expect(s);
                }
                conn.close().await.expect("close");
            }
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url)
                    .await
                    .expect("sqlite");
                for s in statements {
                    sqlx::query(s).execute(&mut conn).await.expect(s);
                }
                conn.close().await.expect("close");
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
        // runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// A valid template with a correct logic_hash, in the given sector.
pub fn template(id: &str, name: &str, goal: &str) -> Value {
    let ruleset = json!({
        "allowed_tools": ["talent.candidate_search", "talent.attrition_predict"],
        "plan": [
            {"dept": 1, "action": "Scope the search."},
            {"dept": 8, "action": "Search for candidates.", "tool": "talent.candidate_search"}
        ],
        "forbidden_actions": ["Contact anyone on leave"]
    });
    with_hash(json!({
        "id": id,
        "name": name,
        "sector": "talent",
        "category": "Sourcing",
        "goal": goal,
        "required_depts": [1, 8],
        "ruleset": ruleset,
        "default_perimeter": {
            "budget_cents": 20000, "ttl_seconds": 86400, "max_steps": 40,
            "approval_mode": "Threshold", "threshold_cents": 2000
        },
        "risk_level": "Low",
        "logic_hash": ""
    }))
}

/// Sets logic_hash from the template's ruleset.
pub fn with_hash(mut t: Value) -> Value {
    let h = mission_core::registry::hash::logic_hash(&t["ruleset"]).expect("hash");
    t["logic_hash"] = Value::String(h);
    t
}

pub fn manifest(templates: Vec<Value>) -> Value {
    json!({"manifest_version": 1, "templates": templates})
}

pub fn input(name: &str, manifest: &Value) -> ManifestInput {
    ManifestInput::new(name, serde_json::to_vec_pretty(manifest).expect("json"))
}

/// Generates one test per backend from an async fn taking a [`TestDb`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestDb::new($crate::helpers::Kind::Sqlite).await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestDb::new($crate::helpers::Kind::Postgres).await).await
                }
            )*
        }
    };
}

/// A person at the keyboard, as the audit log names them.
pub fn operator(name: &str) -> mission_core::gateway::Actor {
    mission_core::gateway::Actor::Operator(name.to_owned())
}

/// A reviewer deciding in the approvals queue.
pub fn reviewer(name: &str) -> mission_core::gateway::Actor {
    mission_core::gateway::Actor::Reviewer(name.to_owned())
}
