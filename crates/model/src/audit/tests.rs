//! Audit records: the encoding round-trips, and every kind of tampering breaks the chain at a
//! named record.

use super::*;

fn event(n: u64) -> AuditEvent {
    AuditEvent {
        time_ms: 1_780_000_000_000 + n,
        node_id: 2,
        journal: 77,
        journal_seq: n,
        caller: "pudong-counter".into(),
        roles: "verifier".into(),
        action: "Licenses/Verify".into(),
        outcome: "valid".into(),
        detail: String::new(),
        service_item: "婚姻登记档案查询".into(),
        purpose: format!("案卷 {n}"),
        holder_kind: Some(HolderKind::CitizenId),
        holder_id: "310115198506120078".into(),
        type_code: "11100000000000000001".into(),
        identifier: String::new(),
        revision: 40 + n,
    }
}

/// A trail of `n` records, encoded and linked as apply links them.
fn trail(n: u64) -> Vec<Vec<u8>> {
    let mut prev = [0; 32];
    (1..=n)
        .map(|seq| {
            let bytes = encode_record(&AuditRecord {
                seq,
                prev,
                event: event(seq),
            });
            prev = record_hash(&bytes);
            bytes
        })
        .collect()
}

fn check(records: &[Vec<u8>]) -> Result<([u8; 32], u64), BrokenLink> {
    check_chain(records.iter().map(Vec::as_slice))
}

#[test]
fn records_round_trip_and_refuse_bad_bytes() {
    let mut record = AuditRecord {
        seq: 9,
        prev: [7; 32],
        event: event(9),
    };
    let bytes = encode_record(&record);
    assert_eq!(decode_record(&bytes), Ok(record.clone()));
    record.event.holder_kind = None;
    record.event.holder_id.clear();
    assert_eq!(decode_record(&encode_record(&record)), Ok(record));
    let mut trailing = bytes.clone();
    trailing.push(0);
    let mut version = bytes.clone();
    version[0] = 2;
    let cases = [
        ("trailing", trailing, "record"),
        ("version", version, "format version"),
        ("short", bytes[..bytes.len() - 1].to_vec(), "revision"),
        ("empty", Vec::new(), "format version"),
    ];
    for (case, bad, field) in cases {
        match decode_record(&bad) {
            Err(ModelError::Decode { field: f, .. }) => assert_eq!(f, field, "{case}"),
            other => panic!("{case}: {other:?}"),
        }
    }
}

#[test]
fn an_intact_trail_checks_to_its_head() {
    let records = trail(5);
    let (head, count) = check(&records).expect("intact");
    assert_eq!((head, count), (record_hash(&records[4]), 5));
    assert_eq!(check(&[]), Ok(([0; 32], 0)));
    // A check resumed after record 3 agrees with the whole one.
    let mut resumed = ChainCheck::after(3, record_hash(&records[2]));
    for bytes in &records[3..] {
        resumed.next(bytes).expect("link");
    }
    assert_eq!((resumed.head(), resumed.checked()), (head, 5));
}

#[test]
fn tampering_breaks_the_chain_at_a_named_record() {
    let records = trail(4);
    let content_at = records[1].len() - 20;
    let flip = |at: usize| {
        let mut r = records.clone();
        r[1][at] ^= 1;
        r
    };
    let mut dropped = records.clone();
    dropped.remove(1);
    let mut swapped = records.clone();
    swapped.swap(1, 2);
    let mut renumbered = records.clone();
    let mut second = decode_record(&renumbered[1]).expect("decode");
    second.seq = 7;
    renumbered[1] = encode_record(&second);
    let cases: [(&str, Vec<Vec<u8>>, u64); 6] = [
        ("content of record 2 altered", flip(content_at), 3),
        ("link of record 2 altered", flip(1 + 8), 2),
        ("version byte of record 2", flip(0), 2),
        ("record 2 dropped", dropped, 2),
        ("records 2 and 3 swapped", swapped, 2),
        ("record 2 renumbered", renumbered, 2),
    ];
    for (case, tampered, at) in cases {
        let broken = check(&tampered).expect_err(case);
        assert_eq!(broken.seq, at, "{case}: {}", broken.reason);
    }
}

#[test]
fn the_last_record_altered_changes_the_head() {
    let records = trail(3);
    let mut tampered = records.clone();
    let last = tampered[2].len() - 1;
    tampered[2][last] ^= 1;
    let (head, _) = check(&records).expect("intact");
    let (other, _) = check(&tampered).expect("links still hold");
    assert_ne!(head, other, "only a head kept elsewhere reveals this");
}

#[test]
fn only_a_trim_applied_by_the_trail_reads_as_one() {
    let trim = Trim {
        through_seq: 40,
        hash: [0xab; 32],
        records: 12,
    };
    let record = |journal_seq: u64, action: &str, outcome: &str, detail: String| AuditRecord {
        seq: 41,
        prev: [0; 32],
        event: AuditEvent {
            journal_seq,
            action: action.into(),
            outcome: outcome.into(),
            detail,
            ..event(1)
        },
    };
    let good = record(0, TRIM_ACTION, "ok", trim.detail());
    assert_eq!(Trim::of_record(&good), Some(trim));
    let cases = [
        (
            "served by a node",
            record(3, TRIM_ACTION, "ok", trim.detail()),
        ),
        (
            "refused",
            record(0, TRIM_ACTION, "permission_denied", trim.detail()),
        ),
        (
            "another action",
            record(0, "Licenses/Verify", "ok", trim.detail()),
        ),
        (
            "no hash",
            record(0, TRIM_ACTION, "ok", "through=40 records=12".into()),
        ),
        (
            "short hash",
            record(0, TRIM_ACTION, "ok", "through=40 hash=ab records=1".into()),
        ),
        (
            "extra part",
            record(0, TRIM_ACTION, "ok", format!("{} x=1", trim.detail())),
        ),
        ("free text", record(0, TRIM_ACTION, "ok", "trimmed".into())),
    ];
    for (why, record) in cases {
        assert_eq!(Trim::of_record(&record), None, "{why}");
    }
}
