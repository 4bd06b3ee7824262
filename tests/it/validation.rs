//! Semantic validation: every problem reported, each located by file, template id and pointer.

use mission_core::registry::validate::validate;
use mission_core::registry::ProblemCode;
use mission_core::Catalog;
use serde_json::json;

use crate::helpers::{input, manifest, template, with_hash};

fn catalog() -> Catalog {
    Catalog::bundled().expect("catalog")
}

#[test]
fn a_valid_template_passes() {
    let m = manifest(vec![template(
        "talent.test-one",
        "Test One",
        "Find people for the test team quickly.",
    )]);
    let v = validate(&[input("one.json", &m)], &catalog());
    assert!(v.problems.is_empty(), "{:#?}", v.problems);
    assert_eq!(v.templates.len(), 1);
}

#[test]
fn every_semantic_problem_is_reported_not_only_the_first() {
    let mut t = template(
        "talent.broken",
        "Broken",
        "A template with many different problems in it.",
    );
    t["category"] = json!("Nonexistent");
    t["required_depts"] = json!([1, 8, 77]);
    t["ruleset"]["allowed_tools"] = json!([
        "talent.candidate_search",
        "trading.order_route",
        "nope.tool"
    ]);
    t["ruleset"]["plan"][1]["tool"] = json!("talent.offer_draft");
    t["default_perimeter"]["budget_cents"] = json!(999_999_999);
    let mut t = with_hash(t);
    t["logic_hash"] = json!("0".repeat(64));
    let m = manifest(vec![t]);
    let v = validate(&[input("broken.json", &m)], &catalog());
    let codes: Vec<(ProblemCode, &str)> = v
        .problems
        .iter()
        .map(|p| (p.code, p.pointer.as_str()))
        .collect();
    let expected = [
        (ProblemCode::UnknownCategory, "/templates/0/category"),
        (
            ProblemCode::UnknownDepartment,
            "/templates/0/required_depts/2",
        ),
        (
            ProblemCode::ToolOutsideSector,
            "/templates/0/ruleset/allowed_tools/1",
        ),
        (
            ProblemCode::UnknownTool,
            "/templates/0/ruleset/allowed_tools/2",
        ),
        (
            ProblemCode::PlanMismatch,
            "/templates/0/ruleset/plan/1/tool",
        ),
        (ProblemCode::PlanMismatch, "/templates/0/required_depts/2"),
        (
            ProblemCode::CapExceeded,
            "/templates/0/default_perimeter/budget_cents",
        ),
        (ProblemCode::LogicHashMismatch, "/templates/0/logic_hash"),
    ];
    for e in expected {
        assert!(codes.contains(&e), "missing {e:?} in {codes:#?}");
    }
    assert!(v
        .problems
        .iter()
        .all(|p| p.file == "broken.json" && p.template_id.as_deref() == Some("talent.broken")));
    assert!(v.templates.is_empty());
}

#[test]
fn a_tool_from_a_declared_connected_sector_is_allowed() {
    let mut t = template(
        "talent.connected",
        "Connected",
        "Uses a sentiment tool from intelligence legitimately.",
    );
    t["connected_sectors"] = json!(["intelligence"]);
    t["ruleset"]["allowed_tools"] =
        json!(["talent.candidate_search", "intelligence.sentiment_analyze"]);
    let v = validate(
        &[input("c.json", &manifest(vec![with_hash(t)]))],
        &catalog(),
    );
    assert!(v.problems.is_empty(), "{:#?}", v.problems);
}

#[test]
fn tool_outside_sector_names_the_sector_to_connect() {
    let mut t = template(
        "talent.reach",
        "Reach",
        "Tries to route a trade from a talent mission.",
    );
    t["ruleset"]["allowed_tools"] = json!(["talent.candidate_search", "trading.order_route"]);
    let v = validate(
        &[input("r.json", &manifest(vec![with_hash(t)]))],
        &catalog(),
    );
    let p = &v.problems[0];
    assert_eq!(p.code, ProblemCode::ToolOutsideSector);
    assert!(
        p.message.contains("Trading") && p.message.contains("connected_sectors"),
        "{}",
        p.message
    );
}

