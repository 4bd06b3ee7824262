//! Mission Control core: everything the desktop app, the `missionctl` CLI and the agent API do
//! is implemented here; the shells only translate.

pub mod api;
pub mod app;
pub mod audit;
pub mod catalog;
pub mod codes;
pub mod db;
pub mod error;
pub mod gateway;
pub mod ids;
pub mod perimeter;
pub mod registry;
pub mod squad;
pub mod store;
pub mod units;

pub use app::{Core, Settings};
pub use catalog::Catalog;
pub use error::{CoreError, ErrorCode};
pub use registry::{Registry, RegistryError};
