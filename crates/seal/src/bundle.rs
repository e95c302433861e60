//! What a sealed license record carries: the signed payload, the seal over it and the salts
//! of the field commitments.
//!
//! # Format, versions 1 and 2
//!
//! | # | field       | encoding                                                         |
//! |---|-------------|------------------------------------------------------------------|
//! | 0 | domain      | string [`BUNDLE_DOMAIN`], then `u8` version (1, or 2 =           |
//! |   |             | [`BUNDLE_VERSION`]), the same as the payload's                   |
//! | 1 | payload     | `u32` length, then [`SealedPayload::to_bytes`]                   |
//! | 2 | seal        | [`Seal`] format (suite tag, key id, `u16` length, signature)     |
//! | 3 | salts       | `u32` count, then one 16-byte salt per field commitment, in order |
//! | 4 | digest salt | version 2 only: the 16-byte salt of the payload's digest         |
//!
//! The salts are what keeps a field's value out of reach of whoever sees only its commitment,
//! and the digest salt does the same for the whole record's digest (see `payload`), so a
//! bundle belongs to the holder and the store; a verifier is shown the payload and the seal,
//! and the salts of the fields the holder chose to reveal.
//!
//! [`SealBundle::for_license`] makes a bundle from the issued digest and the disclosable
//! fields of a license; [`SealBundle::check_against`] is what a store runs before keeping a
//! bundle with a record: the signature verifies under the key, the payload names the
//! record's authority and issued digest, and every commitment opens to the record's field of
//! that name with the stored salt, with no field missing and none extra.

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};

use crate::codec::{Reader, Writer};
use crate::disclosure::{commit_field, commit_fields, Disclosure, FIELD_COUNT_MAX, SALT_LEN};
use crate::error::SealError;
use crate::payload::{salted_digest, seal, verify_seal, Seal, SealedPayload, PAYLOAD_VERSIONS};
use crate::suite::{PublicKey, SecretKey};

/// Domain string that opens every bundle.
pub const BUNDLE_DOMAIN: &str = "licstore seal bundle";

/// Bundle format version of new seals; a bundle's version is its payload's.
pub const BUNDLE_VERSION: u8 = crate::payload::PAYLOAD_VERSION;

/// Longest payload accepted in a bundle, in bytes.
const PAYLOAD_BYTES_MAX: usize = 48 * 1024;

/// A license's seal with everything needed to check it and to open its commitments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealBundle {
    /// What was signed.
    pub payload: SealedPayload,
    /// The signature over the payload.
    pub seal: Seal,
    /// One salt per entry of `payload.field_commitments`, in the same order.
    pub salts: Vec<[u8; SALT_LEN]>,
    /// The salt of the payload's digest: present exactly when the payload is version 2.
    pub digest_salt: Option<[u8; SALT_LEN]>,
}

impl SealBundle {
    /// Seals a license: commits to each of `fields` with a fresh salt from `rng` and signs the
    /// payload naming `authority`, `signed_at_ms` and the license's `issued_digest`, salted
    /// with another fresh salt.
    pub fn for_license<R: RngCore + CryptoRng>(
        secret_key: &SecretKey,
        authority: &str,
        signed_at_ms: u64,
        issued_digest: [u8; 32],
        fields: &BTreeMap<String, String>,
        rng: &mut R,
    ) -> Result<SealBundle, SealError> {
        let (commitments, disclosures) = commit_fields(fields, rng)?;
        let mut digest_salt = [0u8; SALT_LEN];
        rng.fill_bytes(&mut digest_salt);
        let payload = SealedPayload::for_key(
            &secret_key.public_key(),
            authority,
            signed_at_ms,
            salted_digest(&digest_salt, &issued_digest),
            commitments,
        );
        let seal = seal(secret_key, &payload)?;
        let salts = disclosures.iter().map(|d| d.salt).collect();
        Ok(SealBundle {
            payload,
            seal,
            salts,
            digest_salt: Some(digest_salt),
        })
    }

