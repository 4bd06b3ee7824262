//! The command line's arguments: one subcommand per resource.

use mission_core::units::{Cents, Seconds};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use mission_core::registry::{ApprovalMode, RiskLevel};

#[derive(Parser)]
#[command(
    name = "missionctl",
    version,
    about = "Mission Control from the command line"
)]
pub struct Cli {
    /// Database: a SQLite file path or sqlite://PATH (default: the app-data folder), or postgres://…
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub struct DeployArgs {
    /// Template id.
    pub template_id: String,
    /// Budget cap in cents.
    #[arg(long)]
    pub budget_cents: Option<Cents>,
    /// Time to live in seconds.
    #[arg(long)]
    pub ttl_seconds: Option<Seconds>,
    /// Maximum tool-call steps.
    #[arg(long)]
    pub max_steps: Option<i64>,
    /// Approval mode: strict, threshold or auto.
    #[arg(long, value_parser = parse_mode)]
    pub approval: Option<ApprovalMode>,
    /// Threshold in cents (Threshold mode).
    #[arg(long)]
    pub threshold_cents: Option<Cents>,
    /// Grant a connection to another sector the template declares (repeatable).
    #[arg(long = "connect")]
    pub connections: Vec<String>,
    /// Only save and start the mission; the desktop app (or `missionctl missions follow`)
    /// runs its squad.
    #[arg(long)]
    pub detach: bool,
}

pub fn parse_mode(value: &str) -> Result<ApprovalMode, String> {
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
pub enum MissionsCommand {
    /// Missions, newest first, with status, steps and spend.
    List {
        /// Most missions to show (1 to 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this cursor (printed under the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Print JSON (the page's missions; the next page's command goes to stderr).
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
pub enum ApprovalsCommand {
    /// List waiting requests (all requests with --all).
    List {
        /// Include decided and expired requests.
        #[arg(long)]
        all: bool,
        /// Most requests to show (1 to 200).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Start after this cursor (printed under the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Print JSON (the page's requests; the next page's command goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Approve a waiting call (it may run once), or raise a paused mission's budget.
    Approve {
        /// Approval id.
        id: String,
        /// New budget in cents, for a budget-cap request.
        #[arg(long)]
        budget_cents: Option<Cents>,
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
pub enum AuditCommand {
    /// Check the chain, every signature and the signed head; names the first bad record.
    Verify {
        /// Check an export file instead of the database.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Trust only this public key (hex); repeat for several. Default: the keys pinned in
        /// this machine's trust anchor (for a file with no anchor here: the file's own header,
        /// and the report says so).
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
        /// With --file: an earlier export of the same log; the check then also shows the log
        /// was only appended to since (the earlier copy's signed checkpoint holds).
        #[arg(long, requires = "file")]
        since: Option<PathBuf>,
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
    /// Pin another machine's audit public key (hex) in this machine's trust anchor.
    Trust {
        /// The public key, hex.
        public_key: String,
    },
}

#[derive(Args)]
pub struct Filters {
    /// Sector id or name.
    #[arg(long)]
    pub sector: Option<String>,
    /// Category name.
    #[arg(long)]
    pub category: Option<String>,
    /// Risk level: Low, Medium or High.
    #[arg(long)]
    pub risk: Option<RiskLevel>,
    /// Most results to show.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum TemplatesCommand {
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
pub enum ManifestCommand {
    /// Recompute every template's logic_hash from its ruleset and rewrite the file.
    Rehash {
        /// Manifest file to rewrite in place.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KafkaCommand {
    /// Say which Kafka is configured (embedded mock cluster or brokers) and check it answers.
    Status,
    /// Keep the SASL password of a Kafka user in the OS keychain (read from standard input).
    SetPassword {
        /// The SASL user name (as in kafka.json's sasl_username).
        #[arg(long)]
        user: String,
    },
}

impl Command {
    /// Whether the command was asked for JSON, so its error is JSON too.
    pub fn wants_json(&self) -> bool {
        match self {
            Self::Validate { json, .. } | Self::Import { json, .. } => *json,
            Self::Templates(
                TemplatesCommand::List(Filters { json, .. })
                | TemplatesCommand::Search {
                    filters: Filters { json, .. },
                    ..
                }
                | TemplatesCommand::Show { json, .. },
            ) => *json,
            Self::Missions(
                MissionsCommand::List { json, .. }
                | MissionsCommand::Show { json, .. }
                | MissionsCommand::Events { json, .. },
            ) => *json,
            Self::Approvals(ApprovalsCommand::List { json, .. }) => *json,
            Self::Audit(AuditCommand::Verify { json, .. }) => *json,
            _ => false,
        }
    }
}
