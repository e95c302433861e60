//! State-machine apply into RocksDB (`licstore_store::StateMachine`), 100 new licenses per
//! apply call, as a Raft follower applies committed entries (no responders):
//!
//! * `issue_100`: 100 log entries, one `Command::Issue` each (valid generated records);
//! * `import_100`: one log entry holding a `Command::Import` of 100 generated records (with
//!   their historic statuses).
//!
//! * `issue_100_prefilled`: as `issue_100`, into a store first loaded with
//!   `LICBENCH_APPLY_PREFILL` records (else `LICBENCH_MICRO_RECORDS`, else 200,000) through
//!   imports, so memtables hold what a serving node's hold and lookups of new keys miss among
//!   many.
//!
//! Each benchmark has its own store in a temporary directory, which grows by 100 records per
//! iteration; records are generated outside the timed part. Throughput is licenses per second.
//!
//! Run: `cargo bench --workspace --bench apply` (add `-- --quick` for a short look).

mod common;

use std::hint::black_box;

use common::BenchStore;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use licstore_store::{Command, ImportItem};

/// Licenses created per apply call.
const LICENSES_PER_APPLY: usize = 100;

/// Applies one batch on a fresh store and checks that every license was created, so the
/// benchmarks measure successful writes rather than rejections.
fn check_all_created(batch: impl FnOnce() -> Vec<Command>) {
    let mut store = BenchStore::new();
    store.apply(batch());
    let created = store.current_count();
    assert_eq!(
        created, LICENSES_PER_APPLY as u64,
        "licenses created by one batch"
    );
}

fn next_items(items: &mut impl Iterator<Item = ImportItem>) -> Vec<ImportItem> {
    items.by_ref().take(LICENSES_PER_APPLY).collect()
}

fn issue_commands(items: &mut impl Iterator<Item = ImportItem>) -> Vec<Command> {
    next_items(items).into_iter().map(Command::Issue).collect()
}

fn import_command(items: &mut impl Iterator<Item = ImportItem>) -> Vec<Command> {
    vec![Command::Import(next_items(items))]
}

/// Records loaded before `issue_100_prefilled` is timed.
fn prefill_records() -> usize {
    ["LICBENCH_APPLY_PREFILL", "LICBENCH_MICRO_RECORDS"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
        .unwrap_or(200_000)
}

/// A store holding `records` imported records, in imports of 1,000.
fn prefilled_store(records: usize) -> BenchStore {
    let mut store = BenchStore::new();
    let mut items = common::items(common::SEED ^ 0x5eed, "prefill");
    let mut left = records;
    while left > 0 {
        let n = left.min(1_000);
        store.apply(vec![Command::Import(items.by_ref().take(n).collect())]);
        left -= n;
    }
    store
}

/// Benchmarks applying the commands `make` builds from a stream of generated items, into
/// `store`.
fn bench_apply<I, F>(c: &mut Criterion, name: &str, mut store: BenchStore, mut items: I, make: F)
where
    I: Iterator<Item = ImportItem>,
    F: Fn(&mut I) -> Vec<Command>,
{
    check_all_created(|| make(&mut items));
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(LICENSES_PER_APPLY as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || make(&mut items),
            |commands| store.apply(black_box(commands)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn apply_benches(c: &mut Criterion) {
    let issues = common::valid_items(common::SEED, "issue");
    bench_apply(c, "issue_100", BenchStore::new(), issues, issue_commands);
    let imports = common::items(common::SEED, "import");
    bench_apply(c, "import_100", BenchStore::new(), imports, import_command);
    let issues = common::valid_items(common::SEED, "issue");
    let store = prefilled_store(prefill_records());
    bench_apply(c, "issue_100_prefilled", store, issues, issue_commands);
}

criterion_group!(benches, apply_benches);
criterion_main!(benches);
