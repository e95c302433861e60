//! The `licstored` daemon: openraft wiring, the internal Raft transport over tonic, and the
//! public gRPC services.

/// An info line about consensus: `tracing::info!` with this node's id, term and role first.
/// `$node` is anything with `raft_view()`, such as [`node::Node`].
macro_rules! consensus_info {
    ($node:expr, $($rest:tt)+) => {{
        let view = $node.raft_view();
        tracing::info!(node_id = view.node_id, term = view.term, role = view.role, $($rest)+)
    }};
}

pub mod access;
pub mod access_api;
pub mod api;
pub mod audit;
pub mod audit_api;
pub mod background;
pub mod backup;
pub mod config;
pub mod convert;
pub mod error;
pub mod health;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod network;
pub mod node;
pub mod policies;
pub mod proposer;
pub mod query;
pub mod raft_service;
pub mod read_rounds;
pub mod refusals;
pub mod run;
pub mod sealing;
pub mod stall;
pub mod status_lists;
pub mod watch;

pub use error::ServerError;
pub use run::{serve, Settings};
