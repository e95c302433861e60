//! The `licstored` daemon: openraft wiring, the internal Raft transport over tonic, and the
//! public gRPC services.

pub mod api;
pub mod convert;
pub mod error;
pub mod network;
pub mod node;
pub mod raft_service;
pub mod run;

pub use error::ServerError;
pub use run::{serve, Settings};
