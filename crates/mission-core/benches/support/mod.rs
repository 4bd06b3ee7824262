//! What the benchmarks share: percentiles and a throwaway Postgres database.

use std::sync::Arc;
use std::time::Duration;

use mission_core::db::Repository;

/// The sample at fraction `p` of a sorted list.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// A fresh database on the server at `TEST_POSTGRES_URL` (default
/// postgres://postgres@127.0.0.1:5432/postgres), dropped by [`ThrowawayPostgres::drop_db`].
pub struct ThrowawayPostgres {
    admin: sqlx::PgPool,
    name: String,
    /// The new database's URL.
    #[allow(dead_code, reason = "only the gateway benchmark opens the core by URL")]
    pub url: String,
    /// The repository over the new database.
    pub repo: Arc<dyn Repository>,
}

impl ThrowawayPostgres {
    /// Creates the database and opens it (migrations applied).
    pub async fn create() -> Self {
        let url = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("mc_bench_{}", uuid::Uuid::now_v7().simple());
        let admin = sqlx::PgPool::connect(&url)
            .await
            .expect("postgres reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create");
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        let repo = mission_core::db::open(&url).await.expect("pg");
        Self {
            admin,
            name,
            url,
            repo,
        }
    }

    /// Closes the repository and drops the database.
    pub async fn drop_db(self) {
        self.repo.close().await;
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await
            .expect("drop");
    }
}
