//! Ids as the core takes them: parsed once where they enter it, so a malformed id gets the same
//! answer on both backends (Postgres stores them as UUIDs, SQLite as text) and nothing below
//! the core API has to wonder whether a string is an id.

use std::fmt;

use uuid::Uuid;

/// The string given is not an id of this kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{value}\" is not a {kind} id (ids are UUIDs, e.g. 0190f0c4-0000-7000-8000-00000000000a)"
)]
pub struct MalformedId {
    /// What kind of id was expected.
    pub kind: &'static str,
    /// What was given.
    pub value: String,
}

macro_rules! uuid_id {
    ($name:ident, $kind:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses an id given by a person or a shell; the stored form is the UUID's
            /// lowercase hyphenated text.
            pub fn parse(value: &str) -> Result<Self, MalformedId> {
                Uuid::parse_str(value.trim())
                    .map(|uuid| Self(uuid.hyphenated().to_string()))
                    .map_err(|_| MalformedId {
                        kind: $kind,
                        value: value.to_owned(),
                    })
            }

            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

uuid_id!(MissionId, "mission", "An active mission's id.");
uuid_id!(ApprovalId, "approval", "An approval request's id.");
uuid_id!(ImportId, "import", "A staged import's id.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_parsed_once_into_its_stored_form() {
        let id = MissionId::parse(" 0190F0C4-0000-7000-8000-00000000000A ").expect("uuid");
        assert_eq!(id.as_str(), "0190f0c4-0000-7000-8000-00000000000a");
        let bad = MissionId::parse("no-such-mission").expect_err("not a uuid");
        assert_eq!(bad.kind, "mission");
        assert!(bad.to_string().contains("no-such-mission"));
    }
}
