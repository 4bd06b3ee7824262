//! The bundled library: at least 200 real, distinct templates that pass validation.

use std::collections::{HashMap, HashSet};

use mission_core::registry::manifest::ManifestInput;
use mission_core::registry::service::BUNDLED_LIBRARY;
use mission_core::registry::validate::{validate, ValidTemplate};
use mission_core::Catalog;

fn library() -> Vec<ValidTemplate> {
    let catalog = Catalog::bundled().expect("catalog");
    let v = validate(
        &[ManifestInput::new(
            "mission_templates.json",
            BUNDLED_LIBRARY,
        )],
        &catalog,
    );
    assert!(
        v.problems.is_empty(),
        "bundled library has problems: {:#?}",
        v.problems
    );
    v.templates
}

#[test]
fn the_library_validates_and_has_at_least_200_templates() {
    assert!(library().len() >= 200);
}

#[test]
fn every_required_sector_exists_with_at_least_ten_templates() {
    let catalog = Catalog::bundled().expect("catalog");
    assert!(catalog.sectors().len() >= 10);
    let mut per_sector: HashMap<String, usize> = HashMap::new();
    for t in library() {
        *per_sector.entry(t.template.sector).or_default() += 1;
    }
    for name in [
        "Wealth",
        "Finance",
        "Trading",
        "Security",
        "Shadow",
        "Intelligence",
        "Talent",
    ] {
        let sector = catalog
            .find_sector(name)
            .unwrap_or_else(|| panic!("sector {name} missing"));
        assert!(
            per_sector.get(&sector.id).copied().unwrap_or(0) >= 10,
            "{name} has fewer than 10"
        );
    }
    for sector in catalog.sectors() {
        assert!(
            per_sector.get(&sector.id).copied().unwrap_or(0) >= 10,
            "{} too small",
            sector.id
        );
    }
}

#[test]
fn burnout_recruiter_is_in_talent() {
    let t = library()
        .into_iter()
        .find(|t| t.template.name == "Burnout Recruiter")
        .expect("Burnout Recruiter exists");
    assert_eq!(t.template.sector, "talent");
}

#[test]
fn ids_names_and_goals_are_distinct_and_goals_are_single_sentences() {
    let templates = library();
    let mut names = HashSet::new();
    let mut goals = HashSet::new();
    for t in &templates {
        let t = &t.template;
        assert!(
            names.insert(t.name.to_lowercase()),
            "duplicate name {}",
            t.name
        );
        assert!(
            goals.insert(t.goal.to_lowercase()),
            "duplicate goal {}",
            t.goal
        );
        assert!(
            !t.name.chars().last().is_some_and(|c| c.is_ascii_digit()),
            "numbered filler name {}",
            t.name
        );
        assert!(t.goal.ends_with('.'), "goal is not a sentence: {}", t.goal);
        let inner = &t.goal[..t.goal.len() - 1];
        assert!(
            !inner.contains(". "),
            "goal has more than one sentence: {}",
            t.goal
        );
        assert!(
            t.goal.split_whitespace().count() >= 8,
            "goal too thin: {}",
            t.goal
        );
    }
}

fn words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 3)
        .map(str::to_lowercase)
        .collect()
}

#[test]
fn no_two_goals_are_near_copies() {
    let templates = library();
    let sets: Vec<(String, HashSet<String>)> = templates
        .iter()
        .map(|t| (t.template.id.clone(), words(&t.template.goal)))
        .collect();
    for (i, (a_id, a)) in sets.iter().enumerate() {
        for (b_id, b) in &sets[i + 1..] {
            let shared = a.intersection(b).count() as f64;
            let union = a.union(b).count() as f64;
            assert!(
                shared / union < 0.5,
                "goals of {a_id} and {b_id} are near copies"
            );
        }
    }
}

#[test]
fn every_category_is_under_its_sector_and_used() {
    let catalog = Catalog::bundled().expect("catalog");
    let used: HashSet<(String, String)> = library()
        .into_iter()
        .map(|t| (t.template.sector, t.template.category))
        .collect();
    for s in catalog.sectors() {
        for c in &s.categories {
            assert!(
                used.contains(&(s.id.clone(), c.clone())),
                "{} / {c} has no template",
                s.id
            );
        }
    }
}

#[test]
fn every_tool_belongs_to_a_configured_sector_and_departments_start_with_the_orchestrator() {
    let catalog = Catalog::bundled().expect("catalog");
    assert!(catalog
        .tools()
        .iter()
        .all(|t| catalog.sector(&t.sector).is_some()));
    assert_eq!(
        catalog.department(1).map(|d| d.name.as_str()),
        Some("Orchestrator")
    );
}
