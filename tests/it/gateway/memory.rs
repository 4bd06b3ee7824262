//! Nothing grows without bound: a mission that ended leaves nothing in the gateway's memory,
//! whether this process stopped it or learns it from a call.

use super::*;

crate::on_both_backends!(a_mission_that_ends_leaves_nothing_in_the_gateways_memory);

async fn a_mission_that_ends_leaves_nothing_in_the_gateways_memory(db: TestDb) {
    let rig = rig(&db).await;
    let mut missions = Vec::new();
    for _ in 0..3 {
        let (mission, token) = running(&rig, Spec::auto("finance")).await;
        executed(
            rig.gateway
                .invoke(call(&token, "finance.ledger_query", json!({})))
                .await,
        );
        missions.push((mission, token));
    }
    assert_eq!(rig.gateway.cached_missions(), (3, 3));

    // Stopped through this process: forgotten at once.
    for (mission, _) in &missions[..2] {
        rig.core
            .stop_mission(&operator("alice"), mission)
            .await
            .expect("stop");
    }
    assert_eq!(rig.gateway.cached_missions(), (1, 1));

    // Stopped by another process: forgotten at the next call, which is refused.
    let (mission, token) = &missions[2];
    mission_core::squad::stop_mission(
        rig.core.repository().as_ref(),
        rig.clock.as_ref(),
        mission,
        "another process",
    )
    .await
    .expect("stop elsewhere");
    rig.gateway.forget_tokens();
    let (code, _, _) = refusal(
        rig.gateway
            .invoke(call(token, "finance.ledger_query", json!({})))
            .await,
    );
    assert_eq!(code, RefusalCode::MissionNotActive);
    assert_eq!(rig.gateway.cached_missions(), (0, 0));
}
