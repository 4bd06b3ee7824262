//! The run record's arithmetic: what a finished mission made and cost, and how long it ran.

use crate::units::Cents;
use chrono::DateTime;

/// A finished mission's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunFigures {
    /// Value produced minus gas, in cents.
    pub profit_cents: Cents,
    /// What its tool calls cost, in cents.
    pub gas_cents: Cents,
    /// From start to end in milliseconds; 0 when it never started or a time does not parse.
    pub duration_ms: i64,
}

/// The figures of a mission whose finished jobs produced `value_cents` and whose calls spent
/// `spent_cents`, started at `started_at` (RFC 3339, if it started) and ended at `ended_at`.
pub fn figures(
    value_cents: Cents,
    spent_cents: Cents,
    started_at: Option<&str>,
    ended_at: &str,
) -> RunFigures {
    let duration_ms = match (
        started_at.and_then(|s| DateTime::parse_from_rfc3339(s).ok()),
        DateTime::parse_from_rfc3339(ended_at).ok(),
    ) {
        (Some(start), Some(end)) => (end - start).num_milliseconds().max(0),
        _ => 0,
    };
    RunFigures {
        profit_cents: value_cents - spent_cents,
        gas_cents: spent_cents,
        duration_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profit_is_value_minus_gas_and_duration_runs_from_start_to_end() {
        let f = figures(
            Cents(1_250),
            Cents(400),
            Some("2026-12-01T10:00:00.000000Z"),
            "2026-12-01T10:01:30.500000Z",
        );
        assert_eq!(
            f,
            RunFigures {
                profit_cents: Cents(850),
                gas_cents: Cents(400),
                duration_ms: 90_500
            }
        );
    }

    #[test]
    fn a_mission_that_never_started_or_lost_money_still_adds_up() {
        let never = figures(Cents::ZERO, Cents::ZERO, None, "2026-12-01T10:00:00Z");
        assert_eq!((never.profit_cents, never.duration_ms), (Cents::ZERO, 0));
        let loss = figures(
            Cents(100),
            Cents(300),
            Some("2026-12-01T10:00:00Z"),
            "2026-12-01T10:00:00Z",
        );
        assert_eq!(loss.profit_cents, Cents(-200));
        // A clock that went backwards never gives a negative duration.
        let skew = figures(
            Cents::ZERO,
            Cents::ZERO,
            Some("2026-12-01T10:00:01Z"),
            "2026-12-01T10:00:00Z",
        );
        assert_eq!(skew.duration_ms, 0);
    }
}
