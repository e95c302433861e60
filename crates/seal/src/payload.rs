//! The signed payload of a license seal, and the seal itself.
//!
//! # Payload format, versions 1 and 2
//!
//! All integers are little-endian; strings are a `u32` byte length then UTF-8 (see `codec`).
//!
//! | # | field             | encoding                                                     |
//! |---|-------------------|--------------------------------------------------------------|
//! | 0 | domain            | string [`PAYLOAD_DOMAIN`]                                    |
//! | 1 | format version    | `u8`: 1, or 2 = [`PAYLOAD_VERSION`]                          |
//! | 2 | suite             | `u8` suite tag                                               |
//! | 3 | key_id            | 16 raw bytes                                                 |
//! | 4 | authority         | string, 1 to 128 bytes, no control characters                |
//! | 5 | signed_at_ms      | `u64`, ms since the Unix epoch                               |
//! | 6 | content_digest    | 32 raw bytes: version 1, the record's issued digest; version |
//! |   |                   | 2, that digest salted ([`salted_digest`])                    |
//! | 7 | field_commitments | `u32` count (at most 1024), then per field: name string,     |
//! |   |                   | 32-byte commitment; names strictly ascending                 |
//!
//! Version 2 exists for selective disclosure: a verifier shown the payload of a version 1
//! seal could confirm a guess of every hidden field against the plain issued digest. The salt
//! of a version 2 digest stays in the bundle, with the holder and the store, like the salts
//! of the field commitments. Version 1 seals still decode and verify.
//!
//! The signature covers exactly these bytes. Naming the suite and key inside the signed bytes
//! stops a signature from being presented under another key or suite, and the domain string
//! keeps it from being mistaken for a status list or trust list signature.
//! [`SealedPayload::from_bytes`] accepts only what [`SealedPayload::to_bytes`] produces and
//! never panics.
//!
//! # Seal format
//!
//! `u8` suite tag, 16-byte key id, `u16` signature length, signature bytes.

use crate::codec::{check_label, Reader, Writer};
use crate::disclosure::{FieldCommitment, FIELD_COUNT_MAX, FIELD_NAME_LEN_MAX, SALT_LEN};
use crate::error::SealError;
use crate::key_id::KeyId;
use crate::suite::{PublicKey, SecretKey, Signature, Suite};

/// Domain string that opens every payload.
pub const PAYLOAD_DOMAIN: &str = "licstore sealed license payload";

/// Payload format version of new seals.
pub const PAYLOAD_VERSION: u8 = 2;

/// Every payload format version that decodes.
pub const PAYLOAD_VERSIONS: [u8; 2] = [1, PAYLOAD_VERSION];

/// Longest authority (issuer code) accepted, in bytes.
pub const AUTHORITY_LEN_MAX: usize = 128;

/// Everything a license seal signs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedPayload {
    /// Format version, one of [`PAYLOAD_VERSIONS`]; it says what `content_digest` is.
    pub version: u8,
    /// Suite of the sealing key.
    pub suite: Suite,
    /// Id of the sealing key.
    pub key_id: KeyId,
    /// Issuing authority's code, e.g. its unified social credit code.
    pub authority: String,
    /// When the seal was made, in ms since the Unix epoch, as asserted by the signer.
    pub signed_at_ms: u64,
    /// The license's issued digest (version 1) or that digest salted (version 2).
    pub content_digest: [u8; 32],
    /// Commitments to the face fields, strictly ascending by name.
    pub field_commitments: Vec<FieldCommitment>,
}

impl SealedPayload {
    /// A payload of the current version for `public_key`, taking suite and key id from it.
    pub fn for_key(
        public_key: &PublicKey,
        authority: impl Into<String>,
        signed_at_ms: u64,
        content_digest: [u8; 32],
        field_commitments: Vec<FieldCommitment>,
    ) -> SealedPayload {
        SealedPayload {
            version: PAYLOAD_VERSION,
            suite: public_key.suite(),
            key_id: public_key.key_id(),
            authority: authority.into(),
            signed_at_ms,
            content_digest,
            field_commitments,
        }
    }

