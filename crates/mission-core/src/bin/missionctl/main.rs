//! `missionctl`: the command line over the Mission Control core. Each subcommand turns its
//! arguments into one core call and prints the answer; nothing is decided here.

mod approvals;
mod args;
mod audit;
mod kafka;
mod library;
mod missions;
mod render;

use std::process::ExitCode;

use clap::Parser;
use mission_core::{Core, CoreError, Settings};

use crate::args::{Cli, Command};
use crate::render::PipeClosed;

// Imports allocate and free millions of small JSON values; mimalloc does that at a fraction
// of the system allocator's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let as_json = cli.command.wants_json();
    match run(cli).await {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<PipeClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<CoreError>() {
            Some(core) => {
                render::error(core, as_json);
                ExitCode::from(render::exit_code(core.code))
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Opens the core on the database the flag or the environment names.
async fn open(database_url: Option<String>) -> anyhow::Result<Core> {
    Ok(Core::open(Settings::from_env(database_url)?).await?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let url = cli.database_url;
    match cli.command {
        Command::Validate { files, json } => library::validate(&files, json),
        Command::Manifest(cmd) => library::manifest(cmd),
        Command::Kafka(cmd) => kafka::run(cmd).await,
        Command::Audit(cmd) => audit::run(cmd, url).await,
        Command::Import {
            files,
            dry_run,
            json,
        } => library::import(&open(url).await?, &files, dry_run, json).await,
        Command::Templates(cmd) => library::templates(&open(url).await?, cmd).await,
        Command::Serve { listen } => missions::serve(url, listen).await,
        Command::Deploy(args) => missions::deploy(&open(url).await?, args).await,
        Command::Missions(cmd) => missions::run(&open(url).await?, cmd).await,
        Command::Approvals(cmd) => approvals::run(&open(url).await?, cmd).await,
    }
}
