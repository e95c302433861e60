//! Storage tests on a real RocksDB in a temporary directory: what is applied survives a
//! restart with its indexes, the log keeps what was appended, snapshots move state exactly,
//! and a damaged or interrupted snapshot never corrupts the state machine.

use std::io;

use futures::stream;
use licstore_model::{HolderKind, LicenseStatus, StatusOp};
use licstore_store::index::{self, IndexKind};
use licstore_store::{
    keys, open, Command, CommandResult, ImportItem, Reader, RejectCode, TypeConfig,
};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::testing::log_id;
use openraft::type_config::TypeConfigExt;
use openraft::{RaftLogReader, RaftSnapshotBuilder};

mod common;
use common::*;

#[tokio::test]
async fn applied_state_and_indexes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = open(dir.path()).expect("open");
        apply(
            &mut s.state_machine,
            entries(1, (0..50).map(issue).collect()),
        )
        .await;
        let reader = Reader::new(s.db.clone());
        let card = reader
            .get(HolderKind::CitizenId, &citizen(3), &new_card(3).type_code)
            .expect("get");
        let id = card[0].identifier.clone();
        let change = Command::ChangeStatus {
            request_id: "s".into(),
            identifier: id,
            op: StatusOp::Suspend,
            reason: None,
        };
        apply(&mut s.state_machine, entries(51, vec![change])).await;
    }
    let mut s = open(dir.path()).expect("reopen");
    let (applied, _) = s.state_machine.applied_state().await.expect("applied");
    assert_eq!(applied.map(|l| l.index()), Some(51));
    let reader = Reader::new(s.db.clone());
    for seq in 0..50 {
        let found = reader
            .get(
                HolderKind::CitizenId,
                &citizen(seq),
                &new_card(seq).type_code,
            )
            .expect("get");
        assert_eq!(found.len(), 1, "holder {seq}");
        let by_id = reader
            .get_by_identifier(&found[0].identifier)
            .expect("by id")
            .expect("indexed");
        assert_eq!(by_id, found[0]);
        assert_eq!(
            reader
                .list_by_holder(HolderKind::CitizenId, &citizen(seq))
                .expect("list"),
            found
        );
        let want = if seq == 3 {
            LicenseStatus::Suspended
        } else {
            LicenseStatus::Valid
        };
        assert_eq!(found[0].status, want);
        assert!(found[0].digest_matches());
    }
    assert_eq!(reader.state_digest().expect("digest").records, 50);
}

#[tokio::test]
async fn retried_request_is_applied_once_and_rejections_are_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path()).expect("open");
    let dup = vec![issue(1), issue(1), issue(2)];
    let items: Vec<Result<EntryResponder<TypeConfig>, io::Error>> =
        entries(1, dup).into_iter().map(|e| Ok((e, None))).collect();
    s.state_machine
        .apply(stream::iter(items))
        .await
        .expect("apply");
    let reader = Reader::new(s.db.clone());
    assert_eq!(reader.state_digest().expect("digest").records, 2);
    // Same holder, new request id: the holder already has a valid card.
    let mut again = issue(1);
    if let Command::Issue(item) = &mut again {
        item.request_id = "other".into();
    }
    apply(&mut s.state_machine, entries(4, vec![again])).await;
    assert_eq!(reader.state_digest().expect("digest").records, 2);
}

#[tokio::test]
async fn log_entries_are_readable_after_append_and_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut s = open(dir.path()).expect("open");
        let (tx, rx) = TypeConfig::oneshot();
        let cb = IOFlushed::<TypeConfig>::Signal(tx);
        s.log_store
            .append(entries(1, (0..10).map(issue).collect()), cb)
            .await
            .expect("append");
        rx.await.expect("callback").expect("flushed");
        let got = s.log_store.try_get_log_entries(3..6).await.expect("read");
        assert_eq!(
            got.iter().map(|e| e.index()).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }
    let mut s = open(dir.path()).expect("reopen");
    let state = s.log_store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id.map(|l| l.index()), Some(10));
    s.log_store
        .truncate_after(Some(log_id::<TypeConfig>(1, 1, 7)))
        .await
        .expect("truncate");
    s.log_store
        .purge(log_id::<TypeConfig>(1, 1, 2))
        .await
        .expect("purge");
    let state = s.log_store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id.map(|l| l.index()), Some(7));
    assert_eq!(state.last_purged_log_id.map(|l| l.index()), Some(2));
    let got = s.log_store.try_get_log_entries(0..100).await.expect("read");
    assert_eq!(
        got.iter().map(|e| e.index()).collect::<Vec<_>>(),
        vec![3, 4, 5, 6, 7]
    );
}

