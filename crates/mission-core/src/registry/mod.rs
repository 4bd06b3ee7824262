//! The template registry: manifests, validation, versioned import and search.

pub mod hash;
pub mod import;
pub mod manifest;
pub mod model;
pub mod problem;
pub mod search;
pub mod service;
pub mod staging;
pub mod store;
pub mod validate;

pub use model::{ApprovalMode, Perimeter, PlanStep, RiskLevel, Ruleset, Template};
pub use problem::{Problem, ProblemCode};
pub use service::{Registry, RegistryError, SearchRequest};
pub use staging::ImportStage;
