//! Active missions: drafting a perimeter for a template and saving it, with every cap checked.

use crate::units::{Cents, Seconds};
use std::sync::Arc;
use strum::{EnumString, IntoStaticStr};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::store::MissionStore;
use super::{Caps, Field, MINIMUMS};
use crate::codes::ErrorCode;
use crate::registry::search::TemplateSummary;
use crate::registry::{ApprovalMode, Perimeter, Registry, RegistryError, RiskLevel, Template};
use crate::store::{page_size, split_page, After, DbError};

/// Where an active mission is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, IntoStaticStr, EnumString)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub enum MissionStatus {
    /// Saved and waiting to be deployed.
    Ready,
    /// Its squad is working.
    Running,
    /// Held at its budget cap until a human raises the budget or stops it.
    Paused,
    /// Finished its plan.
    Completed,
    /// Stopped by an error.
    Failed,
    /// Its time to live ran out.
    Expired,
    /// Stopped by a person or at a cap.
    Stopped,
}

crate::store::stored_word!(MissionStatus, "mission status");

impl MissionStatus {
    /// Whether the mission is over: nothing it holds can act again.
    pub fn is_over(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Expired | Self::Stopped
        )
    }
}

/// What one approval mode means for this template's tools, in one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ApprovalModeInfo {
    /// The mode.
    pub mode: ApprovalMode,
    /// Exactly which tool calls wait for a human in this mode.
    pub waits: String,
}

/// A sector the template declares it needs, offered for an explicit tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ConnectionOption {
    /// Sector id.
    pub sector: String,
    /// Sector display name.
    pub sector_name: String,
    /// The ruleset's tools that need this connection.
    pub tools: Vec<String>,
}

/// Everything the configurator needs to offer a perimeter for one template version.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MissionDraft {
    /// The template, at the version the mission will pin.
    pub template: TemplateSummary,
    /// The caps in force: the lower of policy and template, field by field.
    pub hard_caps: Caps,
    /// The global policy's caps.
    pub policy_caps: Caps,
    /// The template's own caps (its default perimeter).
    pub template_caps: Caps,
    /// The smallest values accepted.
    pub minimums: Caps,
    /// The perimeter offered at first.
    pub defaults: Perimeter,
    /// One line per approval mode.
    pub approval_modes: Vec<ApprovalModeInfo>,
    /// Connections the template declares; none is granted until ticked.
    pub connections: Vec<ConnectionOption>,
}

/// A configured perimeter, as a shell sends it on Save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(deny_unknown_fields)]
pub struct SaveMissionRequest {
    /// A UUID chosen once per opening of the configurator; saving again with it returns the
    /// mission already saved instead of creating another.
    pub request_id: String,
    /// Template id.
    pub template_id: String,
    /// The template version the operator configured.
    pub template_version: i64,
    /// Budget cap in cents.
    pub budget_cents: Cents,
    /// Time to live in seconds.
    pub ttl_seconds: Seconds,
    /// Maximum tool-call steps.
    pub max_steps: i64,
    /// Approval mode.
    pub approval_mode: ApprovalMode,
    /// Threshold in cents; required in Threshold mode, absent otherwise.
    pub threshold_cents: Option<Cents>,
    /// Sector connections the operator ticked.
    pub connections: Vec<String>,
}

/// One page of saved missions, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct MissionList {
    /// The missions.
    pub items: Vec<ActiveMission>,
    /// Cursor of the next (older) page; None when this is the last.
    pub next: Option<String>,
}

/// One saved mission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ActiveMission {
    /// Mission id (UUID v7).
    pub id: String,
    /// Template id.
    pub template_id: String,
    /// Template name.
    pub template_name: String,
    /// Pinned template version.
    pub template_version: i64,
    /// logic_hash of the pinned version.
    pub logic_hash: String,
    /// The template's sector.
    pub sector: String,
    /// The perimeter.
    pub perimeter: Perimeter,
    /// Granted sector connections.
    pub connections: Vec<String>,
    /// Life-cycle status.
    pub status: MissionStatus,
    /// When it was saved (RFC 3339, UTC).
    pub created_at: String,
}