    /// Checks the limits and ordering the encoding relies on.
    pub fn validate(&self) -> Result<(), SealError> {
        if !PAYLOAD_VERSIONS.contains(&self.version) {
            let reason = format!("unknown version {}", self.version);
            return Err(SealError::invalid_field("format_version", reason));
        }
        check_label("authority", &self.authority, AUTHORITY_LEN_MAX)?;
        if self.field_commitments.len() > FIELD_COUNT_MAX {
            let reason = format!("more than {FIELD_COUNT_MAX} entries");
            return Err(SealError::invalid_field("field_commitments", reason));
        }
        for commitment in &self.field_commitments {
            check_label(
                "field_commitments.name",
                &commitment.name,
                FIELD_NAME_LEN_MAX,
            )?;
        }
        let ascending = self
            .field_commitments
            .windows(2)
            .all(|w| w[0].name < w[1].name);
        if !ascending {
            let reason = "names are not strictly ascending";
            return Err(SealError::invalid_field("field_commitments", reason));
        }
        Ok(())
    }

    /// The signed bytes described in the module header. Call [`SealedPayload::validate`]
    /// first; [`seal`] and [`verify_seal`] do.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(PAYLOAD_DOMAIN, self.version);
        w.u8(self.suite.tag());
        w.raw(self.key_id.as_bytes());
        w.string(&self.authority);
        w.u64(self.signed_at_ms);
        w.raw(&self.content_digest);
        w.u32(u32::try_from(self.field_commitments.len()).unwrap_or(u32::MAX));
        for commitment in &self.field_commitments {
            w.string(&commitment.name);
            w.raw(&commitment.commitment);
        }
        w.0
    }

    /// Decodes bytes produced by [`SealedPayload::to_bytes`]; anything else is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<SealedPayload, SealError> {
        let mut r = Reader::new(bytes);
        let version = r.header_of(PAYLOAD_DOMAIN, &PAYLOAD_VERSIONS)?;
        let payload = SealedPayload {
            version,
            suite: read_suite(&mut r, "suite")?,
            key_id: KeyId::from_bytes(r.array("key_id")?),
            authority: r.string("authority", AUTHORITY_LEN_MAX)?,
            signed_at_ms: r.u64("signed_at_ms")?,
            content_digest: r.array("content_digest")?,
            field_commitments: read_commitments(&mut r)?,
        };
        r.finish("payload")?;
        payload.validate().map_err(SealError::into_decode)?;
        Ok(payload)
    }
}

/// The version 2 `content_digest`: BLAKE3 (derive-key mode) over the salt, then the issued
/// digest. Without the salt, the digest confirms no guess of the record's content.
pub fn salted_digest(salt: &[u8; SALT_LEN], issued_digest: &[u8; 32]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key(SALTED_DIGEST_CONTEXT);
    hasher.update(salt);
    hasher.update(issued_digest);
    *hasher.finalize().as_bytes()
}

/// Key-derivation context of [`salted_digest`].
const SALTED_DIGEST_CONTEXT: &str = "licstore seal salted issued digest v2";

fn read_commitments(r: &mut Reader<'_>) -> Result<Vec<FieldCommitment>, SealError> {
    let count = r.u32("field_commitments")?;
    if usize::try_from(count).map_or(true, |count| count > FIELD_COUNT_MAX) {
        return Err(r.error("field_commitments", format!("count {count} too large")));
    }
    let mut commitments = Vec::new();
    for _ in 0..count {
        commitments.push(FieldCommitment {
            name: r.string("field_commitments.name", FIELD_NAME_LEN_MAX)?,
            commitment: r.array("field_commitments.commitment")?,
        });
    }
    Ok(commitments)
}

pub(crate) fn read_suite(r: &mut Reader<'_>, field: &str) -> Result<Suite, SealError> {
    let tag = r.u8(field)?;
    Suite::from_tag(tag).ok_or_else(|| r.error(field, format!("unknown suite tag {tag}")))
}

/// A signature together with the suite and key that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    /// Suite of the signing key.
    pub suite: Suite,
    /// Id of the signing key.
    pub key_id: KeyId,
    /// The signature over the document's signed bytes.
    pub signature: Signature,
}

