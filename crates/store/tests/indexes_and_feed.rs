//! Secondary indexes, queries and the change feed under random histories on a real RocksDB.
//!
//! A seeded random sequence of issues, imports, amendments, status changes, expiry sweeps,
//! compactions, restarts and snapshot installs runs against one store. After every step the
//! consistency walk must find nothing, and every so often random queries are compared with a
//! brute-force filter over the `current` family and the feed with the records. A failure prints
//! the seed; `LICSTORE_TEST_SEED=<seed>` replays it.

mod common;

use std::path::Path;

use common::*;
use licstore_model::{canonical, Date, License, LicenseStatus, StatusOp};
use licstore_store::index::key_of;
use licstore_store::query::{plan, Query};
use licstore_store::{open, Command, EventFilter, FeedRead, ImportItem, Reader, Storage};
use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const STEPS: usize = 160;
const HOLDERS: u32 = 24;
const ISSUERS: [&str; 2] = ["310000", "310115"];
const REGIONS: [&str; 3] = ["310115", "310101", "320102"];

struct World {
    dirs: Vec<tempfile::TempDir>,
    storage: Storage,
    next_index: u64,
    rng: ChaCha8Rng,
    seed: u64,
    request: u64,
}

fn seed() -> u64 {
    match std::env::var("LICSTORE_TEST_SEED") {
        Ok(s) => s.parse().expect("LICSTORE_TEST_SEED must be a number"),
        Err(_) => rand::rng().random(),
    }
}

fn date(days_from_2026: i64) -> Date {
    let base = Date::parse("2026-01-01").expect("date").days_since_epoch();
    Date::from_days_since_epoch(base + days_from_2026).expect("date")
}

