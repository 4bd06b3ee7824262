//! Time in the gateway: the clock it reads (tests move theirs by hand) and how times are
//! stored and shown.

use chrono::{DateTime, Utc};

/// Where the gateway reads the time; tests move it by hand.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// How times are stored: RFC 3339, UTC, microseconds, `Z` (text order is time order).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A stored time in the local time zone, for people (the text unchanged if it does not parse).
pub fn local_time(stored: &str) -> String {
    DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_owned(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    )
}
