//! Key lifecycle: which signatures a key still vouches for, as pure decisions.
//!
//! A [`KeyRecord`] says when a key became valid, when it stops being valid, whether it was
//! revoked and whether a rotation replaced it. [`judge`] maps a record and the time a signature
//! claims to have been made to a [`KeyVerdict`]. All intervals are half-open: a key is valid
//! from `valid_from_ms` inclusive until `valid_until_ms` exclusive, and revocation takes effect
//! at `revoked_from_ms` inclusive.
//!
//! Rotation and revocation differ on purpose. Rotation ends a key's signing life
//! (`valid_until_ms`) and names the successor (`replaced_by`); the old signatures stay good.
//! Revocation says signatures made from `revoked_from_ms` on are worthless, while earlier ones
//! still stand and say so ([`KeyVerdict::SignedBeforeRevocation`]).
//!
//! `signed_at_ms` is asserted by the signer. Whoever holds a compromised key can backdate, so
//! after a compromise `revoked_from_ms` must be the earliest moment the key may have leaked,
//! not the moment the revocation was filed.

use std::fmt;

use crate::codec::{check_label, Reader, Writer};
use crate::error::SealError;
use crate::key_id::KeyId;
use crate::payload::{verify_seal, Seal, SealedPayload, AUTHORITY_LEN_MAX};
use crate::suite::{PublicKey, Suite};

/// Longest encoded public key accepted in a record (SM2 with a 255-byte ID is 322 bytes).
const PUBLIC_KEY_BYTES_MAX: usize = 512;

/// A signing key as published in a trust list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Code of the authority the key seals for.
    pub authority: String,
    /// Id of `public_key`; [`KeyRecord::validate`] checks that it is derived from it.
    pub key_id: KeyId,
    /// The verifying key; it also fixes the suite.
    pub public_key: PublicKey,
    /// First instant the key may sign, ms since the Unix epoch.
    pub valid_from_ms: u64,
    /// First instant the key may no longer sign; `None` for no end. After rotation this is the
    /// rotation time.
    pub valid_until_ms: Option<u64>,
    /// First instant from which signatures by this key are void; `None` if never revoked.
    pub revoked_from_ms: Option<u64>,
    /// The key that took over after rotation, if any.
    pub replaced_by: Option<KeyId>,
}

impl KeyRecord {
    /// A record valid from `valid_from_ms` with no end, not revoked, not replaced.
    pub fn new(authority: impl Into<String>, public_key: PublicKey, valid_from_ms: u64) -> Self {
        KeyRecord {
            authority: authority.into(),
            key_id: public_key.key_id(),
            public_key,
            valid_from_ms,
            valid_until_ms: None,
            revoked_from_ms: None,
            replaced_by: None,
        }
    }

    /// The suite of the key.
    pub fn suite(&self) -> Suite {
        self.public_key.suite()
    }

    /// Checks the record's own consistency.
    pub fn validate(&self) -> Result<(), SealError> {
        check_label("key_record.authority", &self.authority, AUTHORITY_LEN_MAX)?;
        if !self.key_id.matches(&self.public_key) {
            let reason = format!("{} is not derived from the public key", self.key_id);
            return Err(SealError::invalid_field("key_record.key_id", reason));
        }
        if self
            .valid_until_ms
            .is_some_and(|until| until <= self.valid_from_ms)
        {
            let reason = "must be later than valid_from_ms";
            return Err(SealError::invalid_field(
                "key_record.valid_until_ms",
                reason,
            ));
        }
        if self.replaced_by == Some(self.key_id) {
            let reason = "a key cannot replace itself";
            return Err(SealError::invalid_field("key_record.replaced_by", reason));
        }
        Ok(())
    }

