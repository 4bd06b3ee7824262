//! Active missions: caps (policy ∩ template) enforced by the core, pinning, idempotent Save,
//! plus the library's facet counts and staged (previewed, then confirmed) imports.

use mission_core::perimeter::{Missions, PerimeterError, SaveMissionRequest, MINIMUMS};
use mission_core::registry::search::LibraryQuery;
use mission_core::registry::{ApprovalMode, ImportStage, RiskLevel};
use mission_core::RegistryError;
use uuid::Uuid;

use crate::helpers::{manifest, template, TestDb};
use mission_core::units::{Cents, Seconds};

crate::on_both_backends!(
    the_draft_offers_the_tighter_of_policy_and_template_caps,
    a_perimeter_within_the_caps_is_saved_pinned_to_the_template_version,
    values_beyond_a_cap_or_below_the_minimum_are_refused_and_nothing_is_saved,
    threshold_rules_follow_the_approval_mode,
    only_declared_connections_can_be_granted,
    saving_the_same_request_twice_creates_one_mission,
    a_template_updated_after_the_draft_is_refused_and_saved_missions_keep_their_pin,
    facet_counts_match_the_search_and_its_filters,
    a_staged_import_writes_nothing_until_confirmed_and_refuses_bad_files,
);

const BURNOUT: &str = "talent.burnout-recruiter";

fn request(template_version: i64) -> SaveMissionRequest {
    SaveMissionRequest {
        request_id: Uuid::now_v7().to_string(),
        template_id: BURNOUT.into(),
        template_version,
        budget_cents: Cents(10_000),
        ttl_seconds: Seconds(86_400),
        max_steps: 50,
        approval_mode: ApprovalMode::Threshold,
        threshold_cents: Some(Cents(2_500)),
        connections: Vec::new(),
    }
}

async fn missions(db: &TestDb) -> Missions {
    let (registry, repo) = db.open().await;
    Missions::new(registry, repo)
}

async fn the_draft_offers_the_tighter_of_policy_and_template_caps(db: TestDb) {
    let missions = missions(&db).await;
    let draft = missions.draft(BURNOUT).await.expect("draft");
    // Burnout Recruiter caps itself below the global policy on every field.
    assert_eq!(draft.template_caps.budget_cents, Cents(25_000));
    assert_eq!(draft.policy_caps.budget_cents, Cents(5_000_000));
    assert_eq!(draft.hard_caps.budget_cents, Cents(25_000));
    assert_eq!(draft.hard_caps.ttl_seconds, Seconds(1_209_600));
    assert_eq!(draft.hard_caps.max_steps, 120);
    assert_eq!(draft.minimums, MINIMUMS);
    assert!(draft.defaults.budget_cents <= draft.hard_caps.budget_cents);
    assert_eq!(draft.defaults.approval_mode, ApprovalMode::Threshold);
    assert_eq!(draft.connections.len(), 1);
    assert_eq!(draft.connections[0].sector, "intelligence");
    assert_eq!(
        draft.connections[0].tools,
        ["intelligence.sentiment_analyze"]
    );
    let modes: Vec<ApprovalMode> = draft.approval_modes.iter().map(|m| m.mode).collect();
    assert_eq!(
        modes,
        [
            ApprovalMode::Strict,
            ApprovalMode::Threshold,
            ApprovalMode::Auto
        ]
    );
    // Strict names the side-effecting tools of this template.
    assert!(
        draft.approval_modes[0].waits.contains("Candidate outreach"),
        "{}",
        draft.approval_modes[0].waits
    );
    assert!(matches!(
        missions.draft("talent.nope").await,
        Err(PerimeterError::TemplateNotFound(_))
    ));
}

async fn a_perimeter_within_the_caps_is_saved_pinned_to_the_template_version(db: TestDb) {
    let missions = missions(&db).await;
    let draft = missions.draft(BURNOUT).await.expect("draft");
    let mut req = request(draft.template.version);
    req.budget_cents = draft.hard_caps.budget_cents;
    req.connections = vec!["intelligence".into()];
    let saved = missions.save(&req, "operator").await.expect("save");
    assert!(saved.created);
    let m = &saved.mission;
    assert_eq!(Uuid::parse_str(&m.id).expect("uuid").get_version_num(), 7);
    assert_eq!(m.template_version, draft.template.version);
    assert_eq!(m.logic_hash, draft.template.logic_hash);
    assert_eq!(m.perimeter.budget_cents, Cents(25_000));
    assert_eq!(m.perimeter.threshold_cents, Some(Cents(2_500)));
    assert_eq!(m.connections, ["intelligence"]);
    assert_eq!(
        missions.list(None, 10).await.expect("list").items,
        std::slice::from_ref(m)
    );
}