impl World {
    fn new(seed: u64) -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path()).expect("open");
        World {
            dirs: vec![dir],
            storage,
            next_index: 1,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seed,
            request: 0,
        }
    }

    fn reader(&self) -> Reader {
        Reader::new(self.storage.db.clone())
    }

    /// Applies one command at the next log index; the tests look at the state it leaves.
    async fn run(&mut self, cmd: Command) {
        let index = self.next_index;
        self.next_index += 1;
        apply(&mut self.storage.state_machine, entries(index, vec![cmd])).await;
    }

    fn currents(&self) -> Vec<License> {
        current_records(&self.storage.db)
    }

    fn item(&mut self) -> ImportItem {
        self.request += 1;
        let seq = self.rng.random_range(0..HOLDERS);
        let mut license = new_card(seq);
        license.issuer.code = ISSUERS[self.rng.random_range(0..ISSUERS.len())].into();
        license.region_code = REGIONS[self.rng.random_range(0..REGIONS.len())].into();
        license.valid_until = match self.rng.random_range(0..4) {
            0 => None,
            n => Some(date(self.rng.random_range(0..400) * n)),
        };
        let statuses = [
            LicenseStatus::Valid,
            LicenseStatus::Suspended,
            LicenseStatus::Revoked,
        ];
        ImportItem {
            request_id: format!("q{}", self.request),
            identifier: None,
            license,
            legacy_checksum: false,
            status: statuses[self.rng.random_range(0..statuses.len())],
            status_reason: None,
            seal: Vec::new(),
            serial_derived: false,
        }
    }

    fn pick_current(&mut self) -> Option<License> {
        let all = self.currents();
        (!all.is_empty()).then(|| all[self.rng.random_range(0..all.len())].clone())
    }

    async fn step(&mut self) -> String {
        match self.rng.random_range(0..100) {
            0..=24 => {
                let item = self.item();
                self.run(Command::Issue(item)).await;
                "issue".into()
            }
            25..=34 => {
                let n = self.rng.random_range(1..6);
                let items = (0..n).map(|_| self.item()).collect();
                self.run(Command::Import(items)).await;
                format!("import {n}")
            }
            35..=49 => {
                let Some(old) = self.pick_current() else {
                    return "amend (none)".into();
                };
                let seq = (0..HOLDERS)
                    .find(|s| citizen(*s) == old.holder.id)
                    .expect("holder");
                let mut license = new_card(seq);
                license.valid_until = Some(date(self.rng.random_range(0..800)));
                self.request += 1;
                let cmd = Command::Amend {
                    request_id: format!("q{}", self.request),
                    identifier: old.identifier.clone(),
                    license,
                    seal: Vec::new(),
                };
                self.run(cmd).await;
                format!("amend {}", old.identifier)
            }
            50..=74 => {
                let Some(l) = self.pick_current() else {
                    return "status (none)".into();
                };
                let op = StatusOp::ALL[self.rng.random_range(0..StatusOp::ALL.len())];
                self.request += 1;
                let cmd = Command::ChangeStatus {
                    request_id: format!("q{}", self.request),
                    identifier: l.identifier.clone(),
                    op,
                    reason: Some("test".into()),
                };
                self.run(cmd).await;
                format!("{op} {}", l.identifier)
            }
            75..=84 => {
                let as_of = date(self.rng.random_range(0..1200));
                let query = Query {
                    expires_before: Some(as_of),
                    ..Query::default()
                };
                let p = plan(&query).expect("plan");
                let page = self.reader().query(&query, &p, None, 1000).expect("query");
                let mut identifiers: Vec<String> =
                    page.licenses.iter().map(|l| l.identifier.clone()).collect();
                if let Some(l) = self.pick_current() {
                    identifiers.push(l.identifier); // not necessarily lapsed: must be skipped
                }
                let n = identifiers.len();
                self.run(Command::Expire { as_of, identifiers }).await;
                format!("expire {n} as of {as_of}")
            }
            85..=89 => {
                let revision = self.rng.random_range(0..=self.next_index);
                self.run(Command::Compact { revision }).await;
                format!("compact {revision}")
            }
            90..=94 => {
                let dir = self.dirs.last().expect("dir").path().to_path_buf();
                self.reopen(&dir);
                "restart".into()
            }
            _ => {
                self.move_by_snapshot().await;
                "snapshot install".into()
            }
        }
    }

    fn reopen(&mut self, dir: &Path) {
        let placeholder = tempfile::tempdir().expect("tempdir");
        let old = std::mem::replace(
            &mut self.storage,
            open(placeholder.path()).expect("open placeholder"),
        );
        drop(old);
        self.storage = open(dir).expect("reopen");
    }

    /// Builds a snapshot here and continues on a fresh store that installed it.
    async fn move_by_snapshot(&mut self) {
        let snap = self
            .storage
            .state_machine
            .build_snapshot()
            .await
            .expect("build");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut next = open(dir.path()).expect("open");
        let copy = dir.path().join("incoming.bin");
        std::fs::copy(&snap.snapshot.path, &copy).expect("copy");
        let file = licstore_store::SnapshotFile::open(&copy).expect("open");
        next.state_machine
            .install_snapshot(&snap.meta, file)
            .await
            .expect("install");
        self.storage = next;
        self.dirs.push(dir);
    }

    fn assert_consistent(&mut self, step: usize, what: &str) {
        let seed = self.seed;
        let report = self.reader().check().expect("check");
        assert_eq!(report.problems, vec![], "seed {seed}, step {step} ({what})");
        self.assert_feed_matches_records(step);
        if step.is_multiple_of(8) {
            for _ in 0..6 {
                let query = self.random_query();
                self.assert_query_matches_brute_force(&query, step);
            }
        }
    }

    fn random_query(&mut self) -> Query {
        let mut q = Query::default();
        let r = &mut self.rng;
        if r.random_bool(0.4) {
            q.type_code = Some(new_card(0).type_code);
        }
        if r.random_bool(0.3) {
            q.issuer_code = Some(ISSUERS[r.random_range(0..ISSUERS.len())].into());
        }
        if r.random_bool(0.3) {
            let region = REGIONS[r.random_range(0..REGIONS.len())];
            q.region_prefix = Some(region[..[2, 4, 6][r.random_range(0..3)]].into());
        }
        if r.random_bool(0.3) {
            let all = LicenseStatus::ALL;
            q.statuses = (0..r.random_range(1..3))
                .map(|_| all[r.random_range(0..all.len())])
                .collect();
        }
        if r.random_bool(0.3) {
            q.expires_before = Some(date(r.random_range(0..1200)));
        }
        if r.random_bool(0.3) {
            q.changed_since = Some(r.random_range(0..self.next_index));
        }
        if q.type_code.is_some() && r.random_bool(0.2) {
            q.license_number = Some(citizen(r.random_range(0..HOLDERS)));
        }
        q
    }

    fn assert_query_matches_brute_force(&self, q: &Query, step: usize) {
        let seed = self.seed;
        let p = plan(q).expect("plan");
        let mut want: Vec<License> = self
            .currents()
            .into_iter()
            .filter(|l| brute_force_match(q, l))
            .collect();
        want.sort_by_key(|l| key_of(p.index, l).expect("indexed"));
        let want: Vec<String> = want.into_iter().map(|l| l.identifier).collect();
        let reader = self.reader();
        let (mut got, mut cursor) = (Vec::new(), None);
        for _ in 0..1000 {
            let page = reader.query(q, &p, cursor.as_deref(), 3).expect("query");
            got.extend(page.licenses.into_iter().map(|l| l.identifier));
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(
            got, want,
            "seed {seed}, step {step}, query {q:?}, plan {p:?}"
        );
        let count = reader.query(q, &p, None, 0).expect("count").count;
        assert_eq!(
            count as usize,
            want.len(),
            "seed {seed}, step {step}, count {q:?}"
        );
    }

    /// Every current version changed at or after the compaction revision has, as its last
    /// event, one that names it with its status and revision; the feed is strictly ordered.
    fn assert_feed_matches_records(&self, step: usize) {
        let seed = self.seed;
        let reader = self.reader();
        let compacted = reader.compacted_revision().expect("compacted");
        let FeedRead::Page(page) = reader
            .events(compacted, &EventFilter::default(), usize::MAX, usize::MAX)
            .expect("events")
        else {
            panic!("seed {seed}, step {step}: reading from the compaction revision failed");
        };
        let order: Vec<(u64, u32)> = page.events.iter().map(|e| (e.revision, e.seq)).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}, step {step}: order"
        );
        assert!(order.first().is_none_or(|(r, _)| *r >= compacted));
        for l in self.currents() {
            if l.revision < compacted {
                continue;
            }
            let last = page
                .events
                .iter()
                .rev()
                .find(|e| e.identifier == l.identifier);
            let last = last.unwrap_or_else(|| {
                panic!("seed {seed}, step {step}: no event for {}", l.identifier)
            });
            assert_eq!(
                (last.revision, last.new_status, last.digest),
                (l.revision, l.status, l.digest),
                "seed {seed}, step {step}: last event of {}",
                l.identifier
            );
        }
        if compacted > 1 {
            let below = reader
                .events(compacted - 1, &EventFilter::default(), 10, 10)
                .expect("events");
            assert_eq!(
                below,
                FeedRead::Compacted { oldest: compacted },
                "seed {seed}"
            );
        }
    }
}

