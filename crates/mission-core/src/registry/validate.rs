//! Manifest validation: JSON Schema first, then the checks a schema cannot express (catalogue
//! references, sector reach of tools, plan consistency, logic_hash, caps, unique ids). Every
//! problem is collected; nothing stops at the first.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::hash;
use super::manifest::{self, json_kind, ManifestInput};
use super::model::Template;
use super::problem::{Problem, ProblemCode};
use crate::catalog::Catalog;

const SCHEMA_JSON: &str = include_str!("../../../../config/mission_template.schema.json");

/// The manifest schema, compiled once per process as two validators derived from the one file:
/// the envelope (the template items left out) and a single template (the items' schema), so
/// templates are checked one by one, in parallel, as they are parsed.
struct Schemas {
    envelope: jsonschema::Validator,
    template: jsonschema::Validator,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        #[expect(clippy::expect_used, reason = "the bundled schema is checked by tests")]
        let root: Value = serde_json::from_str(SCHEMA_JSON).expect("bundled schema is JSON");
        let mut envelope = root.clone();
        let items = envelope
            .pointer_mut("/properties/templates")
            .and_then(Value::as_object_mut)
            .and_then(|templates| templates.remove("items"))
            .unwrap_or(Value::Bool(true));
        let mut template = items;
        if let (Some(t), Some(r)) = (template.as_object_mut(), root.as_object()) {
            for key in ["$schema", "$id", "$defs"] {
                if let Some(v) = r.get(key) {
                    t.insert(key.to_owned(), v.clone());
                }
            }
        }
        #[expect(clippy::expect_used, reason = "the bundled schema is checked by tests")]
        let compile =
            |schema: &Value| jsonschema::draft202012::new(schema).expect("bundled schema compiles");
        Schemas {
            envelope: compile(&envelope),
            template: compile(&template),
        }
    })
}

/// A template that passed every check, with what the registry stores for it.
#[derive(Debug, Clone)]
pub struct ValidTemplate {
    /// The parsed template.
    pub template: Template,
    /// The template's canonical JSON (model field order, no whitespace), stored as the version's
    /// content. The model admits no unknown fields, so this is everything the manifest said.
    pub content: String,
    /// SHA-256 of `content`; equal hashes mean an unchanged template, so reordering keys or
    /// reformatting a manifest does not make a new version.
    pub content_hash: String,
    /// The manifest it came from.
    pub source: String,
}

/// Everything a validation run found.
#[derive(Debug, Default)]
pub struct Validation {
    /// Templates that passed (only meaningful when `problems` is empty).
    pub templates: Vec<ValidTemplate>,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
}

