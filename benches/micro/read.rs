//! The read path of the store (`licstore_store::Reader`) on a RocksDB store holding N
//! generated licenses, N from `LICBENCH_MICRO_RECORDS` (default 1 000 000):
//!
//! * `get/existing`: `Reader::get(holder kind, holder id, type code)` for a key drawn uniformly
//!   from the loaded ones (one point read and a decode);
//! * `get/missing`: the same for a well-formed key that is not stored (a point read that
//!   misses, then the prefix scan `get` falls back to, which finds nothing);
//! * `query/page100_*`: the first page of 100 through the query API, by status (valid, and
//!   suspended, about 3% of records) and by region (Pudong, `310115`, about 1/16);
//! * `query/count_suspended`: counting the suspended licenses (index entries only).
//!
//! The store is built once per process, before the first benchmark (even when a filter skips
//! them all), with imports of 10 000 records per log entry; the time it took goes to stderr.
//! It lives in a temporary directory removed at exit. Default store options (128 MiB block
//! cache). The query benchmarks include planning and pinning a snapshot, as every request
//! does.
//!
//! Run: `cargo bench --workspace --bench read` (add `-- --quick` for a short look;
//! `LICBENCH_MICRO_RECORDS=100000` loads faster).

mod common;

use std::hint::black_box;
use std::sync::mpsc;
use std::time::Instant;

use common::{BenchStore, Key};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use licstore_model::{HolderKind, LicenseStatus};
use licstore_store::query::{plan, Query};
use licstore_store::{Command, ImportItem};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Environment variable with the number of records to load.
const RECORDS_VAR: &str = "LICBENCH_MICRO_RECORDS";
const DEFAULT_RECORDS: u64 = 1_000_000;
/// Records per import command while loading.
const LOAD_BATCH_RECORDS: usize = 10_000;
/// Import commands generated ahead of the one being applied.
const LOAD_BATCHES_AHEAD: usize = 2;
/// Page size of the listing benchmarks.
const PAGE_SIZE: usize = 100;
/// A citizen ID number with a valid check digit that the generated dataset does not hold.
const MISSING_CITIZEN_ID: &str = "11010519491231002X";

/// The loaded store and the key of every record in it.
struct Loaded {
    store: BenchStore,
    keys: Vec<Key>,
}

fn records_wanted() -> u64 {
    match std::env::var(RECORDS_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .expect("LICBENCH_MICRO_RECORDS must be a number"),
        Err(_) => DEFAULT_RECORDS,
    }
}

/// Generates `n` records on a second thread, in import-sized batches.
fn batches(n: u64) -> mpsc::Receiver<Vec<ImportItem>> {
    let (tx, rx) = mpsc::sync_channel(LOAD_BATCHES_AHEAD);
    std::thread::spawn(move || {
        let mut items = common::items(common::SEED, "load").take(n as usize);
        loop {
            let batch: Vec<ImportItem> = items.by_ref().take(LOAD_BATCH_RECORDS).collect();
            if batch.is_empty() || tx.send(batch).is_err() {
                break;
            }
        }
    });
    rx
}

/// Builds the store: `n` generated records, all of them created.
fn load(n: u64) -> Loaded {
    let started = Instant::now();
    let mut store = BenchStore::new();
    let mut keys = Vec::with_capacity(n as usize);
    for batch in batches(n) {
        keys.extend(batch.iter().map(Key::of));
        store.apply(vec![Command::Import(batch)]);
    }
    let load_secs = started.elapsed().as_secs_f64();
    assert_eq!(store.current_count(), n, "every generated record is stored");
    let rate = n as f64 / load_secs;
    let mib = store.size_bytes() as f64 / (1024.0 * 1024.0);
    eprintln!("read: loaded {n} records in {load_secs:.1} s ({rate:.0} records/s), {mib:.0} MiB");
    Loaded { store, keys }
}

fn missing_key() -> Key {
    let id_card = licstore_cli::types::find("resident-id-card").expect("template");
    Key {
        kind: HolderKind::CitizenId,
        holder_id: MISSING_CITIZEN_ID.to_owned(),
        type_code: id_card.type_code.clone(),
    }
}

/// Loads the store and checks the keys the benchmarks will ask for.
fn load_and_check() -> Loaded {
    let loaded = load(records_wanted());
    let reader = loaded.store.reader();
    let get = |k: &Key| reader.get(k.kind, &k.holder_id, &k.type_code).expect("get");
    let step = (loaded.keys.len() / 100).max(1);
    for key in loaded.keys.iter().step_by(step) {
        assert_eq!(get(key).len(), 1, "loaded key {key:?} is found");
    }
    assert!(get(&missing_key()).is_empty(), "missing key is absent");
    let suspended = count(&loaded, suspended_query());
    let pudong = count(&loaded, region_query());
    eprintln!("read: {suspended} suspended records, {pudong} in region 310115");
    loaded
}

fn suspended_query() -> Query {
    Query {
        statuses: vec![LicenseStatus::Suspended],
        ..Query::default()
    }
}

fn region_query() -> Query {
    Query {
        region_prefix: Some("310115".to_owned()),
        ..Query::default()
    }
}

fn count(loaded: &Loaded, query: Query) -> u64 {
    let plan = plan(&query).expect("plan");
    let page = loaded.store.reader().query(&query, &plan, None, 0);
    page.expect("count").count
}

fn point_reads(c: &mut Criterion, loaded: &Loaded) {
    let mut group = c.benchmark_group("get");
    group.throughput(Throughput::Elements(1));
    group.bench_function("existing", |b| {
        let (reader, keys) = (loaded.store.reader(), &loaded.keys);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        b.iter(|| {
            let key = &keys[rng.random_range(0..keys.len())];
            reader
                .get(key.kind, black_box(&key.holder_id), &key.type_code)
                .expect("get")
        })
    });
    group.bench_function("missing", |b| {
        let reader = loaded.store.reader();
        let key = missing_key();
        b.iter(|| {
            reader
                .get(key.kind, black_box(&key.holder_id), &key.type_code)
                .expect("get")
        })
    });
    group.finish();
}

/// Benchmarks one page of `page_size` (0: a count) for `query`, planned per request.
fn bench_query(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    loaded: &Loaded,
    name: &str,
    query: Query,
    page_size: usize,
) {
    group.bench_function(name, |b| {
        let reader = loaded.store.reader();
        b.iter(|| {
            let plan = plan(black_box(&query)).expect("plan");
            reader.query(&query, &plan, None, page_size).expect("query")
        })
    });
}

fn queries(c: &mut Criterion, loaded: &Loaded) {
    let valid = Query {
        statuses: vec![LicenseStatus::Valid],
        ..Query::default()
    };
    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(PAGE_SIZE as u64));
    bench_query(&mut group, loaded, "page100_status_valid", valid, PAGE_SIZE);
    let suspended = suspended_query();
    bench_query(
        &mut group,
        loaded,
        "page100_status_suspended",
        suspended,
        PAGE_SIZE,
    );
    let pudong = region_query();
    bench_query(
        &mut group,
        loaded,
        "page100_region_310115",
        pudong,
        PAGE_SIZE,
    );
    group.throughput(Throughput::Elements(1));
    bench_query(&mut group, loaded, "count_suspended", suspended_query(), 0);
    group.finish();
}

fn read_benches(c: &mut Criterion) {
    let loaded = load_and_check();
    point_reads(c, &loaded);
    queries(c, &loaded);
}

criterion_group!(benches, read_benches);
criterion_main!(benches);
