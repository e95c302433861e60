//! Generated protobuf messages and gRPC services of licstore.
//!
//! `v1` is the public API (licenses, cluster administration); `raft` is the internal transport
//! between nodes and is not meant for clients.

#![allow(clippy::all, missing_docs)]

/// The public API, package `licstore.v1`.
pub mod v1 {
    tonic::include_proto!("licstore.v1");

    /// The internal node-to-node transport, package `licstore.v1.raft`.
    pub mod raft {
        tonic::include_proto!("licstore.v1.raft");
    }
}

pub use v1::*;

/// Every licstore service and message as an encoded `FileDescriptorSet`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/licstore_descriptor.bin"));
