//! The `licstored` daemon: openraft wiring, the internal Raft transport over tonic, and the
//! public gRPC services.

pub mod api;
pub mod background;
pub mod backup;
pub mod config;
pub mod convert;
pub mod error;
pub mod health;
pub mod metrics;
pub mod network;
pub mod node;
pub mod query;
pub mod raft_service;
pub mod run;
pub mod watch;

pub use error::ServerError;
pub use run::{serve, Settings};