async fn values_beyond_a_cap_or_below_the_minimum_are_refused_and_nothing_is_saved(db: TestDb) {
    let missions = missions(&db).await;
    let draft = missions.draft(BURNOUT).await.expect("draft");
    let caps = draft.hard_caps;
    type Change = Box<dyn Fn(&mut SaveMissionRequest)>;
    let cases: Vec<(&str, Change, i64)> = vec![
        (
            "budget_cents",
            Box::new(move |r| r.budget_cents = caps.budget_cents + Cents(1)),
            caps.budget_cents.get(),
        ),
        (
            "ttl_seconds",
            Box::new(move |r| r.ttl_seconds = caps.ttl_seconds + Seconds(1)),
            caps.ttl_seconds.get(),
        ),
        (
            "max_steps",
            Box::new(move |r| r.max_steps = caps.max_steps + 1),
            caps.max_steps,
        ),
        (
            "budget_cents",
            Box::new(|r| r.budget_cents = Cents(99)),
            caps.budget_cents.get(),
        ),
        ("max_steps", Box::new(|r| r.max_steps = 0), caps.max_steps),
        (
            "ttl_seconds",
            Box::new(|r| r.ttl_seconds = Seconds(-5)),
            caps.ttl_seconds.get(),
        ),
    ];
    for (field, change, max) in cases {
        let mut req = request(draft.template.version);
        change(&mut req);
        match missions.save(&req, "operator").await {
            Err(e @ PerimeterError::OutOfRange { .. }) => {
                assert_eq!(e.code().as_str(), "perimeter_out_of_range");
                let PerimeterError::OutOfRange {
                    field: f, max: m, ..
                } = e
                else {
                    unreachable!("matched above")
                };
                assert_eq!(f.as_str(), field);
                assert_eq!(m, max);
            }
            other => panic!("{field}: expected out of range, got {other:?}"),
        }
    }
    assert!(missions
        .list(None, 10)
        .await
        .expect("list")
        .items
        .is_empty());
}

async fn threshold_rules_follow_the_approval_mode(db: TestDb) {
    let missions = missions(&db).await;
    let version = missions
        .draft(BURNOUT)
        .await
        .expect("draft")
        .template
        .version;
    let mut over = request(version);
    over.threshold_cents = Some(over.budget_cents + Cents(1));
    assert!(matches!(
        missions.save(&over, "operator").await,
        Err(PerimeterError::OutOfRange { .. })
    ));
    let mut missing = request(version);
    missing.threshold_cents = None;
    assert!(matches!(
        missions.save(&missing, "operator").await,
        Err(PerimeterError::InvalidRequest(_))
    ));
    let mut stray = request(version);
    stray.approval_mode = ApprovalMode::Auto;
    assert!(matches!(
        missions.save(&stray, "operator").await,
        Err(PerimeterError::InvalidRequest(_))
    ));
    let mut strict = request(version);
    strict.approval_mode = ApprovalMode::Strict;
    strict.threshold_cents = None;
    let saved = missions.save(&strict, "operator").await.expect("strict");
    assert_eq!(saved.mission.perimeter.threshold_cents, None);
    assert_eq!(missions.list(None, 10).await.expect("list").items.len(), 1);
}

async fn only_declared_connections_can_be_granted(db: TestDb) {
    let missions = missions(&db).await;
    let version = missions
        .draft(BURNOUT)
        .await
        .expect("draft")
        .template
        .version;
    let mut undeclared = request(version);
    undeclared.connections = vec!["trading".into()];
    assert!(matches!(
        missions.save(&undeclared, "operator").await,
        Err(PerimeterError::UnknownConnection(s)) if s == "trading"
    ));
    let mut twice = request(version);
    twice.connections = vec!["intelligence".into(), "intelligence".into()];
    assert!(matches!(
        missions.save(&twice, "operator").await,
        Err(PerimeterError::InvalidRequest(_))
    ));
    // Nothing ticked: nothing granted.
    let saved = missions
        .save(&request(version), "operator")
        .await
        .expect("save");
    assert!(saved.mission.connections.is_empty());
}

async fn saving_the_same_request_twice_creates_one_mission(db: TestDb) {
    let missions = missions(&db).await;
    let version = missions
        .draft(BURNOUT)
        .await
        .expect("draft")
        .template
        .version;
    let req = request(version);
    let first = missions.save(&req, "operator").await.expect("first save");
    let again = missions.save(&req, "operator").await.expect("second save");
    assert!(first.created);
    assert!(!again.created);
    assert_eq!(first.mission, again.mission);
    assert_eq!(missions.list(None, 10).await.expect("list").items.len(), 1);

    let mut reused = req.clone();
    reused.max_steps += 1;
    assert!(matches!(
        missions.save(&reused, "operator").await,
        Err(PerimeterError::InvalidRequest(_))
    ));
    let mut bad_id = request(version);
    bad_id.request_id = "not-a-uuid".into();
    assert!(matches!(
        missions.save(&bad_id, "operator").await,
        Err(PerimeterError::InvalidRequest(_))
    ));

    // Asked twice (two openings of the configurator): two missions.
    let other = missions
        .save(&request(version), "operator")
        .await
        .expect("other");
    assert!(other.created);
    assert_ne!(other.mission.id, first.mission.id);
    assert_eq!(missions.list(None, 10).await.expect("list").items.len(), 2);
}

