//! Binary encoding of openraft values and replicated commands (bincode over serde).
//!
//! Used for the Raft log, Raft metadata and the internal transport. All nodes of a cluster run
//! the same build, so the encoding moves together with the pinned openraft version.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StoreError;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a value.
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| StoreError::corrupt(what, e))
}

/// Decodes a value, rejecting trailing bytes.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| StoreError::corrupt(what, e))?;
    if used != bytes.len() {
        return Err(StoreError::corrupt(what, "trailing bytes"));
    }
    Ok(value)
}
