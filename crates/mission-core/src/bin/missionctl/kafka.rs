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
                "Answers at {}: created topic {}, wrote a record at offset {} and read it back \
                 in {} ms.",
                probe.kafka.bootstrap_servers,
                probe.topic,
                probe.offset,
                probe.round_trip_ms
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
