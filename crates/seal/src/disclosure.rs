//! Selective disclosure of face fields through salted commitments.
//!
//! At issue every face field `(name, value)` gets a fresh 16-byte salt and a commitment
//!
//! ```text
//! commitment = BLAKE3-derive-key(COMMITMENT_CONTEXT,
//!                                salt || u32 len(name) || name || u32 len(value) || value)
//! ```
//!
//! (lengths little-endian). The commitments, sorted by name, go into the sealed payload; the
//! holder keeps the [`Disclosure`]s (name, value, salt) and later shows only the ones a
//! verifier needs. The verifier recomputes the commitment and looks for it under that name in
//! the sealed list. Without the salt the commitment of a low-entropy value (a sex, a birth
//! year) cannot be found by trying every value.
//!
//! Field names are visible in the sealed list; they come from the public license template, so
//! only values are hidden.

use std::collections::BTreeMap;

use rand::{CryptoRng, RngCore};

use crate::codec::{check_label, Writer};
use crate::error::SealError;

/// Length of a per-field salt, in bytes.
pub const SALT_LEN: usize = 16;

/// Longest face-field name, in bytes.
pub const FIELD_NAME_LEN_MAX: usize = 128;

/// Longest face-field value, in bytes.
pub const FIELD_VALUE_LEN_MAX: usize = 64 * 1024;

/// Most face fields one payload may commit to.
pub const FIELD_COUNT_MAX: usize = 1024;

/// BLAKE3 derive-key context for field commitments.
pub const COMMITMENT_CONTEXT: &str = "licstore seal face field commitment v1";

/// A sealed commitment to one face field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldCommitment {
    /// The face-field name, in the clear.
    pub name: String,
    /// The salted digest of name and value.
    pub commitment: [u8; 32],
}

/// What the holder shows to reveal one face field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    /// The face-field name.
    pub name: String,
    /// The face-field value.
    pub value: String,
    /// The salt drawn for this field at issue.
    pub salt: [u8; SALT_LEN],
}

/// The commitment to one field under `salt`.
pub fn commit_field(name: &str, value: &str, salt: &[u8; SALT_LEN]) -> [u8; 32] {
    let mut w = Writer::default();
    w.raw(salt);
    w.string(name);
    w.string(value);
    blake3::derive_key(COMMITMENT_CONTEXT, &w.0)
}

/// Commits to every face field, drawing one salt per field from `rng` in name order.
///
/// The result is sorted by name. With a seeded generator (for example ChaCha20 seeded from
/// bytes carried in a replicated command) every replica computes the same salts.
pub fn commit_fields<R: RngCore + CryptoRng>(
    fields: &BTreeMap<String, String>,
    rng: &mut R,
) -> Result<(Vec<FieldCommitment>, Vec<Disclosure>), SealError> {
    check_fields(fields)?;
    let mut commitments = Vec::with_capacity(fields.len());
    let mut disclosures = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let mut salt = [0; SALT_LEN];
        rng.fill_bytes(&mut salt);
        commitments.push(FieldCommitment {
            name: name.clone(),
            commitment: commit_field(name, value, &salt),
        });
        disclosures.push(Disclosure {
            name: name.clone(),
            value: value.clone(),
            salt,
        });
    }
    Ok((commitments, disclosures))
}

fn check_fields(fields: &BTreeMap<String, String>) -> Result<(), SealError> {
    if fields.len() > FIELD_COUNT_MAX {
        let reason = format!("{} fields, more than {FIELD_COUNT_MAX}", fields.len());
        return Err(SealError::invalid_field("face", reason));
    }
    for (name, value) in fields {
        check_label("face.name", name, FIELD_NAME_LEN_MAX)?;
        if value.len() > FIELD_VALUE_LEN_MAX {
            let reason = format!("is {} bytes, more than {FIELD_VALUE_LEN_MAX}", value.len());
            return Err(SealError::invalid_field(format!("face.{name}"), reason));
        }
    }
    Ok(())
}

/// Checks one disclosed field against the sealed commitments.
///
/// Fails when no commitment carries the name, or when the commitment under that name differs
/// (an altered value or salt). `commitments` must be sorted by name, as sealed payloads are.
pub fn check_disclosure(
    commitments: &[FieldCommitment],
    disclosure: &Disclosure,
) -> Result<(), SealError> {
    let error = |reason: &str| SealError::Disclosure {
        name: disclosure.name.clone(),
        reason: reason.to_owned(),
    };
    let index = commitments
        .binary_search_by(|c| c.name.as_str().cmp(&disclosure.name))
        .map_err(|_| error("no sealed commitment has this name"))?;
    let expected = blake3::Hash::from(commitments[index].commitment);
    let found = commit_field(&disclosure.name, &disclosure.value, &disclosure.salt);
    // blake3::Hash compares in constant time.
    if expected != blake3::Hash::from(found) {
        return Err(error("value or salt does not match the sealed commitment"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn face() -> BTreeMap<String, String> {
        [
            ("name", "张三"),
            ("sex", "男"),
            ("birth_date", "1949-12-31"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    }

    fn committed() -> (Vec<FieldCommitment>, Vec<Disclosure>) {
        commit_fields(&face(), &mut ChaCha20Rng::seed_from_u64(1)).unwrap()
    }

    #[test]
    fn commitments_are_sorted_salted_and_reproducible() {
        let (commitments, disclosures) = committed();
        let names: Vec<&str> = commitments.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["birth_date", "name", "sex"]);
        assert_eq!(committed(), (commitments.clone(), disclosures.clone()));
        let other = commit_fields(&face(), &mut ChaCha20Rng::seed_from_u64(2)).unwrap();
        assert_ne!(other.0, commitments, "fresh salts give fresh commitments");
        assert_ne!(disclosures[0].salt, disclosures[1].salt);
        for disclosure in &disclosures {
            assert_eq!(check_disclosure(&commitments, disclosure), Ok(()));
        }
    }

    #[test]
    fn altered_or_absent_disclosures_fail() {
        let (commitments, disclosures) = committed();
        let good = disclosures[2].clone();
        let mut salt = good.salt;
        salt[15] ^= 1;
        let cases = [
            (
                "value",
                Disclosure {
                    value: "女".into(),
                    ..good.clone()
                },
                "sex",
            ),
            (
                "salt",
                Disclosure {
                    salt,
                    ..good.clone()
                },
                "sex",
            ),
            (
                "name",
                Disclosure {
                    name: "name".into(),
                    ..good.clone()
                },
                "name",
            ),
            (
                "absent",
                Disclosure {
                    name: "address".into(),
                    ..good.clone()
                },
                "address",
            ),
        ];
        for (case, disclosure, name) in cases {
            let error = check_disclosure(&commitments, &disclosure).expect_err(case);
            assert!(matches!(&error, SealError::Disclosure { name: n, .. } if n == name));
        }
        let without_sex = &commitments[..2];
        assert!(check_disclosure(without_sex, &good).is_err());
    }

    #[test]
    fn length_prefixes_separate_name_and_value() {
        let salt = [0; SALT_LEN];
        assert_ne!(
            commit_field("ab", "c", &salt),
            commit_field("a", "bc", &salt)
        );
    }

    #[test]
    fn bad_field_names_are_rejected() {
        for name in ["", "a\u{0}b"] {
            let fields = BTreeMap::from([(name.to_owned(), "v".to_owned())]);
            let rng = &mut ChaCha20Rng::seed_from_u64(0);
            let error = commit_fields(&fields, rng).expect_err(name);
            assert_eq!(error.field(), "face.name");
        }
    }
}