    /// Checks the bundle against a record's authority, issued digest and fields, and the
    /// signature under `public_key`. Errors name the part that does not match.
    pub fn check_against(
        &self,
        public_key: &PublicKey,
        authority: &str,
        issued_digest: &[u8; 32],
        fields: &BTreeMap<String, String>,
    ) -> Result<(), SealError> {
        self.check_content(authority, issued_digest, fields)?;
        verify_seal(public_key, &self.payload, &self.seal)
    }

    /// [`SealBundle::check_against`] without the signature: the part that needs no key, cheap
    /// enough to run on every replica.
    pub fn check_content(
        &self,
        authority: &str,
        issued_digest: &[u8; 32],
        fields: &BTreeMap<String, String>,
    ) -> Result<(), SealError> {
        if self.payload.authority != authority {
            let reason = format!(
                "names {:?}, the record's issuer is {authority:?}",
                self.payload.authority
            );
            return Err(SealError::invalid_field("seal.authority", reason));
        }
        let expected = match (self.payload.version, &self.digest_salt) {
            (1, None) => *issued_digest,
            (2, Some(salt)) => salted_digest(salt, issued_digest),
            (version, _) => {
                let reason = format!("a version {version} payload with the wrong digest salt");
                return Err(SealError::invalid_field("seal.digest_salt", reason));
            }
        };
        let digest_matches =
            blake3::Hash::from(self.payload.content_digest) == blake3::Hash::from(expected);
        if !digest_matches {
            let reason = "is not the issued digest of this record";
            return Err(SealError::invalid_field("seal.content_digest", reason));
        }
        self.check_fields(fields)
    }

    fn check_fields(&self, fields: &BTreeMap<String, String>) -> Result<(), SealError> {
        let commitments = &self.payload.field_commitments;
        if self.salts.len() != commitments.len() {
            let reason = format!(
                "{} salts for {} commitments",
                self.salts.len(),
                commitments.len()
            );
            return Err(SealError::invalid_field("seal.salts", reason));
        }
        if commitments.len() != fields.len() {
            let reason = format!(
                "{} commitments for {} fields",
                commitments.len(),
                fields.len()
            );
            return Err(SealError::invalid_field("seal.field_commitments", reason));
        }
        for ((commitment, salt), (name, value)) in commitments.iter().zip(&self.salts).zip(fields) {
            if commitment.name != *name {
                let reason = format!("has {:?} where the record has {name:?}", commitment.name);
                return Err(SealError::invalid_field("seal.field_commitments", reason));
            }
            let opened = commit_field(name, value, salt);
            if blake3::Hash::from(opened) != blake3::Hash::from(commitment.commitment) {
                return Err(SealError::Disclosure {
                    name: name.clone(),
                    reason: "the record's value does not open the sealed commitment".into(),
                });
            }
        }
        Ok(())
    }

    /// What the holder shows to reveal the named fields of `fields` (the record's disclosable
    /// fields); a name without a commitment is an error naming it.
    pub fn disclose(
        &self,
        fields: &BTreeMap<String, String>,
        names: &[&str],
    ) -> Result<Vec<Disclosure>, SealError> {
        let commitments = &self.payload.field_commitments;
        names
            .iter()
            .map(|name| {
                let missing = || SealError::Disclosure {
                    name: (*name).to_owned(),
                    reason: "the record has no sealed field of this name".into(),
                };
                let index = commitments
                    .binary_search_by(|c| c.name.as_str().cmp(name))
                    .map_err(|_| missing())?;
                let value = fields.get(*name).ok_or_else(missing)?;
                let salt = *self.salts.get(index).ok_or_else(missing)?;
                Ok(Disclosure {
                    name: (*name).to_owned(),
                    value: value.clone(),
                    salt,
                })
            })
            .collect()
    }