/// The query's meaning, written out over whole records.
fn brute_force_match(q: &Query, l: &License) -> bool {
    let live = matches!(l.status, LicenseStatus::Valid | LicenseStatus::Suspended);
    q.type_code.as_ref().is_none_or(|t| *t == l.type_code)
        && q.license_number
            .as_ref()
            .is_none_or(|n| *n == l.license_number)
        && (q.statuses.is_empty() || q.statuses.contains(&l.status))
        && q.issuer_code.as_ref().is_none_or(|i| *i == l.issuer.code)
        && q.region_prefix
            .as_ref()
            .is_none_or(|p| l.region_code.starts_with(p.as_str()))
        && q.expires_before
            .is_none_or(|d| live && l.valid_until.is_some_and(|u| u < d))
        && q.changed_since.is_none_or(|r| l.revision > r)
}

fn current_records(db: &rocksdb::DB) -> Vec<License> {
    let cf = db.cf_handle("current").expect("cf");
    db.iterator_cf(cf, rocksdb::IteratorMode::Start)
        .map(|item| {
            let (_, value) = item.expect("iterate");
            canonical::decode(&value).expect("decode")
        })
        .collect()
}

#[tokio::test]
async fn indexes_queries_and_feed_stay_consistent_under_random_histories() {
    for _ in 0..3 {
        let seed = seed();
        eprintln!("indexes_and_feed seed {seed} (replay with LICSTORE_TEST_SEED={seed})");
        let mut world = World::new(seed);
        for step in 0..STEPS {
            let what = world.step().await;
            world.assert_consistent(step, &what);
        }
        if std::env::var("LICSTORE_TEST_SEED").is_ok() {
            break;
        }
    }
}

