//! What every domain's storage shares: the error a backend reports, and which backend it is.
//! Each domain declares the storage it needs as a trait beside itself (`registry::store`,
//! `perimeter::store`, `audit::store`, `gateway::store`, `squad::store`); `db` implements them
//! for SQLite and Postgres and depends on the domains, never the other way round.

/// Identifier shared with the desktop shell: the app-data folder (where the embedded database
/// lives) and the keychain entries are named after it.
pub const APP_IDENTIFIER: &str = "app.missioncontrol.desktop";

/// Where the next page of a newest-first list starts: after the row with this time and id
/// (keyset paging, so a page costs the same however deep it is and rows added meanwhile
/// neither repeat nor go missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    /// The last row's time, as stored.
    pub at: String,
    /// The last row's id.
    pub id: String,
}

impl After {
    /// The opaque cursor the UI and CLI hand back for the next page.
    pub fn cursor(&self) -> String {
        format!("{}|{}", self.at, self.id)
    }

    /// Reads a cursor given out by [`After::cursor`]: an RFC 3339 time and a UUID; None for
    /// anything else, so no backend is ever asked to read a malformed one.
    pub fn parse(cursor: &str) -> Option<Self> {
        let (at, id) = cursor.split_once('|')?;
        chrono::DateTime::parse_from_rfc3339(at).ok()?;
        uuid::Uuid::parse_str(id).ok()?;
        Some(Self {
            at: at.to_owned(),
            id: id.to_owned(),
        })
    }
}

/// How many rows one page holds at most, whatever a caller asks for.
pub const MAX_PAGE: u32 = 200;

/// A page size as read: at least 1, at most [`MAX_PAGE`]; one more row than this is read to
/// know whether another page follows.
pub fn page_size(limit: u32) -> u32 {
    limit.clamp(1, MAX_PAGE)
}

/// Cuts rows read with [`page_size`]` + 1` to the page, and gives the cursor of the next page
/// when there is one.
pub fn split_page<T>(
    mut rows: Vec<T>,
    size: u32,
    key: impl Fn(&T) -> After,
) -> (Vec<T>, Option<String>) {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() <= size {
        return (rows, None);
    }
    rows.truncate(size);
    let next = rows.last().map(|last| key(last).cursor());
    (rows, next)
}

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
