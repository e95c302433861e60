//! Identifier validation in the model crate, per identifier:
//!
//! * holder ids in strict mode: GB 11643 citizen ID numbers and GB 32100 unified social
//!   credit codes, the golden valid ones (`crates/model/tests/data/holder-ids.csv`) and one
//!   rejected case of each kind (a rejection also builds its error message);
//! * GB/T 36904 license identifiers: parsing the golden valid ones
//!   (`crates/model/tests/data/identifiers.csv`), parsing one with a wrong check character,
//!   and generating one from its segments (what the store does for every new license).
//!
//! Run: `cargo bench --workspace --bench validate` (add `-- --quick` for a short look).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use licstore_model::{validate_holder_id, CheckMode, Date, HolderKind, Identifier};

const HOLDER_IDS_CSV: &str = include_str!("../../crates/model/tests/data/holder-ids.csv");
const IDENTIFIERS_CSV: &str = include_str!("../../crates/model/tests/data/identifiers.csv");

/// A citizen ID number whose check digit is wrong (golden row "wrong check digit").
const BAD_CITIZEN_ID: &str = "110105194912310021";
/// A USCC whose check character is wrong (golden row "wrong check character").
const BAD_USCC: &str = "91310115MA1K3YJ12H";

/// The data rows of a golden CSV file, split into at most `columns` fields (the last one,
/// a free-text note, may hold commas).
fn rows(text: &str, columns: usize) -> Vec<Vec<&str>> {
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.splitn(columns, ',').collect())
        .collect()
}

fn today() -> Date {
    Date::new(2026, 1, 1).expect("fixed date")
}

/// The golden holder ids of `kind` marked valid, checked to pass strict validation.
fn valid_holder_ids(kind: HolderKind) -> Vec<&'static str> {
    let ids: Vec<&str> = rows(HOLDER_IDS_CSV, 4)
        .into_iter()
        .filter(|row| row[2] == "valid" && row[0].parse::<HolderKind>() == Ok(kind))
        .map(|row| row[1])
        .collect();
    assert!(!ids.is_empty(), "no valid golden {kind} ids");
    for id in &ids {
        validate_holder_id(kind, id, CheckMode::Strict, today()).expect("golden id is valid");
    }
    ids
}

/// The golden identifiers marked valid, checked to parse.
fn valid_identifiers() -> Vec<&'static str> {
    let ids: Vec<&str> = rows(IDENTIFIERS_CSV, 3)
        .into_iter()
        .filter(|row| row[1] == "valid")
        .map(|row| row[0])
        .collect();
    assert!(!ids.is_empty(), "no valid golden identifiers");
    for id in &ids {
        Identifier::parse(id).expect("golden identifier parses");
    }
    ids
}

/// Strict validation of every id in `ids`, one benchmark iteration for the whole set.
fn bench_holder_ids(c: &mut Criterion, name: &str, kind: HolderKind, ids: &[&str]) {
    let mut group = c.benchmark_group("holder_id");
    group.throughput(Throughput::Elements(ids.len() as u64));
    let today = today();
    group.bench_function(name, |b| {
        b.iter(|| {
            for id in ids {
                let checked = validate_holder_id(kind, black_box(id), CheckMode::Strict, today);
                black_box(checked).expect("valid");
            }
        })
    });
    group.finish();
}

/// Strict validation of one id that is rejected.
fn bench_rejected_holder_id(c: &mut Criterion, name: &str, kind: HolderKind, id: &str) {
    assert!(validate_holder_id(kind, id, CheckMode::Strict, today()).is_err());
    let mut group = c.benchmark_group("holder_id");
    group.throughput(Throughput::Elements(1));
    let today = today();
    group.bench_function(name, |b| {
        b.iter(|| validate_holder_id(kind, black_box(id), CheckMode::Strict, today).is_err())
    });
    group.finish();
}

fn holder_ids(c: &mut Criterion) {
    let citizen = valid_holder_ids(HolderKind::CitizenId);
    let uscc = valid_holder_ids(HolderKind::Uscc);
    bench_holder_ids(c, "citizen_id_valid", HolderKind::CitizenId, &citizen);
    bench_holder_ids(c, "uscc_valid", HolderKind::Uscc, &uscc);
    bench_rejected_holder_id(
        c,
        "citizen_id_bad_check",
        HolderKind::CitizenId,
        BAD_CITIZEN_ID,
    );
    bench_rejected_holder_id(c, "uscc_bad_check", HolderKind::Uscc, BAD_USCC);
}

fn identifiers(c: &mut Criterion) {
    let valid = valid_identifiers();
    let parsed = Identifier::parse(valid[0]).expect("parses");
    let other = if parsed.check() == '0' { '1' } else { '0' };
    let bad_check = format!("{}{other}", valid[0].trim_end_matches(parsed.check()));
    assert!(
        Identifier::parse(&bad_check).is_err(),
        "{bad_check} should be rejected"
    );
    let mut group = c.benchmark_group("identifier");
    group.throughput(Throughput::Elements(valid.len() as u64));
    group.bench_function("parse_valid", |b| {
        b.iter(|| {
            for text in &valid {
                black_box(Identifier::parse(black_box(text))).expect("valid");
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_bad_check", |b| {
        b.iter(|| Identifier::parse(black_box(&bad_check)).is_err())
    });
    group.bench_function("generate", |b| {
        b.iter(|| {
            let (t, i, s) = (parsed.type_code(), parsed.issuer_code(), parsed.serial());
            Identifier::generate(black_box(t), black_box(i), black_box(s), parsed.version())
        })
    });
    group.finish();
}

criterion_group!(benches, holder_ids, identifiers);
criterion_main!(benches);
