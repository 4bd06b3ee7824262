//! `validate`, `import`, `templates` and `manifest`.

use std::path::PathBuf;
use std::process::ExitCode;

use mission_core::app::{rehash_manifest, validate_files};
use mission_core::gateway::Actor;
use mission_core::registry::import::ImportStatus;
use mission_core::registry::search::NO_HISTORY;
use mission_core::registry::SearchRequest;
use mission_core::{Core, ErrorCode};

use crate::args::{ManifestCommand, TemplatesCommand};
use crate::render::{self, outln};

pub fn validate(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let problems = validate_files(files)?;
    if json {
        render::json(&problems)?;
    } else if problems.is_empty() {
        outln!("{} file(s) valid.", files.len());
    } else {
        render::problems(&problems);
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn manifest(cmd: ManifestCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ManifestCommand::Rehash { file } => {
            let changed = rehash_manifest(&file)?;
            outln!(
                "{changed} logic_hash value(s) updated in {}.",
                file.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn import(
    core: &Core,
    files: &[PathBuf],
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = match core.import_files(&Actor::operator(), files, dry_run).await {
        Ok(report) => report,
        Err(e) if e.code == ErrorCode::InvalidManifest => {
            if json {
                render::json(&e.details.problems)?;
            } else {
                render::problems(&e.details.problems);
            }
            eprintln!("Nothing was imported.");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        render::json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for item in report
        .items
        .iter()
        .filter(|i| i.status != ImportStatus::Unchanged)
    {
        outln!(
            "{:<9} {} v{}",
            format!("{:?}", item.status).to_lowercase(),
            item.id,
            item.version
        );
    }
    outln!("{}", report.summary());
    Ok(ExitCode::SUCCESS)
}

pub async fn templates(core: &Core, cmd: TemplatesCommand) -> anyhow::Result<ExitCode> {
    let (text, filters) = match cmd {
        TemplatesCommand::List(filters) => (None, filters),
        TemplatesCommand::Search { query, filters } => (Some(query), filters),
        TemplatesCommand::Show { id, version, json } => {
            let detail = core.template(&id, version).await?;
            if json {
                render::json(&detail)?;
                return Ok(ExitCode::SUCCESS);
            }
            let s = &detail.summary;
            outln!("{} ({})", s.heading.name, s.heading.id);
            outln!(
                "  {} / {}   version {} of {}",
                s.heading.sector_name,
                s.heading.category,
                detail.shown_version,
                s.version
            );
            outln!("  Goal: {}", s.heading.goal);
            outln!(
                "  Est. ROI: {}   Risk Level: {}",
                render::roi(s),
                render::risk(s)
            );
            outln!(
                "  logic_hash: {}",
                detail.content["logic_hash"].as_str().unwrap_or_default()
            );
            let p = &detail.default_perimeter;
            outln!(
                "  Default perimeter: budget {} cents, TTL {} s, max {} steps, {} approval{}",
                p.budget_cents,
                p.ttl_seconds,
                p.max_steps,
                p.approval_mode.as_str(),
                p.threshold_cents
                    .map(|t| format!(" (threshold {t} cents)"))
                    .unwrap_or_default()
            );
            outln!(
                "{}",
                serde_json::to_string_pretty(&detail.content["ruleset"])?
            );
            return Ok(ExitCode::SUCCESS);
        }
    };
    let results = core
        .search_templates(SearchRequest {
            text,
            sector: filters.sector,
            category: filters.category,
            risk: filters.risk,
            limit: Some(filters.limit),
            offset: None,
        })
        .await?;
    if filters.json {
        render::json(&results)?;
    } else if results.is_empty() {
        outln!("No templates match.");
    } else {
        outln!(
            "{:<40} {:<28} {:<14} {:>8}  {:<8}",
            "NAME",
            "SECTOR / CATEGORY",
            "EST. ROI",
            "VERSION",
            "RISK"
        );
        for s in &results {
            outln!(
                "{:<40} {:<28} {:<14} {:>8}  {:<8}",
                s.heading.name,
                format!("{} / {}", s.heading.sector_name, s.heading.category),
                render::roi(s),
                s.version,
                render::risk(s)
            );
        }
        if results.iter().any(|s| s.history_note.is_some()) {
            outln!("\n{NO_HISTORY}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
