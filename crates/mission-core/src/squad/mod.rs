//! The squad: each active mission's departments, wired through that mission's own Kafka
//! topics, every event in one envelope that names its mission and job.

pub mod bus;
pub mod context;
pub mod engine;
pub mod run;
pub mod store;
pub mod views;

pub use bus::{
    belongs_to, dept_topic, mission_topic, store_sasl_password, Bus, BusError, CredentialError,
    EmbeddedCluster, Envelope, KafkaMode, KafkaSecurity, MissionStream, Received, BOOTSTRAP_ENV,
    KEYCHAIN_SERVICE,
};
pub use context::{ContextError, MissionContext};
pub use engine::{
    kind, stop_mission, AgentExit, Assignment, EngineOptions, SquadEngine, SquadError, SquadNotice,
    ORCHESTRATOR_DEPT,
};
pub use views::{
    find_mission, mission_events, mission_view, mission_views, MissionEvent, MissionView,
};