impl Validation {
    /// True when nothing is wrong.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Templates checked together, in parallel, before the valid ones are handed on.
pub const CHUNK_TEMPLATES: usize = 1000;

/// Validates manifests against the schema and the catalogue; ids must be unique across all inputs.
pub fn validate(inputs: &[ManifestInput], catalog: &Catalog) -> Validation {
    let mut templates = Vec::new();
    let problems = validate_in_chunks(inputs, catalog, |chunk, _| {
        templates.extend(chunk);
        true
    });
    Validation {
        templates,
        problems,
    }
}

/// Validates file by file, a chunk of templates at a time (each chunk in parallel), and hands
/// each chunk's valid templates to `emit` for as long as no problem has been found and `emit`
/// returns true, so an importer can write while the rest is still being checked. Returns every
/// problem, in file order; ids are compared in file order, so the first occurrence wins.
/// `emit` also gets how many bytes of all inputs have been checked so far, for progress.
pub fn validate_in_chunks(
    inputs: &[ManifestInput],
    catalog: &Catalog,
    mut emit: impl FnMut(Vec<ValidTemplate>, u64) -> bool,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen: HashMap<String, (String, String)> = HashMap::new();
    let mut emitting = true;
    let mut files_done = 0u64;
    for input in inputs {
        let file_start = files_done;
        files_done += input.bytes.len() as u64;
        let split = match open_file(input, catalog) {
            Ok(split) => split,
            Err(file_problems) => {
                problems.extend(file_problems);
                continue;
            }
        };
        let envelope: Vec<Problem> = schemas()
            .envelope
            .iter_errors(&split.envelope)
            .map(|e| schema_problem(&input.name, "", None, &e))
            .collect();
        problems.extend(envelope);
        for (chunk_index, chunk) in split.templates.chunks(CHUNK_TEMPLATES).enumerate() {
            let first = chunk_index * CHUNK_TEMPLATES;
            let checked = match check_chunk(input, &split, chunk, first, catalog) {
                Ok(checked) => checked,
                Err(syntax) => {
                    // Unparseable JSON stops the file: nothing after it can be located.
                    problems.push(syntax);
                    break;
                }
            };
            let mut valid = Vec::with_capacity(checked.len());
            for (offset, (id, result)) in checked.into_iter().enumerate() {
                let index = first + offset;
                let duplicate = id.as_ref().and_then(|id| match seen.get(id) {
                    Some((first_file, first_pointer)) => Some(Problem {
                        file: input.name.clone(),
                        template_id: Some(id.clone()),
                        pointer: format!("/templates/{index}/id"),
                        code: ProblemCode::DuplicateId,
                        message: format!(
                            "The id \"{id}\" is already used by the template at {first_file} {first_pointer}. Ids must be unique."
                        ),
                    }),
                    None => {
                        seen.insert(id.clone(), (input.name.clone(), format!("/templates/{index}")));
                        None
                    }
                });
                match (result, duplicate) {
                    (Ok(template), None) => valid.push(template),
                    (Ok(_), Some(dup)) => problems.push(dup),
                    (Err(found), dup) => problems.extend(found.into_iter().chain(dup)),
                }
            }
            let checked_to = chunk.last().map_or(0, |raw| split.end_of(raw)) as u64;
            emitting = emitting && problems.is_empty() && emit(valid, file_start + checked_to);
        }
    }
    problems
}

/// Reads a manifest's envelope; file-level problems stop the file.
fn open_file<'a>(
    input: &'a ManifestInput,
    catalog: &Catalog,
) -> Result<manifest::SplitManifest<'a>, Vec<Problem>> {
    let limits = catalog.policy().import;
    let split = manifest::split(input, limits.max_file_bytes).map_err(|p| vec![p])?;
    let count = split.templates.len();
    if count > limits.max_templates_per_file {
        return Err(vec![Problem {
            file: input.name.clone(),
            template_id: None,
            pointer: "/templates".into(),
            code: ProblemCode::TooManyTemplates,
            message: format!(
                "The file has {count} templates; at most {} are accepted per file. Split it.",
                limits.max_templates_per_file
            ),
        }]);
    }
    Ok(split)
}

/// Parses and checks a run of templates in parallel; `first` is the index of the first one.
fn check_chunk(
    input: &ManifestInput,
    split: &manifest::SplitManifest<'_>,
    chunk: &[&serde_json::value::RawValue],
    first: usize,
    catalog: &Catalog,
) -> Result<Vec<Checked>, Problem> {
    chunk
        .par_iter()
        .enumerate()
        .map(|(offset, raw)| {
            let value = split.parse_part(&input.name, raw)?;
            let id = template_id_of(&value);
            let pointer = format!("/templates/{}", first + offset);
            let result = if schemas().template.is_valid(&value) {
                check_template(&input.name, &pointer, value, catalog)
            } else {
                Err(schemas()
                    .template
                    .iter_errors(&value)
                    .map(|e| schema_problem(&input.name, &pointer, Some(&value), &e))
                    .collect())
            };
            Ok((id, result))
        })
        .collect()
}

/// A template's id (if readable) and the outcome of its own checks.
type Checked = (Option<String>, Result<ValidTemplate, Vec<Problem>>);

/// Every check of one schema-valid template that needs no other template.
fn check_template(
    file: &str,
    base: &str,
    raw: Value,
    catalog: &Catalog,
) -> Result<ValidTemplate, Vec<Problem>> {
    let problem = |template_id, message| {
        vec![Problem {
            file: file.to_owned(),
            template_id,
            pointer: base.to_owned(),
            code: ProblemCode::Schema,
            message,
        }]
    };
    let id = template_id_of(&raw);
    // Taking the value apart moves its strings into the model instead of copying them.
    let template = Template::deserialize(raw)
        .map_err(|e| problem(id, format!("The template could not be read: {e}.")))?;
    let problems = Checker {
        file,
        base,
        template: &template,
        catalog,
        problems: Vec::new(),
    }
    .run();
    if !problems.is_empty() {
        return Err(problems);
    }
    let content = serde_json::to_string(&template).map_err(|e| {
        problem(
            Some(template.id.clone()),
            format!("The template cannot be canonicalised: {e}."),
        )
    })?;
    Ok(ValidTemplate {
        content_hash: content_hash(&content),
        content,
        template,
        source: file.to_owned(),
    })
}