#[test]
fn schema_problems_are_all_reported_with_pointers_and_template_ids() {
    let mut a = template(
        "talent.a",
        "Alpha",
        "First template with a schema problem inside.",
    );
    a.as_object_mut().expect("object").remove("goal");
    let mut b = template(
        "talent.b",
        "Beta",
        "Second template with a different problem here.",
    );
    b["default_perimeter"]["approval_mode"] = json!("Sometimes");
    b["extra"] = json!(true);
    let v = validate(&[input("s.json", &manifest(vec![a, b]))], &catalog());
    let find = |ptr: &str| v.problems.iter().find(|p| p.pointer == ptr);
    let missing = find("/templates/0").expect("missing goal reported");
    assert_eq!(missing.template_id.as_deref(), Some("talent.a"));
    assert!(missing.message.contains("goal"), "{}", missing.message);
    let mode = find("/templates/1/default_perimeter/approval_mode").expect("bad mode reported");
    assert_eq!(mode.template_id.as_deref(), Some("talent.b"));
    assert!(mode.message.contains("Strict"), "{}", mode.message);
    assert!(v.problems.iter().any(|p| p.message.contains("\"extra\"")));
    assert!(v.problems.iter().all(|p| p.code == ProblemCode::Schema));
}

#[test]
fn threshold_is_required_exactly_in_threshold_mode() {
    let mut a = template(
        "talent.a",
        "Alpha",
        "Threshold mode without a threshold value set.",
    );
    a["default_perimeter"]
        .as_object_mut()
        .expect("obj")
        .remove("threshold_cents");
    let mut b = template(
        "talent.b",
        "Beta",
        "Auto mode that still carries a threshold value.",
    );
    b["default_perimeter"]["approval_mode"] = json!("Auto");
    let v = validate(&[input("t.json", &manifest(vec![a, b]))], &catalog());
    assert!(v
        .problems
        .iter()
        .any(|p| p.template_id.as_deref() == Some("talent.a")
            && p.message.contains("threshold_cents")));
    assert!(v
        .problems
        .iter()
        .any(|p| p.template_id.as_deref() == Some("talent.b")
            && p.message.contains("threshold_cents")));
}

#[test]
fn duplicate_ids_are_refused_within_and_across_files() {
    let a = template(
        "talent.same",
        "Same A",
        "The first template that uses this identifier.",
    );
    let b = template(
        "talent.same",
        "Same B",
        "The second template reusing the same identifier.",
    );
    let v = validate(
        &[
            input("x.json", &manifest(vec![a.clone()])),
            input("y.json", &manifest(vec![b])),
        ],
        &catalog(),
    );
    assert_eq!(v.problems.len(), 1);
    assert_eq!(v.problems[0].code, ProblemCode::DuplicateId);
    assert_eq!(v.problems[0].file, "y.json");
    assert!(v.problems[0].message.contains("x.json"));
}

#[test]
fn a_changed_ruleset_breaks_the_logic_hash() {
    let mut t = template(
        "talent.tamper",
        "Tamper",
        "Ruleset edited after hashing must be refused.",
    );
    t["ruleset"]["forbidden_actions"] = json!([]);
    let v = validate(&[input("h.json", &manifest(vec![t]))], &catalog());
    assert_eq!(v.problems.len(), 1);
    assert_eq!(v.problems[0].code, ProblemCode::LogicHashMismatch);
}

#[test]
fn logic_hash_is_sha256_of_rfc8785_canonical_json() {
    // Key order and whitespace must not matter; the expected value is the SHA-256 of the
    // canonical text written out by hand.
    let ruleset: serde_json::Value = serde_json::from_str(
        r#"{ "plan": [{"tool": "a.b", "dept": 1, "action": "x"}], "forbidden_actions": [], "allowed_tools": ["a.b"] }"#,
    )
    .expect("json");
    let canonical = r#"{"allowed_tools":["a.b"],"forbidden_actions":[],"plan":[{"action":"x","dept":1,"tool":"a.b"}]}"#;
    use sha2::Digest;
    let expected = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    assert_eq!(
        mission_core::registry::hash::logic_hash(&ruleset).expect("hash"),
        expected
    );
}
