//! The squad's wiring: each active mission's departments talk over that mission's own Kafka
//! topic, every event in one envelope that names its mission and job.

pub mod bus;

pub use bus::{
    mission_topic, Bus, BusError, EmbeddedCluster, Envelope, KafkaMode, MissionStream, Received,
    BOOTSTRAP_ENV,
};