#[tokio::test]
async fn snapshot_moves_the_exact_state_and_a_damaged_one_is_refused() {
    let a_dir = tempfile::tempdir().expect("tempdir");
    let b_dir = tempfile::tempdir().expect("tempdir");
    let mut a = open(a_dir.path()).expect("open a");
    apply(
        &mut a.state_machine,
        entries(1, (0..30).map(issue).collect()),
    )
    .await;
    let snap = a.state_machine.build_snapshot().await.expect("build");
    let want = Reader::new(a.db.clone()).state_digest().expect("digest");

    let mut b = open(b_dir.path()).expect("open b");
    apply(&mut b.state_machine, entries(1, vec![issue(500)])).await;
    let before = Reader::new(b.db.clone()).state_digest().expect("digest");

    // A copy with one byte flipped is refused and changes nothing.
    let damaged = b_dir.path().join("damaged.bin");
    let mut bytes = std::fs::read(&snap.snapshot.path).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&damaged, bytes).expect("write");
    let file = licstore_store::SnapshotFile::open(&damaged).expect("open");
    assert!(b
        .state_machine
        .install_snapshot(&snap.meta, file)
        .await
        .is_err());
    assert_eq!(
        Reader::new(b.db.clone()).state_digest().expect("digest"),
        before
    );

    let copy = b_dir.path().join("copy.bin");
    std::fs::copy(&snap.snapshot.path, &copy).expect("copy");
    let file = licstore_store::SnapshotFile::open(&copy).expect("open");
    b.state_machine
        .install_snapshot(&snap.meta, file)
        .await
        .expect("install");
    assert_eq!(
        Reader::new(b.db.clone()).state_digest().expect("digest"),
        want
    );
    let current = b
        .state_machine
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("some");
    assert_eq!(current.meta.last_log_id, snap.meta.last_log_id);
}

#[tokio::test]
async fn an_interrupted_install_is_finished_at_the_next_start() {
    let a_dir = tempfile::tempdir().expect("tempdir");
    let b_dir = tempfile::tempdir().expect("tempdir");
    let mut a = open(a_dir.path()).expect("open a");
    apply(
        &mut a.state_machine,
        entries(1, (0..30).map(issue).collect()),
    )
    .await;
    let snap = a.state_machine.build_snapshot().await.expect("build");
    let want = Reader::new(a.db.clone()).state_digest().expect("digest");
    {
        let b = open(b_dir.path()).expect("open b");
        // As if the node died right after recording the install and wiping half the records.
        let name = std::path::Path::new(&snap.snapshot.path)
            .file_name()
            .expect("name");
        std::fs::copy(
            &snap.snapshot.path,
            b_dir.path().join("snapshots").join(name),
        )
        .expect("copy");
        let meta_cf = b.db.cf_handle("sm_meta").expect("cf");
        b.db.put_cf(meta_cf, b"installing", name.to_string_lossy().as_bytes())
            .expect("marker");
        b.db.put_cf(b.db.cf_handle("current").expect("cf"), b"garbage", b"x")
            .expect("put");
    }
    let b = open(b_dir.path()).expect("reopen b");
    assert_eq!(
        Reader::new(b.db.clone()).state_digest().expect("digest"),
        want
    );
}

#[tokio::test]
async fn an_amendment_never_takes_an_identifier_that_is_already_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path()).expect("open");
    let type_code = new_card(1).type_code;
    let v1 = licstore_model::Identifier::generate(&type_code, &issuer_code(), "COLL1", 1)
        .expect("identifier");
    let v2 = v1.next_version().expect("next");
    // Historic stock: holder 2 arrives with version 2 of the same serial that holder 1 has at 1.
    let stock = |seq: u32, id: &licstore_model::Identifier| ImportItem {
        request_id: format!("stock-{seq}"),
        identifier: Some(id.to_string()),
        license: new_card(seq),
        legacy_checksum: false,
        status: LicenseStatus::Valid,
        status_reason: None,
        seal: Vec::new(),
        serial_derived: false,
    };
    let cmds = vec![Command::Import(vec![stock(1, &v1), stock(2, &v2)])];
    apply(&mut s.state_machine, entries(1, cmds)).await;
    let amend = Command::Amend {
        request_id: "amend".into(),
        identifier: v1.to_string(),
        license: new_card(1),
        seal: Vec::new(),
    };
    apply(&mut s.state_machine, entries(2, vec![amend])).await;
    let reader = Reader::new(s.db.clone());
    let holder2 = reader
        .get_by_identifier(&v2.to_string())
        .expect("read")
        .expect("stored");
    assert_eq!(
        holder2.holder.id,
        citizen(2),
        "version 2 must still belong to holder 2"
    );
    let holder1 = reader
        .get_by_identifier(&v1.to_string())
        .expect("read")
        .expect("stored");
    assert_eq!(
        holder1.superseded_by, None,
        "the refused amendment changed nothing"
    );
}

