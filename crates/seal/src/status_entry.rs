//! A signed status entry: the authority's word that a license's status bits are at a given
//! position of a given status list.
//!
//! A status list tells a verifier the bit at each position; the entry ties one position to
//! one license, by the license's issued digest, so a holder cannot point a verifier at another
//! license's (clear) bit. Entries are made when a position is known, after the license is
//! stored, so they are separate from the license seal.
//!
//! The entry names the plain issued digest, which a verifier computes from the whole record
//! of an export. It is not for presentations: a version 2 seal payload carries the digest
//! salted, and an entry shown beside a presentation would hand back the plain digest that
//! the salt hides.
//!
//! # Signed bytes, version 1
//!
//! Domain string [`STATUS_ENTRY_DOMAIN`], `u8` version 1, `u8` suite tag, 16-byte key id,
//! then the claim: authority string, license type string, 32-byte issued digest, `u32` list,
//! `u32` position, `u64` signing time (ms since the Unix epoch), by which the key's lifecycle
//! judges the entry as it judges a seal.
//!
//! # Published bytes, version 1
//!
//! Domain string [`SIGNED_STATUS_ENTRY_DOMAIN`], `u8` version 1, the seal, then the claim as
//! above.

use crate::codec::{check_label, Reader, Writer};
use crate::error::SealError;
use crate::key_id::KeyId;
use crate::payload::{Seal, AUTHORITY_LEN_MAX};
use crate::suite::{PublicKey, SecretKey, Suite};

/// Domain string of the signed bytes.
pub const STATUS_ENTRY_DOMAIN: &str = "licstore status entry";

/// Domain string of the published bytes.
pub const SIGNED_STATUS_ENTRY_DOMAIN: &str = "licstore signed status entry";

const VERSION: u8 = 1;
const LICENSE_TYPE_LEN_MAX: usize = 128;

/// Where one license's bits are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntryClaim {
    /// Code of the issuing authority (whose lists these are).
    pub authority: String,
    /// License type code.
    pub license_type: String,
    /// The license's plain issued digest (`licstore_model::issued_digest`).
    pub issued_digest: [u8; 32],
    /// List number within (authority, license type).
    pub list: u32,
    /// Position within the list.
    pub position: u32,
    /// When the entry was signed, ms since the Unix epoch, as the signer states.
    pub signed_at_ms: u64,
}

impl StatusEntryClaim {
    fn validate(&self) -> Result<(), SealError> {
        check_label("status_entry.authority", &self.authority, AUTHORITY_LEN_MAX)?;
        check_label(
            "status_entry.license_type",
            &self.license_type,
            LICENSE_TYPE_LEN_MAX,
        )
    }

    fn write(&self, w: &mut Writer) {
        w.string(&self.authority);
        w.string(&self.license_type);
        w.raw(&self.issued_digest);
        w.u32(self.list);
        w.u32(self.position);
        w.u64(self.signed_at_ms);
    }

    fn signed_bytes(&self, suite: Suite, key_id: KeyId) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(STATUS_ENTRY_DOMAIN, VERSION);
        w.u8(suite.tag());
        w.raw(key_id.as_bytes());
        self.write(&mut w);
        w.0
    }
}

/// A claim with the authority's seal over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedStatusEntry {
    /// What is claimed.
    pub claim: StatusEntryClaim,
    /// The authority's seal over the claim's signed bytes.
    pub seal: Seal,
}

/// Seals a claim with the authority's key.
pub fn sign_status_entry(
    secret_key: &SecretKey,
    claim: StatusEntryClaim,
) -> Result<SignedStatusEntry, SealError> {
    claim.validate()?;
    let message = claim.signed_bytes(secret_key.suite(), secret_key.key_id());
    let seal = Seal::sign(secret_key, &message)?;
    Ok(SignedStatusEntry { claim, seal })
}

impl SignedStatusEntry {
    /// The published bytes (see the module header).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(SIGNED_STATUS_ENTRY_DOMAIN, VERSION);
        self.seal.write(&mut w);
        self.claim.write(&mut w);
        w.0
    }

    /// Decodes published bytes without checking the seal; see [`SignedStatusEntry::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedStatusEntry, SealError> {
        let mut r = Reader::new(bytes);
        r.header(SIGNED_STATUS_ENTRY_DOMAIN, VERSION)?;
        let seal = Seal::read(&mut r)?;
        let claim = StatusEntryClaim {
            authority: r.string("status_entry.authority", AUTHORITY_LEN_MAX)?,
            license_type: r.string("status_entry.license_type", LICENSE_TYPE_LEN_MAX)?,
            issued_digest: r.array("status_entry.issued_digest")?,
            list: r.u32("status_entry.list")?,
            position: r.u32("status_entry.position")?,
            signed_at_ms: r.u64("status_entry.signed_at_ms")?,
        };
        r.finish("status_entry")?;
        claim.validate().map_err(SealError::into_decode)?;
        Ok(SignedStatusEntry { claim, seal })
    }

    /// Checks that the seal names `public_key` and verifies over the claim.
    pub fn verify(&self, public_key: &PublicKey) -> Result<(), SealError> {
        let message = self.claim.signed_bytes(self.seal.suite, self.seal.key_id);
        self.seal.verify(public_key, &message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> StatusEntryClaim {
        StatusEntryClaim {
            authority: "11310000002420436Y".into(),
            license_type: "11100000000001011X001".into(),
            issued_digest: [5; 32],
            list: 0,
            position: 90_210,
            signed_at_ms: 1_735_689_600_000,
        }
    }

    #[test]
    fn entries_round_trip_and_verify_for_both_suites() {
        for suite in [Suite::Ed25519, Suite::Sm2Sm3] {
            let key = SecretKey::from_seed(suite, &[31; 32]).unwrap();
            let signed = sign_status_entry(&key, claim()).unwrap();
            let decoded = SignedStatusEntry::from_bytes(&signed.to_bytes()).unwrap();
            assert_eq!(decoded, signed);
            decoded.verify(&key.public_key()).unwrap();
        }
    }

    #[test]
    fn a_changed_claim_or_another_key_fails() {
        let key = SecretKey::from_seed(Suite::Ed25519, &[31; 32]).unwrap();
        let other = SecretKey::from_seed(Suite::Ed25519, &[32; 32]).unwrap();
        let signed = sign_status_entry(&key, claim()).unwrap();
        let mut moved = signed.clone();
        moved.claim.position += 1;
        let mut relisted = signed.clone();
        relisted.claim.list = 1;
        let mut other_license = signed.clone();
        other_license.claim.issued_digest[0] ^= 1;
        for (case, entry) in [
            ("position", moved),
            ("list", relisted),
            ("digest", other_license),
        ] {
            assert!(entry.verify(&key.public_key()).is_err(), "{case}");
        }
        assert!(signed.verify(&other.public_key()).is_err());
        let bytes = signed.to_bytes();
        for length in 0..bytes.len() {
            assert!(
                SignedStatusEntry::from_bytes(&bytes[..length]).is_err(),
                "{length}"
            );
        }
    }
}
