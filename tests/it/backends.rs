//! The shared repository suite, run against a real SQLite file and a real Postgres database.

use mission_core::registry::import::ImportStatus;
use mission_core::registry::search::NO_HISTORY;
use mission_core::registry::{RiskLevel, SearchRequest};
use mission_core::RegistryError;
use serde_json::json;

use crate::helpers::{input, manifest, template, with_hash, TestDb};

crate::on_both_backends!(
    first_open_imports_the_bundled_library_once,
    importing_the_same_file_twice_changes_nothing_and_says_so,
    changed_content_gets_the_next_version_and_old_versions_stay_readable,
    an_invalid_file_in_the_batch_writes_nothing,
    a_problem_found_after_rows_were_written_rolls_everything_back,
    preview_reports_without_writing,
    burn_finds_burnout_recruiter_first,
    filters_combine_with_the_query,
    name_matches_outrank_goal_matches,
    tiers_then_shorter_names_then_import_order,
    results_say_no_history_yet,
    unknown_filters_are_refused,
    concurrent_imports_of_one_template_agree_on_versions,
);

async fn first_open_imports_the_bundled_library_once(db: TestDb) {
    let registry = db.registry().await;
    let count = registry.store().count_templates().await.expect("count");
    assert!(count >= 200, "{count}");
    let again = db.registry().await;
    assert_eq!(again.ensure_bundled_library().await.expect("ensure"), None);
    assert_eq!(again.store().count_templates().await.expect("count"), count);
}

async fn importing_the_same_file_twice_changes_nothing_and_says_so(db: TestDb) {
    let registry = db.empty_registry().await;
    let m = manifest(vec![
        template(
            "talent.one",
            "One",
            "First template for the idempotency check.",
        ),
        template(
            "talent.two",
            "Two",
            "Second template for the idempotency check.",
        ),
    ]);
    let first = registry
        .import(&[input("m.json", &m)])
        .await
        .expect("import");
    assert_eq!((first.new, first.updated, first.unchanged), (2, 0, 0));
    let second = registry
        .import(&[input("m.json", &m)])
        .await
        .expect("import");
    assert_eq!((second.new, second.updated, second.unchanged), (0, 0, 2));
    assert!(second.changed_nothing());
    assert!(second.summary().contains("Nothing to change"));
    let versions = registry
        .store()
        .versions("talent.one")
        .await
        .expect("versions");
    assert_eq!(versions.len(), 1);
}

