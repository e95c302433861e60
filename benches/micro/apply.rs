//! State-machine apply into RocksDB (`licstore_store::StateMachine`), 100 new licenses per
//! apply call, as a Raft follower applies committed entries (no responders):
//!
//! * `issue_100`: 100 log entries, one `Command::Issue` each (valid generated records);
//! * `import_100`: one log entry holding a `Command::Import` of 100 generated records (with
//!   their historic statuses).
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

/// Benchmarks applying the commands `make` builds from a stream of generated items.
fn bench_apply<I, F>(c: &mut Criterion, name: &str, mut items: I, make: F)
where
    I: Iterator<Item = ImportItem>,
    F: Fn(&mut I) -> Vec<Command>,
{
    check_all_created(|| make(&mut items));
    let mut store = BenchStore::new();
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
    bench_apply(c, "issue_100", issues, issue_commands);
    let imports = common::items(common::SEED, "import");
    bench_apply(c, "import_100", imports, import_command);
}

criterion_group!(benches, apply_benches);
criterion_main!(benches);
