//! RocksDB storage for licstore: the Raft log, the replicated state machine with its indexes,
//! and snapshots.
//!
//! One RocksDB instance holds both the log and the state machine, in separate column families.
//! They share one write-ahead log, so a log append that is synced also makes durable every
//! state-machine write that came before it; see `ARCHITECTURE.md` for the invariants.
//!
//! This crate knows nothing about gRPC. It implements openraft's storage traits for
//! [`TypeConfig`] and offers [`Reader`] for the read path.

mod apply;
pub mod audit;
pub mod backup;
pub mod check;
pub mod codec;
pub mod command;
pub mod db;
pub mod error;
pub mod event;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod index;
pub mod keys;
pub mod log_store;
pub mod policies;
pub mod principals;
pub mod query;
pub mod reader;
pub mod revoked_tokens;
pub mod seal_keys;
pub mod service_items;
pub mod snapshot;
pub mod state_machine;
pub mod status_lists;
pub mod trust_anchors;
mod txn;
pub mod watchdog;

pub use check::{CheckReport, Problem};
pub use command::{Command, CommandResult, ImportItem, RejectCode, Rejection, WriteOutcome};
pub use db::{open, open_with, DbFigures, DbStats, Storage, StoreOptions};
pub use error::StoreError;
pub use event::{Event, EventFilter, EventOp};
pub use log_store::LogStore;
pub use policies::DisclosureRule;
pub use principals::{Principal, Role};
pub use reader::{EventPage, FeedRead, Reader, StateDigest};
pub use service_items::ServiceItem;
pub use snapshot::SnapshotFile;
pub use state_machine::StateMachine;
pub use trust_anchors::{TrustAnchor, TrustImport};
pub use watchdog::{StorageCall, Watchdog};

openraft::declare_raft_types!(
    /// The openraft type configuration of licstore: commands in, results out, nodes addressed
    /// by their Raft gRPC address.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
);

/// A node id in the cluster.
pub type NodeId = u64;
/// The openraft handle specialised to licstore.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;
/// A member's address record.
pub type Node = openraft::impls::BasicNode;
