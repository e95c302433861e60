//! Key ids: short, printable names derived from a public key.
//!
//! A key id is the first 16 bytes of BLAKE3 in derive-key mode (context [`KEY_ID_CONTEXT`])
//! over the canonical public-key encoding, which starts with the suite tag and, for SM2, ends
//! with the distinguishing ID. It is printed as 32 lowercase hex digits.
//!
//! Because the id is recomputed from the key at every verification, a flipped bit in either the
//! id or the key shows up as a mismatch; 128 bits leave no practical room for two keys in one
//! trust list to collide.

use std::fmt;
use std::str::FromStr;

use crate::codec::{hex_decode, hex_encode};
use crate::error::SealError;
use crate::suite::PublicKey;

/// Length of a key id in bytes.
pub const KEY_ID_LEN: usize = 16;

/// BLAKE3 derive-key context for key ids.
pub const KEY_ID_CONTEXT: &str = "licstore seal key id v1";

/// A key id; ordered by its bytes so trust lists have one order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The key id of `public_key`.
    pub fn derive(public_key: &PublicKey) -> KeyId {
        let digest = blake3::derive_key(KEY_ID_CONTEXT, &public_key.to_bytes());
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }

    /// Wraps raw id bytes as read from an encoding; nothing is checked.
    pub fn from_bytes(bytes: [u8; KEY_ID_LEN]) -> KeyId {
        KeyId(bytes)
    }

    /// The raw id bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }

    /// Whether this id is the one derived from `public_key`.
    pub fn matches(&self, public_key: &PublicKey) -> bool {
        *self == KeyId::derive(public_key)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex_encode(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = SealError;

    /// Parses exactly 32 lowercase hex digits.
    fn from_str(text: &str) -> Result<KeyId, SealError> {
        hex_decode::<KEY_ID_LEN>(text)
            .map(KeyId)
            .map_err(|reason| SealError::invalid_field("key_id", reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{SecretKey, Suite};

    #[test]
    fn key_id_is_stable_printable_and_parses_back() {
        let key = SecretKey::from_seed(Suite::Ed25519, &[1; 32])
            .unwrap()
            .public_key();
        let id = key.key_id();
        let text = id.to_string();
        assert_eq!(text.len(), 2 * KEY_ID_LEN);
        assert_eq!(text.parse::<KeyId>(), Ok(id));
        assert!(id.matches(&key));
        assert!("not hex".parse::<KeyId>().is_err());
        assert!(text.to_uppercase().parse::<KeyId>().is_err());
    }

    #[test]
    fn every_flipped_bit_of_the_id_stops_matching() {
        let key = SecretKey::from_seed(Suite::Sm2Sm3, &[2; 32])
            .unwrap()
            .public_key();
        let id = key.key_id();
        for position in 0..KEY_ID_LEN * 8 {
            let mut bytes = *id.as_bytes();
            bytes[position / 8] ^= 1 << (position % 8);
            assert!(!KeyId::from_bytes(bytes).matches(&key), "bit {position}");
        }
    }

    #[test]
    fn suites_and_keys_give_distinct_ids() {
        let ed = SecretKey::from_seed(Suite::Ed25519, &[5; 32]).unwrap();
        let sm2 = SecretKey::from_seed(Suite::Sm2Sm3, &[5; 32]).unwrap();
        let ed_other = SecretKey::from_seed(Suite::Ed25519, &[6; 32]).unwrap();
        assert_ne!(ed.key_id(), sm2.key_id());
        assert_ne!(ed.key_id(), ed_other.key_id());
    }
}
