//! Sector authorization with Cedar, deny by default. The policy set is generated: one `permit`
//! per sector (a mission may use its own sector's tools), one linked `permit` per granted
//! connection of a mission, plus the admin-written policies from `config/policies/`, whose
//! `forbid`s override any `permit`.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, Policy,
    PolicyId, PolicySet, Request, RestrictedExpression, SlotId, Template,
};

use super::store::{Grant, MissionRow};
use crate::catalog::{Catalog, Tool};

/// The admin policies compiled into this build.
pub const BUNDLED_ADMIN_POLICIES: &str = include_str!("../../../../config/policies/admin.cedar");

const CONNECTION_TEMPLATE: &str = "connection";

/// The policies could not be built.
#[derive(Debug, thiserror::Error)]
#[error("authorization policies are not valid: {0}")]
pub struct PolicyError(pub String);

fn policy_error(e: impl std::fmt::Display) -> PolicyError {
    PolicyError(e.to_string())
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    Ok(EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(kind).map_err(policy_error)?,
        EntityId::new(id),
    ))
}

/// Who or what authorized a permitted call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authority {
    /// The tool is in the mission's own sector.
    Sector(String),
    /// The tool's sector is connected to this mission by a grant.
    Connection(Grant),
}

/// The decision on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzDecision {
    /// Whether the call may go on.
    pub allowed: bool,
    /// The policies that decided: the permit that allowed, or the forbids that refused (empty
    /// when nothing permitted it: deny by default).
    pub policy_ids: Vec<String>,
    /// For an allowed call, what authorized it.
    pub authority: Option<Authority>,
    /// The tool's sector: the one that authorized it, or that would have had to.
    pub tool_sector: String,
}

/// The generated and admin policies for one mission, with the entities they are checked on.
#[derive(Debug)]
struct MissionPolicies {
    policies: PolicySet,
    entities: Entities,
    principal: EntityUid,
    grants: Vec<Grant>,
}

/// Decides whether a mission may call a tool.
#[derive(Debug)]
pub struct SectorAuthorizer {
    /// Admin policies and the connection template: part of every mission's set.
    base: PolicySet,
    /// Each sector's generated permit. A mission's set holds only its own sector's: a mission
    /// is in exactly one sector, so no other sector's permit can ever match it.
    sector_permits: HashMap<String, Policy>,
    /// Tool ids as Cedar entity ids, parsed once.
    tool_uids: HashMap<String, EntityUid>,
    tool_entities: Vec<Entity>,
    sector_entities: Vec<Entity>,
    action: EntityUid,
    authorizer: Authorizer,
    missions: Mutex<HashMap<String, Arc<MissionPolicies>>>,
}

impl SectorAuthorizer {
    /// Builds the sector policies from the catalogue and adds the admin policies (Cedar text;
    /// every policy needs an `@id` annotation, which becomes its id in decisions and audit).
    pub fn new(catalog: &Catalog, admin_policies: &str) -> Result<Self, PolicyError> {
        let mut base = PolicySet::new();
        let mut sector_permits = HashMap::new();
        for sector in catalog.sectors() {
            let text = format!(
                "permit (principal in Sector::\"{s}\", action == Action::\"invoke\", \
                 resource in Sector::\"{s}\");",
                s = sector.id
            );
            let id = PolicyId::new(format!("sector/{}", sector.id));
            sector_permits.insert(
                sector.id.clone(),
                Policy::parse(Some(id), text).map_err(policy_error)?,
            );
        }
        let admin = PolicySet::from_str(admin_policies).map_err(policy_error)?;
        for policy in admin.policies() {
            let Some(name) = policy.annotation("id") else {
                return Err(PolicyError(format!(
                    "an admin policy has no @id annotation: {policy}"
                )));
            };
            if name.starts_with("sector/") || name.starts_with("connection") {
                return Err(PolicyError(format!(
                    "admin policy id {name} collides with the generated policy ids"
                )));
            }
            base.add(policy.new_id(PolicyId::new(name)))
                .map_err(policy_error)?;
        }
        if admin.templates().next().is_some() {
            return Err(PolicyError(
                "admin policies may not contain templates".to_owned(),
            ));
        }
        base.add_template(
            Template::parse(
                Some(PolicyId::new(CONNECTION_TEMPLATE)),
                "permit (principal == ?principal, action == Action::\"invoke\", \
                 resource in ?resource);",
            )
            .map_err(policy_error)?,
        )
        .map_err(policy_error)?;

        let mut sector_entities = Vec::new();
        for sector in catalog.sectors() {
            sector_entities.push(Entity::new_no_attrs(
                uid("Sector", &sector.id)?,
                HashSet::new(),
            ));
        }
        let mut tool_entities = Vec::new();
        let mut tool_uids = HashMap::new();
        for tool in catalog.tools() {
            tool_entities.push(tool_entity(tool)?);
            tool_uids.insert(tool.id.clone(), uid("Tool", &tool.id)?);
        }
        Ok(Self {
            base,
            sector_permits,
            tool_uids,
            tool_entities,
            sector_entities,
            action: uid("Action", "invoke")?,
            authorizer: Authorizer::new(),
            missions: Mutex::new(HashMap::new()),
        })
    }

