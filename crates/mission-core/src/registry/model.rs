//! The template as the registry stores and serves it.

use crate::units::{Cents, Seconds};
use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr};

/// How tool calls of a mission wait for a human.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, EnumString,
)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum ApprovalMode {
    /// Every side-effecting call waits for a human.
    Strict,
    /// Calls at or above the threshold cost, or of high risk, wait.
    Threshold,
    /// No call waits; the caps still hold.
    Auto,
}

pub use crate::catalog::RiskLevel;

impl ApprovalMode {
    /// The word stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Hard caps and approval mode of a mission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct Perimeter {
    /// Budget cap in cents.
    pub budget_cents: Cents,
    /// Time to live in seconds.
    pub ttl_seconds: Seconds,
    /// Maximum tool-call steps.
    pub max_steps: i64,
    /// Approval mode.
    pub approval_mode: ApprovalMode,
    /// Cost at or above which a call waits, in Threshold mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_cents: Option<Cents>,
}

/// One step of the plan, owned by one department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    /// Department that performs the step.
    pub dept: u32,
    /// What the step does.
    pub action: String,
    /// The tool the step calls, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
}

/// The rules of engagement; its canonical JSON is what `logic_hash` covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ruleset {
    /// Tool ids the squad may call.
    pub allowed_tools: Vec<String>,
    /// Plan steps in execution order.
    pub plan: Vec<PlanStep>,
    /// Things agents must never do on this mission.
    pub forbidden_actions: Vec<String>,
}

/// A mission template as written in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Unique id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owning sector id.
    pub sector: String,
    /// Category under the sector.
    pub category: String,
    /// One sentence saying what the mission achieves.
    pub goal: String,
    /// Departments the squad needs.
    pub required_depts: Vec<u32>,
    /// Other sectors whose tools the ruleset needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected_sectors: Vec<String>,
    /// Rules of engagement.
    pub ruleset: Ruleset,
    /// Perimeter offered when the template is deployed.
    pub default_perimeter: Perimeter,
    /// Baseline risk before any history exists.
    pub risk_level: RiskLevel,
    /// SHA-256 of the canonical JSON of the ruleset.
    pub logic_hash: String,
}