async fn changed_content_gets_the_next_version_and_old_versions_stay_readable(db: TestDb) {
    let registry = db.empty_registry().await;
    let v1 = template(
        "talent.evolving",
        "Evolving",
        "The original goal of the evolving template.",
    );
    registry
        .import(&[input("v1.json", &manifest(vec![v1.clone()]))])
        .await
        .expect("v1");
    let mut v2 = v1.clone();
    v2["goal"] = json!("The revised goal of the evolving template, now sharper.");
    v2["ruleset"]["forbidden_actions"] = json!(["Contact anyone on leave", "Share salaries"]);
    let v2 = with_hash(v2);
    let report = registry
        .import(&[input("v2.json", &manifest(vec![v2.clone()]))])
        .await
        .expect("v2");
    assert_eq!(report.items[0].status, ImportStatus::Updated);
    assert_eq!(report.items[0].version, 2);

    let current = registry.show("talent.evolving", None).await.expect("show");
    assert_eq!(current.summary.version, 2);
    assert_eq!(
        current.summary.heading.goal,
        v2["goal"].as_str().expect("goal")
    );
    assert_eq!(
        current.summary.logic_hash,
        v2["logic_hash"].as_str().expect("hash")
    );
    let old = registry
        .show("talent.evolving", Some(1))
        .await
        .expect("show v1");
    assert_eq!(old.content["goal"], v1["goal"]);
    assert_eq!(old.content["logic_hash"], v1["logic_hash"]);
    assert_eq!(old.versions.len(), 2);
    assert_eq!(old.versions[0].source, "v1.json");
    // Re-importing the old content is a change again: it becomes version 3, never a rewrite.
    let back = registry
        .import(&[input("v1.json", &manifest(vec![v1]))])
        .await
        .expect("back");
    assert_eq!(back.items[0].version, 3);
    assert!(matches!(
        registry.show("talent.evolving", Some(9)).await,
        Err(RegistryError::VersionNotFound { version: 9, .. })
    ));
    // The search index follows the current version.
    let hits = registry
        .search(SearchRequest {
            text: Some("revised sharper".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(
        hits.is_empty(),
        "old goal words must not match after reverting: {hits:?}"
    );
}

async fn an_invalid_file_in_the_batch_writes_nothing(db: TestDb) {
    let registry = db.registry().await;
    let before = registry.store().count_templates().await.expect("count");
    let good = manifest(vec![template(
        "talent.good",
        "Good",
        "A perfectly valid template in the batch.",
    )]);
    let mut bad_t = template(
        "talent.bad",
        "Bad",
        "An invalid template in the same batch.",
    );
    bad_t["sector"] = json!("atlantis");
    let bad = manifest(vec![bad_t]);
    let err = registry
        .import(&[input("good.json", &good), input("bad.json", &bad)])
        .await
        .expect_err("must fail");
    let RegistryError::Invalid(problems) = err else {
        panic!("wrong error")
    };
    assert!(problems
        .iter()
        .all(|p| p.file == "bad.json" && p.template_id.as_deref() == Some("talent.bad")));
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before
    );
    assert!(matches!(
        registry.show("talent.good", None).await,
        Err(RegistryError::NotFound(_))
    ));
}

async fn a_problem_found_after_rows_were_written_rolls_everything_back(db: TestDb) {
    use mission_core::registry::validate::CHUNK_TEMPLATES;
    let registry = db.registry().await;
    let before = registry.store().count_templates().await.expect("count");
    // Two full chunks are valid and reach the database before the last template, a duplicate
    // of the first, is checked; an existing template is changed in the same import.
    let mut templates: Vec<_> = (0..2 * CHUNK_TEMPLATES)
        .map(|i| {
            template(
                &format!("talent.bulk-{i}"),
                &format!("Bulk {i}"),
                &format!("Bulk template number {i} of a large import."),
            )
        })
        .collect();
    let mut changed = registry
        .show("talent.burnout-recruiter", None)
        .await
        .expect("show")
        .content;
    changed["goal"] = json!("A goal that must not survive the failed import.");
    templates.push(changed);
    templates.push(template(
        "talent.bulk-0",
        "Bulk again",
        "Reuses the id of the first template.",
    ));
    let err = registry
        .import(&[input("bulk.json", &manifest(templates))])
        .await
        .expect_err("must fail");
    let RegistryError::Invalid(problems) = err else {
        panic!("wrong error: {err}")
    };
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(
        problems[0].pointer,
        format!("/templates/{}/id", 2 * CHUNK_TEMPLATES + 1)
    );
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before
    );
    let kept = registry
        .show("talent.burnout-recruiter", None)
        .await
        .expect("show");
    assert_eq!(kept.summary.version, 1);
    assert_ne!(
        kept.content["goal"],
        json!("A goal that must not survive the failed import.")
    );
    let hits = registry
        .search(SearchRequest {
            text: Some("bulk".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(
        hits.is_empty(),
        "nothing of the failed import is searchable"
    );
}

async fn preview_reports_without_writing(db: TestDb) {
    let registry = db.registry().await;
    let before = registry.store().count_templates().await.expect("count");
    let existing = registry
        .show("talent.burnout-recruiter", None)
        .await
        .expect("show")
        .content;
    let mut changed = existing.clone();
    changed["goal"] =
        json!("Spot burnout early and line up backfill candidates for fragile teams.");
    let m = manifest(vec![
        template(
            "talent.fresh",
            "Fresh",
            "A template that does not exist yet in the library.",
        ),
        changed,
        registry
            .show("talent.passive-talent-scout", None)
            .await
            .map(|d| d.content)
            .unwrap_or(existing),
    ]);
    let preview = registry
        .preview(&[input("p.json", &m)])
        .await
        .expect("preview");
    assert!(preview.problems.is_empty(), "{:#?}", preview.problems);
    assert!(preview.report.dry_run);
    assert_eq!((preview.report.new, preview.report.updated), (1, 1));
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before
    );
    assert_eq!(
        registry
            .show("talent.burnout-recruiter", None)
            .await
            .expect("show")
            .summary
            .version,
        1
    );
}

async fn burn_finds_burnout_recruiter_first(db: TestDb) {
    let registry = db.registry().await;
    for text in ["burn", "Burnout", "burnout recr", "BURN"] {
        let hits = registry
            .search(SearchRequest {
                text: Some(text.into()),
                ..Default::default()
            })
            .await
            .expect("search");
        assert_eq!(
            hits.first().map(|h| h.heading.name.as_str()),
            Some("Burnout Recruiter"),
            "query {text}"
        );
    }
    let none = registry
        .search(SearchRequest {
            text: Some("zzzqqq".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(none.is_empty());
    // Query syntax characters are plain text, never an error.
    registry
        .search(SearchRequest {
            text: Some("\"burn* OR (NEAR:".into()),
            ..Default::default()
        })
        .await
        .expect("punctuation is harmless");
}

async fn filters_combine_with_the_query(db: TestDb) {
    let registry = db.registry().await;
    let all_talent = registry
        .search(SearchRequest {
            sector: Some("Talent".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(all_talent.len() >= 10 && all_talent.iter().all(|h| h.heading.sector == "talent"));
    let retention = registry
        .search(SearchRequest {
            sector: Some("talent".into()),
            category: Some("retention".into()),
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(!retention.is_empty() && retention.iter().all(|h| h.heading.category == "Retention"));
    assert!(retention.len() < all_talent.len());
    let medium = registry
        .search(SearchRequest {
            text: Some("burn".into()),
            risk: Some(RiskLevel::Medium),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(medium
        .iter()
        .any(|h| h.heading.id == "talent.burnout-recruiter"));
    let high = registry
        .search(SearchRequest {
            text: Some("burnout".into()),
            sector: Some("talent".into()),
            risk: Some(RiskLevel::High),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(high
        .iter()
        .all(|h| h.heading.id != "talent.burnout-recruiter"));
    let wrong_sector = registry
        .search(SearchRequest {
            text: Some("burnout".into()),
            sector: Some("trading".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(wrong_sector.iter().all(|h| h.heading.sector == "trading"));
}

async fn name_matches_outrank_goal_matches(db: TestDb) {
    let registry = db.empty_registry().await;
    let m = manifest(vec![
        template(
            "talent.goal-hit",
            "Quiet Planner",
            "Prepares the zephyr onboarding pack for new hires.",
        ),
        template(
            "talent.name-hit",
            "Zephyr Scout",
            "Finds candidates for hard to fill engineering roles.",
        ),
    ]);
    registry
        .import(&[input("rank.json", &m)])
        .await
        .expect("import");
    let hits = registry
        .search(SearchRequest {
            text: Some("zephyr".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    let ids: Vec<&str> = hits.iter().map(|h| h.heading.id.as_str()).collect();
    assert_eq!(ids, ["talent.name-hit", "talent.goal-hit"]);
    // Paging walks the same order, one row at a time, across name and goal hits.
    let mut paged = Vec::new();
    for offset in 0..3 {
        let page = registry
            .search(SearchRequest {
                text: Some("zeph".into()),
                limit: Some(1),
                offset: Some(offset),
                ..Default::default()
            })
            .await
            .expect("page");
        paged.extend(page.into_iter().map(|h| h.heading.id));
    }
    assert_eq!(paged, ["talent.name-hit", "talent.goal-hit"]);
}

async fn tiers_then_shorter_names_then_import_order(db: TestDb) {
    let registry = db.empty_registry().await;
    let mut in_goal = template(
        "talent.in-goal",
        "Exit Interviews",
        "Feeds exit interview themes back into sourcing.",
    );
    in_goal["category"] = json!("Retention");
    let m = manifest(vec![
        template(
            "talent.long-name",
            "Sourcing Desk Extended",
            "Runs a wider candidate search.",
        ),
        template(
            "talent.short-name",
            "Sourcing Desk",
            "Runs a candidate search.",
        ),
        in_goal,
        template("talent.planner", "Quiet Planner", "Plans hiring waves."),
        template("talent.painter", "Quiet Painter", "Drafts job adverts."),
    ]);
    registry
        .import(&[input("order.json", &m)])
        .await
        .expect("import");
    // Name hits (shorter first), then category hits (same length: import order), then the goal.
    let expected = [
        "talent.short-name",
        "talent.long-name",
        "talent.planner",
        "talent.painter",
        "talent.in-goal",
    ];
    let hits = registry
        .search(SearchRequest {
            text: Some("sourc".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    let ids: Vec<&str> = hits.iter().map(|h| h.heading.id.as_str()).collect();
    assert_eq!(ids, expected);
    // Pages of two walk the same order across the tiers.
    let mut paged = Vec::new();
    for offset in [0, 2, 4, 6] {
        let page = registry
            .search(SearchRequest {
                text: Some("sourcing".into()),
                limit: Some(2),
                offset: Some(offset),
                ..Default::default()
            })
            .await
            .expect("page");
        paged.extend(page.into_iter().map(|h| h.heading.id));
    }
    assert_eq!(paged, expected);
    // A renamed template moves to its new place in the order.
    let renamed = manifest(vec![template(
        "talent.long-name",
        "Sourcing",
        "Runs a wider candidate search.",
    )]);
    registry
        .import(&[input("rename.json", &renamed)])
        .await
        .expect("rename");
    let first = registry
        .search(SearchRequest {
            text: Some("sourcing".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .expect("search");
    assert_eq!(first[0].heading.id, "talent.long-name");
    let old_name = registry
        .search(SearchRequest {
            text: Some("extended".into()),
            ..Default::default()
        })
        .await
        .expect("search");
    assert!(old_name.is_empty(), "the old name left the index");
}

async fn results_say_no_history_yet(db: TestDb) {
    let registry = db.registry().await;
    let hit = registry
        .search(SearchRequest {
            text: Some("burnout".into()),
            ..Default::default()
        })
        .await
        .expect("search")
        .remove(0);
    assert_eq!(hit.est_roi, None);
    assert_eq!(hit.risk_level, None);
    assert_eq!(hit.runs, 0);
    assert_eq!(hit.history_note.as_deref(), Some(NO_HISTORY));
    assert_eq!(hit.baseline_risk, RiskLevel::Medium);
    assert_eq!(hit.version, 1);
    assert!(!hit.top_performance);
    let json = serde_json::to_value(&hit).expect("json");
    assert!(json["est_roi"].is_null() && json["risk_level"].is_null());
}

async fn unknown_filters_are_refused(db: TestDb) {
    let registry = db.registry().await;
    assert!(matches!(
        registry
            .search(SearchRequest {
                sector: Some("Atlantis".into()),
                ..Default::default()
            })
            .await,
        Err(RegistryError::UnknownSector(_))
    ));
    assert!(matches!(
        registry
            .search(SearchRequest {
                sector: Some("talent".into()),
                category: Some("Hedging".into()),
                ..Default::default()
            })
            .await,
        Err(RegistryError::UnknownCategory(_))
    ));
}

async fn concurrent_imports_of_one_template_agree_on_versions(db: TestDb) {
    let registry = db.empty_registry().await;
    let mut handles = Vec::new();
    for i in 0..4 {
        let registry = registry.clone();
        handles.push(tokio::spawn(async move {
            let t = template(
                "talent.race",
                "Race",
                &format!("Contender number {i} racing to import first."),
            );
            registry
                .import(&[input("race.json", &manifest(vec![t]))])
                .await
        }));
    }
    for h in handles {
        h.await.expect("join").expect("every import succeeds");
    }
    let versions = registry
        .store()
        .versions("talent.race")
        .await
        .expect("versions");
    let numbers: Vec<i64> = versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(
        registry
            .show("talent.race", None)
            .await
            .expect("show")
            .summary
            .version,
        4
    );
}