    /// The record alone, in the encoding trust lists use for each entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.write(&mut w);
        w.0
    }

    /// Decodes bytes produced by [`KeyRecord::to_bytes`]; anything else is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyRecord, SealError> {
        let mut r = Reader::new(bytes);
        let record = KeyRecord::read(&mut r)?;
        r.finish("key_record")?;
        Ok(record)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.string(&self.authority);
        w.raw(self.key_id.as_bytes());
        w.bytes(&self.public_key.to_bytes());
        w.u64(self.valid_from_ms);
        w.option_u64(self.valid_until_ms);
        w.option_u64(self.revoked_from_ms);
        match self.replaced_by {
            Some(id) => {
                w.u8(1);
                w.raw(id.as_bytes());
            }
            None => w.u8(0),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<KeyRecord, SealError> {
        let record = KeyRecord {
            authority: r.string("key_record.authority", AUTHORITY_LEN_MAX)?,
            key_id: KeyId::from_bytes(r.array("key_record.key_id")?),
            public_key: read_public_key(r)?,
            valid_from_ms: r.u64("key_record.valid_from_ms")?,
            valid_until_ms: r.option_u64("key_record.valid_until_ms")?,
            revoked_from_ms: r.option_u64("key_record.revoked_from_ms")?,
            replaced_by: read_replaced_by(r)?,
        };
        record.validate().map_err(SealError::into_decode)?;
        Ok(record)
    }
}

fn read_public_key(r: &mut Reader<'_>) -> Result<PublicKey, SealError> {
    let bytes = r.bytes("key_record.public_key", PUBLIC_KEY_BYTES_MAX)?;
    PublicKey::from_bytes(bytes).map_err(|e| r.error("key_record.public_key", e.to_string()))
}

fn read_replaced_by(r: &mut Reader<'_>) -> Result<Option<KeyId>, SealError> {
    match r.u8("key_record.replaced_by")? {
        0 => Ok(None),
        1 => Ok(Some(KeyId::from_bytes(r.array("key_record.replaced_by")?))),
        flag => Err(r.error("key_record.replaced_by", format!("presence byte {flag}"))),
    }
}

/// What a key record says about a signature made at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// The key was valid and has not been rotated or revoked.
    Valid,
    /// The key was valid then; it has since been replaced by rotation.
    ValidRotated {
        /// The successor key.
        replaced_by: KeyId,
    },
    /// The key was revoked later; this signature predates the revocation and stands.
    SignedBeforeRevocation {
        /// When the revocation took effect.
        revoked_from_ms: u64,
    },
    /// The signature claims a time at or after the revocation: rejected.
    RevokedAtSigning {
        /// When the revocation took effect.
        revoked_from_ms: u64,
    },
    /// The signature claims a time before the key became valid: rejected.
    NotYetValid {
        /// When the key became valid.
        valid_from_ms: u64,
    },
    /// The signature claims a time at or after the key's validity ended: rejected.
    Expired {
        /// When the key's validity ended.
        valid_until_ms: u64,
    },
}

impl KeyVerdict {
    /// Whether a signature with this verdict is to be accepted.
    pub fn accepts(&self) -> bool {
        matches!(
            self,
            KeyVerdict::Valid
                | KeyVerdict::ValidRotated { .. }
                | KeyVerdict::SignedBeforeRevocation { .. }
        )
    }
}

impl fmt::Display for KeyVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyVerdict::Valid => write!(f, "valid"),
            KeyVerdict::ValidRotated { replaced_by } => {
                write!(f, "valid, since rotated to {replaced_by}")
            }
            KeyVerdict::SignedBeforeRevocation { revoked_from_ms } => {
                write!(f, "signed before revocation at {revoked_from_ms} ms")
            }
            KeyVerdict::RevokedAtSigning { revoked_from_ms } => {
                write!(f, "revoked from {revoked_from_ms} ms, at or before signing")
            }
            KeyVerdict::NotYetValid { valid_from_ms } => {
                write!(f, "not valid until {valid_from_ms} ms")
            }
            KeyVerdict::Expired { valid_until_ms } => {
                write!(f, "expired at {valid_until_ms} ms")
            }
        }
    }
}

