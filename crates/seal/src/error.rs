//! The crate's single error type.
//!
//! Every variant names the field it concerns (`authority`, `signature`, `key_file.secret`,
//! `status_list.position`, ...) so a caller can report it without guessing which input was bad.
//! Verification failures never say *how close* a forgery came; they name the field and stop.

use crate::key_id::KeyId;
use crate::lifecycle::KeyVerdict;
use crate::suite::Suite;

/// Everything that can go wrong while sealing, verifying or decoding.
///
/// Messages are lowercase, carry no trailing period and name the values involved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// An input value the rules here reject (an empty authority, a bad distinguishing ID).
    #[error("{field}: {reason}")]
    InvalidField {
        /// Dotted field name, e.g. `authority` or `secret_key.dist_id`.
        field: String,
        /// Why the value was rejected.
        reason: String,
    },
    /// Bytes that are not a well-formed encoding of the expected document.
    #[error("decode {field}: {reason}")]
    Decode {
        /// The field being read when the bytes ran out or made no sense.
        field: String,
        /// What was wrong, including the byte offset.
        reason: String,
    },
    /// A key file line that does not parse.
    #[error("key_file line {line}, {field}: {reason}")]
    KeyFile {
        /// One-based line number in the file.
        line: usize,
        /// The key-file field on that line, e.g. `suite` or `secret`.
        field: String,
        /// What was wrong.
        reason: String,
    },
    /// A bearer token that does not hold: malformed, unsigned by a token key, expired, or for
    /// another audience.
    #[error("bearer token: {reason}")]
    Token {
        /// What failed, naming the part (`header.alg`, `claims.exp`, `signature`, ...).
        reason: String,
    },
    /// The signature does not verify over the signed bytes under the given key.
    #[error("signature: does not verify under key {key_id}")]
    BadSignature {
        /// The key the signature was checked against.
        key_id: KeyId,
    },
    /// A seal or document names a different suite than the key offered for it.
    #[error("{field}: suite {found} does not match {expected}")]
    SuiteMismatch {
        /// Where the unexpected suite was found, e.g. `seal.suite`.
        field: String,
        /// The suite of the key.
        expected: Suite,
        /// The suite named by the seal or document.
        found: Suite,
    },
    /// A seal or document names a different key than the one offered for it.
    #[error("{field}: key {found} does not match {expected}")]
    KeyIdMismatch {
        /// Where the unexpected key id was found, e.g. `seal.key_id`.
        field: String,
        /// The key id derived from the key.
        expected: KeyId,
        /// The key id named by the seal or document.
        found: KeyId,
    },
    /// The signature verifies, but the key's record does not accept a signature made then.
    #[error("key_id: key {key_id} rejected: {verdict}")]
    KeyRejected {
        /// The key whose record rejected the signature.
        key_id: KeyId,
        /// The rejecting verdict.
        verdict: KeyVerdict,
    },
    /// A disclosed face field that does not match the sealed commitments.
    #[error("disclosure.{name}: {reason}")]
    Disclosure {
        /// The disclosed field name.
        name: String,
        /// Why it does not match.
        reason: String,
    },
    /// Every position of a status list is already allocated.
    #[error("status_list.position: all {capacity} positions are in use")]
    StatusListFull {
        /// The list's capacity in entries.
        capacity: u32,
    },
    /// A status-list position beyond the list's capacity.
    #[error("status_list.position: {position} is outside 0..{capacity}")]
    PositionOutOfRange {
        /// The position asked for.
        position: u32,
        /// The list's capacity in entries.
        capacity: u32,
    },
}

impl SealError {
    /// Builds a [`SealError::InvalidField`].
    pub fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> SealError {
        SealError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Turns an [`SealError::InvalidField`] into a [`SealError::Decode`] of the same field;
    /// used when a decoded document breaks a rule its encoder would have refused.
    pub fn into_decode(self) -> SealError {
        match self {
            SealError::InvalidField { field, reason } => SealError::Decode { field, reason },
            other => other,
        }
    }

    /// The field this error is about.
    pub fn field(&self) -> &str {
        match self {
            SealError::InvalidField { field, .. }
            | SealError::Decode { field, .. }
            | SealError::KeyFile { field, .. }
            | SealError::SuiteMismatch { field, .. }
            | SealError::KeyIdMismatch { field, .. } => field,
            SealError::BadSignature { .. } => "signature",
            SealError::KeyRejected { .. } => "key_id",
            SealError::Disclosure { .. } => "disclosure",
            SealError::Token { .. } => "token",
            SealError::StatusListFull { .. } | SealError::PositionOutOfRange { .. } => {
                "status_list.position"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_field_name_the_field() {
        let key_id = KeyId::from_bytes([0xab; 16]);
        let other = KeyId::from_bytes([0x01; 16]);
        let cases = [
            (
                SealError::invalid_field("authority", "is empty"),
                "authority: is empty",
                "authority",
            ),
            (
                SealError::Decode {
                    field: "signed_at_ms".into(),
                    reason: "needs 8 bytes, 3 left (at byte 40)".into(),
                },
                "decode signed_at_ms: needs 8 bytes, 3 left (at byte 40)",
                "signed_at_ms",
            ),
            (
                SealError::KeyFile {
                    line: 3,
                    field: "secret".into(),
                    reason: "bad".into(),
                },
                "key_file line 3, secret: bad",
                "secret",
            ),
            (
                SealError::BadSignature { key_id },
                "signature: does not verify under key abababababababababababababababab",
                "signature",
            ),
            (
                SealError::SuiteMismatch {
                    field: "seal.suite".into(),
                    expected: Suite::Ed25519,
                    found: Suite::Sm2Sm3,
                },
                "seal.suite: suite sm2-sm3 does not match ed25519",
                "seal.suite",
            ),
            (
                SealError::KeyIdMismatch {
                    field: "seal.key_id".into(),
                    expected: key_id,
                    found: other,
                },
                "seal.key_id: key 01010101010101010101010101010101 does not match \
                 abababababababababababababababab",
                "seal.key_id",
            ),
            (
                SealError::KeyRejected {
                    key_id,
                    verdict: KeyVerdict::Expired { valid_until_ms: 5 },
                },
                "key_id: key abababababababababababababababab rejected: expired at 5 ms",
                "key_id",
            ),
            (
                SealError::Disclosure {
                    name: "name".into(),
                    reason: "no commitment".into(),
                },
                "disclosure.name: no commitment",
                "disclosure",
            ),
            (
                SealError::StatusListFull { capacity: 8 },
                "status_list.position: all 8 positions are in use",
                "status_list.position",
            ),
            (
                SealError::PositionOutOfRange {
                    position: 9,
                    capacity: 8,
                },
                "status_list.position: 9 is outside 0..8",
                "status_list.position",
            ),
        ];
        for (error, display, field) in cases {
            assert_eq!(error.to_string(), display);
            assert_eq!(error.field(), field);
        }
    }
}
