//! Whole missions: three departments run to their run record with mission and job on every
//! event, and two missions at once never see each other's events.

use super::*;

crate::on_both_backends!(
    a_three_department_mission_runs_end_to_end_with_mission_and_job_on_every_event,
    two_concurrent_missions_never_see_each_others_events,
    the_missions_list_pages_every_mission_once_with_its_progress_in_one_query,
);

async fn a_three_department_mission_runs_end_to_end_with_mission_and_job_on_every_event(
    db: TestDb,
) {
    let rig = rig(&db).await;
    let mission = rig.deploy(ApprovalMode::Auto).await;
    let copies = check_mission(&rig, &mission, &HashSet::new()).await;

    // Each department's first message was its context, and it verifies.
    for dept in [1, 3, 4] {
        let first = &copies[&dept_topic(&mission, dept)][0].envelope;
        assert_eq!(first.kind, kind::CONTEXT);
        let context: MissionContext =
            serde_json::from_value(first.payload.clone()).expect("context");
        context.verify(&mission, dept).expect("verifies");
        assert_eq!(context.allowed_tools.len(), 3);
        // Built-in agents got their tokens in process: the context says so and holds none.
        assert_eq!(context.credential, Credential::InProcess);
    }
    // No bearer token travelled through Kafka: nothing on any of the mission's topics looks
    // like one, and the department topics carry no exchange code either.
    let on_kafka = kafka_bytes(&copies);
    assert!(!on_kafka.contains("mct_"), "a token is on Kafka");
    assert!(!on_kafka.contains("mcx_"), "an exchange code is on Kafka");
    tokens_revoked(&rig, &db, &mission).await;
    let events = rig.events(&mission).await;
    let contexts = events
        .iter()
        .filter(|e| e.envelope.kind == kind::CONTEXT)
        .count();
    assert_eq!(contexts, 3);
}

async fn two_concurrent_missions_never_see_each_others_events(db: TestDb) {
    let rig = rig(&db).await;
    let (a, b) = tokio::join!(
        rig.deploy(ApprovalMode::Auto),
        rig.deploy(ApprovalMode::Auto)
    );
    let copies_a = check_mission(&rig, &a, &HashSet::new()).await;
    let copies_b = check_mission(&rig, &b, &HashSet::new()).await;
    let ids = |copies: &HashMap<String, Vec<Received>>| -> HashSet<String> {
        copies
            .values()
            .flatten()
            .flat_map(|r| [r.envelope.event_id.clone(), r.envelope.job_id.clone()])
            .collect()
    };
    assert!(ids(&copies_a).is_disjoint(&ids(&copies_b)));
    assert!(copies_a.keys().all(|t| t.contains(&a) && !t.contains(&b)));
    assert!(copies_b.keys().all(|t| t.contains(&b) && !t.contains(&a)));
}

/// The Active Missions list in pages: every mission once, newest first, each as the single
/// mission view shows it (usage, plan progress, run record); one SQL statement a page however
/// many missions it holds (counted where the backend runs statements on the caller's task);
/// a cursor the app did not give out is refused.
async fn the_missions_list_pages_every_mission_once_with_its_progress_in_one_query(db: TestDb) {
    let rig = rig(&db).await;
    let done = rig.deploy(ApprovalMode::Auto).await;
    rig.run_record(&done).await;
    let mut saved = vec![done.clone()];
    for _ in 0..4 {
        let waiting = rig.deploy(ApprovalMode::Strict).await;
        // Held at the posting step: a mission part-way through its plan, standing still.
        rig.pending_approval(&waiting).await;
        saved.push(waiting);
    }
    let core = &rig.app.core;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, statements) = statements_run(core.mission_views(after.as_deref(), 2)).await;
        let page = page.expect("page");
        assert!(page.items.len() <= 2);
        if matches!(db.kind, crate::helpers::Kind::Postgres) {
            assert_eq!(
                statements,
                1,
                "one statement for a page of {}",
                page.items.len()
            );
        }
        for view in &page.items {
            let alone = core.mission_view(&view.mission.id).await.expect("view");
            assert_eq!(*view, alone);
        }
        seen.extend(page.items.into_iter().map(|v| v.mission.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    saved.reverse();
    assert_eq!(seen, saved, "every mission once, newest first");
    let first = core.mission_views(None, 200).await.expect("one page");
    assert!(first.next.is_none());
    let finished = first
        .items
        .iter()
        .find(|v| v.mission.id == done)
        .expect("finished");
    assert_eq!(finished.steps_done, finished.plan_steps);
    assert_eq!(finished.plan_steps, 5);
    assert_eq!(
        finished.run.as_ref().map(|r| r.status),
        Some(MissionStatus::Completed)
    );

    let refused = core
        .mission_views(Some("2026-12-03T10:00:00Z|not-a-mission"), 2)
        .await
        .expect_err("a cursor the app never gave out");
    assert_eq!(refused.code, mission_core::ErrorCode::InvalidRequest);
}

/// Runs `work` and counts the SQL statements sqlx logs on its task while it runs.
async fn statements_run<T>(work: impl std::future::Future<Output = T>) -> (T, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tracing::instrument::WithSubscriber as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    struct Count(Arc<AtomicUsize>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if event.metadata().target() == "sqlx::query" {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let count = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(Count(Arc::clone(&count)));
    let out = work.with_subscriber(subscriber).await;
    (out, count.load(Ordering::SeqCst))
}