/// Judges a signature that claims to have been made at `signed_at_ms` by `key`.
///
/// Rejections come first, in this order: not yet valid, revoked, expired. Of the accepting
/// verdicts, a later revocation is reported before a rotation.
pub fn judge(key: &KeyRecord, signed_at_ms: u64) -> KeyVerdict {
    if signed_at_ms < key.valid_from_ms {
        return KeyVerdict::NotYetValid {
            valid_from_ms: key.valid_from_ms,
        };
    }
    if let Some(revoked_from_ms) = key.revoked_from_ms {
        if signed_at_ms >= revoked_from_ms {
            return KeyVerdict::RevokedAtSigning { revoked_from_ms };
        }
    }
    if let Some(valid_until_ms) = key.valid_until_ms.filter(|until| signed_at_ms >= *until) {
        return KeyVerdict::Expired { valid_until_ms };
    }
    match (key.revoked_from_ms, key.replaced_by) {
        (Some(revoked_from_ms), _) => KeyVerdict::SignedBeforeRevocation { revoked_from_ms },
        (None, Some(replaced_by)) => KeyVerdict::ValidRotated { replaced_by },
        (None, None) => KeyVerdict::Valid,
    }
}

/// Verifies a license seal against a published key record and judges the key.
///
/// Checks, in order: the record names the payload's authority, the seal verifies under the
/// record's key ([`verify_seal`]), and [`judge`] accepts the signing time. Returns the accepting
/// verdict so the caller can show, for instance, that the key was revoked later.
pub fn verify_with_record(
    record: &KeyRecord,
    payload: &SealedPayload,
    seal: &Seal,
) -> Result<KeyVerdict, SealError> {
    if payload.authority != record.authority {
        let reason = format!(
            "{:?} is not the authority {:?} of key {}",
            payload.authority, record.authority, record.key_id
        );
        return Err(SealError::invalid_field("payload.authority", reason));
    }
    verify_seal(&record.public_key, payload, seal)?;
    let verdict = judge(record, payload.signed_at_ms);
    if !verdict.accepts() {
        return Err(SealError::KeyRejected {
            key_id: record.key_id,
            verdict,
        });
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::seal;
    use crate::suite::SecretKey;

    const T: u64 = 1_700_000_000_000;

    fn record() -> KeyRecord {
        let key = SecretKey::from_seed(Suite::Ed25519, &[21; 32]).unwrap();
        KeyRecord::new("11310000002420436Y", key.public_key(), T)
    }

    fn successor() -> KeyId {
        SecretKey::from_seed(Suite::Ed25519, &[22; 32])
            .unwrap()
            .key_id()
    }

    #[test]
    fn verdicts_table() {
        let next = successor();
        let base = record();
        let rotated = KeyRecord {
            valid_until_ms: Some(T + 100),
            replaced_by: Some(next),
            ..base.clone()
        };
        let revoked = KeyRecord {
            revoked_from_ms: Some(T + 50),
            ..base.clone()
        };
        let rotated_then_revoked = KeyRecord {
            revoked_from_ms: Some(T + 50),
            ..rotated.clone()
        };
        let expiring = KeyRecord {
            valid_until_ms: Some(T + 100),
            ..base.clone()
        };
        let cases = [
            (
                "before valid_from",
                &base,
                T - 1,
                KeyVerdict::NotYetValid { valid_from_ms: T },
            ),
            ("at valid_from", &base, T, KeyVerdict::Valid),
            ("open ended", &base, u64::MAX, KeyVerdict::Valid),
            ("rotated, old signature", &rotated, T + 99, rotated_ok(next)),
            (
                "rotated, after rotation",
                &rotated,
                T + 100,
                expired(T + 100),
            ),
            (
                "revoked, before",
                &revoked,
                T + 49,
                before_revocation(T + 50),
            ),
            ("revoked, at", &revoked, T + 50, revoked_at(T + 50)),
            ("revoked, after", &revoked, T + 51, revoked_at(T + 50)),
            (
                "rotated and revoked, before",
                &rotated_then_revoked,
                T + 49,
                before_revocation(T + 50),
            ),
            (
                "rotated and revoked, after both",
                &rotated_then_revoked,
                T + 100,
                revoked_at(T + 50),
            ),
            ("expiring, last ms", &expiring, T + 99, KeyVerdict::Valid),
            ("expiring, at end", &expiring, T + 100, expired(T + 100)),
        ];
        for (case, key, signed_at_ms, expected) in cases {
            assert_eq!(judge(key, signed_at_ms), expected, "{case}");
        }
    }

    fn rotated_ok(replaced_by: KeyId) -> KeyVerdict {
        KeyVerdict::ValidRotated { replaced_by }
    }

    fn expired(valid_until_ms: u64) -> KeyVerdict {
        KeyVerdict::Expired { valid_until_ms }
    }

    fn before_revocation(revoked_from_ms: u64) -> KeyVerdict {
        KeyVerdict::SignedBeforeRevocation { revoked_from_ms }
    }

    fn revoked_at(revoked_from_ms: u64) -> KeyVerdict {
        KeyVerdict::RevokedAtSigning { revoked_from_ms }
    }

    #[test]
    fn accepting_verdicts() {
        let id = successor();
        let cases = [
            (KeyVerdict::Valid, true),
            (rotated_ok(id), true),
            (before_revocation(1), true),
            (revoked_at(1), false),
            (KeyVerdict::NotYetValid { valid_from_ms: 1 }, false),
            (expired(1), false),
        ];
        for (verdict, accepts) in cases {
            assert_eq!(verdict.accepts(), accepts, "{verdict}");
        }
    }

    #[test]
    fn rotated_key_still_verifies_old_seals_and_revoked_key_rejects_new_ones() {
        let key = SecretKey::from_seed(Suite::Sm2Sm3, &[23; 32]).unwrap();
        let mut record = KeyRecord::new("11310000002420436Y", key.public_key(), T);
        let sealed_at = |signed_at_ms: u64| {
            let payload = SealedPayload::for_key(
                &key.public_key(),
                &record.authority,
                signed_at_ms,
                [1; 32],
                vec![],
            );
            let seal = seal(&key, &payload).unwrap();
            (payload, seal)
        };
        let (old_payload, old_seal) = sealed_at(T + 10);
        let (new_payload, new_seal) = sealed_at(T + 500);
        record.valid_until_ms = Some(T + 100);
        record.replaced_by = Some(successor());
        let verdict = verify_with_record(&record, &old_payload, &old_seal);
        assert_eq!(verdict, Ok(rotated_ok(successor())));
        let error = verify_with_record(&record, &new_payload, &new_seal).unwrap_err();
        assert_eq!(error.field(), "key_id");
        record.revoked_from_ms = Some(T + 20);
        let verdict = verify_with_record(&record, &old_payload, &old_seal);
        assert_eq!(verdict, Ok(before_revocation(T + 20)));
        let mut other = old_payload.clone();
        other.authority = "913100000000000000".into();
        let error = verify_with_record(&record, &other, &old_seal).unwrap_err();
        assert_eq!(error.field(), "payload.authority");
    }

    #[test]
    fn inconsistent_records_are_invalid() {
        let base = record();
        let cases = [
            (
                "key_record.authority",
                KeyRecord {
                    authority: String::new(),
                    ..base.clone()
                },
            ),
            (
                "key_record.key_id",
                KeyRecord {
                    key_id: successor(),
                    ..base.clone()
                },
            ),
            (
                "key_record.valid_until_ms",
                KeyRecord {
                    valid_until_ms: Some(T),
                    ..base.clone()
                },
            ),
            (
                "key_record.replaced_by",
                KeyRecord {
                    replaced_by: Some(base.key_id),
                    ..base.clone()
                },
            ),
        ];
        assert_eq!(base.validate(), Ok(()));
        for (field, record) in cases {
            assert_eq!(record.validate().unwrap_err().field(), field);
        }
    }
}
