//! The seal key registry and sealed writes, applied to a real RocksDB store: registration,
//! rotation, revocation and the checks every replica makes on a sealed issue or amendment.

mod common;

use common::{entries, issuer_code, new_card};
use licstore_model::{build_license, Identifier, License, LicenseStatus, NewLicense};
use licstore_seal::{KeyRecord, SealBundle, SecretKey, StatusPurpose, Suite};
use licstore_store::{Command, CommandResult, ImportItem, Reader, RejectCode, StateMachine};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const T0: u64 = 1_700_000_000_000;
const T_ROTATE: u64 = T0 + 1_000_000;
const T_REVOKE: u64 = T0 + 2_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    sm: StateMachine,
    reader: Reader,
    index: u64,
    rng: ChaCha20Rng,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = licstore_store::open(dir.path()).expect("open");
        Fixture {
            reader: Reader::new(storage.db.clone()),
            sm: storage.state_machine,
            _dir: dir,
            index: 0,
            rng: ChaCha20Rng::seed_from_u64(3),
        }
    }

    fn run(&mut self, cmd: Command) -> CommandResult {
        self.index += 1;
        let mut results = self
            .sm
            .apply_batch(entries(self.index, vec![cmd]))
            .expect("apply");
        results.remove(0)
    }

    fn keys(&mut self, cmd: Command) -> Result<Vec<KeyRecord>, (RejectCode, String)> {
        match self.run(cmd) {
            CommandResult::SealKeys(Ok(records)) => Ok(records
                .iter()
                .map(|b| KeyRecord::from_bytes(b).expect("record"))
                .collect()),
            CommandResult::SealKeys(Err(r)) => Err((r.code, r.field)),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn write(&mut self, cmd: Command) -> Result<License, (RejectCode, String)> {
        match self.run(cmd) {
            CommandResult::Write(Ok(outcome)) => Ok(outcome.license),
            CommandResult::Write(Err(r)) => Err((r.code, r.field)),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A seal by `key` at `signed_at_ms` over `license` as it will be stored.
    fn seal(&mut self, key: &SecretKey, license: &License, signed_at_ms: u64) -> Vec<u8> {
        SealBundle::for_license(
            key,
            &license.issuer.code,
            signed_at_ms,
            licstore_model::issued_digest(license),
            &license.disclosable_fields(),
            &mut self.rng,
        )
        .expect("seal")
        .to_bytes()
    }
}

fn key(seed: u8, suite: Suite) -> SecretKey {
    SecretKey::from_seed(suite, &[seed; 32]).expect("key")
}

fn register(key: &SecretKey, at: u64) -> Command {
    Command::RegisterKey {
        authority: issuer_code(),
        public_key: key.public_key().to_bytes(),
        valid_from_ms: at,
    }
}

/// An issue of card `seq` with a fixed serial, and the record it will store.
fn card(seq: u32) -> (NewLicense, License) {
    let mut new = new_card(seq);
    new.serial = Some(format!("2026S{seq:07}"));
    let id = Identifier::generate(
        &new.type_code,
        &new.issuer.code,
        new.serial.as_deref().unwrap(),
        1,
    )
    .expect("identifier");
    let license = build_license(new.clone(), id, false);
    (new, license)
}

fn issue(seq: u32, new: NewLicense, seal: Vec<u8>) -> Command {
    Command::Issue(ImportItem {
        request_id: format!("seal-{seq}"),
        identifier: None,
        license: new,
        legacy_checksum: false,
        status: LicenseStatus::Valid,
        status_reason: None,
        seal,
        serial_derived: false,
    })
}

#[test]
fn sealed_issues_are_checked_against_the_registry() {
    let mut f = Fixture::new();
    let a = key(1, Suite::Sm2Sm3);
    let stranger = key(9, Suite::Ed25519);

    // Before any key: an unsealed issue is fine.
    let (new, _) = card(1);
    assert!(f.write(issue(1, new, Vec::new())).is_ok());

    let records = f.keys(register(&a, T0)).expect("register");
    assert_eq!(records[0].key_id, a.key_id());
    assert_eq!(
        f.keys(register(&a, T0)).expect("retry"),
        records,
        "idempotent"
    );
    let other = f
        .keys(register(&stranger, T0))
        .expect_err("second active key");
    assert_eq!(other, (RejectCode::FailedPrecondition, "authority".into()));

    // (case, seq, how the seal is made, expected refusal)
    type MakeSeal = fn(&mut Fixture, &SecretKey, &License) -> Vec<u8>;
    type Refusal = Option<(RejectCode, &'static str)>;
    let cases: [(&str, u32, MakeSeal, Refusal); 6] = [
        (
            "unsealed",
            2,
            |_, _, _| Vec::new(),
            Some((RejectCode::FailedPrecondition, "seal")),
        ),
        (
            "garbage",
            3,
            |_, _, _| vec![1, 2, 3],
            Some((RejectCode::InvalidArgument, "seal")),
        ),
        (
            "unregistered key",
            4,
            |f, _, l| f.seal(&key(9, Suite::Ed25519), l, T0 + 1),
            Some((RejectCode::FailedPrecondition, "seal.key_id")),
        ),
        (
            "other content",
            5,
            |f, k, l| {
                let mut changed = l.clone();
                changed.face.insert("address".into(), "elsewhere".into());
                f.seal(k, &changed, T0 + 1)
            },
            Some((RejectCode::InvalidArgument, "seal.content_digest")),
        ),
        (
            "before the key",
            6,
            |f, k, l| f.seal(k, l, T0 - 1),
            Some((RejectCode::FailedPrecondition, "seal.signed_at_ms")),
        ),
        ("good", 7, |f, k, l| f.seal(k, l, T0 + 1), None),
    ];
    for (name, seq, make, expected) in cases {
        let (new, license) = card(seq);
        let seal = make(&mut f, &a, &license);
        match (f.write(issue(seq, new, seal.clone())), expected) {
            (Ok(stored), None) => {
                assert_eq!(stored.seal, seal, "{name}");
                assert_eq!(stored.identifier, license.identifier, "{name}");
            }
            (Err(got), Some((code, field))) => {
                assert_eq!(got, (code, field.to_owned()), "{name}");
                assert!(f
                    .reader
                    .get_by_identifier(&license.identifier)
                    .unwrap()
                    .is_none());
            }
            (got, expected) => panic!("{name}: got {got:?}, expected {expected:?}"),
        }
    }
    let stored = f
        .reader
        .get_by_identifier(&card(7).1.identifier)
        .unwrap()
        .unwrap();
    assert!(!stored.seal.is_empty(), "the seal is kept with the record");
}

#[test]
fn rotation_and_revocation_judge_by_signing_time() {
    let mut f = Fixture::new();
    let a = key(1, Suite::Ed25519);
    let b = key(2, Suite::Sm2Sm3);
    f.keys(register(&a, T0)).expect("register");
    let rotate = Command::RotateKey {
        authority: issuer_code(),
        new_public_key: b.public_key().to_bytes(),
        at_ms: T_ROTATE,
    };
    let rotated = f.keys(rotate.clone()).expect("rotate");
    assert_eq!(rotated.len(), 2);
    assert_eq!(rotated[0].valid_until_ms, Some(T_ROTATE));
    assert_eq!(rotated[0].replaced_by, Some(b.key_id()));
    assert_eq!(f.keys(rotate).expect("retry")[0].key_id, b.key_id());
    assert_eq!(
        f.reader
            .active_seal_key(&issuer_code())
            .unwrap()
            .unwrap()
            .key_id,
        b.key_id()
    );

    let revoke = Command::RevokeKey {
        key_id: *b.key_id().as_bytes(),
        revoked_from_ms: T_REVOKE,
    };
    assert_eq!(
        f.keys(revoke).expect("revoke")[0].revoked_from_ms,
        Some(T_REVOKE)
    );
    assert!(f.reader.active_seal_key(&issuer_code()).unwrap().is_none());

    // (case, key, signing time, accepted)
    let cases: [(&str, &SecretKey, u64, bool); 5] = [
        ("old key before rotation", &a, T_ROTATE - 1, true),
        ("old key after rotation", &a, T_ROTATE, false),
        ("new key before its start", &b, T_ROTATE - 1, false),
        ("new key before revocation", &b, T_REVOKE - 1, true),
        ("new key after revocation", &b, T_REVOKE, false),
    ];
    for (i, (name, key, at, accepted)) in cases.into_iter().enumerate() {
        let seq = 20 + u32::try_from(i).unwrap();
        let (new, license) = card(seq);
        let seal = f.seal(key, &license, at);
        let result = f.write(issue(seq, new, seal));
        assert_eq!(result.is_ok(), accepted, "{name}: {result:?}");
        if let Err(refusal) = result {
            assert_eq!(refusal.1, "seal.signed_at_ms", "{name}");
        }
    }
    let all = f.reader.seal_keys().unwrap();
    assert_eq!(all.len(), 2, "records are never deleted");
}

#[test]
fn sealed_amendments_cover_the_next_version() {
    let mut f = Fixture::new();
    let a = key(1, Suite::Ed25519);
    f.keys(register(&a, T0)).expect("register");
    let (new, license) = card(40);
    let seal = f.seal(&a, &license, T0 + 5);
    let v1 = f.write(issue(40, new.clone(), seal)).expect("issue");

    let mut changed = new;
    changed.face.insert("address".into(), "上海市黄浦区".into());
    changed.serial = None;
    let next = Identifier::parse(&v1.identifier)
        .unwrap()
        .next_version()
        .unwrap();
    let mut v2 = build_license(changed.clone(), next, false);
    v2.replaces = Some(v1.identifier.clone());
    let amend = |seal| Command::Amend {
        request_id: "amend-40".into(),
        identifier: v1.identifier.clone(),
        license: changed.clone(),
        seal,
    };
    let refused = f.write(amend(Vec::new())).expect_err("unsealed amendment");
    assert_eq!(refused.1, "seal");
    let stale = f.seal(&a, &license, T0 + 6);
    assert_eq!(
        f.write(amend(stale)).expect_err("old content").1,
        "seal.content_digest"
    );
    let seal = f.seal(&a, &v2, T0 + 6);
    let stored = f.write(amend(seal.clone())).expect("amend");
    assert_eq!(stored.identifier, v2.identifier);
    assert_eq!(stored.seal, seal);

    // The superseded version is flagged in the revocation list; the new one is not.
    let list = |f: &Fixture| {
        f.reader
            .status_list(&issuer_code(), &v1.type_code, 0, StatusPurpose::Revocation)
            .unwrap()
            .expect("list 0")
            .1
    };
    let old = f
        .reader
        .status_entry(&v1.identifier)
        .unwrap()
        .expect("v1 entry");
    let new = f
        .reader
        .status_entry(&v2.identifier)
        .unwrap()
        .expect("v2 entry");
    assert_ne!(old.position, new.position);
    let bits = list(&f);
    assert!(bits.bits.get(old.position).unwrap());
    assert!(!bits.bits.get(new.position).unwrap());
    assert_eq!(bits.meta.revocation_revision, f.index);
}

#[test]
fn sealed_licenses_get_distinct_positions_and_unsealed_ones_none() {
    let mut f = Fixture::new();
    let (new, unsealed) = card(99);
    f.write(issue(99, new, Vec::new())).expect("unsealed issue");
    assert_eq!(f.reader.status_entry(&unsealed.identifier).unwrap(), None);
    let a = key(1, Suite::Ed25519);
    f.keys(register(&a, T0)).expect("register");
    let mut positions = std::collections::BTreeSet::new();
    for seq in 100..300 {
        let (new, license) = card(seq);
        let seal = f.seal(&a, &license, T0 + 1);
        f.write(issue(seq, new, seal)).expect("sealed issue");
        let entry = f.reader.status_entry(&license.identifier).unwrap();
        let entry = entry.expect("a sealed license has an entry");
        assert_eq!(entry.list, 0);
        assert!(
            positions.insert(entry.position),
            "position {} twice",
            entry.position
        );
    }
    let type_code = unsealed.type_code.clone();
    let suspended = |f: &Fixture| {
        f.reader
            .status_list(&issuer_code(), &type_code, 0, StatusPurpose::Suspension)
            .unwrap()
            .expect("list")
            .1
    };
    let before = suspended(&f);
    assert_eq!((before.meta.used, before.bits.count_set()), (200, 0));
    // Positions are spread over the list, not packed at its start.
    let last = positions.last().copied().unwrap_or(0);
    assert!(
        last > licstore_store::status_lists::LIST_CAPACITY / 2,
        "{last}"
    );
    let (_, license) = card(150);
    let changed = f.write(Command::ChangeStatus {
        request_id: "suspend-150".into(),
        identifier: license.identifier.clone(),
        op: licstore_model::StatusOp::Suspend,
        reason: None,
    });
    changed.expect("suspend");
    let after = suspended(&f);
    let entry = f
        .reader
        .status_entry(&license.identifier)
        .unwrap()
        .expect("entry");
    assert!(after.bits.get(entry.position).unwrap());
    assert_eq!(after.bits.count_set(), 1);
    assert_eq!(after.meta.suspension_revision, f.index);
    assert!(after.meta.suspension_revision > before.meta.suspension_revision);
    assert_eq!(
        after.meta.revocation_revision,
        before.meta.revocation_revision
    );
}

#[test]
fn imported_sealed_stock_gets_the_bits_of_its_initial_status() {
    let mut f = Fixture::new();
    let a = key(1, Suite::Ed25519);
    f.keys(register(&a, T0)).expect("register");
    let statuses = [LicenseStatus::Suspended, LicenseStatus::Revoked];
    let mut items = Vec::new();
    let mut identifiers = Vec::new();
    for (seq, status) in (400..).zip(statuses) {
        let (new, license) = card(seq);
        let seal = f.seal(&a, &license, T0 + 1);
        identifiers.push(license.identifier.clone());
        items.push(ImportItem {
            request_id: format!("import-{seq}"),
            identifier: None,
            license: new,
            legacy_checksum: false,
            status,
            status_reason: Some("historic stock".into()),
            seal,
            serial_derived: false,
        });
    }
    match f.run(Command::Import(items)) {
        CommandResult::Import(results) => assert!(results.iter().all(Result::is_ok)),
        other => panic!("unexpected {other:?}"),
    }
    let type_code = card(400).1.type_code;
    let plane = |f: &Fixture, purpose| {
        let list = f.reader.status_list(&issuer_code(), &type_code, 0, purpose);
        list.unwrap().expect("list").1.bits
    };
    let suspended = plane(&f, StatusPurpose::Suspension);
    let revoked = plane(&f, StatusPurpose::Revocation);
    let position = |id: &str| f.reader.status_entry(id).unwrap().expect("entry").position;
    let (p0, p1) = (position(&identifiers[0]), position(&identifiers[1]));
    assert!(suspended.get(p0).unwrap() && !revoked.get(p0).unwrap());
    assert!(revoked.get(p1).unwrap() && !suspended.get(p1).unwrap());
    assert_eq!((suspended.count_set(), revoked.count_set()), (1, 1));
}

#[test]
fn a_sealing_authority_gets_no_unsealed_record_by_any_path() {
    let mut f = Fixture::new();
    let a = key(1, Suite::Ed25519);
    // Card 50 is issued before the authority seals, then revoked: its slot is free again.
    let (new, _) = card(50);
    let old = f
        .write(issue(50, new, Vec::new()))
        .expect("unsealed, before any key");
    f.keys(register(&a, T0)).expect("register");
    let revoke = Command::ChangeStatus {
        request_id: "revoke-50".into(),
        identifier: old.identifier.clone(),
        op: licstore_model::StatusOp::Revoke,
        reason: None,
    };
    f.write(revoke).expect("revoke");

    // An unsealed issue into that slot is refused and leaves the old record where it was.
    let mut again = new_card(50);
    again.serial = Some("2026T0000050".into());
    let refused = f
        .write(issue(51, again, Vec::new()))
        .expect_err("unsealed issue");
    assert_eq!(refused, (RejectCode::FailedPrecondition, "seal".into()));
    let report = f.reader.check().expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let still = f
        .reader
        .get_by_identifier(&old.identifier)
        .unwrap()
        .expect("kept");
    assert_eq!(still.status, LicenseStatus::Revoked);

    // Imported stock of a sealing authority must be sealed too.
    let (new, _) = card(52);
    let import = Command::Import(vec![ImportItem {
        request_id: "import-52".into(),
        identifier: None,
        license: new,
        legacy_checksum: false,
        status: LicenseStatus::Valid,
        status_reason: None,
        seal: Vec::new(),
        serial_derived: false,
    }]);
    match f.run(import) {
        CommandResult::Import(results) => {
            let refusal = results[0].as_ref().expect_err("unsealed import");
            assert_eq!(
                (refusal.code, refusal.field.as_str()),
                (RejectCode::FailedPrecondition, "seal")
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // A sealed license cannot lose its seal through an amendment by another issuer.
    let (new, license) = card(53);
    let seal = f.seal(&a, &license, T0 + 1);
    let v1 = f.write(issue(53, new.clone(), seal)).expect("sealed issue");
    let mut moved = new;
    moved.serial = None;
    moved.issuer.code = {
        let first17 = "11310000002425678";
        let check = licstore_model::uscc_check_char(first17).expect("17 chars");
        format!("{first17}{check}")
    };
    let amend = Command::Amend {
        request_id: "amend-53".into(),
        identifier: v1.identifier.clone(),
        license: moved,
        seal: Vec::new(),
    };
    assert_eq!(f.write(amend).expect_err("unsealed next version").1, "seal");
}
