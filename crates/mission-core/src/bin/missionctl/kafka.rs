//! `kafka`: which Kafka the squads use, and the SASL password in the keychain.

use std::process::ExitCode;

use anyhow::Context;
use mission_core::app::{configured_kafka, kafka_probe, store_kafka_password};

use crate::args::KafkaCommand;
use crate::render::outln;

pub async fn run(cmd: KafkaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KafkaCommand::Status => {
            outln!("Kafka: {}", configured_kafka()?);
            let probe = kafka_probe().await?;
            outln!(
                "Answers at {}: created topic {}.",
                probe.kafka.bootstrap_servers,
                probe.topic
            );
        }
        KafkaCommand::SetPassword { user } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            store_kafka_password(&user, password.trim_end_matches(['\r', '\n']))?;
            outln!("Kept the Kafka password for {user} in the OS keychain.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