/// The answer to Save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct SaveOutcome {
    /// The mission.
    pub mission: ActiveMission,
    /// False when this request was saved before and the earlier mission is returned.
    pub created: bool,
}

/// A checked mission, ready for the repository.
#[derive(Debug, Clone)]
pub struct NewMission {
    /// The mission as it will be stored.
    pub mission: ActiveMission,
    /// The request id it answers.
    pub request_id: Uuid,
    /// Hash of the request, to tell a retry from a different request reusing the id.
    pub request_hash: String,
    /// Who saved it: the grantor of its connections.
    pub granted_by: String,
}

/// Why a perimeter was refused; nothing was saved.
#[derive(Debug, thiserror::Error)]
pub enum PerimeterError {
    /// No template has this id.
    #[error("no template has the id \"{0}\"")]
    TemplateNotFound(String),
    /// The template changed after the configurator opened.
    #[error(
        "template \"{id}\" is at version {current} now, not {requested}; reopen Quick Deploy to \
         configure the current version"
    )]
    TemplateChanged {
        /// Template id.
        id: String,
        /// Version configured.
        requested: i64,
        /// Current version.
        current: i64,
    },
    /// A value lies outside what policy and template allow.
    #[error("the {} must be between {min} and {max}; {value} was refused", .field.label())]
    OutOfRange {
        /// Field.
        field: Field,
        /// Value sent.
        value: i64,
        /// Smallest accepted.
        min: i64,
        /// Hard cap.
        max: i64,
    },
    /// A connection the template does not declare.
    #[error("sector \"{0}\" is not a connection this template declares; it cannot be granted")]
    UnknownConnection(String),
    /// The request is malformed in a way no slider can cause.
    #[error("{0}")]
    InvalidRequest(String),
    /// Storage or the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<DbError> for PerimeterError {
    fn from(e: DbError) -> Self {
        Self::Registry(RegistryError::Storage(e))
    }
}

impl PerimeterError {
    /// The error's code from the core's closed list.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TemplateNotFound(_) => ErrorCode::TemplateNotFound,
            Self::TemplateChanged { .. } => ErrorCode::TemplateChanged,
            Self::OutOfRange { .. } => ErrorCode::PerimeterOutOfRange,
            Self::UnknownConnection(_) => ErrorCode::UnknownConnection,
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::Registry(e) => e.code(),
        }
    }
}

/// Drafting and saving active missions.
#[derive(Debug, Clone)]
pub struct Missions {
    registry: Registry,
    store: Arc<dyn MissionStore>,
}

/// The current version of a template, parsed.
struct Current {
    summary: TemplateSummary,
    template: Template,
}

impl Missions {
    /// Missions checked against a registry's templates and catalogue, kept in `store`.
    pub fn new(registry: Registry, store: Arc<dyn MissionStore>) -> Self {
        Self { registry, store }
    }

