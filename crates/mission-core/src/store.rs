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

/// Declares how an enum kept in the database as a word reads and writes it: `as_str`, `parse`
/// (an unknown word is damaged data, never a default) and the `TryFrom<String>` that
/// `#[sqlx(try_from = "String")]` fields use. The enum derives strum's `IntoStaticStr` and
/// `EnumString`.
macro_rules! stored_word {
    ($ty:ty, $what:literal) => {
        impl $ty {
            /// The stored word.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// Parses the stored word; anything else is damaged data, never a default.
            pub fn parse(value: &str) -> Result<Self, $crate::store::DbError> {
                value.parse().map_err(|_| {
                    $crate::store::DbError::Corrupt(format!(
                        concat!("unknown ", $what, " {}"),
                        value
                    ))
                })
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::store::DbError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
    };
}
pub(crate) use stored_word;
