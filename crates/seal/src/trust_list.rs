//! Trust lists: the signed set of key records a verifier trusts, issued under a root key.
//!
//! A verifier is configured with one root public key. It fetches the published trust list,
//! checks it with [`verify_trust_list`], then finds the record of the key that sealed a license
//! with [`TrustList::find`] and hands it to [`crate::verify_with_record`].
//!
//! # Signed bytes, version 1
//!
//! | # | field          | encoding                                                  |
//! |---|----------------|-----------------------------------------------------------|
//! | 0 | domain         | string [`TRUST_LIST_DOMAIN`]                              |
//! | 1 | format version | `u8` = 1                                                  |
//! | 2 | suite          | `u8` tag of the root key                                  |
//! | 3 | key_id         | 16 raw bytes, id of the root key                          |
//! | 4 | issued_by      | string, 1 to 128 bytes                                    |
//! | 5 | issued_at_ms   | `u64`                                                     |
//! | 6 | entries        | `u32` count (at most 65,536), then each key record        |
//!
//! A key record, with entries in strictly ascending key-id byte order:
//!
//! | field           | encoding                                                     |
//! |-----------------|--------------------------------------------------------------|
//! | authority       | string, 1 to 128 bytes                                       |
//! | key_id          | 16 raw bytes, must be derived from the public key            |
//! | public_key      | `u32`-length byte string: the canonical public key encoding  |
//! | valid_from_ms   | `u64`                                                        |
//! | valid_until_ms  | option of `u64`, later than valid_from_ms                    |
//! | revoked_from_ms | option of `u64`                                              |
//! | replaced_by     | option of a 16-byte key id                                   |
//!
//! Options are a presence byte (0 or 1) followed by the value.
//!
//! # Published bytes, version 1
//!
//! Domain string [`SIGNED_TRUST_LIST_DOMAIN`], version `u8` = 1, the seal (see
//! [`crate::payload`]), then fields 4 to 6 as above. Decoding accepts only what encoding
//! produces and never panics.

use crate::codec::{check_label, Reader, Writer};
use crate::error::SealError;
use crate::key_id::KeyId;
use crate::lifecycle::KeyRecord;
use crate::payload::{Seal, AUTHORITY_LEN_MAX};
use crate::suite::{PublicKey, SecretKey, Suite};

/// Domain string of the signed bytes.
pub const TRUST_LIST_DOMAIN: &str = "licstore trust list";

/// Domain string of the published bytes.
pub const SIGNED_TRUST_LIST_DOMAIN: &str = "licstore signed trust list";

/// Most key records in one trust list.
pub const TRUST_LIST_ENTRIES_MAX: usize = 65_536;

const FORMAT_VERSION: u8 = 1;

/// The keys a verifier trusts, as issued by the root authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustList {
    /// Code of the authority that issued the list.
    pub issued_by: String,
    /// When the list was issued, ms since the Unix epoch.
    pub issued_at_ms: u64,
    /// Key records, strictly ascending by key id.
    pub entries: Vec<KeyRecord>,
}

impl TrustList {
    /// A list with `entries` sorted by key id.
    pub fn new(issued_by: impl Into<String>, issued_at_ms: u64, entries: Vec<KeyRecord>) -> Self {
        let mut entries = entries;
        entries.sort_by_key(|record| record.key_id);
        TrustList {
            issued_by: issued_by.into(),
            issued_at_ms,
            entries,
        }
    }

    /// The record of `key_id`, if the list has one.
    pub fn find(&self, key_id: &KeyId) -> Option<&KeyRecord> {
        let index = self
            .entries
            .binary_search_by_key(key_id, |r| r.key_id)
            .ok()?;
        self.entries.get(index)
    }

    /// Checks every record, the order of the entries and the limits.
    pub fn validate(&self) -> Result<(), SealError> {
        check_label("trust_list.issued_by", &self.issued_by, AUTHORITY_LEN_MAX)?;
        if self.entries.len() > TRUST_LIST_ENTRIES_MAX {
            let reason = format!("more than {TRUST_LIST_ENTRIES_MAX} records");
            return Err(SealError::invalid_field("trust_list.entries", reason));
        }
        for record in &self.entries {
            record.validate()?;
        }
        if !self.entries.windows(2).all(|w| w[0].key_id < w[1].key_id) {
            let reason = "key ids are not strictly ascending";
            return Err(SealError::invalid_field("trust_list.entries", reason));
        }
        Ok(())
    }

    /// The signed bytes (see the module header) for a seal by the key `suite`, `key_id`.
    pub fn signed_bytes(&self, suite: Suite, key_id: KeyId) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(TRUST_LIST_DOMAIN, FORMAT_VERSION);
        w.u8(suite.tag());
        w.raw(key_id.as_bytes());
        self.write_body(&mut w);
        w.0
    }

    fn write_body(&self, w: &mut Writer) {
        w.string(&self.issued_by);
        w.u64(self.issued_at_ms);
        w.u32(u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
        for record in &self.entries {
            record.write(w);
        }
    }

    fn read_body(r: &mut Reader<'_>) -> Result<TrustList, SealError> {
        let issued_by = r.string("trust_list.issued_by", AUTHORITY_LEN_MAX)?;
        let issued_at_ms = r.u64("trust_list.issued_at_ms")?;
        let count = r.u32("trust_list.entries")?;
        if usize::try_from(count).map_or(true, |count| count > TRUST_LIST_ENTRIES_MAX) {
            return Err(r.error("trust_list.entries", format!("count {count} too large")));
        }
        let mut entries = Vec::new();
        for _ in 0..count {
            entries.push(KeyRecord::read(r)?);
        }
        let list = TrustList {
            issued_by,
            issued_at_ms,
            entries,
        };
        list.validate().map_err(SealError::into_decode)?;
        Ok(list)
    }
}

