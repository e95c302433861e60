//! A presentation: what a holder shows a verifier to reveal chosen fields of a sealed license
//! and nothing else.
//!
//! It carries the sealed payload and the seal (so the verifier can check the authority's
//! signature), the revealed fields each with its salt (so the verifier can open their
//! commitments), and the presenting store's records of the authority's keys, which are for
//! display only: a verifier decides with a key record from a trust list it was given. The
//! salts of the other fields stay with the holder, so their commitments reveal nothing on
//! their own. The payload still shows the authority, the signing time and the names of the
//! sealed fields. Its digest of the whole record is salted (payload version 2) and the salt
//! stays with the holder too, so it confirms no guess of the hidden fields; a presentation of
//! a version 1 seal shows the plain issued digest, and such a guess could be confirmed.
//!
//! # Format, version 1
//!
//! | # | field     | encoding                                                            |
//! |---|-----------|---------------------------------------------------------------------|
//! | 0 | domain    | string [`PRESENTATION_DOMAIN`], then `u8` version 1                 |
//! | 1 | payload   | `u32` length, then [`SealedPayload::to_bytes`]                      |
//! | 2 | seal      | [`Seal`] format                                                     |
//! | 3 | revealed  | `u32` count, then per field: name string, value string, 16-byte     |
//! |   |           | salt; names strictly ascending                                      |
//! | 4 | keys      | `u32` count, then per key `u32` length and a [`KeyRecord`] encoding |

use std::collections::BTreeMap;

use crate::bundle::SealBundle;
use crate::codec::{check_label, Reader, Writer};
use crate::disclosure::{check_disclosure, Disclosure, FIELD_COUNT_MAX, FIELD_NAME_LEN_MAX};
use crate::disclosure::{FIELD_VALUE_LEN_MAX, SALT_LEN};
use crate::error::SealError;
use crate::lifecycle::{verify_with_record, KeyRecord, KeyVerdict};
use crate::payload::{Seal, SealedPayload};

/// Domain string that opens every presentation.
pub const PRESENTATION_DOMAIN: &str = "licstore license presentation";

const VERSION: u8 = 1;
const PAYLOAD_BYTES_MAX: usize = 48 * 1024;
const KEY_RECORD_BYTES_MAX: usize = 4096;
const KEYS_MAX: usize = 1024;

/// Revealed fields of a sealed license, with what proves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presentation {
    /// The sealed payload of the license.
    pub payload: SealedPayload,
    /// The authority's seal over `payload`.
    pub seal: Seal,
    /// The revealed fields, strictly ascending by name.
    pub revealed: Vec<Disclosure>,
    /// The presenting store's records of the authority's keys (display only).
    pub keys: Vec<KeyRecord>,
}

/// What a verifier learns from a presentation that checks out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedPresentation {
    /// The key's verdict on the signing time.
    pub verdict: KeyVerdict,
    /// The revealed fields by name.
    pub fields: BTreeMap<String, String>,
}

impl SealBundle {
    /// A presentation revealing `names` of the record's disclosable `fields`; each name must
    /// have a sealed commitment. Duplicate names are revealed once.
    pub fn present(
        &self,
        fields: &BTreeMap<String, String>,
        names: &[&str],
        keys: Vec<KeyRecord>,
    ) -> Result<Presentation, SealError> {
        let mut names = names.to_vec();
        names.sort_unstable();
        names.dedup();
        Ok(Presentation {
            payload: self.payload.clone(),
            seal: self.seal.clone(),
            revealed: self.disclose(fields, &names)?,
            keys,
        })
    }
}

