//! The storage error type.

use std::io;

/// Errors raised by the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A file operation failed.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// Stored bytes could not be decoded: the data directory is damaged or from another build.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A restore could not write its new data directory.
    #[error("restore into {data_dir}: {reason}")]
    Restore {
        /// The data directory being created.
        data_dir: String,
        /// What went wrong.
        reason: String,
    },
    /// A snapshot file failed its checksum or structure check.
    #[error("snapshot {path}: {reason}")]
    BadSnapshot {
        /// The snapshot file.
        path: String,
        /// Why it was refused.
        reason: String,
    },
}

impl StoreError {
    /// Builds a [`StoreError::Corrupt`].
    pub fn corrupt(what: &'static str, reason: impl ToString) -> Self {
        StoreError::Corrupt {
            what,
            reason: reason.to_string(),
        }
    }
}

impl From<StoreError> for io::Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}
