//! Money and durations as their own types, so a budget can never be passed where seconds are
//! meant. On the wire and in the database both stay plain integers under names that carry the
//! unit (`budget_cents`, `ttl_seconds`), so manifests, the agent API and stored rows read as
//! before; the type is fixed once, where the value enters.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub, SubAssign};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Declares an integer quantity with its arithmetic.
macro_rules! quantity {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize,
            Deserialize, sqlx::Type,
        )]
        #[cfg_attr(feature = "specta", derive(specta::Type))]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// Nothing.
            pub const ZERO: Self = Self(0);

            /// The plain integer.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl Add for $name {
            type Output = Self;
            fn add(self, other: Self) -> Self {
                Self(self.0 + other.0)
            }
        }

        impl Sub for $name {
            type Output = Self;
            fn sub(self, other: Self) -> Self {
                Self(self.0 - other.0)
            }
        }

        impl AddAssign for $name {
            fn add_assign(&mut self, other: Self) {
                self.0 += other.0;
            }
        }

        impl SubAssign for $name {
            fn sub_assign(&mut self, other: Self) {
                self.0 -= other.0;
            }
        }

        impl Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                Self(iter.map(|v| v.0).sum())
            }
        }

        impl From<$name> for i64 {
            fn from(value: $name) -> i64 {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

quantity! {
    /// An amount of money in US cents.
    Cents
}

quantity! {
    /// A duration in whole seconds.
    Seconds
}

impl Seconds {
    /// The same span as a `chrono` duration, for timestamps.
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_keep_their_plain_wire_form() {
        assert_eq!(
            serde_json::to_string(&Cents(1250)).expect("serialise"),
            "1250"
        );
        assert_eq!(
            serde_json::from_str::<Seconds>("3600").expect("parse"),
            Seconds(3600)
        );
        assert!(serde_json::from_str::<Cents>("\"12\"").is_err());
    }

    #[test]
    fn arithmetic_stays_in_its_unit() {
        let spent: Cents = [Cents(5), Cents(7)].into_iter().sum();
        assert_eq!(spent, Cents(12));
        assert_eq!(Seconds(90).to_chrono(), chrono::Duration::seconds(90));
    }
}
