//! What sealing costs (`crates/seal`), on one generated resident ID card (six face fields):
//!
//! * `commit_fields`: a salted commitment per face field (selective disclosure);
//! * per suite (`ed25519`, `sm2-sm3`): `seal` (sign the payload: content digest plus the
//!   commitments) and `verify` (check that seal against the public key), the two costs a
//!   sealed write and a sealed verification add;
//! * `status_list`: compress and decompress a 131,072-entry list with 1% of its bits set, the
//!   work of publishing and of reading one list revision.
//!
//! Run: `cargo bench --workspace --bench seal` (add `-- --quick` for a short look).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use licstore_model::{build_license, canonical, Identifier};
use licstore_seal::{commit_fields, seal, verify_seal, Bitstring, SealedPayload, SecretKey, Suite};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Entries of the benchmarked status list (the W3C minimum).
const STATUS_LIST_ENTRIES: u32 = 131_072;
/// One entry in this many is set in the benchmarked status list.
const STATUS_LIST_SET_EVERY: u32 = 100;

fn face_and_digest() -> (std::collections::BTreeMap<String, String>, [u8; 32]) {
    let id_card = licstore_cli::types::find("resident-id-card").expect("template");
    let record = common::generator(common::SEED)
        .find(|r| r.license.type_code == id_card.type_code)
        .expect("an ID card");
    let new = common::new_license(&record);
    let identifier = Identifier::generate(&new.type_code, &new.issuer.code, "2025000123", 1)
        .expect("identifier");
    let license = build_license(new, identifier, false);
    (license.face.clone(), canonical::content_digest(&license))
}

fn seal_benches(c: &mut Criterion) {
    let (face, digest) = face_and_digest();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    c.bench_function("seal/commit_fields", |b| {
        b.iter(|| commit_fields(black_box(&face), &mut rng).expect("commit"))
    });
    let (commitments, _) = commit_fields(&face, &mut rng).expect("commit");
    for suite in Suite::ALL {
        let key = SecretKey::from_seed(suite, &[42; 32]).expect("key");
        let public = key.public_key();
        let payload = SealedPayload::for_key(
            &public,
            "11310000002421234X",
            1,
            digest,
            commitments.clone(),
        );
        let sealed = seal(&key, &payload).expect("seal");
        verify_seal(&public, &payload, &sealed).expect("verifies");
        let mut group = c.benchmark_group(format!("seal/{}", suite.name()));
        group.bench_function("seal", |b| {
            b.iter(|| seal(&key, black_box(&payload)).expect("seal"))
        });
        group.bench_function("verify", |b| {
            b.iter(|| verify_seal(&public, black_box(&payload), &sealed).expect("verifies"))
        });
        group.finish();
    }
}

fn status_list_benches(c: &mut Criterion) {
    // Positions are handed out at random, so the set bits are scattered like these.
    let mut bits = Bitstring::new(STATUS_LIST_ENTRIES).expect("list");
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    for _ in 0..STATUS_LIST_ENTRIES / STATUS_LIST_SET_EVERY {
        let position = rng.random_range(0..STATUS_LIST_ENTRIES);
        bits.set(position, true).expect("in range");
    }
    let compressed = bits.compress();
    eprintln!(
        "seal: {STATUS_LIST_ENTRIES} entries, about 1% set at random: {} bytes compressed",
        compressed.len()
    );
    let mut group = c.benchmark_group("status_list");
    group.bench_function("compress", |b| b.iter(|| black_box(&bits).compress()));
    group.bench_function("decompress", |b| {
        b.iter(|| Bitstring::decompress(black_box(&compressed), STATUS_LIST_ENTRIES).expect("ok"))
    });
    group.finish();
}

criterion_group!(benches, seal_benches, status_list_benches);
criterion_main!(benches);