impl Seal {
    /// The seal format described in the module header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.write(&mut w);
        w.0
    }

    /// Decodes a seal produced by [`Seal::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Seal, SealError> {
        let mut r = Reader::new(bytes);
        let seal = Seal::read(&mut r)?;
        r.finish("seal")?;
        Ok(seal)
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.u8(self.suite.tag());
        w.raw(self.key_id.as_bytes());
        let signature = self.signature.as_bytes();
        w.u16(u16::try_from(signature.len()).unwrap_or(u16::MAX));
        w.raw(signature);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Seal, SealError> {
        let suite = read_suite(r, "seal.suite")?;
        let key_id = KeyId::from_bytes(r.array("seal.key_id")?);
        let length = r.u16("seal.signature")?;
        let signature = r.take(usize::from(length), "seal.signature")?;
        Ok(Seal {
            suite,
            key_id,
            signature: Signature::from_bytes(signature.to_vec()),
        })
    }

    /// Signs `message` (already bound to the key's suite and id) with `secret_key`.
    pub(crate) fn sign(secret_key: &SecretKey, message: &[u8]) -> Result<Seal, SealError> {
        Ok(Seal {
            suite: secret_key.suite(),
            key_id: secret_key.key_id(),
            signature: secret_key.sign(message)?,
        })
    }

    /// Checks that this seal names `public_key`, then the signature over `message`.
    pub(crate) fn verify(&self, public_key: &PublicKey, message: &[u8]) -> Result<(), SealError> {
        check_names_key(public_key, "seal", self.suite, self.key_id)?;
        public_key.verify(message, &self.signature)
    }
}

/// Fails unless `suite` and `key_id` (found under `field`) are those of `public_key`.
pub(crate) fn check_names_key(
    public_key: &PublicKey,
    field: &str,
    suite: Suite,
    key_id: KeyId,
) -> Result<(), SealError> {
    if suite != public_key.suite() {
        return Err(SealError::SuiteMismatch {
            field: format!("{field}.suite"),
            expected: public_key.suite(),
            found: suite,
        });
    }
    if key_id != public_key.key_id() {
        return Err(SealError::KeyIdMismatch {
            field: format!("{field}.key_id"),
            expected: public_key.key_id(),
            found: key_id,
        });
    }
    Ok(())
}

/// Seals `payload` with `secret_key`, which must be the key the payload names.
pub fn seal(secret_key: &SecretKey, payload: &SealedPayload) -> Result<Seal, SealError> {
    payload.validate()?;
    check_names_key(
        &secret_key.public_key(),
        "payload",
        payload.suite,
        payload.key_id,
    )?;
    Seal::sign(secret_key, &payload.to_bytes())
}

