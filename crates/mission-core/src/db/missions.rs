//! Active missions' SQL, the same on both backends: saved once per configurator request, with
//! the grants of their sector connections.

/// Expands to the [`crate::perimeter::store::MissionStore`] implementation for one backend (see
/// `db::backend!` for the items it builds on).
macro_rules! missions_store {
    ($repo:ty) => {
        mod missions_sql {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use super::*;
            use crate::db::{approval_mode, DbError};
            use crate::perimeter::store::MissionStore;
            use crate::perimeter::{ActiveMission, MissionStatus, NewMission};
            use crate::registry::Perimeter;
            use crate::store::After;

            /// Missions (aliased `m`) older than the keyset in `$1` (time) and `$2` (id), or all
            /// of them when both are NULL.
            pub(super) const MISSIONS_AFTER: &str = "($1 IS NULL OR m.created_at < $1 \
                 OR (m.created_at = $1 AND m.id < $2))";

            /// The keyset's binds: the stored time and id, or NULLs for the first page. A
            /// cursor this backend cannot read is an error, not the first page.
            pub(super) fn keyset(
                after: Option<&After>,
            ) -> Result<(Option<Stamp>, Option<StoredId>), DbError> {
                let Some(after) = after else {
                    return Ok((None, None));
                };
                Ok((Some(stamp(&after.at)?), Some(id(&after.id)?)))
            }

            pub(super) fn mission(row: &DbRow) -> Result<ActiveMission, DbError> {
                let connections: sqlx::types::Json<Vec<String>> = row.try_get("connections")?;
                Ok(ActiveMission {
                    id: get_id(row, "id")?,
                    template_id: row.try_get("template_id")?,
                    template_name: row.try_get("template_name")?,
                    template_version: row.try_get("template_version")?,
                    logic_hash: row.try_get("logic_hash")?,
                    sector: row.try_get("sector")?,
                    perimeter: Perimeter {
                        budget_cents: row.try_get("budget_cents")?,
                        ttl_seconds: row.try_get("ttl_seconds")?,
                        max_steps: row.try_get("max_steps")?,
                        approval_mode: approval_mode(row.try_get("approval_mode")?)?,
                        threshold_cents: row.try_get("threshold_cents")?,
                    },
                    connections: connections.0,
                    status: MissionStatus::parse(row.try_get("status")?)?,
                    created_at: stamp_text(row, "created_at")?,
                })
            }

            #[async_trait]
            impl MissionStore for $repo {
                async fn insert_mission(
                    &self,
                    new: &NewMission,
                ) -> Result<(ActiveMission, String, bool), DbError> {
                    let m = &new.mission;
                    let key = id(&m.id)?;
                    let request = id(&new.request_id.to_string())?;
                    // The mission and the grants of its connections are one write.
                    let mut tx = self.pool.begin().await?;
                    let inserted = sqlx::query(
                        "INSERT INTO active_missions (id, request_id, request_hash, template_id, \
                         template_name, template_version, logic_hash, sector, budget_cents, \
                         ttl_seconds, max_steps, approval_mode, threshold_cents, connections, \
                         status, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $15, $16) ON CONFLICT (request_id) DO NOTHING",
                    )
                    .bind(&key)
                    .bind(&request)
                    .bind(&new.request_hash)
                    .bind(&m.template_id)
                    .bind(&m.template_name)
                    .bind(m.template_version)
                    .bind(&m.logic_hash)
                    .bind(&m.sector)
                    .bind(m.perimeter.budget_cents)
                    .bind(m.perimeter.ttl_seconds)
                    .bind(m.perimeter.max_steps)
                    .bind(m.perimeter.approval_mode.as_str())
                    .bind(m.perimeter.threshold_cents)
                    .bind(sqlx::types::Json(&m.connections))
                    .bind(m.status.as_str())
                    .bind(stamp(&m.created_at)?)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        == 1;
                    if inserted {
                        for sector in &m.connections {
                            sqlx::query(
                                "INSERT INTO mission_connections \
                                 (mission_id, sector, granted_by, granted_at) \
                                 VALUES ($1, $2, $3, $4)",
                            )
                            .bind(&key)
                            .bind(sector)
                            .bind(&new.granted_by)
                            .bind(&m.created_at)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                    tx.commit().await?;
                    let row = sqlx::query("SELECT * FROM active_missions WHERE request_id = $1")
                        .bind(&request)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok((mission(&row)?, row.try_get("request_hash")?, inserted))
                }

                async fn missions(
                    &self,
                    after: Option<&After>,
                    limit: u32,
                ) -> Result<Vec<ActiveMission>, DbError> {
                    let sql = format!(
                        "SELECT * FROM active_missions m WHERE {} \
                         ORDER BY m.created_at DESC, m.id DESC LIMIT $3",
                        MISSIONS_AFTER
                    );
                    let (at, key) = keyset(after)?;
                    sqlx::query(&sql)
                        .bind(at)
                        .bind(key)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(mission)
                        .collect()
                }

                async fn mission(&self, mission_id: &str) -> Result<Option<ActiveMission>, DbError> {
                    // An id the backend cannot store (not a UUID in Postgres) names no mission.
                    let Ok(key) = id(mission_id) else {
                        return Ok(None);
                    };
                    sqlx::query("SELECT * FROM active_missions WHERE id = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?
                        .as_ref()
                        .map(mission)
                        .transpose()
                }
            }
        }
    };
}
pub(crate) use missions_store;
