//! `missionctl`: the command line over the Mission Control core.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use mission_core::audit::{self as audit_log, AuditLog, KeyVault};
use mission_core::db::squad::RunRecord;
use mission_core::gateway::{
    operator_name, ApprovalDecision, DecideApproval, Gateway, GatewayConfig,
};
use mission_core::perimeter::{MissionStatus, Missions, SaveMissionRequest};
use mission_core::registry::search::TemplateSummary;
use mission_core::registry::service::read_manifests;
use mission_core::registry::{hash, ApprovalMode, Problem, RiskLevel, SearchRequest};
use mission_core::squad::{self, Bus, EngineOptions, SquadEngine};
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
    /// Which Kafka the squads use, and whether it answers.
    #[command(subcommand)]
    Kafka(KafkaCommand),
    /// Run the agent API (the tool gateway over HTTP) without the desktop app.
    Serve {
        /// Address to listen on (default from config/gateway.json: loopback only).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Deploy a template as a running mission and follow its squad until the mission ends.
    Deploy(DeployArgs),
    /// Active missions: list, show, follow, events, stop; start saved ones, issue agent tokens.
    #[command(subcommand)]
    Missions(MissionsCommand),
    /// The approvals queue: calls and budget caps waiting for a human.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// The signed, hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// The perimeter of a deployment; anything left out takes the template's default (within the
/// global policy's caps).
#[derive(Args)]
struct DeployArgs {
    /// Template id.
    template_id: String,
    /// Budget cap in cents.
    #[arg(long)]
    budget_cents: Option<i64>,
    /// Time to live in seconds.
    #[arg(long)]
    ttl_seconds: Option<i64>,
    /// Maximum tool-call steps.
    #[arg(long)]
    max_steps: Option<i64>,
    /// Approval mode: strict, threshold or auto.
    #[arg(long, value_parser = parse_mode)]
    approval: Option<ApprovalMode>,
    /// Threshold in cents (Threshold mode).
    #[arg(long)]
    threshold_cents: Option<i64>,
    /// Grant a connection to another sector the template declares (repeatable).
    #[arg(long = "connect")]
    connections: Vec<String>,
    /// Only save and start the mission; the desktop app (or `missionctl missions follow`)
    /// runs its squad.
    #[arg(long)]
    detach: bool,
}

fn parse_mode(value: &str) -> Result<ApprovalMode, String> {
    match value.to_ascii_lowercase().as_str() {
        "strict" => Ok(ApprovalMode::Strict),
        "threshold" => Ok(ApprovalMode::Threshold),
        "auto" => Ok(ApprovalMode::Auto),
        _ => Err(format!(
            "\"{value}\" is not an approval mode: use strict, threshold or auto"
        )),
    }
}

#[derive(Subcommand)]
enum MissionsCommand {
    /// Missions, newest first, with status, steps and spend.
    List {
        /// Most missions to show.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One mission: perimeter, usage, jobs and run record.
    Show {
        /// Mission id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A mission's events, oldest first, with mission and job ids.
    Events {
        /// Mission id.
        id: String,
        /// Only events after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Run the squad engine here (re-assembling running missions, this one included) and print
    /// the mission's events until it ends.
    Follow {
        /// Mission id.
        id: String,
    },
    /// Stop a mission now: its run record is written and its squad torn down.
    Stop {
        /// Mission id.
        id: String,
    },
    /// Start a Ready mission: it runs and its time to live starts counting.
    Start {
        /// Mission id.
        id: String,
    },
    /// Issue a bearer token for one department of a mission (shown once; only its hash is kept).
    Token {
        /// Mission id.
        id: String,
        /// Department number.
        #[arg(long)]
        dept: i64,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List waiting requests (all requests with --all).
    List {
        /// Include decided and expired requests.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiting call (it may run once), or raise a paused mission's budget.
    Approve {
        /// Approval id.
        id: String,
        /// New budget in cents, for a budget-cap request.
        #[arg(long)]
        budget_cents: Option<i64>,
        /// Reviewer name recorded in the audit log (default: your user name).
        #[arg(long = "as")]
        reviewer: Option<String>,
    },
    /// Deny a waiting call, or stop a mission paused at its budget.
    Deny {
        /// Approval id.
        id: String,
        /// Reviewer name recorded in the audit log (default: your user name).
        #[arg(long = "as")]
        reviewer: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the chain, every signature and the signed head; names the first bad record.
    Verify {
        /// Check an export file instead of the database.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Trust only this public key (hex); repeat for several. Default: the keys recorded
        /// with the log (the report lists their ids to compare).
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a copy of the log that can be verified elsewhere with the public key.
    Export {
        /// Output file.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Print this machine's audit public key (from the OS keychain).
    Key,
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

#[derive(Debug, Subcommand)]
enum KafkaCommand {
    /// Say which Kafka is configured (embedded mock cluster or brokers) and check it answers.
    Status,
    /// Keep the SASL password of a Kafka user in the OS keychain (read from standard input).
    SetPassword {
        /// The SASL user name (as in kafka.json's sasl_username).
        #[arg(long)]
        user: String,
    },
}

/// Starts the configured bus and round-trips one topic through it.
async fn kafka_status() -> anyhow::Result<ExitCode> {
    let mode = mission_core::squad::KafkaMode::configured()?;
    println!("Kafka: {}", mode.describe());
    let bus = mission_core::squad::Bus::start_configured()?;
    let probe = format!("status-{}", uuid::Uuid::now_v7());
    let topic = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        bus.ensure_mission_topic(&probe),
    )
    .await
    .context("Kafka did not answer within 15 s; check the bootstrap servers")??;
    println!(
        "Answers at {}: created topic {topic}.",
        bus.bootstrap_servers()
    );
    Ok(ExitCode::SUCCESS)
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
    audit_log::select_keystore_from_env()?;
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
        Command::Kafka(KafkaCommand::Status) => kafka_status().await,
        Command::Kafka(KafkaCommand::SetPassword { user }) => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "no password on standard input");
            squad::store_sasl_password(&user, password)?;
            println!("Kept the Kafka password for {user} in the OS keychain.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen } => serve(cli.database_url.as_deref(), listen).await,
        Command::Deploy(args) => deploy(args, cli.database_url.as_deref()).await,
        Command::Missions(cmd) => missions(cmd, cli.database_url.as_deref()).await,
        Command::Approvals(cmd) => approvals(cmd, cli.database_url.as_deref()).await,
        Command::Audit(cmd) => audit(cmd, cli.database_url.as_deref()).await,
    }
}

/// The gateway over the database, signing with this machine's key from the OS keychain.
async fn gateway(registry: &Registry) -> anyhow::Result<Gateway> {
    let sealer = KeyVault::default().load_or_create()?;
    Ok(Gateway::start_bundled(registry, sealer).await?)
}

async fn serve(url: Option<&str>, listen: Option<String>) -> anyhow::Result<ExitCode> {
    let registry = open(url).await?;
    registry.ensure_bundled_library().await?;
    let gateway = gateway(&registry).await?;
    let addr = listen.unwrap_or(GatewayConfig::bundled()?.listen);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("could not listen on {addr}; is another instance running?"))?;
    let local = listener.local_addr()?;
    println!(
        "Agent API on http://{local} (OpenAPI document at /v1/openapi.json). Ctrl+C stops it."
    );
    mission_core::api::serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn deploy(args: DeployArgs, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let registry = open(url).await?;
    registry.ensure_bundled_library().await?;
    let gateway = gateway(&registry).await?;
    let draft = Missions::new(registry.clone())
        .draft(&args.template_id)
        .await?;
    let d = &draft.defaults;
    let approval_mode = args.approval.unwrap_or(d.approval_mode);
    let request = SaveMissionRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        template_id: args.template_id.clone(),
        template_version: draft.template.version,
        budget_cents: args.budget_cents.unwrap_or(d.budget_cents),
        ttl_seconds: args.ttl_seconds.unwrap_or(d.ttl_seconds),
        max_steps: args.max_steps.unwrap_or(d.max_steps),
        approval_mode,
        threshold_cents: match approval_mode {
            ApprovalMode::Threshold => args.threshold_cents.or(d.threshold_cents),
            _ => args.threshold_cents,
        },
        connections: args.connections,
    };
    let mission = squad::deploy(&registry, &gateway, &request, &operator_name()).await?;
    let p = &mission.perimeter;
    println!(
        "Mission {} deployed: {} v{}, budget {} ¢, {} s, {} steps, {} mode.",
        mission.id,
        mission.template_name,
        mission.template_version,
        p.budget_cents,
        p.ttl_seconds,
        p.max_steps,
        p.approval_mode.as_str()
    );
    if args.detach {
        println!(
            "Detached: the desktop app or `missionctl missions follow {}` runs its squad.",
            mission.id
        );
        return Ok(ExitCode::SUCCESS);
    }
    follow(&registry, gateway, &mission.id).await
}

/// Runs a squad engine in this process and prints one mission's events until it ends. Ctrl+C
/// hands the mission back (it keeps running for the next engine).
async fn follow(registry: &Registry, gateway: Gateway, id: &str) -> anyhow::Result<ExitCode> {
    let repo = std::sync::Arc::clone(registry.repository());
    let view = squad::find_mission(&*repo, id).await?;
    let bus = std::sync::Arc::new(Bus::start_configured()?);
    println!("Kafka: {}", bus.mode().describe());
    let engine = SquadEngine::start(
        std::sync::Arc::clone(&repo),
        gateway,
        bus,
        EngineOptions::default(),
    );
    let mut notices = engine.subscribe();
    if view.run.is_none() {
        if let Err(e) = engine.poke().await {
            eprintln!("warning: {e}");
        }
    }
    let mut after = 0;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        for event in squad::mission_events(&*repo, id, after, 1000).await? {
            after = event.seq;
            println!("{}", event_line(&event));
        }
        if let Some(run) = repo.run_record(id).await? {
            print_run(&run);
            engine.shutdown(std::time::Duration::from_secs(10)).await;
            return Ok(exit(run.status == MissionStatus::Completed));
        }
        tokio::select! {
            _ = &mut interrupted => {
                engine.shutdown(std::time::Duration::from_secs(10)).await;
                eprintln!("Interrupted: mission {id} keeps running; the desktop app or `missionctl missions follow {id}` picks its squad up again.");
                return Ok(ExitCode::from(130));
            }
            _ = notices.recv() => {}
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
    }
}

fn event_line(e: &squad::MissionEvent) -> String {
    format!(
        "#{:<5} {}  {:<15} dept {:<2} job {}  {}{}",
        e.seq,
        mission_core::gateway::local_time(&e.ts),
        e.kind,
        e.dept,
        e.job_id,
        e.summary,
        if e.published { "" } else { "  (in the outbox)" }
    )
}

fn print_run(run: &RunRecord) {
    println!(
        "Run: {} in {:.1} s, {} steps, gas {} ¢, profit {} ¢{}",
        run.status.as_str(),
        run.duration_ms as f64 / 1000.0,
        run.steps,
        run.gas_cents,
        run.profit_cents,
        run.failure_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
}

async fn missions(cmd: MissionsCommand, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let registry = open(url).await?;
    let repo = std::sync::Arc::clone(registry.repository());
    match cmd {
        MissionsCommand::List { limit, json } => {
            let views = squad::mission_views(&*repo, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else if views.is_empty() {
                println!("No missions yet: `missionctl deploy TEMPLATE_ID` deploys one.");
            } else {
                for v in &views {
                    println!(
                        "{}  {:<9} {:<40} steps {}/{}  spent {}/{} ¢  plan {}/{}",
                        v.mission.id,
                        v.usage.status.as_str(),
                        v.mission.template_name,
                        v.usage.steps_used,
                        v.usage.max_steps,
                        v.usage.spent_cents,
                        v.usage.budget_cents,
                        v.steps_done,
                        v.plan_steps
                    );
                }
            }
        }
        MissionsCommand::Show { id, json } => {
            let view = squad::find_mission(&*repo, &id).await?;
            let jobs = repo.jobs(&id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "mission": view, "jobs": jobs })
                    )?
                );
            } else {
                let m = &view.mission;
                let u = &view.usage;
                println!(
                    "Mission {}: {} v{} ({})",
                    m.id, m.template_name, m.template_version, m.sector
                );
                println!("Status:  {}", u.status.as_str());
                println!("Steps:   {} of {}", u.steps_used, u.max_steps);
                println!(
                    "Spent:   {} ¢ of {} ¢ ({} ¢ held by calls in flight)",
                    u.spent_cents, u.budget_cents, u.reserved_cents
                );
                if let Some(expires) = &u.expires_at {
                    println!("Ends by: {}", mission_core::gateway::local_time(expires));
                }
                println!(
                    "Plan:    {} of {} steps done",
                    view.steps_done, view.plan_steps
                );
                for j in &jobs {
                    println!(
                        "  step {:<2} dept {:<2} {:<8} job {}  {}{}",
                        j.step,
                        j.dept,
                        j.status.as_str(),
                        j.job_id,
                        j.action,
                        j.tool_id
                            .as_deref()
                            .map(|t| format!(" [{t}]"))
                            .unwrap_or_default()
                    );
                }
                if let Some(run) = &view.run {
                    print_run(run);
                }
            }
        }
        MissionsCommand::Events { id, after, json } => {
            squad::find_mission(&*repo, &id).await?;
            let mut after = after;
            loop {
                let page = squad::mission_events(&*repo, &id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for e in &page {
                    if json {
                        println!("{}", serde_json::to_string(e)?);
                    } else {
                        println!("{}", event_line(e));
                    }
                }
            }
        }
        MissionsCommand::Follow { id } => {
            let gateway = gateway(&registry).await?;
            return follow(&registry, gateway, &id).await;
        }
        MissionsCommand::Stop { id } => {
            squad::stop_mission(&*repo, &id, &operator_name()).await?;
            if let Some(run) = repo.run_record(&id).await? {
                print_run(&run);
            }
        }
        MissionsCommand::Start { id } => {
            let gateway = gateway(&registry).await?;
            let usage = gateway.start_mission(&id).await?;
            println!(
                "Mission {id} is running until {}.",
                usage.expires_at.unwrap_or_default()
            );
        }
        MissionsCommand::Token { id, dept } => {
            let gateway = gateway(&registry).await?;
            let token = gateway.issue_token(&id, dept, &operator_name()).await?;
            eprintln!("Token for department {dept} of mission {id} (shown once; keep it secret):");
            println!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn approvals(cmd: ApprovalsCommand, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let registry = open(url).await?;
    let (id, decision, budget_cents, reviewer) = match cmd {
        ApprovalsCommand::List { all, json } => {
            let items = mission_core::gateway::approvals(
                registry.repository().as_ref(),
                registry.catalog(),
                chrono::Utc::now(),
                !all,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if items.is_empty() {
                println!("Nothing waits for approval.");
            } else {
                for a in &items {
                    let what = match (&a.tool_id, a.budget_cents) {
                        (Some(tool), _) => {
                            format!("{tool} args {}", a.args.as_deref().unwrap_or_default())
                        }
                        (None, Some(budget)) => format!("budget cap reached at {budget} cents"),
                        (None, None) => "budget cap reached".to_owned(),
                    };
                    println!(
                        "{}  {:<8} {} [{}]  {}  expires {}\n    {}",
                        a.id,
                        format!("{:?}", a.status),
                        a.mission_name,
                        a.sector,
                        what,
                        a.expires_at.as_deref().unwrap_or("never"),
                        a.reason
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        ApprovalsCommand::Approve {
            id,
            budget_cents,
            reviewer,
        } => (id, ApprovalDecision::Approve, budget_cents, reviewer),
        ApprovalsCommand::Deny { id, reviewer } => (id, ApprovalDecision::Deny, None, reviewer),
    };
    let gateway = gateway(&registry).await?;
    let item = gateway
        .decide(
            &DecideApproval {
                approval_id: id,
                decision,
                budget_cents,
            },
            &reviewer.unwrap_or_else(operator_name),
        )
        .await?;
    println!(
        "{} is now {:?} (decided by {}).",
        item.id,
        item.status,
        item.decided_by.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

async fn audit(cmd: AuditCommand, url: Option<&str>) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            file,
            public_keys,
            json,
        } => {
            let pinned = public_keys
                .iter()
                .map(|k| audit_log::public_key(k))
                .collect::<Result<Vec<_>, _>>()?;
            let pinned = (!pinned.is_empty()).then_some(pinned.as_slice());
            let report = match file {
                Some(path) => {
                    let reader = std::io::BufReader::new(
                        std::fs::File::open(&path)
                            .with_context(|| format!("reading {}", path.display()))?,
                    );
                    audit_log::verify_export(reader, pinned)?
                }
                None => {
                    let registry = open(url).await?;
                    AuditLog::new(std::sync::Arc::clone(registry.repository()))
                        .verify(pinned)
                        .await?
                }
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if let Some(bad) = &report.first_bad {
                eprintln!("The audit log does NOT verify.");
                eprintln!("First bad record: #{}: {}", bad.seq, bad.problem);
                eprintln!("{} record(s) before it check out.", report.records);
            } else {
                println!(
                    "The audit log verifies: {} record(s), chain, signatures and head intact.",
                    report.records
                );
                println!("Signed by key(s): {}", report.keys.join(", "));
            }
            Ok(exit(report.ok))
        }
        AuditCommand::Export { output } => {
            let registry = open(url).await?;
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(&output)
                    .with_context(|| format!("creating {}", output.display()))?,
            );
            let written = AuditLog::new(std::sync::Arc::clone(registry.repository()))
                .export(
                    &mut out,
                    &mission_core::gateway::timestamp(chrono::Utc::now()),
                )
                .await?;
            std::io::Write::flush(&mut out)?;
            println!(
                "Wrote {written} record(s) to {}; check it anywhere with \
                 `missionctl audit verify --file {} --public-key KEY`.",
                output.display(),
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Key => {
            let sealer = KeyVault::default().load_or_create()?;
            println!("{}", sealer.public_key_hex());
            eprintln!("key id {}", sealer.key_id());
            Ok(ExitCode::SUCCESS)
        }
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
