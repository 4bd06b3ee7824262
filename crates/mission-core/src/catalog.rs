//! The configuration catalogues templates are checked against: sectors, departments, tools and
//! the global policy. The copies in `config/` are compiled in, so the app and `missionctl` agree
//! on them without a config folder on the operator's machine.

use crate::units::{Cents, Seconds};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Risk level, as a word: High, Medium or Low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum RiskLevel {
    /// Low risk.
    Low,
    /// Medium risk.
    Medium,
    /// High risk.
    High,
}

impl RiskLevel {
    /// The word stored in the database and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The word given is not a risk level.
#[derive(Debug, thiserror::Error)]
#[error("\"{0}\" is not a risk level: use Low, Medium or High")]
pub struct UnknownRiskLevel(pub String);

impl FromStr for RiskLevel {
    type Err = UnknownRiskLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(UnknownRiskLevel(s.to_string())),
        }
    }
}

const SECTORS_JSON: &str = include_str!("../../../config/sectors.json");
const DEPARTMENTS_JSON: &str = include_str!("../../../config/departments.json");
const TOOLS_JSON: &str = include_str!("../../../config/tools.json");
const POLICY_JSON: &str = include_str!("../../../config/policy.json");

/// A business area that owns tools and missions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sector {
    /// Stable lowercase id, e.g. `talent`.
    pub id: String,
    /// Display name, e.g. `Talent`.
    pub name: String,
    /// One-line description shown in the library.
    pub description: String,
    /// The categories templates of this sector are filed under.
    pub categories: Vec<String>,
}

/// A numbered team of agents; department 1 is the Orchestrator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Department number.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// What the department does.
    pub description: String,
}

/// How a tool call is priced.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostModel {
    /// `flat` (per call) or `per_item`.
    pub model: String,
    /// Price in cents, per call or per item.
    pub cents: Cents,
    /// What one item is, for `per_item` tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
}

/// A tool agents may call through the gateway; it belongs to exactly one sector.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// Stable id, `sector.name`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owning sector id.
    pub sector: String,
    /// Whether calling it changes anything outside the mission.
    pub side_effects: bool,
    /// Price of a call.
    pub cost: CostModel,
    /// Inherent risk of the tool.
    pub risk: RiskLevel,
    /// `builtin` (simulated executor) or `http`.
    pub kind: String,
    /// For `http` tools: the URL a call is sent to; its host must be on the gateway's allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

/// Hard caps no template or mission may exceed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardCaps {
    /// Largest budget in cents.
    pub budget_cents: Cents,
    /// Longest time to live in seconds.
    pub ttl_seconds: Seconds,
    /// Most tool-call steps.
    pub max_steps: i64,
}

/// Limits on manifests accepted for import.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportLimits {
    /// Largest manifest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most templates in one manifest file.
    pub max_templates_per_file: usize,
}

/// The global policy from `config/policy.json`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Global hard caps.
    pub hard_caps: HardCaps,
    /// Import limits.
    pub import: ImportLimits,
}

#[derive(Deserialize)]
struct SectorsFile {
    sectors: Vec<Sector>,
}
#[derive(Deserialize)]
struct DepartmentsFile {
    departments: Vec<Department>,
}
#[derive(Deserialize)]
struct ToolsFile {
    tools: Vec<Tool>,
}

/// Errors loading the catalogues.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A catalogue file does not parse.
    #[error("config/{file} is not valid: {source}")]
    Parse {
        /// Which file.
        file: &'static str,
        /// Why.
        source: serde_json::Error,
    },
    /// The catalogues contradict each other.
    #[error("config is inconsistent: {0}")]
    Inconsistent(String),
}

/// All catalogues, indexed for lookups.
#[derive(Debug, Clone)]
pub struct Catalog {
    sectors: Vec<Sector>,
    departments: Vec<Department>,
    tools: Vec<Tool>,
    policy: Policy,
    sector_index: HashMap<String, usize>,
    tool_index: HashMap<String, usize>,
}

