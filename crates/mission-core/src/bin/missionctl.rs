//! `missionctl`: the command line over the Mission Control core.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mission_core::registry::search::TemplateSummary;
use mission_core::registry::service::read_manifests;
use mission_core::registry::{hash, Problem, RiskLevel, SearchRequest};
use mission_core::{Catalog, Registry, RegistryError};
use serde_json::Value;

// Imports allocate and free millions of small JSON values; mimalloc does that at a fraction
// of the system allocator's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "missionctl",
    version,
    about = "Mission Control from the command line"
)]
struct Cli {
    /// Database: a SQLite file path or sqlite://PATH (default: the app-data folder), or postgres://…
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests against the schema and the catalogues without touching any database.
    Validate {
        /// Manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print problems as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Import manifests: all or nothing, idempotent, versioned.
    Import {
        /// Manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Show what would change without writing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Browse the template library.
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Tools for manifest authors.
    #[command(subcommand)]
    Manifest(ManifestCommand),
}

#[derive(Args)]
struct Filters {
    /// Sector id or name.
    #[arg(long)]
    sector: Option<String>,
    /// Category name.
    #[arg(long)]
    category: Option<String>,
    /// Risk level: Low, Medium or High.
    #[arg(long)]
    risk: Option<RiskLevel>,
    /// Most results to show.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// List templates, optionally filtered.
    List(Filters),
    /// Full-text search ("burn" finds Burnout Recruiter), best match first.
    Search {
        /// Words to look for in name, goal, category and sector.
        query: String,
        #[command(flatten)]
        filters: Filters,
    },
    /// Show one template in full.
    Show {
        /// Template id.
        id: String,
        /// An older version (default: current).
        #[arg(long)]
        version: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ManifestCommand {
    /// Recompute every template's logic_hash from its ruleset and rewrite the file.
    Rehash {
        /// Manifest file to rewrite in place.
        file: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MISSIONCTL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { files, json } => {
            let catalog = Catalog::bundled()?;
            let problems = match read_manifests(&files, &catalog) {
                Ok(inputs) => {
                    mission_core::registry::validate::validate(&inputs, &catalog).problems
                }
                Err(problems) => problems,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&problems)?);
            } else if problems.is_empty() {
                println!("{} file(s) valid.", files.len());
            } else {
                print_problems(&problems);
            }
            Ok(exit(problems.is_empty()))
        }
        Command::Import {
            files,
            dry_run,
            json,
        } => {
            let registry = open(cli.database_url.as_deref()).await?;
            let inputs = match registry.read_manifests(&files) {
                Ok(inputs) => inputs,
                Err(problems) => {
                    print_problems(&problems);
                    return Ok(ExitCode::FAILURE);
                }
            };
            let result = if dry_run {
                registry.preview(&inputs).await.and_then(|p| {
                    if p.problems.is_empty() {
                        Ok(p.report)
                    } else {
                        Err(RegistryError::Invalid(p.problems))
                    }
                })
            } else {
                registry.import(&inputs).await
            };
            match result {
                Ok(report) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        for item in report.items.iter().filter(|i| {
                            i.status != mission_core::registry::import::ImportStatus::Unchanged
                        }) {
                            println!(
                                "{:<9} {} v{}",
                                format!("{:?}", item.status).to_lowercase(),
                                item.id,
                                item.version
                            );
                        }
                        println!("{}", report.summary());
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(RegistryError::Invalid(problems)) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&problems)?);
                    } else {
                        print_problems(&problems);
                    }
                    eprintln!("Nothing was imported.");
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(e.into()),
            }
        }
        Command::Templates(cmd) => templates(cmd, cli.database_url.as_deref()).await,
        Command::Manifest(ManifestCommand::Rehash { file }) => rehash(&file),
    }
}

async fn templates(cmd: TemplatesCommand, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let registry = open(url).await?;
    let (text, filters) =
        match cmd {
            TemplatesCommand::List(filters) => (None, filters),
            TemplatesCommand::Search { query, filters } => (Some(query), filters),
            TemplatesCommand::Show { id, version, json } => {
                let detail = registry.show(&id, version).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&detail)?);
                } else {
                    let s = &detail.summary;
                    println!("{} ({})", s.name, s.id);
                    println!(
                        "  {} / {}   version {} of {}",
                        s.sector_name, s.category, detail.shown_version, s.version
                    );
                    println!("  Goal: {}", s.goal);
                    println!("  Est. ROI: {}   Risk Level: {}", roi(s), risk(s));
                    println!(
                        "  logic_hash: {}",
                        detail.content["logic_hash"].as_str().unwrap_or_default()
                    );
                    let p = &detail.default_perimeter;
                    println!(
                    "  Default perimeter: budget {} cents, TTL {} s, max {} steps, {} approval{}",
                    p.budget_cents,
                    p.ttl_seconds,
                    p.max_steps,
                    p.approval_mode.as_str(),
                    p.threshold_cents.map(|t| format!(" (threshold {t} cents)")).unwrap_or_default()
                );
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&detail.content["ruleset"])?
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
        };
    let results = registry
        .search(SearchRequest {
            text,
            sector: filters.sector,
            category: filters.category,
            risk: filters.risk,
            limit: Some(filters.limit),
            offset: None,
        })
        .await?;
    if filters.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else if results.is_empty() {
        println!("No templates match.");
    } else {
        println!(
            "{:<40} {:<28} {:<14} {:>8}  {:<8}",
            "NAME", "SECTOR / CATEGORY", "EST. ROI", "VERSION", "RISK"
        );
        for s in &results {
            println!(
                "{:<40} {:<28} {:<14} {:>8}  {:<8}",
                s.name,
                format!("{} / {}", s.sector_name, s.category),
                roi(s),
                s.version,
                risk(s)
            );
        }
        if results.iter().any(|s| s.history_note.is_some()) {
            println!("\n{}", mission_core::registry::search::NO_HISTORY);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn roi(s: &TemplateSummary) -> String {
    s.est_roi
        .map_or_else(|| "no history yet".into(), |r| format!("{:.1}%", r * 100.0))
}

fn risk(s: &TemplateSummary) -> String {
    s.risk_level.map_or_else(
        || format!("{} (baseline)", s.baseline_risk),
        |r| r.to_string(),
    )
}

async fn open(url: Option<&str>) -> anyhow::Result<Registry> {
    let url = match url {
        Some(u) => u.to_owned(),
        None => mission_core::db::default_sqlite_path()?
            .display()
            .to_string(),
    };
    Registry::open(&url)
        .await
        .with_context(|| format!("could not open the database at {url}"))
}

fn print_problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem(s) found.", problems.len());
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn rehash(file: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let mut manifest: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let templates = manifest
        .get_mut("templates")
        .and_then(Value::as_array_mut)
        .context("the manifest has no \"templates\" array")?;
    let mut changed = 0;
    for t in templates.iter_mut() {
        let Some(ruleset) = t.get("ruleset") else {
            continue;
        };
        let h = hash::logic_hash(ruleset)?;
        if t.get("logic_hash").and_then(Value::as_str) != Some(h.as_str()) {
            changed += 1;
            t["logic_hash"] = Value::String(h);
        }
    }
    let mut out = serde_json::to_string_pretty(&manifest)?;
    out.push('\n');
    std::fs::write(file, out).with_context(|| format!("writing {}", file.display()))?;
    println!(
        "{changed} logic_hash value(s) updated in {}.",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}