#[test]
fn a_taken_identifier_is_a_duplicate_only_for_the_same_license() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path()).expect("open");
    let type_code = new_card(1).type_code;
    let v1 = licstore_model::Identifier::generate(&type_code, &issuer_code(), "STOCK1", 1)
        .expect("identifier")
        .to_string();
    let item = |request_id: &str, seq: u32, identifier: Option<&str>, serial: Option<&str>| {
        let mut license = new_card(seq);
        license.serial = serial.map(str::to_owned);
        ImportItem {
            request_id: request_id.into(),
            identifier: identifier.map(str::to_owned),
            license,
            legacy_checksum: false,
            status: LicenseStatus::Valid,
            status_reason: None,
            seal: Vec::new(),
            serial_derived: false,
        }
    };
    let first = Command::Import(vec![item("stock-1", 1, Some(&v1), None)]);
    s.state_machine
        .apply_batch(entries(1, vec![first]))
        .expect("apply");
    // (case, command, expected: Ok(duplicate) or the refusal's code and field)
    type Expected = Result<bool, (RejectCode, &'static str)>;
    let cases: Vec<(&str, Command, Expected)> = vec![
        (
            "the same record under a new request id",
            Command::Import(vec![item("stock-1-again", 1, Some(&v1), None)]),
            Ok(true),
        ),
        (
            "another holder's record under the stored identifier",
            Command::Import(vec![item("stock-3", 3, Some(&v1), None)]),
            Err((RejectCode::AlreadyExists, "identifier")),
        ),
        (
            "the same record in another status",
            Command::Import(vec![ImportItem {
                status: LicenseStatus::Revoked,
                ..item("stock-1-revoked", 1, Some(&v1), None)
            }]),
            Err((RejectCode::AlreadyExists, "identifier")),
        ),
        (
            "the same record with a seal the stored one lacks",
            Command::Import(vec![ImportItem {
                seal: vec![1],
                ..item("stock-1-sealed", 1, Some(&v1), None)
            }]),
            Err((RejectCode::AlreadyExists, "identifier")),
        ),
        (
            "an issue whose serial names the stored license, same content",
            Command::Issue(item("issue-1", 1, None, Some("STOCK1"))),
            Ok(true),
        ),
        (
            "an issue whose serial is taken, other content",
            Command::Issue(item("issue-4", 4, None, Some("STOCK1"))),
            Err((RejectCode::AlreadyExists, "license.serial")),
        ),
    ];
    let mut index = 1;
    let mut run = |case: &str, cmd: Command| {
        index += 1;
        let mut results = s
            .state_machine
            .apply_batch(entries(index, vec![cmd]))
            .expect("apply");
        let result = match results.remove(0) {
            CommandResult::Write(r) => r,
            CommandResult::Import(mut r) => r.remove(0),
            other => panic!("{case}: unexpected {other:?}"),
        };
        result.map(|o| o.duplicate).map_err(|r| (r.code, r.field))
    };
    for (case, cmd, expected) in cases {
        let want = expected.map_err(|(code, field)| (code, field.to_owned()));
        assert_eq!(run(case, cmd), want, "{case}");
    }
    // A version that an amendment moved to history is still the same license.
    let amend = Command::Amend {
        request_id: "amend-1".into(),
        identifier: v1.clone(),
        license: new_card(1),
        seal: Vec::new(),
    };
    assert_eq!(run("amend", amend), Ok(false));
    let replay = Command::Import(vec![item("stock-1-replay", 1, Some(&v1), None)]);
    assert_eq!(run("replay of a superseded version", replay), Ok(true));
    let reader = Reader::new(s.db.clone());
    let stored = reader
        .get_by_identifier(&v1)
        .expect("read")
        .expect("stored");
    assert_eq!(stored.holder.id, citizen(1));
    assert_eq!(
        stored.revision, 8,
        "only the amendment wrote over the stored license"
    );
    // An identifier index entry that points at nothing is corruption, not a free identifier.
    let lost = licstore_model::Identifier::generate(&type_code, &issuer_code(), "LOST1", 1)
        .expect("identifier")
        .to_string();
    let cf = s.db.cf_handle("ident").expect("cf");
    s.db.put_cf(cf, lost.as_bytes(), b"nowhere").expect("put");
    let import = Command::Import(vec![item("lost-1", 5, Some(&lost), None)]);
    let applied = s.state_machine.apply_batch(entries(10, vec![import]));
    assert!(applied.is_err(), "{applied:?}");
}

