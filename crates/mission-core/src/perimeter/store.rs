//! The storage active missions need: saving a checked perimeter once per request, and reading
//! missions back. `db` implements it for SQLite and Postgres.

use async_trait::async_trait;

use super::{ActiveMission, NewMission};
use crate::store::{After, DbError};

/// The missions' storage.
#[async_trait]
pub trait MissionStore: Send + Sync + std::fmt::Debug {
    /// Stores a new active mission unless its request id was stored before. Returns the stored
    /// mission, the hash of the request that created it, and whether this call created it.
    async fn insert_mission(
        &self,
        new: &NewMission,
    ) -> Result<(ActiveMission, String, bool), DbError>;

    /// Saved missions, newest first.
    async fn missions(
        &self,
        after: Option<&After>,
        limit: u32,
    ) -> Result<Vec<ActiveMission>, DbError>;

    /// One saved mission.
    async fn mission(&self, id: &str) -> Result<Option<ActiveMission>, DbError>;
}
