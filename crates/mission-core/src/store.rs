//! What every domain's storage shares: the error a backend reports, and which backend it is.
//! Each domain declares the storage it needs as a trait beside itself (`registry::store`,
//! `perimeter::store`, `audit::store`, `gateway::store`, `squad::store`); `db` implements them
//! for SQLite and Postgres and depends on the domains, never the other way round.

/// Identifier shared with the desktop shell: the app-data folder (where the embedded database
/// lives) and the keychain entries are named after it.
pub const APP_IDENTIFIER: &str = "app.missioncontrol.desktop";

/// Storage errors. Their text is for logs; people see the boundary's wording instead.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported backend.
    #[error(
        "unsupported database URL \"{0}\": use a SQLite file path, sqlite://PATH or postgres://…"
    )]
    UnsupportedUrl(String),
    /// No app-data folder could be determined.
    #[error("no app-data folder is known for this user; pass --database-url")]
    NoDataDir,
    /// Stored data does not decode.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    /// The importer stopped sending before asking to commit; nothing was written.
    #[error("the import was abandoned before it finished; nothing was written")]
    ImportAbandoned,
}

/// Which backend a repository uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// Postgres server.
    Postgres,
}