/// Hash of a template's canonical JSON. The ruleset's logic_hash uses RFC 8785 as specified;
/// this internal change detector does not need to, and is ten times cheaper.
fn content_hash(content: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(content.as_bytes()))
}

fn template_id_of(raw: &Value) -> Option<String> {
    raw.get("id").and_then(Value::as_str).map(str::to_owned)
}

/// Turns a schema error into a located, plain-sentence problem. `base` is the pointer of the
/// validated value in the file and `template` the template it belongs to, if any.
fn schema_problem(
    file: &str,
    base: &str,
    template: Option<&Value>,
    error: &jsonschema::ValidationError<'_>,
) -> Problem {
    let pointer = format!("{base}{}", error.instance_path().as_str());
    let template_id = template.and_then(template_id_of);
    let field = pointer
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map_or_else(|| "The manifest".to_owned(), |s| format!("\"{s}\""));
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            format!("The required field {property} is missing.")
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => format!(
            "Unknown field{} {}: remove {} or check the spelling.",
            if unexpected.len() > 1 { "s" } else { "" },
            unexpected
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect::<Vec<_>>()
                .join(", "),
            if unexpected.len() > 1 { "them" } else { "it" }
        ),
        ValidationErrorKind::Type { .. } => format!(
            "{field} has the wrong type ({}): {}.",
            json_kind(error.instance()),
            error
        ),
        ValidationErrorKind::Enum { options } => {
            format!("{field} must be one of {options}.")
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("{field} must be {expected_value}.")
        }
        ValidationErrorKind::Minimum { limit } => format!("{field} must be at least {limit}."),
        ValidationErrorKind::Maximum { limit } => format!("{field} must be at most {limit}."),
        ValidationErrorKind::MinLength { limit } => {
            format!("{field} must be at least {limit} characters long.")
        }
        ValidationErrorKind::MaxLength { limit } => {
            format!("{field} must be at most {limit} characters long.")
        }
        ValidationErrorKind::MinItems { limit } => {
            format!("{field} must have at least {limit} item(s).")
        }
        ValidationErrorKind::MaxItems { limit } => {
            format!("{field} must have at most {limit} items.")
        }
        ValidationErrorKind::UniqueItems => format!("{field} lists the same item twice."),
        ValidationErrorKind::Pattern { pattern } => {
            format!("{field} has an invalid format (expected to match {pattern}).")
        }
        ValidationErrorKind::Not { .. } => format!(
            "{field} holds a field that is not allowed here: threshold_cents may only be set when approval_mode is \"Threshold\"."
        ),
        _ => format!("{error}."),
    };
    Problem {
        file: file.to_owned(),
        template_id,
        pointer,
        code: ProblemCode::Schema,
        message,
    }
}

