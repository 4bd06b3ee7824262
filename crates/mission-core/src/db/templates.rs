//! The registry's storage: the SQL both backends share (template reads, settings, the import's
//! writes). Each backend keeps only what really differs: search, facets, how an import locks
//! and how it keeps its search index.

/// Expands to `templates_sql::{write_batches, insert_new, update_changed, insert_versions}` for
/// one backend
/// (see `db::backend!`; the backend also declares `JSON_CAST`, how a text parameter becomes its
/// JSON column type).
macro_rules! templates_sql {
    () => {
        mod templates_sql {
            use super::*;
            use crate::db::{classify, items, next_rows, DbError, ImportBatches, ImportRow, CHUNK};
            use crate::registry::import::{ImportItem, ImportStatus};

            /// Classifies and writes every batch of an import inside the caller's transaction
            /// (the backend's `current_in` reads the stored versions, its `write_rows` writes).
            pub(super) async fn write_batches(
                conn: &mut Conn,
                mut batches: ImportBatches,
                now: &Stamp,
            ) -> Result<Vec<ImportItem>, DbError> {
                let mut all_items = Vec::new();
                while let Some(rows) = next_rows(&mut batches).await? {
                    let ids: Vec<String> = rows.iter().map(|r| r.heading.id.clone()).collect();
                    let current = current_in(&mut *conn, &ids).await?;
                    let outcomes = classify(&rows, &current);
                    write_rows(&mut *conn, &rows, &outcomes, now).await?;
                    all_items.extend(items(&rows, &outcomes));
                }
                Ok(all_items)
            }

            /// Inserts the batch's new templates at version 1.
            pub(super) async fn insert_new(
                conn: &mut Conn,
                new: &[&ImportRow],
                now: &Stamp,
            ) -> Result<(), DbError> {
                for chunk in new.chunks(CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO templates (id, name, sector, sector_name, category, goal, \
                         baseline_risk, current_version, logic_hash, content_hash, created_at, \
                         updated_at) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(&r.heading.id)
                            .push_bind(&r.heading.name)
                            .push_bind(&r.heading.sector)
                            .push_bind(&r.heading.sector_name)
                            .push_bind(&r.heading.category)
                            .push_bind(&r.heading.goal)
                            .push_bind(r.baseline_risk.as_str())
                            .push_bind(1_i64)
                            .push_bind(&r.logic_hash)
                            .push_bind(&r.content_hash)
                            .push_bind(now)
                            .push_bind(now);
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Moves each updated template to its new version.
            pub(super) async fn update_changed(
                conn: &mut Conn,
                rows: &[ImportRow],
                outcomes: &[(ImportStatus, i64)],
                now: &Stamp,
            ) -> Result<(), DbError> {
                for (r, (status, version)) in rows.iter().zip(outcomes) {
                    if *status != ImportStatus::Updated {
                        continue;
                    }
                    sqlx::query(
                        "UPDATE templates SET name = $1, sector = $2, sector_name = $3, \
                         category = $4, goal = $5, baseline_risk = $6, current_version = $7, \
                         logic_hash = $8, content_hash = $9, updated_at = $10 WHERE id = $11",
                    )
                    .bind(&r.heading.name)
                    .bind(&r.heading.sector)
                    .bind(&r.heading.sector_name)
                    .bind(&r.heading.category)
                    .bind(&r.heading.goal)
                    .bind(r.baseline_risk.as_str())
                    .bind(version)
                    .bind(&r.logic_hash)
                    .bind(&r.content_hash)
                    .bind(now)
                    .bind(&r.heading.id)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }

            /// Stores the content of every new and updated template's version.
            pub(super) async fn insert_versions(
                conn: &mut Conn,
                written: &[(&ImportRow, i64)],
                now: &Stamp,
            ) -> Result<(), DbError> {
                for chunk in written.chunks(CHUNK) {
                    let mut qb = sqlx::QueryBuilder::<Db>::new(
                        "INSERT INTO template_versions (template_id, version, content, \
                         logic_hash, content_hash, source, imported_at) ",
                    );
                    qb.push_values(chunk, |mut b, (r, v)| {
                        b.push_bind(&r.heading.id)
                            .push_bind(*v)
                            .push_bind(&r.content)
                            .push_unseparated(JSON_CAST)
                            .push_bind(&r.logic_hash)
                            .push_bind(&r.content_hash)
                            .push_bind(&r.source)
                            .push_bind(now);
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }
        }
    };
}
pub(crate) use templates_sql;

/// Expands to the [`crate::registry::store::RegistryStore`] implementation for one backend.
/// The backend brings its own `current_in` (the stored versions of a batch's ids) and the
/// inherent methods `import_all`, `search_rows` and `facet_query`; `JSON_TEXT` turns a stored
/// JSON column into text.
macro_rules! registry_store {
    ($repo:ty) => {
        mod registry_sql {
            use std::collections::HashMap;

            use async_trait::async_trait;
            use sqlx::Row as _;

            use super::*;
            use crate::db::{DbError, ImportBatches, SummaryRow, SUMMARY_COLUMNS};
            use crate::registry::import::ImportItem;
            use crate::registry::search::{FacetRow, SearchQuery, TemplateSummary, VersionInfo};
            use crate::registry::store::RegistryStore;

            #[async_trait]
            impl RegistryStore for $repo {
                async fn current_versions(
                    &self,
                    ids: &[String],
                ) -> Result<HashMap<String, (i64, String)>, DbError> {
                    let mut conn = self.pool.acquire().await?;
                    current_in(&mut conn, ids).await
                }

                async fn import(&self, batches: ImportBatches) -> Result<Vec<ImportItem>, DbError> {
                    self.import_all(batches).await
                }

                async fn search(
                    &self,
                    query: &SearchQuery,
                ) -> Result<Vec<TemplateSummary>, DbError> {
                    self.search_rows(query).await
                }

                async fn facets(&self, query: &SearchQuery) -> Result<Vec<FacetRow>, DbError> {
                    let mut qb = <$repo>::facet_query(query);
                    qb.push(" GROUP BY t.sector, t.category");
                    Ok(qb
                        .build_query_as::<FacetRow>()
                        .fetch_all(&self.pool)
                        .await?)
                }

                async fn summary(&self, id: &str) -> Result<Option<TemplateSummary>, DbError> {
                    let sql = format!(
                        "SELECT {SUMMARY_COLUMNS} FROM templates t \
                         LEFT JOIN template_stats s ON s.template_id = t.id WHERE t.id = $1"
                    );
                    sqlx::query_as::<_, SummaryRow>(&sql)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?
                        .map(SummaryRow::into_summary)
                        .transpose()
                }

                async fn version_content(
                    &self,
                    id: &str,
                    version: i64,
                ) -> Result<Option<serde_json::Value>, DbError> {
                    let content: Option<String> = sqlx::query_scalar(&format!(
                        "SELECT content{JSON_TEXT} FROM template_versions \
                         WHERE template_id = $1 AND version = $2"
                    ))
                    .bind(id)
                    .bind(version)
                    .fetch_optional(&self.pool)
                    .await?;
                    content
                        .map(|c| {
                            serde_json::from_str(&c).map_err(|e| DbError::Corrupt(e.to_string()))
                        })
                        .transpose()
                }

                async fn versions(&self, id: &str) -> Result<Vec<VersionInfo>, DbError> {
                    let rows = sqlx::query(
                        "SELECT version, logic_hash, source, imported_at FROM template_versions \
                         WHERE template_id = $1 ORDER BY version",
                    )
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(VersionInfo {
                                version: r.try_get("version")?,
                                logic_hash: r.try_get("logic_hash")?,
                                source: r.try_get("source")?,
                                imported_at: stamp_text(r, "imported_at")?,
                            })
                        })
                        .collect()
                }

                async fn count_templates(&self) -> Result<i64, DbError> {
                    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM templates")
                        .fetch_one(&self.pool)
                        .await?)
                }

                async fn meta(&self, key: &str) -> Result<Option<String>, DbError> {
                    Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await?)
                }

                async fn set_meta(&self, key: &str, value: &str) -> Result<(), DbError> {
                    sqlx::query(
                        "INSERT INTO meta (key, value) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }
            }
        }
    };
}
pub(crate) use registry_store;