#[tokio::test]
async fn expire_skips_what_is_not_lapsed_live_and_current() {
    let mut world = World::new(1);
    let mut lapsed = new_card(1);
    lapsed.valid_until = Some(date(10));
    let mut revoked = new_card(2);
    revoked.valid_until = Some(date(10));
    let mut later = new_card(3);
    later.valid_until = Some(date(400));
    let item = |license, status| ImportItem {
        request_id: String::new(),
        identifier: None,
        license,
        legacy_checksum: false,
        status,
        status_reason: None,
        seal: Vec::new(),
        serial_derived: false,
    };
    world
        .run(Command::Import(vec![
            item(lapsed, LicenseStatus::Valid),
            item(revoked, LicenseStatus::Revoked),
            item(later, LicenseStatus::Suspended),
        ]))
        .await;
    let ids: Vec<String> = world
        .currents()
        .iter()
        .map(|l| l.identifier.clone())
        .collect();
    let mut all = ids.clone();
    all.push("1.2.156.3005.2.unknown".into());
    world
        .run(Command::Expire {
            as_of: date(11),
            identifiers: all,
        })
        .await;
    let statuses: Vec<(String, LicenseStatus)> = world
        .currents()
        .into_iter()
        .map(|l| (l.holder.id, l.status))
        .collect();
    assert!(
        statuses.contains(&(citizen(1), LicenseStatus::Expired)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(citizen(2), LicenseStatus::Revoked)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&(citizen(3), LicenseStatus::Suspended)),
        "{statuses:?}"
    );
    let FeedRead::Page(page) = world
        .reader()
        .events(2, &EventFilter::default(), 100, 100)
        .expect("events")
    else {
        panic!("not compacted");
    };
    let ops: Vec<(&str, Option<LicenseStatus>)> = page
        .events
        .iter()
        .map(|e| (e.op.as_str(), e.old_status))
        .collect();
    assert_eq!(ops, vec![("expire", Some(LicenseStatus::Valid))]);
    assert_eq!(world.reader().check().expect("check").problems, vec![]);
}

#[tokio::test]
async fn compaction_drops_old_events_and_refuses_a_future_revision() {
    let mut world = World::new(2);
    for seq in 0..5 {
        world.run(issue(seq)).await;
    }
    world.run(Command::Compact { revision: 4 }).await;
    let reader = world.reader();
    assert_eq!(reader.compacted_revision().expect("compacted"), 4);
    let read = |from| {
        reader
            .events(from, &EventFilter::default(), 100, 100)
            .expect("events")
    };
    assert_eq!(read(3), FeedRead::Compacted { oldest: 4 });
    let FeedRead::Page(page) = read(4) else {
        panic!("revision 4 is retained");
    };
    let revisions: Vec<u64> = page.events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, vec![4, 5]);
    assert_eq!(
        page.next_revision, 7,
        "the compact entry itself is applied index 6"
    );
    // Compacting backwards changes nothing; beyond the log is refused.
    world.run(Command::Compact { revision: 2 }).await;
    world.run(Command::Compact { revision: 1000 }).await;
    assert_eq!(world.reader().compacted_revision().expect("compacted"), 4);
}

#[tokio::test]
async fn a_page_of_the_feed_ends_on_a_whole_revision() {
    let mut world = World::new(3);
    let items: Vec<ImportItem> = (0..5)
        .map(|seq| ImportItem {
            request_id: format!("imp{seq}"),
            identifier: None,
            license: new_card(seq),
            legacy_checksum: false,
            status: LicenseStatus::Valid,
            status_reason: None,
            seal: Vec::new(),
            serial_derived: false,
        })
        .collect();
    world.run(Command::Import(items)).await;
    world.run(issue(9)).await;
    let reader = world.reader();
    let FeedRead::Page(page) = reader
        .events(1, &EventFilter::default(), 2, 100)
        .expect("read")
    else {
        panic!("not compacted");
    };
    assert_eq!(
        page.events.len(),
        5,
        "all five events of revision 1, though 2 were asked"
    );
    assert_eq!(page.next_revision, 2);
    let FeedRead::Page(rest) = reader
        .events(2, &EventFilter::default(), 2, 100)
        .expect("read")
    else {
        panic!("not compacted");
    };
    assert_eq!(rest.events.len(), 1);
    assert_eq!((rest.next_revision, rest.applied_index), (3, 2));
}

