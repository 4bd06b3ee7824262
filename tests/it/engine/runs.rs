//! Whole missions: three departments run to their run record with mission and job on every
//! event, and two missions at once never see each other's events.

use super::*;

crate::on_both_backends!(
    a_three_department_mission_runs_end_to_end_with_mission_and_job_on_every_event,
    two_concurrent_missions_never_see_each_others_events,
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