impl Presentation {
    /// Checks the seal under `trusted` (a key record the verifier trusts, found by the seal's
    /// key id) and every revealed field against its sealed commitment.
    pub fn check(&self, trusted: &KeyRecord) -> Result<CheckedPresentation, SealError> {
        if trusted.key_id != self.seal.key_id {
            let reason = format!(
                "the trusted record is key {}, the seal names {}",
                trusted.key_id, self.seal.key_id
            );
            return Err(SealError::invalid_field("seal.key_id", reason));
        }
        let verdict = verify_with_record(trusted, &self.payload, &self.seal)?;
        let mut fields = BTreeMap::new();
        for disclosure in &self.revealed {
            check_disclosure(&self.payload.field_commitments, disclosure)?;
            fields.insert(disclosure.name.clone(), disclosure.value.clone());
        }
        Ok(CheckedPresentation { verdict, fields })
    }

    /// The format described in the module header.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.header(PRESENTATION_DOMAIN, VERSION);
        w.bytes(&self.payload.to_bytes());
        self.seal.write(&mut w);
        w.u32(u32::try_from(self.revealed.len()).unwrap_or(u32::MAX));
        for disclosure in &self.revealed {
            w.string(&disclosure.name);
            w.string(&disclosure.value);
            w.raw(&disclosure.salt);
        }
        w.u32(u32::try_from(self.keys.len()).unwrap_or(u32::MAX));
        for key in &self.keys {
            w.bytes(&key.to_bytes());
        }
        w.0
    }

    /// Decodes bytes produced by [`Presentation::to_bytes`]; anything else is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Presentation, SealError> {
        let mut r = Reader::new(bytes);
        r.header(PRESENTATION_DOMAIN, VERSION)?;
        let payload =
            SealedPayload::from_bytes(r.bytes("presentation.payload", PAYLOAD_BYTES_MAX)?)?;
        let seal = Seal::read(&mut r)?;
        let revealed = read_revealed(&mut r)?;
        let count = r.u32("presentation.keys")?;
        if usize::try_from(count).map_or(true, |c| c > KEYS_MAX) {
            return Err(r.error("presentation.keys", format!("count {count} too large")));
        }
        let mut keys = Vec::new();
        for _ in 0..count {
            let bytes = r.bytes("presentation.keys", KEY_RECORD_BYTES_MAX)?;
            keys.push(KeyRecord::from_bytes(bytes)?);
        }
        r.finish("presentation")?;
        if seal.suite != payload.suite || seal.key_id != payload.key_id {
            return Err(r.error("presentation.seal", "names another key than the payload"));
        }
        Ok(Presentation {
            payload,
            seal,
            revealed,
            keys,
        })
    }
}