#[tokio::test]
async fn pages_of_a_pinned_listing_ignore_writes_made_between_them() {
    let mut world = World::new(4);
    for seq in 0..20 {
        world.run(issue(seq)).await;
    }
    let query = Query {
        statuses: vec![LicenseStatus::Valid, LicenseStatus::Suspended],
        ..Query::default()
    };
    let p = plan(&query).expect("plan");
    let pinned = world.reader().pin().expect("pin");
    let want: Vec<String> = {
        let mut all = world.currents();
        all.sort_by_key(|l| key_of(p.index, l).expect("indexed"));
        all.into_iter().map(|l| l.identifier).collect()
    };
    let first = licstore_store::query::run(&pinned, &query, &p, None, 3).expect("page");
    let mut got: Vec<String> = first
        .licenses
        .iter()
        .map(|l| l.identifier.clone())
        .collect();
    // Between pages: records move inside the status index, in both directions, and new ones
    // arrive. None of it may show in the pinned listing.
    for (n, l) in world.currents().into_iter().enumerate() {
        world.request += 1;
        let op = if n % 2 == 0 {
            StatusOp::Suspend
        } else {
            StatusOp::Revoke
        };
        let cmd = Command::ChangeStatus {
            request_id: format!("p{}", world.request),
            identifier: l.identifier,
            op,
            reason: None,
        };
        world.run(cmd).await;
    }
    world.run(issue(21)).await;
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let page = licstore_store::query::run(&pinned, &query, &p, Some(&c), 3).expect("page");
        assert_eq!(page.applied_index, first.applied_index);
        got.extend(page.licenses.into_iter().map(|l| l.identifier));
        cursor = page.next_cursor;
    }
    assert_eq!(got, want);
    // Unpinned, the same query sees the new state.
    let now = world.reader().query(&query, &p, None, 1000).expect("query");
    assert_eq!(now.licenses.len(), 11, "10 suspended and the new one");
}

#[tokio::test]
async fn compaction_forgets_request_results_stored_below_it() {
    let mut world = World::new(5);
    for seq in 0..6 {
        world.run(issue(seq)).await; // request ids r0..r5 at revisions 1..6
    }
    world.run(Command::Compact { revision: 4 }).await;
    let db = world.storage.db.clone();
    let requests = db.cf_handle("requests").expect("cf");
    let kept: Vec<String> = db
        .iterator_cf(requests, rocksdb::IteratorMode::Start)
        .map(|item| String::from_utf8(item.expect("read").0.to_vec()).expect("utf-8"))
        .collect();
    assert_eq!(
        kept,
        vec!["r3", "r4", "r5"],
        "results of revisions 4..6 stay"
    );
    assert_eq!(world.reader().check().expect("check").problems, vec![]);
    // A retry of a forgotten request is decided afresh: the holder already has the card.
    world.run(issue(0)).await;
    let kept_after = db
        .iterator_cf(requests, rocksdb::IteratorMode::Start)
        .count();
    assert_eq!(kept_after, 3, "the refused retry stores nothing");
}

#[tokio::test]
async fn replicas_that_batch_their_applies_differently_agree() {
    let mut cmds: Vec<Command> = (0..10).map(issue).collect();
    cmds.push(Command::Compact { revision: 5 });
    cmds.extend((10..15).map(issue));
    cmds.push(Command::Compact { revision: 14 });
    cmds.push(issue(20));
    let mut at_once = World::new(6);
    apply(&mut at_once.storage.state_machine, entries(1, cmds.clone())).await;
    let mut one_by_one = World::new(6);
    for cmd in cmds {
        one_by_one.run(cmd).await;
    }
    let a = at_once.reader().state_digest().expect("digest");
    let b = one_by_one.reader().state_digest().expect("digest");
    assert_eq!(a, b);
    assert_eq!(
        at_once.reader().compacted_revision().expect("compacted"),
        14
    );
    assert_eq!(at_once.reader().check().expect("check").problems, vec![]);
}
