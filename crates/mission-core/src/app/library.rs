//! The template library: search, facets, one template, and imports (staged for a person to
//! confirm, or written at once from the command line).

use std::path::PathBuf;

use super::Core;
use crate::audit::Operation;
use crate::error::CoreError;
use crate::gateway::{Actor, Done, Request};
use crate::registry::import::{ImportReport, ProgressFn};
use crate::registry::search::TemplateSummary;
use crate::registry::search::{LibraryPage, LibraryQuery, SectorTree, TemplateDetail};
use crate::registry::staging::ImportPreview;
use crate::registry::{RegistryError, RiskLevel, SearchRequest};

/// Largest page the library view asks for at once.
const MAX_PAGE: u32 = 500;

impl Core {
    /// Templates matching a search, best match first.
    pub async fn search_templates(
        &self,
        request: SearchRequest,
    ) -> Result<Vec<TemplateSummary>, CoreError> {
        Ok(self.inner.registry.search(request).await?)
    }

    /// One page of the library view and how many match in all.
    pub async fn library_page(
        &self,
        query: LibraryQuery,
        offset: u32,
        limit: u32,
    ) -> Result<LibraryPage, CoreError> {
        Ok(self
            .inner
            .registry
            .library_page(query, offset, limit.clamp(1, MAX_PAGE))
            .await?)
    }

    /// The sector → category tree with match counts for free text and a risk level.
    pub async fn library_facets(
        &self,
        text: Option<String>,
        risk: Option<RiskLevel>,
    ) -> Result<SectorTree, CoreError> {
        Ok(self.inner.registry.facets(text, risk).await?)
    }

    /// One template in full, at its current version or an older one.
    pub async fn template(
        &self,
        id: &str,
        version: Option<i64>,
    ) -> Result<TemplateDetail, CoreError> {
        Ok(self.inner.registry.show(id, version).await?)
    }

    /// Reads and previews manifest files; writes nothing. The preview waits under its id for
    /// [`Core::confirm_import`] or [`Core::cancel_import`].
    pub async fn stage_import(
        &self,
        paths: Vec<PathBuf>,
        progress: Option<ProgressFn>,
    ) -> Result<ImportPreview, CoreError> {
        Ok(self.inner.imports.stage(paths, progress).await?)
    }

    /// Imports exactly what a preview showed, in one transaction. Audited.
    pub async fn confirm_import(
        &self,
        actor: &Actor,
        import_id: &str,
        progress: Option<ProgressFn>,
    ) -> Result<ImportReport, CoreError> {
        let gateway = self.gateway().await?;
        let request = Request::new(actor, Operation::ImportConfirm);
        let confirm =
            async { Ok::<_, CoreError>(self.inner.imports.confirm(import_id, progress).await?) };
        gateway
            .audited(request, confirm, |report| {
                Done::said(format!("import {import_id}: {}", report.summary()))
            })
            .await
    }

    /// Forgets a previewed import; true if it was waiting.
    pub fn cancel_import(&self, import_id: &str) -> bool {
        self.inner.imports.cancel(import_id)
    }

    /// Validates manifest files and imports them in one transaction, or previews them with
    /// `dry_run` (nothing written, nothing to audit). Unreadable files and invalid templates
    /// are an `invalid_manifest` error listing every problem.
    pub async fn import_files(
        &self,
        actor: &Actor,
        paths: &[PathBuf],
        dry_run: bool,
    ) -> Result<ImportReport, CoreError> {
        let registry = &self.inner.registry;
        let inputs = registry
            .read_manifests(paths)
            .map_err(RegistryError::Invalid)?;
        if dry_run {
            let preview = registry.preview(&inputs).await?;
            if !preview.problems.is_empty() {
                return Err(RegistryError::Invalid(preview.problems).into());
            }
            return Ok(preview.report);
        }
        let gateway = self.gateway().await?;
        let request = Request::new(actor, Operation::Import);
        let import = async { Ok::<_, CoreError>(registry.import(&inputs).await?) };
        let files = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        gateway
            .audited(request, import, |report| {
                Done::said(format!("{files}: {}", report.summary()))
            })
            .await
    }
}