    fn mission_policies(&self, mission: &MissionRow) -> Result<Arc<MissionPolicies>, PolicyError> {
        let mut cache = self.missions.lock().map_err(policy_error)?;
        if let Some(found) = cache.get(&mission.id) {
            if found.grants == mission.grants {
                return Ok(Arc::clone(found));
            }
        }
        let principal = uid("Mission", &mission.id)?;
        let mut policies = self.base.clone();
        if let Some(own) = self.sector_permits.get(&mission.sector) {
            policies.add(own.clone()).map_err(policy_error)?;
        }
        for grant in &mission.grants {
            policies
                .link(
                    PolicyId::new(CONNECTION_TEMPLATE),
                    PolicyId::new(format!("connection/{}/{}", mission.id, grant.sector)),
                    HashMap::from([
                        (SlotId::principal(), principal.clone()),
                        (SlotId::resource(), uid("Sector", &grant.sector)?),
                    ]),
                )
                .map_err(policy_error)?;
        }
        let attrs = HashMap::from([
            (
                "sector".to_owned(),
                RestrictedExpression::new_string(mission.sector.clone()),
            ),
            (
                "approval_mode".to_owned(),
                RestrictedExpression::new_string(mission.approval_mode.as_str().to_owned()),
            ),
        ]);
        let entity = Entity::new(
            principal.clone(),
            attrs,
            HashSet::from([uid("Sector", &mission.sector)?]),
        )
        .map_err(policy_error)?;
        let entities = Entities::from_entities(
            self.sector_entities
                .iter()
                .chain(&self.tool_entities)
                .cloned()
                .chain([entity]),
            None,
        )
        .map_err(policy_error)?;
        let built = Arc::new(MissionPolicies {
            policies,
            entities,
            principal,
            grants: mission.grants.clone(),
        });
        cache.insert(mission.id.clone(), Arc::clone(&built));
        Ok(built)
    }

    /// May this mission call this tool? Deny by default; the answer names the deciding
    /// policies.
    pub fn decide(&self, mission: &MissionRow, tool: &Tool) -> Result<AuthzDecision, PolicyError> {
        let m = self.mission_policies(mission)?;
        let resource = match self.tool_uids.get(&tool.id) {
            Some(found) => found.clone(),
            None => uid("Tool", &tool.id)?,
        };
        let request = Request::new(
            m.principal.clone(),
            self.action.clone(),
            resource,
            Context::empty(),
            None,
        )
        .map_err(policy_error)?;
        let response = self
            .authorizer
            .is_authorized(&request, &m.policies, &m.entities);
        if let Some(error) = response.diagnostics().errors().next() {
            // An admin policy that fails to evaluate is skipped by Cedar; say so loudly.
            tracing::warn!(%error, "an authorization policy failed to evaluate");
        }
        let mut policy_ids: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        policy_ids.sort();
        let allowed = response.decision() == Decision::Allow;
        let authority = allowed.then(|| {
            m.grants
                .iter()
                .find(|g| {
                    g.sector == tool.sector
                        && policy_ids
                            .iter()
                            .any(|id| id == &format!("connection/{}/{}", mission.id, g.sector))
                })
                .map_or_else(
                    || Authority::Sector(tool.sector.clone()),
                    |g| Authority::Connection(g.clone()),
                )
        });
        Ok(AuthzDecision {
            allowed,
            policy_ids,
            authority,
            tool_sector: tool.sector.clone(),
        })
    }

    /// Forgets a mission's cached policies (its grants changed or it ended).
    pub fn forget(&self, mission_id: &str) {
        if let Ok(mut cache) = self.missions.lock() {
            cache.remove(mission_id);
        }
    }
}

fn tool_entity(tool: &Tool) -> Result<Entity, PolicyError> {
    let attrs = HashMap::from([
        (
            "sector".to_owned(),
            RestrictedExpression::new_string(tool.sector.clone()),
        ),
        (
            "side_effects".to_owned(),
            RestrictedExpression::new_bool(tool.side_effects),
        ),
        (
            "risk".to_owned(),
            RestrictedExpression::new_string(tool.risk.as_str().to_owned()),
        ),
        (
            "kind".to_owned(),
            RestrictedExpression::new_string(tool.kind.clone()),
        ),
    ]);
    Entity::new(
        uid("Tool", &tool.id)?,
        attrs,
        HashSet::from([uid("Sector", &tool.sector)?]),
    )
    .map_err(policy_error)
}
