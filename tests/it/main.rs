//! The core's integration tests: one binary, real SQLite files and a real Postgres server.

mod api;
mod backends;
mod cli;
mod fuzz;
mod gateway;
mod helpers;
mod library;
mod malformed;
mod missions;
mod validation;
