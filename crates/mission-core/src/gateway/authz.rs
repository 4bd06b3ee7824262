//! Sector authorization with Cedar, deny by default. The policy set is generated: one `permit`
//! per sector (a mission may use its own sector's tools), one linked `permit` per granted
//! connection of a mission, plus the admin-written policies from `config/policies/`, whose
//! `forbid`s override any `permit`.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, RestrictedExpression, SlotId, Template,
};

use super::store::{Grant, MissionRow};
use crate::catalog::{Catalog, Tool};

/// The admin policies compiled into this build.
pub const BUNDLED_ADMIN_POLICIES: &str = include_str!("../../../../config/policies/admin.cedar");

const CONNECTION_TEMPLATE: &str = "connection";

/// A sector's permit, linked per mission with its sector as both slots: ids travel as Cedar
/// values, never inside policy text, so no catalogue id can change what a policy says.
const SECTOR_TEMPLATE: &str = "sector";

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
    /// Admin policies and the sector and connection templates: part of every mission's set.
    base: PolicySet,
    /// The catalogue's sectors. A mission's set links only its own sector's permit: a mission
    /// is in exactly one sector, so no other sector's permit can ever match it.
    sectors: HashSet<String>,
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
        let admin = PolicySet::from_str(admin_policies).map_err(policy_error)?;
        for policy in admin.policies() {
            let Some(name) = policy.annotation("id") else {
                return Err(PolicyError(format!(
                    "an admin policy has no @id annotation: {policy}"
                )));
            };
            if name.starts_with(SECTOR_TEMPLATE) || name.starts_with(CONNECTION_TEMPLATE) {
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
        for (id, text) in [
            (
                SECTOR_TEMPLATE,
                "permit (principal in ?principal, action == Action::\"invoke\", \
                 resource in ?resource);",
            ),
            (
                CONNECTION_TEMPLATE,
                "permit (principal == ?principal, action == Action::\"invoke\", \
                 resource in ?resource);",
            ),
        ] {
            base.add_template(
                Template::parse(Some(PolicyId::new(id)), text).map_err(policy_error)?,
            )
            .map_err(policy_error)?;
        }

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
            sectors: catalog.sectors().iter().map(|s| s.id.clone()).collect(),
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
        if self.sectors.contains(&mission.sector) {
            let own = uid("Sector", &mission.sector)?;
            policies
                .link(
                    PolicyId::new(SECTOR_TEMPLATE),
                    PolicyId::new(format!("sector/{}", mission.sector)),
                    HashMap::from([
                        (SlotId::principal(), own.clone()),
                        (SlotId::resource(), own),
                    ]),
                )
                .map_err(policy_error)?;
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

    /// How many missions' policy sets are cached.
    pub fn cached_missions(&self) -> usize {
        self.missions.lock().map_or(0, |cache| cache.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perimeter::MissionStatus;
    use crate::registry::ApprovalMode;

    const SECTORS: &str = include_str!("../../../../config/sectors.json");
    const DEPARTMENTS: &str = include_str!("../../../../config/departments.json");
    const TOOLS: &str = include_str!("../../../../config/tools.json");
    const POLICY: &str = include_str!("../../../../config/policy.json");

    /// A sector id written to break out of a policy's text and permit everything.
    const EVIL: &str = "evil\") when { true };\npermit (principal, action, resource";

    fn catalog_with_evil_sector() -> Catalog {
        let mut sectors: serde_json::Value = serde_json::from_str(SECTORS).expect("sectors");
        sectors["sectors"]
            .as_array_mut()
            .expect("list")
            .push(serde_json::json!({
                "id": EVIL, "name": "Evil", "description": "Quotes in its id.",
                "categories": ["Anything"]
            }));
        let mut tools: serde_json::Value = serde_json::from_str(TOOLS).expect("tools");
        tools["tools"]
            .as_array_mut()
            .expect("list")
            .push(serde_json::json!({
                "id": "evil.probe", "name": "Probe", "sector": EVIL, "side_effects": false,
                "cost": {"model": "flat", "cents": 1}, "risk": "Low", "kind": "builtin"
            }));
        Catalog::from_json(
            &sectors.to_string(),
            DEPARTMENTS,
            &tools.to_string(),
            POLICY,
        )
        .expect("catalog")
    }

    fn mission(id: &str, sector: &str) -> MissionRow {
        MissionRow {
            id: id.to_owned(),
            template_id: format!("{sector}.probe"),
            template_version: 1,
            template_name: "Probe".to_owned(),
            sector: sector.to_owned(),
            approval_mode: ApprovalMode::Strict,
            threshold_cents: None,
            status: MissionStatus::Running,
            expires_at: None,
            grants: Vec::new(),
        }
    }

    #[test]
    fn a_sector_id_cannot_write_policy_text() {
        let catalog = catalog_with_evil_sector();
        let authz = SectorAuthorizer::new(&catalog, BUNDLED_ADMIN_POLICIES).expect("policies");
        let tool = |id: &str| catalog.tool(id).expect("tool");
        let evil = mission("m-evil", EVIL);
        let finance = mission("m-finance", "finance");

        // The evil sector's mission reaches its own tool and nothing else.
        let own = authz.decide(&evil, tool("evil.probe")).expect("decide");
        assert!(own.allowed);
        // Its one deciding policy is its sector's permit (the id is shown escaped).
        assert_eq!(own.policy_ids.len(), 1);
        assert!(
            own.policy_ids[0].starts_with("sector/evil"),
            "{:?}",
            own.policy_ids
        );
        for other in ["finance.ledger_query", "trading.market_data_fetch"] {
            let d = authz.decide(&evil, tool(other)).expect("decide");
            assert!(!d.allowed, "{other} was allowed by {:?}", d.policy_ids);
        }
        // Another sector's mission still reaches only its own sector.
        assert!(
            authz
                .decide(&finance, tool("finance.ledger_query"))
                .expect("decide")
                .allowed
        );
        let d = authz.decide(&finance, tool("evil.probe")).expect("decide");
        assert!(!d.allowed, "evil.probe was allowed by {:?}", d.policy_ids);
    }
}