async fn a_template_updated_after_the_draft_is_refused_and_saved_missions_keep_their_pin(
    db: TestDb,
) {
    let (registry, repo) = db.open().await;
    let missions = Missions::new(registry.clone(), repo);
    let t = template(
        "talent.pinned",
        "Pinned Scout",
        "Scout pinned candidates for one team.",
    );
    registry
        .import(&[crate::helpers::input("v1.json", &manifest(vec![t.clone()]))])
        .await
        .expect("import v1");
    let v1 = missions.draft("talent.pinned").await.expect("draft");
    let mut req = request(v1.template.version);
    req.template_id = "talent.pinned".into();
    req.budget_cents = Cents(5_000);
    req.max_steps = 40;
    req.threshold_cents = Some(Cents(1_000));
    let saved = missions.save(&req, "operator").await.expect("save v1");

    let mut changed = t.clone();
    changed["goal"] = "Scout pinned candidates for two teams.".into();
    registry
        .import(&[crate::helpers::input("v2.json", &manifest(vec![changed]))])
        .await
        .expect("import v2");
    let mut stale = request(v1.template.version);
    stale.template_id = "talent.pinned".into();
    stale.budget_cents = Cents(5_000);
    stale.max_steps = 40;
    stale.threshold_cents = Some(Cents(1_000));
    assert!(matches!(
        missions.save(&stale, "operator").await,
        Err(PerimeterError::TemplateChanged {
            requested: 1,
            current: 2,
            ..
        })
    ));
    let listed = missions.list(None, 10).await.expect("list").items;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].template_version, 1);
    assert_eq!(listed[0].logic_hash, saved.mission.logic_hash);
}

async fn facet_counts_match_the_search_and_its_filters(db: TestDb) {
    let registry = db.registry().await;
    let all = registry.facets(None, None).await.expect("facets");
    assert_eq!(
        all.total,
        registry.store().count_templates().await.expect("count")
    );
    let talent = all
        .sectors
        .iter()
        .find(|s| s.id == "talent")
        .expect("talent");
    assert!(talent.count >= 10);
    assert_eq!(
        talent.count,
        talent.categories.iter().map(|c| c.count).sum::<i64>()
    );

    let burn = registry
        .facets(Some("burn".into()), None)
        .await
        .expect("facets burn");
    assert!(burn.total >= 1);
    let page = registry
        .library_page(
            LibraryQuery {
                text: Some("burn".into()),
                ..LibraryQuery::default()
            },
            0,
            500,
        )
        .await
        .expect("page");
    assert_eq!(page.total, burn.total);
    assert_eq!(page.templates.len() as i64, page.total);
    assert_eq!(page.templates[0].heading.id, BURNOUT);

    let high = registry
        .facets(None, Some(RiskLevel::High))
        .await
        .expect("high");
    let filtered = registry
        .library_page(
            LibraryQuery {
                sector: Some("Talent".into()),
                category: Some("Retention".into()),
                risk: Some(RiskLevel::High),
                ..LibraryQuery::default()
            },
            0,
            500,
        )
        .await
        .expect("filtered");
    let expected = high
        .sectors
        .iter()
        .find(|s| s.id == "talent")
        .and_then(|s| s.categories.iter().find(|c| c.name == "Retention"))
        .map_or(0, |c| c.count);
    assert_eq!(filtered.total, expected);
    assert_eq!(filtered.templates.len() as i64, expected);
    assert!(filtered
        .templates
        .iter()
        .all(|t| t.heading.sector == "talent" && t.heading.category == "Retention"));
}

async fn a_staged_import_writes_nothing_until_confirmed_and_refuses_bad_files(db: TestDb) {
    let registry = db.registry().await;
    let stage = ImportStage::new(registry.clone());
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.json");
    let bad = dir.path().join("bad.json");
    let t = template(
        "talent.staged",
        "Staged Scout",
        "Scout candidates through a staged import.",
    );
    std::fs::write(&good, serde_json::to_vec(&manifest(vec![t])).expect("json")).expect("write");
    std::fs::write(&bad, b"{\"manifest_version\": 1, \"templates\": [").expect("write");
    let before = registry.store().count_templates().await.expect("count");

    let mixed = stage
        .stage(vec![good.clone(), bad.clone()], None)
        .await
        .expect("stage");
    assert!(mixed.items.is_empty());
    assert!(mixed.problems.iter().any(|p| p.file.ends_with("bad.json")));
    assert!(matches!(
        stage.confirm(&mixed.import_id, None).await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(stage.cancel(&mixed.import_id));

    let clean = stage.stage(vec![good], None).await.expect("stage good");
    assert_eq!(clean.new, 1);
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before
    );
    let report = stage
        .confirm(&clean.import_id, None)
        .await
        .expect("confirm");
    assert_eq!(report.new, 1);
    assert_eq!(
        registry.store().count_templates().await.expect("count"),
        before + 1
    );
    assert_eq!(stage.pending(), 0);
    assert!(matches!(
        stage.confirm(&clean.import_id, None).await,
        Err(RegistryError::ImportNotFound(_))
    ));
}
