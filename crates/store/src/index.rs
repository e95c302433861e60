//! Secondary indexes of current license versions: which entries a record owns. Pure functions.
//!
//! Every index lives in the `index` column family under its own tag byte (the table is in
//! [`crate::keys`]). Each entry's value is an [`IndexSummary`] of the record, so a query can
//! filter and count on index entries alone and read records only for the page it returns.
//!
//! The applier removes the entries of the version it replaces and writes those of the new one
//! in the same write batch as the record, so indexes and records never disagree after a crash.

use licstore_model::{Date, License, LicenseStatus};
use serde::{Deserialize, Serialize};

/// The secondary indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndexKind {
    /// By type, then license number.
    TypeNumber,
    /// By status, then type.
    Status,
    /// By issuer, then type.
    Issuer,
    /// By region (jurisdiction), then type.
    Region,
    /// By valid-until date; live (valid or suspended) versions with an end date only.
    Expiry,
    /// By the revision of the last change.
    Revision,
}

impl IndexKind {
    /// Every index, in tag order.
    pub const ALL: [IndexKind; 6] = [
        IndexKind::TypeNumber,
        IndexKind::Status,
        IndexKind::Issuer,
        IndexKind::Region,
        IndexKind::Expiry,
        IndexKind::Revision,
    ];

    /// The tag byte that starts every key of this index.
    pub fn tag(self) -> u8 {
        match self {
            IndexKind::TypeNumber => b't',
            IndexKind::Status => b's',
            IndexKind::Issuer => b'i',
            IndexKind::Region => b'g',
            IndexKind::Expiry => b'e',
            IndexKind::Revision => b'r',
        }
    }

    /// The index a key belongs to, from its tag byte.
    pub fn of_key(key: &[u8]) -> Option<IndexKind> {
        let tag = *key.first()?;
        IndexKind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// Name shown by `EXPLAIN` and in check reports.
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::TypeNumber => "type_number",
            IndexKind::Status => "status_type",
            IndexKind::Issuer => "issuer_type",
            IndexKind::Region => "region_type",
            IndexKind::Expiry => "expiry",
            IndexKind::Revision => "revision",
        }
    }
}

/// What an index entry records about its version; enough to evaluate every query filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSummary {
    /// Identifier of the indexed current version.
    pub identifier: String,
    /// Its type code.
    pub type_code: String,
    /// Its recorded status.
    pub status: LicenseStatus,
    /// Its issuer's code.
    pub issuer_code: String,
    /// Its jurisdiction's GB/T 2260 code.
    pub region_code: String,
    /// Last day of validity, if any.
    pub valid_until: Option<Date>,
    /// Revision of its last change.
    pub revision: u64,
}

impl IndexSummary {
    /// The summary of a stored version.
    pub fn of(license: &License) -> Self {
        IndexSummary {
            identifier: license.identifier.clone(),
            type_code: license.type_code.clone(),
            status: license.status,
            issuer_code: license.issuer.code.clone(),
            region_code: license.region_code.clone(),
            valid_until: license.valid_until,
            revision: license.revision,
        }
    }
}

/// True for the statuses from which a license can still lapse by date.
pub fn is_live(status: LicenseStatus) -> bool {
    matches!(status, LicenseStatus::Valid | LicenseStatus::Suspended)
}

/// The keys a current version owns, one per index that holds it.
pub fn keys_of(license: &License) -> Vec<(IndexKind, Vec<u8>)> {
    let mut out = Vec::with_capacity(IndexKind::ALL.len());
    for kind in IndexKind::ALL {
        if let Some(key) = key_of(kind, license) {
            out.push((kind, key));
        }
    }
    out
}

