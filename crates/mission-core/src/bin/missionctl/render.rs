//! What the command line prints: lines on stdout that end quietly when the reader goes away
//! (`missionctl templates list | head`), one JSON document per `--json` command, and errors
//! on stderr.

use std::io::Write;

use mission_core::gateway::local_time;
use mission_core::registry::search::TemplateSummary;
use mission_core::registry::Problem;
use mission_core::squad::store::RunRecord;
use mission_core::squad::MissionEvent;
use mission_core::{CoreError, ErrorCode};
use serde::Serialize;

/// The reader of stdout went away; the command stops without complaint.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct PipeClosed;

/// Writes one line to stdout.
pub fn line(text: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(PipeClosed.into()),
        Err(e) => Err(e.into()),
    }
}

/// `println!` that ends the command quietly when stdout is closed.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::render::line(format_args!($($arg)*))?
    };
}
pub(crate) use outln;

/// Prints one JSON document on stdout.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    line(format_args!("{}", serde_json::to_string_pretty(value)?))
}

/// Says how to see the next page when there is one: under the list, or on stderr when stdout
/// holds one JSON document.
pub fn more(command: &str, next: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let Some(next) = next else {
        return Ok(());
    };
    if as_json {
        eprintln!("More: {command} --after '{next}'");
        return Ok(());
    }
    line(format_args!("More: {command} --after '{next}'"))
}

/// A core error for a person (stderr), or as a JSON document when `--json` was asked.
pub fn error(e: &CoreError, as_json: bool) {
    if as_json {
        // Scripts read the error where they read results.
        if let Ok(text) = serde_json::to_string_pretty(e) {
            let _ = writeln!(std::io::stdout(), "{text}");
        }
    }
    eprintln!("error: {}", e.message);
    for p in &e.details.problems {
        eprintln!("{p}");
    }
    if !e.details.problems.is_empty() {
        eprintln!("{} problem(s) found.", e.details.problems.len());
    }
}

/// The exit code of a failed command: 1 when the core refused or a check failed, 3 when a
/// service it needs (Kafka, the keychain) is unavailable, 4 when storage, configuration or the
/// core itself failed. (2 is the argument parser's.)
pub fn exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::KafkaUnavailable | ErrorCode::AuditUnavailable => 3,
        ErrorCode::Storage | ErrorCode::Config | ErrorCode::Internal => 4,
        _ => 1,
    }
}

/// Every manifest problem, one per line, on stderr.
pub fn problems(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!("{} problem(s) found.", problems.len());
}

/// One mission event in one line.
pub fn event_line(e: &MissionEvent) -> String {
    format!(
        "#{:<5} {}  {:<15} dept {:<2} job {}  {}{}",
        e.seq,
        local_time(&e.event.ts),
        e.event.kind,
        e.event.dept,
        e.event.job_id,
        e.summary,
        if e.published { "" } else { "  (in the outbox)" }
    )
}

/// A run record in one line.
pub fn run_line(run: &RunRecord) -> String {
    format!(
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
    )
}

/// Est. ROI as the library shows it.
pub fn roi(s: &TemplateSummary) -> String {
    s.est_roi
        .map_or_else(|| "no history yet".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Risk Level as the library shows it.
pub fn risk(s: &TemplateSummary) -> String {
    s.risk_level.map_or_else(
        || format!("{} (baseline)", s.baseline_risk),
        |r| r.to_string(),
    )
}