#[tokio::test]
async fn check_finds_nothing_on_a_healthy_store_and_every_injected_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(dir.path()).expect("open");
    apply(
        &mut s.state_machine,
        entries(1, (0..20).map(issue).collect()),
    )
    .await;
    let reader = Reader::new(s.db.clone());
    let card = reader
        .get(HolderKind::CitizenId, &citizen(4), &new_card(4).type_code)
        .expect("get");
    let id = card[0].identifier.clone();
    let amend = Command::Amend {
        request_id: "a".into(),
        identifier: id,
        license: new_card(4),
        seal: Vec::new(),
    };
    apply(&mut s.state_machine, entries(21, vec![amend])).await;
    let healthy = reader.check().expect("check");
    assert_eq!(healthy.problems, vec![], "{healthy:?}");
    // 20 identifier entries, 6 secondary entries for each of 20 current versions, and 21 stored
    // request results each filed under its revision.
    assert_eq!(
        (
            healthy.records_checked,
            healthy.index_entries_checked,
            healthy.events_checked
        ),
        (21, 20 + 20 * 6 + 21 * 2, 21)
    );

    let cf = |name: &str| s.db.cf_handle(name).expect("cf");
    let victims = reader
        .list_by_holder(HolderKind::CitizenId, &citizen(1))
        .expect("list");
    // 1. a missing identifier-index entry
    s.db.delete_cf(cf("ident"), victims[0].identifier.as_bytes())
        .expect("delete");
    // 2. a dangling identifier-index entry
    s.db.put_cf(cf("ident"), b"1.2.156.3005.2.dangling", b"nowhere")
        .expect("put");
    // 3. a record whose bytes no longer match its digest
    let mut tampered = reader
        .list_by_holder(HolderKind::CitizenId, &citizen(2))
        .expect("list");
    tampered[0].holder.name = "篡改".into();
    let key = licstore_store::keys::current_key(
        HolderKind::CitizenId,
        &citizen(2),
        &tampered[0].type_code,
        "",
    );
    let bytes = licstore_model::canonical::encode(&tampered[0]);
    s.db.put_cf(cf("current"), key, bytes).expect("put");
    // 4. a missing status-index entry of another record
    let third = &reader
        .list_by_holder(HolderKind::CitizenId, &citizen(3))
        .expect("list")[0];
    let status_key = index::key_of(IndexKind::Status, third).expect("key");
    let summary =
        s.db.get_cf(cf("index"), &status_key)
            .expect("get")
            .expect("entry");
    s.db.delete_cf(cf("index"), &status_key).expect("delete");
    // 5. a dangling issuer-index entry, as a lost delete would leave
    let mut gone = third.clone();
    gone.identifier = "1.2.156.3005.2.gone".into();
    let dangling = index::key_of(IndexKind::Issuer, &gone).expect("key");
    s.db.put_cf(cf("index"), dangling, &summary).expect("put");
    // 6. an event filed under the wrong revision
    let event =
        s.db.get_cf(cf("events"), keys::event_key(5, 0))
            .expect("get")
            .expect("event");
    s.db.put_cf(cf("events"), keys::event_key(6, 7), event)
        .expect("put");

    let report = reader.check().expect("check");
    let found: Vec<(&str, &str)> = report
        .problems
        .iter()
        .map(|p| (p.table, p.detail.as_str()))
        .collect();
    // Fault 1 also leaves the victim's 6 secondary entries without an identifier to own them.
    assert_eq!(report.problem_count, 3 + 6 + 3, "{found:?}");
    for want in [
        ("current", "status_type index entry missing"),
        (
            "index",
            "issuer_type entry dangles: no current record owns it",
        ),
        ("events", "key differs from the event's revision"),
    ] {
        assert!(found.contains(&want), "{want:?} not in {found:?}");
    }
    assert!(
        found.contains(&("current", "identifier index entry missing")),
        "{found:?}"
    );
    assert!(
        found.contains(&("ident", "points at no current record")),
        "{found:?}"
    );
    assert!(
        found.contains(&("current", "digest does not match the record")),
        "{found:?}"
    );
}

