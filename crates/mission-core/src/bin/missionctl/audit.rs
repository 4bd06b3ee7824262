//! `audit`: verify the log (the database's or an exported copy), export it, show the key.

use std::process::ExitCode;

use mission_core::app::verify_audit_file;

use crate::args::AuditCommand;
use crate::render::{self, outln};

pub async fn run(cmd: AuditCommand, url: Option<String>) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            file,
            public_keys,
            json,
        } => {
            let report = match file {
                Some(path) => verify_audit_file(&path, &public_keys)?,
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
                outln!("Signed by key(s): {}", report.keys.join(", "));
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
    }
}