/// The key of `license` in the index `kind`, or `None` when that index does not hold it.
pub fn key_of(kind: IndexKind, license: &License) -> Option<Vec<u8>> {
    let id = license.identifier.as_bytes();
    let t = license.type_code.as_bytes();
    let key = match kind {
        IndexKind::TypeNumber => join(kind, &[t, license.license_number.as_bytes(), id]),
        IndexKind::Status => {
            let mut head = license.status.as_code().as_bytes().to_vec();
            head.extend_from_slice(t);
            join(kind, &[&head, id])
        }
        IndexKind::Issuer => join(kind, &[license.issuer.code.as_bytes(), t, id]),
        IndexKind::Region => {
            let mut head = license.region_code.as_bytes().to_vec();
            head.extend_from_slice(t);
            join(kind, &[&head, id])
        }
        IndexKind::Expiry => {
            let until = license.valid_until.filter(|_| is_live(license.status))?;
            join(kind, &[date_key(until).as_bytes(), id])
        }
        IndexKind::Revision => {
            let mut key = vec![kind.tag()];
            key.extend_from_slice(&license.revision.to_be_bytes());
            key.extend_from_slice(id);
            key
        }
    };
    Some(key)
}

/// The tag followed by the parts, each but the last closed by `\0`. No part contains `\0`:
/// codes are ASCII and the license number is validated free of control characters.
pub fn join(kind: IndexKind, parts: &[&[u8]]) -> Vec<u8> {
    let mut key = vec![kind.tag()];
    for (i, part) in parts.iter().enumerate() {
        key.extend_from_slice(part);
        if i + 1 < parts.len() {
            key.push(0);
        }
    }
    key
}

/// A date as `YYYYMMDD`, which sorts in date order.
pub fn date_key(date: Date) -> String {
    format!("{:04}{:02}{:02}", date.year(), date.month(), date.day())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use licstore_model::{Holder, HolderKind, Issuer};

    pub(crate) fn sample(status: LicenseStatus, until: Option<Date>) -> License {
        License {
            identifier: "ID-1".into(),
            type_code: "T".into(),
            holder: Holder {
                kind: HolderKind::CitizenId,
                id: "H".into(),
                name: "N".into(),
                legacy_checksum: false,
            },
            license_number: "No.7".into(),
            issuer: Issuer {
                code: "310000".into(),
                name: "I".into(),
            },
            issue_date: Date::new(2020, 1, 1).unwrap(),
            valid_from: Date::new(2020, 1, 1).unwrap(),
            valid_until: until,
            region_code: "310115".into(),
            face: Default::default(),
            status,
            status_reason: None,
            version: 1,
            replaces: None,
            superseded_by: None,
            revision: 258,
            digest: [0; 32],
            seal: Vec::new(),
        }
    }

    #[test]
    fn expiry_index_holds_live_dated_versions_only() {
        let d = Date::new(2030, 2, 3).ok();
        let cases = [
            (LicenseStatus::Valid, d, true),
            (LicenseStatus::Suspended, d, true),
            (LicenseStatus::Revoked, d, false),
            (LicenseStatus::Expired, d, false),
            (LicenseStatus::Valid, None, false),
        ];
        for (status, until, held) in cases {
            let key = key_of(IndexKind::Expiry, &sample(status, until));
            assert_eq!(key.is_some(), held, "{status:?} {until:?}");
            if let Some(key) = key {
                assert_eq!(key, b"e20300203\0ID-1".to_vec());
            }
        }
    }

    #[test]
    fn keys_carry_their_tag_and_fields() {
        let l = sample(LicenseStatus::Suspended, None);
        let cases: [(IndexKind, &[u8]); 5] = [
            (IndexKind::TypeNumber, b"tT\0No.7\0ID-1"),
            (IndexKind::Status, b"s02T\0ID-1"),
            (IndexKind::Issuer, b"i310000\0T\0ID-1"),
            (IndexKind::Region, b"g310115T\0ID-1"),
            (IndexKind::Revision, b"r\0\0\0\0\0\0\x01\x02ID-1"),
        ];
        for (kind, want) in cases {
            let key = key_of(kind, &l).unwrap();
            assert_eq!(key, want.to_vec(), "{kind:?}");
            assert_eq!(IndexKind::of_key(&key), Some(kind));
        }
        assert_eq!(keys_of(&l).len(), 5, "no expiry entry without an end date");
    }

    #[test]
    fn date_keys_sort_like_dates() {
        let a = Date::new(2029, 12, 31).unwrap();
        let b = Date::new(2030, 1, 1).unwrap();
        assert!(date_key(a) < date_key(b));
    }
}
