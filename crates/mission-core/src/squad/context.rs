//! The mission context: the first message every agent receives, and the only thing it acts
//! on until it verifies.

use serde::{Deserialize, Serialize};

use crate::registry::hash::logic_hash;
use crate::registry::{Perimeter, Ruleset};

/// What an agent is told before it does anything: the mission's goal, its rules of
/// engagement, its caps, and how the department gets its gateway token — never the token
/// itself: contexts travel through Kafka, where a broker keeps them until retention runs out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissionContext {
    /// Mission.
    pub mission_id: String,
    /// The department this context is for.
    pub dept: i64,
    /// Template and version the mission runs.
    pub template_id: String,
    /// Pinned version.
    pub template_version: i64,
    /// The goal sentence.
    pub goal: String,
    /// The rules of engagement.
    pub ruleset: Ruleset,
    /// Caps and approval mode.
    pub perimeter: Perimeter,
    /// SHA-256 of the ruleset's canonical JSON, as pinned when the mission was saved.
    pub logic_hash: String,
    /// Tools this department may call (the ruleset's, repeated for agents that only read this).
    pub allowed_tools: Vec<String>,
    /// How this department gets its bearer token for the gateway.
    pub credential: Credential,
    /// Where external agents reach the gateway's HTTP API, when it is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
}

/// How a department gets its gateway token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Credential {
    /// A built-in agent: the engine hands it the token in process.
    InProcess,
    /// An external agent: a one-time code, exchanged for the token at
    /// `POST /v1/tokens/exchange` on the gateway's API before `expires_at`. Once used or
    /// expired it opens nothing, so a copy kept by a broker is worthless.
    ExchangeCode {
        /// The code.
        code: String,
        /// When it stops working (RFC 3339 UTC).
        expires_at: String,
    },
}

/// The code is a secret until used: `Debug` never prints it.
impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InProcess => f.write_str("InProcess"),
            Self::ExchangeCode { expires_at, .. } => f
                .debug_struct("ExchangeCode")
                .field("code", &"(withheld)")
                .field("expires_at", expires_at)
                .finish(),
        }
    }
}

/// Why an agent refused its context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The ruleset does not hash to the logic_hash: it was changed on the way.
    #[error(
        "the ruleset hashes to {computed}, not to the mission's logic_hash {claimed}: the context \
         was altered, so the agent acts on none of it"
    )]
    HashMismatch {
        /// logic_hash the context states.
        claimed: String,
        /// What the ruleset hashes to.
        computed: String,
    },
    /// The tool list disagrees with the ruleset.
    #[error("allowed_tools does not match the ruleset's allowed tools")]
    ToolsMismatch,
    /// Addressed to another mission or department.
    #[error("the context is for mission {mission} department {dept}, not this agent")]
    NotMine {
        /// Mission named.
        mission: String,
        /// Department named.
        dept: i64,
    },
    /// Not a context at all.
    #[error("the context does not parse: {0}")]
    Malformed(String),
}

impl ContextError {
    /// Stable code, as reported in the `context.refused` event.
    pub fn code(&self) -> &'static str {
        match self {
            Self::HashMismatch { .. } => "logic_hash_mismatch",
            Self::ToolsMismatch => "tools_mismatch",
            Self::NotMine { .. } => "not_addressed_here",
            Self::Malformed(_) => "malformed_context",
        }
    }
}

impl MissionContext {
    /// Recomputes the logic_hash and checks the context is this agent's; an agent acts on
    /// nothing until this passes.
    pub fn verify(&self, mission_id: &str, dept: i64) -> Result<(), ContextError> {
        if self.mission_id != mission_id || self.dept != dept {
            return Err(ContextError::NotMine {
                mission: self.mission_id.clone(),
                dept: self.dept,
            });
        }
        let computed =
            logic_hash(&self.ruleset).map_err(|e| ContextError::Malformed(e.to_string()))?;
        if computed != self.logic_hash {
            return Err(ContextError::HashMismatch {
                claimed: self.logic_hash.clone(),
                computed,
            });
        }
        if self.allowed_tools != self.ruleset.allowed_tools {
            return Err(ContextError::ToolsMismatch);
        }
        Ok(())
    }

    /// The context as the mission's history keeps it: everything but an exchange code.
    pub fn redacted(&self) -> Self {
        let credential = match &self.credential {
            Credential::ExchangeCode { expires_at, .. } => Credential::ExchangeCode {
                code: "(withheld from the history)".to_owned(),
                expires_at: expires_at.clone(),
            },
            Credential::InProcess => Credential::InProcess,
        };
        Self {
            credential,
            ..self.clone()
        }
    }
}