impl Catalog {
    /// The catalogues compiled into this build.
    pub fn bundled() -> Result<Self, CatalogError> {
        Self::from_json(SECTORS_JSON, DEPARTMENTS_JSON, TOOLS_JSON, POLICY_JSON)
    }

    /// Builds a catalogue from the four files' contents.
    pub fn from_json(
        sectors: &str,
        departments: &str,
        tools: &str,
        policy: &str,
    ) -> Result<Self, CatalogError> {
        let parse = |file: &'static str| move |source| CatalogError::Parse { file, source };
        let sectors: SectorsFile = serde_json::from_str(sectors).map_err(parse("sectors.json"))?;
        let departments: DepartmentsFile =
            serde_json::from_str(departments).map_err(parse("departments.json"))?;
        let tools: ToolsFile = serde_json::from_str(tools).map_err(parse("tools.json"))?;
        let policy: Policy = serde_json::from_str(policy).map_err(parse("policy.json"))?;
        let sector_index = index_by_id(sectors.sectors.iter().map(|s| &s.id), "sector")?;
        let tool_index = index_by_id(tools.tools.iter().map(|t| &t.id), "tool")?;
        if let Some(t) = tools
            .tools
            .iter()
            .find(|t| !sector_index.contains_key(&t.sector))
        {
            return Err(CatalogError::Inconsistent(format!(
                "tool {} names unknown sector {}",
                t.id, t.sector
            )));
        }
        for t in &tools.tools {
            match (t.kind.as_str(), &t.endpoint) {
                ("builtin", None) | ("http", Some(_)) => {}
                ("builtin", Some(_)) => {
                    return Err(CatalogError::Inconsistent(format!(
                        "builtin tool {} must not name an endpoint",
                        t.id
                    )))
                }
                ("http", None) => {
                    return Err(CatalogError::Inconsistent(format!(
                        "http tool {} needs an endpoint",
                        t.id
                    )))
                }
                (kind, _) => {
                    return Err(CatalogError::Inconsistent(format!(
                        "tool {} has unknown kind {kind}; use builtin or http",
                        t.id
                    )))
                }
            }
        }
        Ok(Self {
            sectors: sectors.sectors,
            departments: departments.departments,
            tools: tools.tools,
            policy,
            sector_index,
            tool_index,
        })
    }

    /// All sectors in configuration order.
    pub fn sectors(&self) -> &[Sector] {
        &self.sectors
    }

    /// All departments.
    pub fn departments(&self) -> &[Department] {
        &self.departments
    }

    /// All tools.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// The global policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The sector with this id.
    pub fn sector(&self, id: &str) -> Option<&Sector> {
        self.sector_index.get(id).map(|&i| &self.sectors[i])
    }

    /// Finds a sector by id or by display name, ignoring case (for CLI and search filters).
    pub fn find_sector(&self, id_or_name: &str) -> Option<&Sector> {
        self.sector(id_or_name).or_else(|| {
            self.sectors.iter().find(|s| {
                s.id.eq_ignore_ascii_case(id_or_name) || s.name.eq_ignore_ascii_case(id_or_name)
            })
        })
    }

    /// The department with this number.
    pub fn department(&self, id: u32) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    /// The tool with this id.
    pub fn tool(&self, id: &str) -> Option<&Tool> {
        self.tool_index.get(id).map(|&i| &self.tools[i])
    }
}

/// Position of each id in its file's list; the same id twice makes the catalogue inconsistent.
fn index_by_id<'a>(
    ids: impl ExactSizeIterator<Item = &'a String>,
    what: &str,
) -> Result<HashMap<String, usize>, CatalogError> {
    let count = ids.len();
    let index: HashMap<String, usize> = ids.enumerate().map(|(i, id)| (id.clone(), i)).collect();
    if index.len() != count {
        return Err(CatalogError::Inconsistent(format!("duplicate {what} id")));
    }
    Ok(index)
}
