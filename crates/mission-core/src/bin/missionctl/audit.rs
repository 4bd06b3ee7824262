//! `audit`: verify the log (the database's or an exported copy), export it, show the key.

use std::process::ExitCode;

use mission_core::app::verify_audit_file;
use mission_core::audit::TrustAnchor;

use crate::args::AuditCommand;
use crate::render::{self, outln};

pub async fn run(cmd: AuditCommand, url: Option<String>) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            file,
            public_keys,
            since,
            json,
        } => {
            let report = match file {
                Some(path) => {
                    let anchor = TrustAnchor::default_location().map(TrustAnchor::at);
                    verify_audit_file(&path, &public_keys, anchor.as_ref(), since.as_deref())?
                }
                None => crate::open(url).await?.verify_audit(&public_keys).await?,
            };
            if json {
                render::json(&report)?;
            } else if let Some(bad) = &report.first_bad {
                eprintln!("The audit log does NOT verify.");
                eprintln!("First bad record: #{}: {}", bad.seq, bad.problem);
                eprintln!("{} record(s) before it check out.", report.records);
            } else {
                outln!(
                    "The audit log verifies: {} record(s), chain, signatures and head intact.",
                    report.records
                );
                outln!("Trusted: {}.", report.anchor);
                if let Some(n) = report.extends {
                    outln!("It extends the earlier copy: its {n} record(s) are unchanged.");
                }
            }
            if !json && report.first_bad.is_some() {
                eprintln!("Trusted: {}.", report.anchor);
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AuditCommand::Export { output } => {
            let written = crate::open(url).await?.export_audit(&output).await?;
            outln!(
                "Wrote {written} record(s) to {}; check it anywhere with \
                 `missionctl audit verify --file {} --public-key KEY`.",
                output.display(),
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Key => {
            let key = crate::open(url).await?.audit_public_key().await?;
            outln!("{}", key.public_key);
            eprintln!("key id {}", key.key_id);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Trust { public_key } => {
            let core = crate::open(url).await?;
            if core.trust_audit_key(&public_key)? {
                outln!("Pinned; records signed by this key now verify here.");
            } else {
                outln!("Already pinned.");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