#[tokio::test]
async fn get_many_answers_as_get_does_in_request_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, reader) = store_with_cards(dir.path(), 20).await;
    let type_code = new_card(0).type_code;
    // Present, absent (the scan path), repeated, out of order.
    let asked: Vec<(HolderKind, String, String)> = [3, 999, 0, 19, 3, 998]
        .into_iter()
        .map(|seq| (HolderKind::CitizenId, citizen(seq), type_code.clone()))
        .collect();
    let many = reader.get_many(&asked).expect("get_many");
    assert_eq!(many.len(), asked.len());
    for ((kind, id, t), got) in asked.iter().zip(&many) {
        let one = reader.get(*kind, id, t).expect("get");
        assert_eq!(got, &one, "{id}");
    }
    let found: Vec<usize> = many.iter().map(Vec::len).collect();
    assert_eq!(found, [1, 0, 1, 1, 1, 0]);
    assert!(reader.get_many(&[]).expect("empty").is_empty());
}

/// The options RocksDB runs with, as it records them in its newest `OPTIONS-<n>` file.
fn options_file_of(dir: &std::path::Path) -> String {
    let db_dir = dir.join("db");
    let newest = std::fs::read_dir(&db_dir)
        .expect("db dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.starts_with("OPTIONS-") && !name.ends_with(".tmp")
        })
        .max()
        .expect("an OPTIONS file");
    std::fs::read_to_string(&newest).expect("read options")
}

/// One `[CFOptions "<cf>"]` section of an options file.
fn cf_section<'a>(options: &'a str, cf: &str) -> &'a str {
    let head = format!("[CFOptions \"{cf}\"]");
    let start = options
        .find(&head)
        .unwrap_or_else(|| panic!("no section for {cf}"));
    let rest = &options[start + head.len()..];
    &rest[..rest.find("\n[").unwrap_or(rest.len())]
}

#[test]
fn rocksdb_info_log_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = open(dir.path()).expect("open");
    drop(s);
    let text = options_file_of(dir.path());
    for want in [
        format!(
            "max_log_file_size={}",
            licstore_store::db::INFO_LOG_FILE_MAX_BYTES
        ),
        format!(
            "keep_log_file_num={}",
            licstore_store::db::INFO_LOG_FILES_KEPT
        ),
    ] {
        assert!(text.contains(&want), "{want} not in the options file");
    }
}

#[test]
fn log_entries_and_level_zero_are_stored_uncompressed() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(open(dir.path()).expect("open"));
    let text = options_file_of(dir.path());
    let none = "kNoCompression";
    let lz4 = "kLZ4Compression";
    let cases = [
        (keys::CF_RAFT_LOG, [none; 7]),
        (keys::CF_CURRENT, [none, lz4, lz4, lz4, lz4, lz4, lz4]),
        (keys::CF_INDEX, [none, lz4, lz4, lz4, lz4, lz4, lz4]),
    ];
    for (cf, levels) in cases {
        let want = format!("compression_per_level={}", levels.join(":"));
        let section = cf_section(&text, cf);
        assert!(section.contains(&want), "{cf}: {want} not in {section}");
    }
}

/// The calling thread's nice value.
#[cfg(target_os = "linux")]
fn own_nice() -> i32 {
    // SAFETY: gettid and getpriority only read this thread's id and nice value.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::getpriority(libc::PRIO_PROCESS, tid)
    }
}

#[cfg(target_os = "linux")]
#[test]
fn background_threads_run_at_a_lower_priority() {
    let before = own_nice();
    let lowered = std::thread::spawn(|| {
        licstore_store::state_machine::lower_thread_priority();
        own_nice()
    })
    .join()
    .expect("thread");
    let background = licstore_store::state_machine::BACKGROUND_NICE;
    assert_eq!(lowered, before.max(background));
    assert_eq!(own_nice(), before, "only the background thread is lowered");
}