/// Semantic checks of one schema-valid template.
struct Checker<'a> {
    file: &'a str,
    base: &'a str,
    template: &'a Template,
    catalog: &'a Catalog,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, pointer: &str, code: ProblemCode, message: String) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            template_id: Some(self.template.id.clone()),
            pointer: format!("{}{pointer}", self.base),
            code,
            message,
        });
    }

    fn run(mut self) -> Vec<Problem> {
        let t = self.template;
        let catalog = self.catalog;
        let sector = catalog.sector(&t.sector);
        match sector {
            None => self.report(
                "/sector",
                ProblemCode::UnknownSector,
                format!(
                    "Sector \"{}\" is not in config/sectors.json. Use one of: {}.",
                    t.sector,
                    catalog
                        .sectors()
                        .iter()
                        .map(|s| s.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(s) if !s.categories.iter().any(|c| c == &t.category) => self.report(
                "/category",
                ProblemCode::UnknownCategory,
                format!(
                    "Category \"{}\" is not a category of the {} sector. Use one of: {}.",
                    t.category,
                    s.name,
                    s.categories.join(", ")
                ),
            ),
            Some(_) => {}
        }
        for (i, dept) in t.required_depts.iter().enumerate() {
            if catalog.department(*dept).is_none() {
                self.report(
                    &format!("/required_depts/{i}"),
                    ProblemCode::UnknownDepartment,
                    format!("Department {dept} is not in config/departments.json."),
                );
            }
        }
        for (i, connected) in t.connected_sectors.iter().enumerate() {
            let pointer = format!("/connected_sectors/{i}");
            if connected == &t.sector {
                self.report(
                    &pointer,
                    ProblemCode::SelfConnection,
                    format!("A template cannot connect its own sector \"{connected}\"; remove it."),
                );
            } else if catalog.sector(connected).is_none() {
                self.report(
                    &pointer,
                    ProblemCode::UnknownSector,
                    format!("Connected sector \"{connected}\" is not in config/sectors.json."),
                );
            }
        }
        let own_name = sector.map_or(t.sector.as_str(), |s| s.name.as_str());
        for (i, tool_id) in t.ruleset.allowed_tools.iter().enumerate() {
            let pointer = format!("/ruleset/allowed_tools/{i}");
            match catalog.tool(tool_id) {
                None => self.report(
                    &pointer,
                    ProblemCode::UnknownTool,
                    format!("Tool \"{tool_id}\" is not in config/tools.json."),
                ),
                Some(tool)
                    if tool.sector != t.sector && !t.connected_sectors.contains(&tool.sector) =>
                {
                    self.report(
                        &pointer,
                        ProblemCode::ToolOutsideSector,
                        format!(
                            "Tool \"{tool_id}\" belongs to the {} sector, which is neither this template's sector ({own_name}) nor one of its connected_sectors. Add \"{}\" to connected_sectors or remove the tool.",
                            catalog.sector(&tool.sector).map_or(tool.sector.as_str(), |s| s.name.as_str()),
                            tool.sector
                        ),
                    )
                }
                Some(_) => {}
            }
        }
        let mut planned = HashSet::new();
        for (i, step) in t.ruleset.plan.iter().enumerate() {
            planned.insert(step.dept);
            if !t.required_depts.contains(&step.dept) {
                self.report(
                    &format!("/ruleset/plan/{i}/dept"),
                    ProblemCode::PlanMismatch,
                    format!(
                        "Plan step {} is assigned to department {}, which is not in required_depts.",
                        i + 1,
                        step.dept
                    ),
                );
            }
            if let Some(tool) = &step.tool {
                if !t.ruleset.allowed_tools.contains(tool) {
                    self.report(
                        &format!("/ruleset/plan/{i}/tool"),
                        ProblemCode::PlanMismatch,
                        format!(
                            "Plan step {} calls \"{tool}\", which is not in allowed_tools.",
                            i + 1
                        ),
                    );
                }
            }
        }
        for (i, dept) in t.required_depts.iter().enumerate() {
            if !planned.contains(dept) {
                self.report(
                    &format!("/required_depts/{i}"),
                    ProblemCode::PlanMismatch,
                    format!("Department {dept} is required but has no plan step."),
                );
            }
        }
        self.check_caps();
        match hash::logic_hash(&t.ruleset) {
            Ok(expected) if expected != t.logic_hash => self.report(
                "/logic_hash",
                ProblemCode::LogicHashMismatch,
                format!(
                    "logic_hash does not match the ruleset: the SHA-256 of its RFC 8785 canonical JSON is {expected}, the template says {}. If the ruleset change is intended, update logic_hash (missionctl manifest rehash).",
                    t.logic_hash
                ),
            ),
            Ok(_) => {}
            Err(e) => self.report(
                "/ruleset",
                ProblemCode::LogicHashMismatch,
                format!("The ruleset cannot be canonicalised: {e}."),
            ),
        }
        self.problems
    }

    fn check_caps(&mut self) {
        let caps = self.catalog.policy().hard_caps;
        let p = &self.template.default_perimeter;
        let checks = [
            (
                "budget_cents",
                p.budget_cents.get(),
                caps.budget_cents.get(),
            ),
            ("ttl_seconds", p.ttl_seconds.get(), caps.ttl_seconds.get()),
            ("max_steps", p.max_steps, caps.max_steps),
        ];
        for (field, value, cap) in checks {
            if value > cap {
                self.report(
                    &format!("/default_perimeter/{field}"),
                    ProblemCode::CapExceeded,
                    format!("{field} is {value}, above the global hard cap of {cap} in config/policy.json."),
                );
            }
        }
        if let Some(threshold) = p.threshold_cents {
            if threshold > p.budget_cents {
                self.report(
                    "/default_perimeter/threshold_cents",
                    ProblemCode::CapExceeded,
                    format!(
                        "threshold_cents ({threshold}) is above the budget ({}); no call could ever reach it.",
                        p.budget_cents
                    ),
                );
            }
        }
    }
}
