//! The agency perimeter: the hard caps a mission may be given, and saving a configured
//! perimeter as a unique active mission. The caps are enforced here, whatever a shell sends.

mod mission;
pub mod store;

pub use mission::{
    ActiveMission, ApprovalModeInfo, ConnectionOption, MissionDraft, MissionList, MissionStatus,
    Missions, NewMission, PerimeterError, SaveMissionRequest, SaveOutcome,
};

use crate::units::{Cents, Seconds};
use serde::{Deserialize, Serialize};

use crate::catalog::HardCaps;
use crate::registry::Perimeter;

/// Budget, time to live and step count, as caps or as lower bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Caps {
    /// Budget in cents.
    pub budget_cents: Cents,
    /// Time to live in seconds.
    pub ttl_seconds: Seconds,
    /// Tool-call steps.
    pub max_steps: i64,
}

/// The smallest perimeter worth deploying: one dollar, one hour, one step.
pub const MINIMUMS: Caps = Caps {
    budget_cents: Cents(100),
    ttl_seconds: Seconds(3600),
    max_steps: 1,
};

impl Caps {
    /// The global policy's caps.
    pub fn from_policy(caps: &HardCaps) -> Self {
        Self {
            budget_cents: caps.budget_cents,
            ttl_seconds: caps.ttl_seconds,
            max_steps: caps.max_steps,
        }
    }

    /// The caps a template sets for itself: its default perimeter.
    pub fn from_perimeter(perimeter: &Perimeter) -> Self {
        Self {
            budget_cents: perimeter.budget_cents,
            ttl_seconds: perimeter.ttl_seconds,
            max_steps: perimeter.max_steps,
        }
    }

    /// The lower of two caps, field by field: the hard cap is the tighter of policy and template.
    pub fn min(self, other: Self) -> Self {
        Self {
            budget_cents: self.budget_cents.min(other.budget_cents),
            ttl_seconds: self.ttl_seconds.min(other.ttl_seconds),
            max_steps: self.max_steps.min(other.max_steps),
        }
    }
}

/// One perimeter field, as named in errors and in the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Budget cap.
    Budget,
    /// Time to live.
    Ttl,
    /// Maximum steps.
    MaxSteps,
    /// Threshold of Threshold mode.
    Threshold,
}

impl Field {
    /// The field's name in requests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Budget => "budget_cents",
            Self::Ttl => "ttl_seconds",
            Self::MaxSteps => "max_steps",
            Self::Threshold => "threshold_cents",
        }
    }

    /// How a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Budget => "budget",
            Self::Ttl => "time to live",
            Self::MaxSteps => "max steps",
            Self::Threshold => "approval threshold",
        }
    }
}
