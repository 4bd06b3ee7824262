//! The squad: each active mission's departments, wired through that mission's own Kafka
//! topics, every event in one envelope that names its mission and job.

mod agent;
mod assembly;
pub mod bus;
pub mod context;
pub mod contract;
pub mod engine;
mod lifecycle;
mod orchestrator;
mod relay;
pub mod run;
pub mod store;
pub mod views;

pub use bus::{
    belongs_to, dept_topic, mission_topic, store_sasl_password, Bus, BusError, CredentialError,
    EmbeddedCluster, Envelope, KafkaMode, KafkaSecurity, MissionStream, Received, BOOTSTRAP_ENV,
    KEYCHAIN_SERVICE,
};
pub use context::{ContextError, Credential, MissionContext};
pub use contract::{kind, Assignment, ORCHESTRATOR_DEPT};
pub use engine::{AgentExit, EngineOptions, SquadEngine, SquadError, SquadNotice};
pub use lifecycle::stop_mission;
pub use relay::RelayPass;
pub use views::{
    find_mission, mission_events, mission_page, mission_view, MissionEvent, MissionPage,
    MissionView,
};
