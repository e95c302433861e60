//! The canonical record encoding of the model crate (`crates/model/src/canonical.rs`), on one
//! generated resident ID card (the most common type, six face fields) as the store holds it:
//!
//! * `encode`: the full record (content, revision and digest);
//! * `decode`: back to a `License`, digest read but not checked (the store's read path);
//! * `decode_verified`: decode and recompute the digest;
//! * `content_digest`: encode the content and hash it (BLAKE3, derive-key mode);
//! * and, for comparison, `blake3/hash_1KiB`: `blake3::hash` of a 1 KiB buffer alone.
//!
//! Run: `cargo bench --workspace --bench codec` (add `-- --quick` for a short look).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use licstore_model::{build_license, canonical, Identifier, License};

/// Bytes hashed by the plain BLAKE3 benchmark.
const BLAKE3_INPUT_BYTES: usize = 1024;

/// The first generated resident ID card, as the store would hold it after an import.
fn sample_license() -> License {
    let id_card = licstore_cli::types::find("resident-id-card").expect("template");
    let record = common::generator(common::SEED)
        .find(|r| r.license.type_code == id_card.type_code && r.status == "valid")
        .expect("an ID card");
    let new = common::new_license(&record);
    let identifier = Identifier::generate(&new.type_code, &new.issuer.code, "2025000123", 1)
        .expect("identifier");
    let mut license = build_license(new, identifier, false);
    license.revision = 123_456;
    license
}

fn canonical_benches(c: &mut Criterion) {
    let license = sample_license();
    let bytes = canonical::encode(&license);
    assert_eq!(canonical::decode_verified(&bytes).as_ref(), Ok(&license));
    eprintln!("codec: sample record encodes to {} bytes", bytes.len());
    let mut group = c.benchmark_group("canonical");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| canonical::encode(black_box(&license)))
    });
    group.bench_function("decode", |b| {
        b.iter(|| canonical::decode(black_box(&bytes)).expect("decodes"))
    });
    group.bench_function("decode_verified", |b| {
        b.iter(|| canonical::decode_verified(black_box(&bytes)).expect("verifies"))
    });
    group.bench_function("content_digest", |b| {
        b.iter(|| canonical::content_digest(black_box(&license)))
    });
    group.finish();
}

fn blake3_bench(c: &mut Criterion) {
    let input: Vec<u8> = (0..BLAKE3_INPUT_BYTES)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let mut group = c.benchmark_group("blake3");
    group.throughput(Throughput::Bytes(BLAKE3_INPUT_BYTES as u64));
    group.bench_function("hash_1KiB", |b| b.iter(|| blake3::hash(black_box(&input))));
    group.finish();
}

criterion_group!(benches, canonical_benches, blake3_bench);
criterion_main!(benches);