    async fn current(&self, id: &str) -> Result<Current, PerimeterError> {
        let detail = match self.registry.show(id, None).await {
            Ok(detail) => detail,
            Err(RegistryError::NotFound(_)) => {
                return Err(PerimeterError::TemplateNotFound(id.to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
        let template: Template = serde_json::from_value(detail.content)
            .map_err(|e| DbError::Corrupt(format!("stored template {id}: {e}")))?;
        Ok(Current {
            summary: detail.summary,
            template,
        })
    }

    fn hard_caps(&self, template: &Template) -> (Caps, Caps, Caps) {
        let policy = Caps::from_policy(&self.registry.catalog().policy().hard_caps);
        let own = Caps::from_perimeter(&template.default_perimeter);
        (policy.min(own), policy, own)
    }

    /// What the configurator offers for a template's current version.
    pub async fn draft(&self, template_id: &str) -> Result<MissionDraft, PerimeterError> {
        let Current { summary, template } = self.current(template_id).await?;
        let (hard_caps, policy_caps, template_caps) = self.hard_caps(&template);
        let d = &template.default_perimeter;
        let budget = d
            .budget_cents
            .clamp(MINIMUMS.budget_cents, hard_caps.budget_cents);
        let defaults = Perimeter {
            budget_cents: budget,
            ttl_seconds: d
                .ttl_seconds
                .clamp(MINIMUMS.ttl_seconds, hard_caps.ttl_seconds),
            max_steps: d.max_steps.clamp(MINIMUMS.max_steps, hard_caps.max_steps),
            approval_mode: d.approval_mode,
            threshold_cents: match d.approval_mode {
                ApprovalMode::Threshold => Some(d.threshold_cents.unwrap_or(budget).min(budget)),
                _ => None,
            },
        };
        Ok(MissionDraft {
            approval_modes: self.approval_modes(&template),
            connections: self.connection_options(&template),
            template: summary,
            hard_caps,
            policy_caps,
            template_caps,
            minimums: MINIMUMS,
            defaults,
        })
    }

    /// The one-line meaning of each approval mode, naming this template's tools.
    fn approval_modes(&self, template: &Template) -> Vec<ApprovalModeInfo> {
        let catalog = self.registry.catalog();
        let tools: Vec<_> = template
            .ruleset
            .allowed_tools
            .iter()
            .filter_map(|id| catalog.tool(id))
            .collect();
        let names = |pick: &dyn Fn(&crate::catalog::Tool) -> bool| -> String {
            let picked: Vec<&str> = tools
                .iter()
                .filter(|t| pick(t))
                .map(|t| t.name.as_str())
                .collect();
            if picked.is_empty() {
                "none of this mission's tools".to_owned()
            } else {
                picked.join(", ")
            }
        };
        vec![
            ApprovalModeInfo {
                mode: ApprovalMode::Strict,
                waits: format!(
                    "Every call to a tool with side effects waits for a human ({}); read-only \
                     calls run at once.",
                    names(&|t| t.side_effects)
                ),
            },
            ApprovalModeInfo {
                mode: ApprovalMode::Threshold,
                waits: format!(
                    "Calls costing at least the threshold wait for a human, and so does every \
                     call to a High-risk tool ({}); the rest run at once.",
                    names(&|t| t.risk == RiskLevel::High)
                ),
            },
            ApprovalModeInfo {
                mode: ApprovalMode::Auto,
                waits: "No call waits for a human; the budget, time and step caps still stop \
                        the mission."
                    .to_owned(),
            },
        ]
    }

    fn connection_options(&self, template: &Template) -> Vec<ConnectionOption> {
        let catalog = self.registry.catalog();
        template
            .connected_sectors
            .iter()
            .map(|sector| ConnectionOption {
                sector: sector.clone(),
                sector_name: catalog
                    .sector(sector)
                    .map_or_else(|| sector.clone(), |s| s.name.clone()),
                tools: template
                    .ruleset
                    .allowed_tools
                    .iter()
                    .filter(|id| catalog.tool(id).is_some_and(|t| &t.sector == sector))
                    .cloned()
                    .collect(),
            })
            .collect()
    }

    /// Checks a configured perimeter against the template's current version and the hard caps,
    /// and returns the mission it would create. Nothing is written.
    pub async fn check(
        &self,
        request: &SaveMissionRequest,
        operator: &str,
    ) -> Result<NewMission, PerimeterError> {
        let request_id = Uuid::parse_str(&request.request_id).map_err(|_| {
            PerimeterError::InvalidRequest(format!(
                "request_id \"{}\" is not a UUID; each opening of the configurator needs a fresh one",
                request.request_id
            ))
        })?;
        let Current { summary, template } = self.current(&request.template_id).await?;
        if summary.version != request.template_version {
            return Err(PerimeterError::TemplateChanged {
                id: summary.heading.id,
                requested: request.template_version,
                current: summary.version,
            });
        }
        let (caps, _, _) = self.hard_caps(&template);
        let within = |field: Field, value: i64, min: i64, max: i64| {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(PerimeterError::OutOfRange {
                    field,
                    value,
                    min,
                    max,
                })
            }
        };
        let budget = Cents(within(
            Field::Budget,
            request.budget_cents.get(),
            MINIMUMS.budget_cents.get(),
            caps.budget_cents.get(),
        )?);
        let ttl = Seconds(within(
            Field::Ttl,
            request.ttl_seconds.get(),
            MINIMUMS.ttl_seconds.get(),
            caps.ttl_seconds.get(),
        )?);
        let steps = within(
            Field::MaxSteps,
            request.max_steps,
            MINIMUMS.max_steps,
            caps.max_steps,
        )?;
        let threshold =
            match (request.approval_mode, request.threshold_cents) {
                (ApprovalMode::Threshold, Some(t)) => {
                    Some(Cents(within(Field::Threshold, t.get(), 0, budget.get())?))
                }
                (ApprovalMode::Threshold, None) => return Err(PerimeterError::InvalidRequest(
                    "Threshold mode needs a threshold: the cost at or above which a call waits \
                     for a human"
                        .to_owned(),
                )),
                (mode, Some(_)) => {
                    return Err(PerimeterError::InvalidRequest(format!(
                        "a threshold only applies in Threshold mode, not in {}",
                        mode.as_str()
                    )))
                }
                (_, None) => None,
            };
        let mut connections = Vec::new();
        for sector in &request.connections {
            if !template.connected_sectors.contains(sector) {
                return Err(PerimeterError::UnknownConnection(sector.clone()));
            }
            if connections.contains(sector) {
                return Err(PerimeterError::InvalidRequest(format!(
                    "sector \"{sector}\" is ticked twice"
                )));
            }
            connections.push(sector.clone());
        }
        let request_hash = hex::encode(Sha256::digest(
            serde_json::to_vec(request).map_err(|e| RegistryError::Internal(e.to_string()))?,
        ));
        Ok(NewMission {
            request_id,
            request_hash,
            granted_by: operator.to_owned(),
            mission: ActiveMission {
                id: Uuid::now_v7().to_string(),
                template_id: summary.heading.id,
                template_name: summary.heading.name,
                template_version: summary.version,
                logic_hash: summary.logic_hash,
                sector: template.sector,
                perimeter: Perimeter {
                    budget_cents: budget,
                    ttl_seconds: ttl,
                    max_steps: steps,
                    approval_mode: request.approval_mode,
                    threshold_cents: threshold,
                },
                connections,
                status: MissionStatus::Ready,
                created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            },
        })
    }

    /// Saves a configured perimeter as a unique active mission; `operator` is recorded as the
    /// grantor of its connections. Sending the same request again returns the mission it
    /// created (`created: false`); reusing its id for different values is refused.
    pub async fn save(
        &self,
        request: &SaveMissionRequest,
        operator: &str,
    ) -> Result<SaveOutcome, PerimeterError> {
        let new = self.check(request, operator).await?;
        let repo = &self.store;
        let (mission, stored_hash, created) = repo.insert_mission(&new).await?;
        if !created && stored_hash != new.request_hash {
            return Err(PerimeterError::InvalidRequest(
                "this configurator request was already saved with other values; close the \
                 configurator and open Quick Deploy again to save another mission"
                    .to_owned(),
            ));
        }
        Ok(SaveOutcome { mission, created })
    }

    /// Saved missions, newest first, after `after` (the start when None); at most `limit`
    /// (see [`page_size`]).
    pub async fn list(
        &self,
        after: Option<&After>,
        limit: u32,
    ) -> Result<MissionList, PerimeterError> {
        let size = page_size(limit);
        let rows = self.store.missions(after, size + 1).await?;
        let (items, next) = split_page(rows, size, |m| After {
            at: m.created_at.clone(),
            id: m.id.clone(),
        });
        Ok(MissionList { items, next })
    }
}
