//! Property tests of the canonical encoding: roundtrip, no panic on arbitrary bytes, and the
//! digest's coverage (every content field, but not the revision).

use std::collections::BTreeMap;

use licstore_model::{
    content_digest, decode, encode, Date, Holder, HolderKind, Issuer, License, LicenseStatus,
};
use proptest::prelude::*;

fn date() -> impl Strategy<Value = Date> {
    (1800u16..=2999, 1u8..=12, 1u8..=31).prop_map(|(y, m, d)| {
        Date::new(y, m, d)
            .or_else(|_| Date::new(y, m, 28))
            .expect("day 28 exists")
    })
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn status() -> impl Strategy<Value = LicenseStatus> {
    prop::sample::select(LicenseStatus::ALL.to_vec())
}

fn holder() -> impl Strategy<Value = Holder> {
    let kind = prop::sample::select(HolderKind::ALL.to_vec());
    (kind, text(), text(), any::<bool>()).prop_map(|(kind, id, name, legacy_checksum)| Holder {
        kind,
        id,
        name,
        legacy_checksum,
    })
}

prop_compose! {
    fn license()(
        (identifier, type_code, license_number) in (text(), text(), text()),
        holder in holder(),
        issuer in (text(), text()).prop_map(|(code, name)| Issuer { code, name }),
        (issue_date, valid_from, valid_until) in (date(), date(), proptest::option::of(date())),
        region_code in text(),
        face in proptest::collection::btree_map(text(), text(), 0..6),
        (status, status_reason) in (status(), proptest::option::of(text())),
        (version, revision) in (any::<u16>(), any::<u64>()),
        (replaces, superseded_by) in (proptest::option::of(text()), proptest::option::of(text())),
        digest in any::<[u8; 32]>(),
        seal in proptest::collection::vec(any::<u8>(), 0..64),
    ) -> License {
        License {
            identifier, type_code, holder, license_number, issuer, issue_date, valid_from,
            valid_until, region_code, face, status, status_reason, version, replaces,
            superseded_by, revision, digest, seal,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn encode_decode_roundtrip(license in license()) {
        let bytes = encode(&license);
        prop_assert_eq!(decode(&bytes), Ok(license.clone()));
        prop_assert_eq!(encode(&license), bytes, "deterministic");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        for version in [1u8, 2] {
            let mut versioned = vec![version];
            versioned.extend_from_slice(&bytes);
            let _ = decode(&versioned);
        }
    }

    #[test]
    fn corrupted_records_never_panic(
        license in license(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode(&license);
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        if let Ok(decoded) = decode(&bytes) {
            prop_assert_eq!(encode(&decoded), bytes, "accepted bytes are canonical");
        }
    }

    #[test]
    fn digest_ignores_revision_and_digest(license in license(), revision in any::<u64>()) {
        let mut other = license.clone();
        other.revision = revision;
        other.digest = [0xAA; 32];
        prop_assert_eq!(content_digest(&license), content_digest(&other));
    }
}

type Mutation = (&'static str, fn(&mut License));

/// One mutation per content field; each must change the digest.
const MUTATIONS: [Mutation; 22] = [
    ("identifier", |l| l.identifier.push('0')),
    ("type_code", |l| l.type_code.push('0')),
    ("holder.kind", |l| l.holder.kind = HolderKind::Uscc),
    ("holder.id", |l| l.holder.id.push('0')),
    ("holder.name", |l| l.holder.name.push('甲')),
    ("holder.legacy_checksum", |l| {
        l.holder.legacy_checksum = true
    }),
    ("license_number", |l| l.license_number.push('0')),
    ("issuer.code", |l| l.issuer.code.push('0')),
    ("issuer.name", |l| l.issuer.name.push('局')),
    ("issue_date", |l| {
        l.issue_date = Date::new(2020, 1, 3).expect("date")
    }),
    ("valid_from", |l| {
        l.valid_from = Date::new(2020, 1, 3).expect("date")
    }),
    ("valid_until", |l| l.valid_until = None),
    ("region_code", |l| l.region_code = "310104".into()),
    ("face value", |l| {
        drop(l.face.insert("name".into(), "乙".into()))
    }),
    ("face key", |l| {
        drop(l.face.insert("extra".into(), String::new()))
    }),
    ("status", |l| l.status = LicenseStatus::Suspended),
    ("status_reason", |l| l.status_reason = Some("x".into())),
    ("version", |l| l.version = 2),
    ("replaces", |l| l.replaces = Some(String::new())),
    ("superseded_by", |l| l.superseded_by = Some(String::new())),
    // Moving bytes between neighbouring strings must change the digest too.
    ("string boundary", |l| {
        l.holder.id.push('X');
        l.holder.name.remove(0);
    }),
    ("empty vs absent", |l| l.status_reason = None),
];

fn base() -> License {
    let face: BTreeMap<String, String> = [("name".to_owned(), "甲".to_owned())].into();
    License {
        identifier: "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F".into(),
        type_code: "11100000000013338W032".into(),
        holder: Holder {
            kind: HolderKind::CitizenId,
            id: "11010519491231002".into(),
            name: "X张三".into(),
            legacy_checksum: false,
        },
        license_number: "1".into(),
        issuer: Issuer {
            code: "11220000013544541J".into(),
            name: "局".into(),
        },
        issue_date: Date::new(2020, 1, 2).expect("date"),
        valid_from: Date::new(2020, 1, 2).expect("date"),
        valid_until: Some(Date::new(2030, 1, 1).expect("date")),
        region_code: "310115".into(),
        face,
        status: LicenseStatus::Valid,
        status_reason: Some(String::new()),
        version: 1,
        replaces: None,
        superseded_by: None,
        revision: 0,
        digest: [0; 32],
        seal: Vec::new(),
    }
}

#[test]
fn digest_changes_with_every_content_field() {
    let original = content_digest(&base());
    let mut seen = vec![original];
    for (name, mutate) in MUTATIONS {
        let mut license = base();
        mutate(&mut license);
        let digest = content_digest(&license);
        assert_ne!(digest, original, "{name}");
        assert!(
            !seen.contains(&digest),
            "{name} collides with an earlier mutation"
        );
        seen.push(digest);
    }
}

#[test]
fn digest_ignores_revision_table() {
    let original = content_digest(&base());
    for revision in [1, 2, u64::MAX] {
        let mut license = base();
        license.revision = revision;
        license.digest = [revision as u8; 32];
        assert_eq!(content_digest(&license), original, "revision {revision}");
    }
}