fn read_revealed(r: &mut Reader<'_>) -> Result<Vec<Disclosure>, SealError> {
    let count = r.u32("presentation.revealed")?;
    if usize::try_from(count).map_or(true, |c| c > FIELD_COUNT_MAX) {
        return Err(r.error("presentation.revealed", format!("count {count} too large")));
    }
    let mut revealed: Vec<Disclosure> = Vec::new();
    for _ in 0..count {
        let name = r.string("presentation.revealed.name", FIELD_NAME_LEN_MAX)?;
        check_label("presentation.revealed.name", &name, FIELD_NAME_LEN_MAX)
            .map_err(SealError::into_decode)?;
        if revealed.last().is_some_and(|last| last.name >= name) {
            let reason = "names are not strictly ascending";
            return Err(r.error("presentation.revealed", reason));
        }
        let value = r.string("presentation.revealed.value", FIELD_VALUE_LEN_MAX)?;
        let salt: [u8; SALT_LEN] = r.array("presentation.revealed.salt")?;
        revealed.push(Disclosure { name, value, salt });
    }
    Ok(revealed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{SecretKey, Suite};
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const T: u64 = 1_700_000_000_000;
    const AUTHORITY: &str = "11310000002420436Y";

    fn fields() -> BTreeMap<String, String> {
        [
            ("name", "张三"),
            ("sex", "男"),
            ("birth_date", "1949-12-31"),
            ("@identifier", "3100000000000000000000000000"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    }

    fn sealed(suite: Suite) -> (SealBundle, KeyRecord) {
        let key = SecretKey::from_seed(suite, &[7; 32]).unwrap();
        let rng = &mut ChaCha20Rng::seed_from_u64(3);
        let bundle = SealBundle::for_license(&key, AUTHORITY, T, [9; 32], &fields(), rng).unwrap();
        (bundle, KeyRecord::new(AUTHORITY, key.public_key(), T - 1))
    }

    #[test]
    fn revealed_fields_check_and_hidden_ones_are_absent() {
        for suite in [Suite::Ed25519, Suite::Sm2Sm3] {
            let (bundle, record) = sealed(suite);
            let shown = bundle
                .present(&fields(), &["sex", "name", "sex"], vec![record.clone()])
                .unwrap();
            let bytes = shown.to_bytes();
            assert!(
                !bytes.windows(32).any(|w| w == [9; 32]),
                "the plain issued digest stays out of a presentation"
            );
            let decoded = Presentation::from_bytes(&bytes).unwrap();
            assert_eq!(decoded, shown);
            let checked = decoded.check(&record).unwrap();
            assert_eq!(checked.verdict, KeyVerdict::Valid);
            let names: Vec<&str> = checked.fields.keys().map(String::as_str).collect();
            assert_eq!(names, ["name", "sex"]);
            for hidden in ["1949-12-31", "3100000000000000000000000000"] {
                let found = bytes.windows(hidden.len()).any(|w| w == hidden.as_bytes());
                assert!(!found, "{suite:?}: hidden value {hidden} is in the bytes");
            }
        }
    }

    #[test]
    fn altered_presentations_fail() {
        let (bundle, record) = sealed(Suite::Ed25519);
        let shown = bundle.present(&fields(), &["name", "sex"], vec![]).unwrap();
        let mut value = shown.clone();
        value.revealed[1].value = "女".into();
        let mut salt = shown.clone();
        salt.revealed[0].salt[0] ^= 1;
        let mut renamed = shown.clone();
        renamed.revealed[1].name = "birth_date".into();
        let mut payload = shown.clone();
        payload.payload.signed_at_ms += 1;
        let other = SecretKey::from_seed(Suite::Ed25519, &[8; 32]).unwrap();
        let stranger = KeyRecord::new(AUTHORITY, other.public_key(), T - 1);
        let cases = [
            ("value", value, &record),
            ("salt", salt, &record),
            ("renamed", renamed, &record),
            ("payload", payload, &record),
            ("other key", shown.clone(), &stranger),
        ];
        for (case, presentation, trusted) in cases {
            assert!(presentation.check(trusted).is_err(), "{case}");
        }
        assert!(shown.check(&record).is_ok());
    }

    #[test]
    fn names_out_of_order_or_with_control_characters_are_refused() {
        let (bundle, _) = sealed(Suite::Ed25519);
        let shown = bundle.present(&fields(), &["name", "sex"], vec![]).unwrap();
        let mut swapped = shown.clone();
        swapped.revealed.swap(0, 1);
        let mut control = shown.clone();
        control.revealed[0].name = "\u{1b}[2Kname".into();
        for (case, bad) in [("order", swapped), ("control", control)] {
            assert!(Presentation::from_bytes(&bad.to_bytes()).is_err(), "{case}");
        }
    }

    #[test]
    fn unknown_names_and_bad_bytes_are_refused() {
        let (bundle, _) = sealed(Suite::Ed25519);
        let error = bundle.present(&fields(), &["salary"], vec![]).unwrap_err();
        assert!(matches!(error, SealError::Disclosure { ref name, .. } if name == "salary"));
        let bytes = bundle
            .present(&fields(), &["name"], vec![])
            .unwrap()
            .to_bytes();
        for length in 0..bytes.len() {
            assert!(
                Presentation::from_bytes(&bytes[..length]).is_err(),
                "{length}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Presentation::from_bytes(&longer).is_err());
    }
}