/// Signs `list` with the root key and returns the published bytes.
pub fn sign_trust_list(root_key: &SecretKey, list: &TrustList) -> Result<Vec<u8>, SealError> {
    list.validate()?;
    let message = list.signed_bytes(root_key.suite(), root_key.key_id());
    let seal = Seal::sign(root_key, &message)?;
    let mut w = Writer::default();
    w.header(SIGNED_TRUST_LIST_DOMAIN, FORMAT_VERSION);
    seal.write(&mut w);
    list.write_body(&mut w);
    Ok(w.0)
}

/// Decodes published bytes and verifies them under the trusted root key.
pub fn verify_trust_list(root_key: &PublicKey, bytes: &[u8]) -> Result<TrustList, SealError> {
    let mut r = Reader::new(bytes);
    r.header(SIGNED_TRUST_LIST_DOMAIN, FORMAT_VERSION)?;
    let seal = Seal::read(&mut r)?;
    let list = TrustList::read_body(&mut r)?;
    r.finish("trust_list")?;
    seal.verify(root_key, &list.signed_bytes(seal.suite, seal.key_id))?;
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::{judge, KeyVerdict};
    use proptest::collection::vec;
    use proptest::prelude::{any, proptest};

    const T: u64 = 1_700_000_000_000;

    fn root() -> SecretKey {
        SecretKey::from_seed(Suite::Sm2Sm3, &[41; 32]).unwrap()
    }

    fn list() -> TrustList {
        let old = SecretKey::from_seed(Suite::Sm2Sm3, &[42; 32]).unwrap();
        let new = SecretKey::sm2_from_seed(&[43; 32], "31000000-seal-2").unwrap();
        let ed = SecretKey::from_seed(Suite::Ed25519, &[44; 32]).unwrap();
        let mut rotated = KeyRecord::new("11310000002420436Y", old.public_key(), T);
        rotated.valid_until_ms = Some(T + 1000);
        rotated.replaced_by = Some(new.key_id());
        let mut revoked = KeyRecord::new("11310000002420437W", ed.public_key(), T);
        revoked.revoked_from_ms = Some(T + 10);
        let entries = vec![
            rotated,
            KeyRecord::new("11310000002420436Y", new.public_key(), T + 1000),
            revoked,
        ];
        TrustList::new("11100000000000000A", T + 2000, entries)
    }

    #[test]
    fn round_trip_and_lookup() {
        for root in [
            root(),
            SecretKey::from_seed(Suite::Ed25519, &[45; 32]).unwrap(),
        ] {
            let list = list();
            let bytes = sign_trust_list(&root, &list).unwrap();
            let opened = verify_trust_list(&root.public_key(), &bytes).unwrap();
            assert_eq!(opened, list);
            for record in &list.entries {
                assert_eq!(opened.find(&record.key_id), Some(record));
            }
            assert_eq!(opened.find(&root.key_id()), None);
        }
    }

    #[test]
    fn lookup_feeds_the_lifecycle_verdict() {
        let list = list();
        let rotated = list
            .entries
            .iter()
            .find(|r| r.replaced_by.is_some())
            .unwrap();
        let found = list.find(&rotated.key_id).unwrap();
        let expected = KeyVerdict::ValidRotated {
            replaced_by: rotated.replaced_by.unwrap(),
        };
        assert_eq!(judge(found, T + 5), expected);
    }

    #[test]
    fn wrong_root_or_any_flipped_bit_is_rejected() {
        let bytes = sign_trust_list(&root(), &list()).unwrap();
        let impostor = SecretKey::from_seed(Suite::Sm2Sm3, &[46; 32]).unwrap();
        let error = verify_trust_list(&impostor.public_key(), &bytes).unwrap_err();
        assert_eq!(error.field(), "seal.key_id");
        let forged = sign_trust_list(&impostor, &list()).unwrap();
        assert!(verify_trust_list(&root().public_key(), &forged).is_err());
        let public = root().public_key();
        for position in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[position / 8] ^= 1 << (position % 8);
            assert!(
                verify_trust_list(&public, &flipped).is_err(),
                "bit {position}"
            );
        }
    }

    #[test]
    fn unsorted_duplicate_or_inconsistent_entries_are_refused() {
        let mut unsorted = list();
        unsorted.entries.swap(0, 1);
        let mut duplicate = list();
        duplicate.entries[1] = duplicate.entries[0].clone();
        let mut bad_record = list();
        bad_record.entries[0].valid_until_ms = Some(0);
        let cases = [
            (unsorted, "trust_list.entries"),
            (duplicate, "trust_list.entries"),
            (bad_record, "key_record.valid_until_ms"),
        ];
        for (list, field) in cases {
            assert_eq!(sign_trust_list(&root(), &list).unwrap_err().field(), field);
        }
    }

    #[test]
    fn truncations_are_errors() {
        let bytes = sign_trust_list(&root(), &list()).unwrap();
        let public = root().public_key();
        for length in 0..bytes.len() {
            assert!(
                verify_trust_list(&public, &bytes[..length]).is_err(),
                "{length}"
            );
        }
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(
            verify_trust_list(&public, &longer).unwrap_err().field(),
            "trust_list"
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in vec(any::<u8>(), 0..512)) {
            let _ = verify_trust_list(&root().public_key(), &bytes);
        }
    }
}
