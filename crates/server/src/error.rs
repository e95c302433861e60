//! The server error type.

/// Errors that stop a node from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting is wrong.
    #[error("config: {0}")]
    Config(String),
    /// Storage failed to open or failed while running.
    #[error("storage: {0}")]
    Store(#[from] licstore_store::StoreError),
    /// openraft refused to start or stopped.
    #[error("raft: {0}")]
    Raft(String),
    /// The gRPC server failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A file or socket operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An invariant of the server itself broke.
    #[error("internal: {0}")]
    Internal(String),
}