    /// The format described in the module header, of the payload's version.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(BUNDLE_DOMAIN, self.payload.version);
        w.bytes(&self.payload.to_bytes());
        self.seal.write(&mut w);
        w.u32(u32::try_from(self.salts.len()).unwrap_or(u32::MAX));
        for salt in &self.salts {
            w.raw(salt);
        }
        // The payload's version decides, so the bytes of a version 1 or 2 payload decode; a
        // struct that breaks the pairing (a salt without version 2, or none with it) fails its
        // check instead.
        if self.payload.version >= 2 {
            w.raw(&self.digest_salt.unwrap_or_default());
        }
        w.0
    }

    /// Decodes bytes produced by [`SealBundle::to_bytes`]; anything else is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<SealBundle, SealError> {
        let mut r = Reader::new(bytes);
        let version = r.header_of(BUNDLE_DOMAIN, &PAYLOAD_VERSIONS)?;
        let payload = SealedPayload::from_bytes(r.bytes("bundle.payload", PAYLOAD_BYTES_MAX)?)?;
        if payload.version != version {
            let reason = format!("version {} in a version {version} bundle", payload.version);
            return Err(r.error("bundle.payload", reason));
        }
        let seal = Seal::read(&mut r)?;
        let count = r.u32("bundle.salts")?;
        let expected = payload.field_commitments.len();
        if usize::try_from(count).map_or(true, |c| c != expected || c > FIELD_COUNT_MAX) {
            let reason = format!("{count} salts for {expected} commitments");
            return Err(r.error("bundle.salts", reason));
        }
        let mut salts = Vec::with_capacity(expected);
        for _ in 0..count {
            salts.push(r.array("bundle.salts")?);
        }
        let digest_salt = match version {
            1 => None,
            _ => Some(r.array("bundle.digest_salt")?),
        };
        r.finish("bundle")?;
        if seal.suite != payload.suite || seal.key_id != payload.key_id {
            let reason = "names another key than the payload";
            return Err(SealError::Decode {
                field: "bundle.seal".into(),
                reason: reason.into(),
            });
        }
        Ok(SealBundle {
            payload,
            seal,
            salts,
            digest_salt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disclosure::check_disclosure;
    use crate::suite::Suite;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn fields() -> BTreeMap<String, String> {
        [
            ("@holder.id", "11010519491231002X"),
            ("name", "张三"),
            ("sex", "男"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    }

    fn bundles() -> Vec<(SecretKey, SealBundle)> {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let keys = [
            SecretKey::from_seed(Suite::Ed25519, &[3; 32]).unwrap(),
            SecretKey::sm2_from_seed(&[4; 32], "31000000-seal").unwrap(),
        ];
        keys.into_iter()
            .map(|key| {
                let bundle =
                    SealBundle::for_license(&key, "AUTH", 1_000, [9; 32], &fields(), &mut rng)
                        .unwrap();
                (key, bundle)
            })
            .collect()
    }

    #[test]
    fn bundles_roundtrip_and_check() {
        for (key, bundle) in bundles() {
            let bytes = bundle.to_bytes();
            assert_eq!(SealBundle::from_bytes(&bytes), Ok(bundle.clone()));
            let public = key.public_key();
            bundle
                .check_against(&public, "AUTH", &[9; 32], &fields())
                .unwrap();
            for length in 0..bytes.len() {
                assert!(SealBundle::from_bytes(&bytes[..length]).is_err());
            }
        }
    }

    #[test]
    fn mismatches_are_named() {
        type Case = (
            &'static str,
            fn(&mut BTreeMap<String, String>),
            &'static str,
        );
        let cases: [Case; 3] = [
            (
                "changed value",
                |f| drop(f.insert("sex".into(), "女".into())),
                "disclosure",
            ),
            (
                "extra field",
                |f| drop(f.insert("z".into(), "1".into())),
                "seal.field_commitments",
            ),
            (
                "missing field",
                |f| drop(f.remove("name")),
                "seal.field_commitments",
            ),
        ];
        for (key, bundle) in bundles() {
            let public = key.public_key();
            for (name, change, field) in cases {
                let mut changed = fields();
                change(&mut changed);
                let error = bundle
                    .check_against(&public, "AUTH", &[9; 32], &changed)
                    .expect_err(name);
                assert_eq!(error.field(), field, "{name}: {error}");
            }
            let error = bundle
                .check_against(&public, "OTHER", &[9; 32], &fields())
                .expect_err("authority");
            assert_eq!(error.field(), "seal.authority");
            let error = bundle
                .check_against(&public, "AUTH", &[8; 32], &fields())
                .expect_err("digest");
            assert_eq!(error.field(), "seal.content_digest");
            let other = SecretKey::from_seed(key.suite(), &[5; 32]).unwrap();
            assert!(bundle
                .check_against(&other.public_key(), "AUTH", &[9; 32], &fields())
                .is_err());
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_fails_decoding_or_checking() {
        for (key, bundle) in bundles() {
            let public = key.public_key();
            let bytes = bundle.to_bytes();
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let accepted = SealBundle::from_bytes(&flipped).is_ok_and(|b| {
                    b.check_against(&public, "AUTH", &[9; 32], &fields())
                        .is_ok()
                });
                assert!(!accepted, "bit {bit} of a {} bundle", key.suite());
            }
        }
    }

    #[test]
    fn the_payload_shows_only_a_salted_digest() {
        let [(_, a), (_, b)] = <[_; 2]>::try_from(bundles()).unwrap();
        assert_eq!((a.payload.version, b.payload.version), (2, 2));
        for bundle in [&a, &b] {
            assert_ne!(bundle.payload.content_digest, [9; 32]);
        }
        assert_ne!(
            a.payload.content_digest, b.payload.content_digest,
            "the same content is salted afresh"
        );
    }

    /// A version 1 bundle (the plain issued digest, no digest salt).
    fn version_1(key: &SecretKey) -> SealBundle {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let (commitments, disclosures) = commit_fields(&fields(), &mut rng).unwrap();
        let payload = SealedPayload {
            version: 1,
            ..SealedPayload::for_key(&key.public_key(), "AUTH", 1_000, [9; 32], commitments)
        };
        SealBundle {
            seal: seal(key, &payload).unwrap(),
            payload,
            salts: disclosures.iter().map(|d| d.salt).collect(),
            digest_salt: None,
        }
    }

    #[test]
    fn version_1_bundles_still_decode_and_check() {
        for (key, v2) in bundles() {
            let public = key.public_key();
            let v1 = version_1(&key);
            let bytes = v1.to_bytes();
            assert_eq!(SealBundle::from_bytes(&bytes), Ok(v1.clone()));
            v1.check_against(&public, "AUTH", &[9; 32], &fields())
                .unwrap();
            let error = v1
                .check_against(&public, "AUTH", &[8; 32], &fields())
                .expect_err("digest");
            assert_eq!(error.field(), "seal.content_digest");
            // A digest salt must come with a version 2 payload, and only with one.
            let salted_v1 = SealBundle {
                digest_salt: v2.digest_salt,
                ..v1.clone()
            };
            let unsalted_v2 = SealBundle {
                digest_salt: None,
                ..v2.clone()
            };
            for (name, odd) in [("salted v1", &salted_v1), ("unsalted v2", &unsalted_v2)] {
                let error = odd
                    .check_against(&public, "AUTH", &[9; 32], &fields())
                    .expect_err(name);
                assert_eq!(error.field(), "seal.digest_salt", "{name}");
            }
            // Their bytes follow the payload's version, so they decode: the v1 one without
            // the stray salt, the v2 one to a bundle whose check fails.
            assert_eq!(salted_v1.to_bytes(), bytes);
            let decoded = SealBundle::from_bytes(&unsalted_v2.to_bytes()).expect("decodes");
            assert!(decoded
                .check_against(&public, "AUTH", &[9; 32], &fields())
                .is_err());
            // A version 1 payload under a version 2 bundle header (with a salt) is refused.
            let mut relabelled = bytes.clone();
            relabelled[4 + BUNDLE_DOMAIN.len()] = 2;
            relabelled.extend_from_slice(&[7; SALT_LEN]);
            let error = SealBundle::from_bytes(&relabelled).expect_err("relabelled");
            assert_eq!(error.field(), "bundle.payload");
        }
    }

    #[test]
    fn disclosed_fields_open_their_commitments_only() {
        let (_, bundle) = bundles().remove(0);
        let shown = bundle.disclose(&fields(), &["sex"]).unwrap();
        assert_eq!(shown.len(), 1);
        let commitments = &bundle.payload.field_commitments;
        check_disclosure(commitments, &shown[0]).unwrap();
        let mut altered = shown[0].clone();
        altered.value = "女".into();
        assert!(check_disclosure(commitments, &altered).is_err());
        let error = bundle.disclose(&fields(), &["age"]).expect_err("unknown");
        assert_eq!(error.field(), "disclosure");
    }
}
