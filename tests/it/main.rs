//! The core's integration tests: one binary, real SQLite files and a real Postgres server, and
//! Kafka through librdkafka's in-process mock cluster (or real brokers when configured).

mod api;
mod app;
mod backends;
mod cli;
mod dispatch;
mod engine;
mod fuzz;
mod gateway;
mod helpers;
mod library;
mod malformed;
mod missions;
mod squad;
mod validation;