/// Verifies that `seal` over `payload` was made by `public_key`.
///
/// The payload and the seal must both name the key's suite and id, and the signature must
/// verify over the payload bytes. Whether the key was valid at `payload.signed_at_ms` is a
/// separate question: see [`crate::judge`].
pub fn verify_seal(
    public_key: &PublicKey,
    payload: &SealedPayload,
    seal: &Seal,
) -> Result<(), SealError> {
    payload.validate()?;
    check_names_key(public_key, "payload", payload.suite, payload.key_id)?;
    seal.verify(public_key, &payload.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disclosure::commit_field;
    use proptest::collection::vec;
    use proptest::prelude::{any, proptest};

    fn keys() -> [SecretKey; 2] {
        [
            SecretKey::from_seed(Suite::Ed25519, &[11; 32]).unwrap(),
            SecretKey::sm2_from_seed(&[12; 32], "31000000-seal").unwrap(),
        ]
    }

    fn payload(key: &SecretKey) -> SealedPayload {
        let commitments = [("name", "张三"), ("sex", "男")]
            .map(|(name, value)| FieldCommitment {
                name: name.into(),
                commitment: commit_field(name, value, &[1; 16]),
            })
            .to_vec();
        SealedPayload::for_key(
            &key.public_key(),
            "11310000002420436Y",
            1_735_689_600_000,
            [0x5a; 32],
            commitments,
        )
    }

    #[test]
    fn both_suites_seal_and_verify() {
        for key in keys() {
            let payload = payload(&key);
            let seal = seal(&key, &payload).unwrap();
            assert_eq!((seal.suite, seal.key_id), (key.suite(), key.key_id()));
            assert_eq!(verify_seal(&key.public_key(), &payload, &seal), Ok(()));
            assert_eq!(SealedPayload::from_bytes(&payload.to_bytes()), Ok(payload));
            assert_eq!(Seal::from_bytes(&seal.to_bytes()), Ok(seal));
        }
    }

    /// Every bit of every payload byte is covered: the flipped bytes either fail to decode or
    /// decode to a payload whose seal no longer verifies, and the raw signature fails too.
    #[test]
    fn a_flipped_bit_anywhere_in_the_payload_fails() {
        for key in keys() {
            let public = key.public_key();
            let payload = payload(&key);
            let seal = seal(&key, &payload).unwrap();
            let bytes = payload.to_bytes();
            for position in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[position / 8] ^= 1 << (position % 8);
                assert!(
                    public.verify(&flipped, &seal.signature).is_err(),
                    "bit {position}"
                );
                if let Ok(decoded) = SealedPayload::from_bytes(&flipped) {
                    assert!(
                        verify_seal(&public, &decoded, &seal).is_err(),
                        "bit {position}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_flipped_bit_in_the_signature_or_key_id_fails() {
        for key in keys() {
            let public = key.public_key();
            let payload = payload(&key);
            let good = seal(&key, &payload).unwrap();
            for position in 0..good.signature.as_bytes().len() * 8 {
                let mut signature = good.signature.as_bytes().to_vec();
                signature[position / 8] ^= 1 << (position % 8);
                let bad = Seal {
                    signature: Signature::from_bytes(signature),
                    ..good.clone()
                };
                assert!(
                    verify_seal(&public, &payload, &bad).is_err(),
                    "bit {position}"
                );
            }
            for position in 0..good.key_id.as_bytes().len() * 8 {
                let mut id = *good.key_id.as_bytes();
                id[position / 8] ^= 1 << (position % 8);
                let bad = Seal {
                    key_id: KeyId::from_bytes(id),
                    ..good.clone()
                };
                let error = verify_seal(&public, &payload, &bad).unwrap_err();
                assert_eq!(error.field(), "seal.key_id", "bit {position}");
            }
        }
    }

    #[test]
    fn mismatched_keys_and_suites_are_named() {
        let [ed, sm2] = keys();
        let payload = payload(&ed);
        let seal_ed = seal(&ed, &payload).unwrap();
        let other_ed = SecretKey::from_seed(Suite::Ed25519, &[13; 32]).unwrap();
        let cases = [
            (seal(&sm2, &payload).unwrap_err(), "payload.suite"),
            (seal(&other_ed, &payload).unwrap_err(), "payload.key_id"),
            (
                verify_seal(&sm2.public_key(), &payload, &seal_ed).unwrap_err(),
                "payload.suite",
            ),
            (
                verify_seal(&other_ed.public_key(), &payload, &seal_ed).unwrap_err(),
                "payload.key_id",
            ),
        ];
        for (error, field) in cases {
            assert_eq!(error.field(), field, "{error}");
        }
    }

    #[test]
    fn invalid_payloads_are_refused() {
        let key = &keys()[0];
        let mut empty_authority = payload(key);
        empty_authority.authority.clear();
        let mut unsorted = payload(key);
        unsorted.field_commitments.reverse();
        let mut duplicate = payload(key);
        duplicate.field_commitments[1].name = "name".into();
        let cases = [
            (empty_authority, "authority"),
            (unsorted, "field_commitments"),
            (duplicate, "field_commitments"),
        ];
        for (payload, field) in cases {
            assert_eq!(seal(key, &payload).unwrap_err().field(), field);
            assert_eq!(
                SealedPayload::from_bytes(&payload.to_bytes())
                    .unwrap_err()
                    .field(),
                field
            );
        }
    }

    #[test]
    fn truncations_and_trailing_bytes_are_errors() {
        let key = &keys()[1];
        let payload_bytes = payload(key).to_bytes();
        let seal_bytes = seal(key, &payload(key)).unwrap().to_bytes();
        for length in 0..payload_bytes.len() {
            assert!(SealedPayload::from_bytes(&payload_bytes[..length]).is_err());
        }
        for length in 0..seal_bytes.len() {
            assert!(Seal::from_bytes(&seal_bytes[..length]).is_err());
        }
        let mut longer = payload_bytes;
        longer.push(0);
        assert_eq!(
            SealedPayload::from_bytes(&longer).unwrap_err().field(),
            "payload"
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in vec(any::<u8>(), 0..256)) {
            let _ = SealedPayload::from_bytes(&bytes);
            let _ = Seal::from_bytes(&bytes);
            let _ = PublicKey::from_bytes(&bytes);
        }

        #[test]
        fn decoded_garbage_never_verifies(bytes in vec(any::<u8>(), 0..256)) {
            let key = &keys()[0];
            let good = seal(key, &payload(key)).unwrap();
            if let Ok(decoded) = SealedPayload::from_bytes(&bytes) {
                proptest::prop_assert!(verify_seal(&key.public_key(), &decoded, &good).is_err());
            }
        }
    }
}
