//! The audit journal and trail on a real RocksDB store: synced journal appends that survive a
//! reopen, batches applied once however often they are proposed, a chain that checks, and the
//! holder index.

mod common;

use std::sync::Arc;

use common::entries;
use licstore_model::audit::{check_chain, decode_record, AuditEvent};
use licstore_model::HolderKind;
use licstore_store::audit::{AuditAppended, AuditJournal, AuditReader};
use licstore_store::{Command, CommandResult, Reader, StateMachine};

fn event(holder: &str, purpose: &str) -> AuditEvent {
    AuditEvent {
        time_ms: 1_780_000_000_000,
        node_id: 1,
        caller: "pudong-counter".into(),
        roles: "verifier".into(),
        action: "Licenses/Verify".into(),
        outcome: "valid".into(),
        service_item: "婚姻登记档案查询".into(),
        purpose: purpose.into(),
        holder_kind: Some(HolderKind::CitizenId),
        holder_id: holder.into(),
        type_code: "T".into(),
        revision: 7,
        ..Default::default()
    }
}

fn apply(sm: &mut StateMachine, index: &mut u64, events: Vec<Vec<u8>>) -> AuditAppended {
    *index += 1;
    let cmd = Command::AppendAudit { events };
    match sm
        .apply_batch(entries(*index, vec![cmd]))
        .expect("apply")
        .remove(0)
    {
        CommandResult::Audit(Ok(done)) => done,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn journal_events_reach_the_trail_once_and_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = licstore_store::open(dir.path()).expect("open");
    let db = storage.db.clone();
    let mut sm = storage.state_machine;
    let reader = Reader::new(db.clone());
    let mut journal = AuditJournal::open(&reader, || 501).expect("journal");
    let mut first = [event("A", "p1"), event("B", "p2"), event("A", "p3")];
    journal.append(&mut first).expect("append");
    assert_eq!(
        first
            .iter()
            .map(|e| (e.journal, e.journal_seq))
            .collect::<Vec<_>>(),
        [(501, 1), (501, 2), (501, 3)]
    );
    let pending = journal.pending(10).expect("pending");
    assert_eq!(pending.len(), 3);

    let mut index = 0;
    let done = apply(&mut sm, &mut index, pending.clone());
    assert_eq!((done.recorded, done.duplicates, done.tail_seq), (3, 0, 3));
    assert_eq!(done.high_water, [(501, 3)]);
    // The same batch proposed again, say after a leader change: nothing new.
    let again = apply(&mut sm, &mut index, pending);
    assert_eq!(
        (again.recorded, again.duplicates, again.tail_seq),
        (0, 3, 3)
    );
    assert_eq!(
        again.high_water,
        [(501, 3)],
        "duplicates still report the high water"
    );
    journal.trim_through(3).expect("trim");
    assert!(journal.pending(10).expect("pending").is_empty());

    let mut second = [event("A", "p4")];
    journal.append(&mut second).expect("append");
    assert_eq!(second[0].journal_seq, 4, "positions go on after a trim");
    apply(&mut sm, &mut index, journal.pending(10).expect("pending"));

    let reader = AuditReader::new(&reader);
    let records = reader.records(1, 100).expect("records");
    let (head, count) = check_chain(records.iter().map(Vec::as_slice)).expect("chain");
    assert_eq!(count, 4);
    assert_eq!(reader.tail().expect("tail").hash, head);
    let purposes = |bytes: Vec<Vec<u8>>| -> Vec<String> {
        bytes
            .iter()
            .map(|b| decode_record(b).expect("record").event.purpose)
            .collect()
    };
    let of_a = reader
        .records_of_holder(HolderKind::CitizenId, "A", 0, 100)
        .expect("holder");
    assert_eq!(purposes(of_a), ["p1", "p3", "p4"]);
    let later = reader.records(3, 100).expect("from 3");
    assert_eq!(purposes(later), ["p3", "p4"]);
    assert_eq!(reader.high_water(501).expect("high water"), 4);
}

#[test]
fn a_reopened_journal_keeps_its_id_and_unshipped_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = licstore_store::open(dir.path()).expect("open");
        let reader = Reader::new(storage.db.clone());
        let mut journal = AuditJournal::open(&reader, || 9).expect("journal");
        journal
            .append(&mut [event("A", "p1"), event("A", "p2")])
            .expect("append");
    }
    let storage = licstore_store::open(dir.path()).expect("reopen");
    let reader = Reader::new(Arc::clone(&storage.db));
    let mut journal = AuditJournal::open(&reader, || panic!("the id is stored")).expect("open");
    assert_eq!(journal.id(), 9);
    assert_eq!(journal.pending(10).expect("pending").len(), 2);
    let mut next = [event("A", "p3")];
    journal.append(&mut next).expect("append");
    assert_eq!(next[0].journal_seq, 3);
}

#[test]
fn a_journal_trimmed_empty_and_reopened_never_reuses_a_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut index = 0;
    {
        let storage = licstore_store::open(dir.path()).expect("open");
        let mut sm = storage.state_machine;
        let reader = Reader::new(storage.db.clone());
        let mut journal = AuditJournal::open(&reader, || 12).expect("journal");
        journal
            .append(&mut [event("A", "p1"), event("A", "p2")])
            .expect("append");
        apply(&mut sm, &mut index, journal.pending(10).expect("pending"));
        journal.trim_through(2).expect("trim");
        assert_eq!(journal.backlog().expect("backlog"), 0);
    }
    let storage = licstore_store::open(dir.path()).expect("reopen");
    let mut sm = storage.state_machine;
    let reader = Reader::new(storage.db.clone());
    let mut journal = AuditJournal::open(&reader, || panic!("the id is stored")).expect("open");
    let mut next = [event("A", "after the restart")];
    journal.append(&mut next).expect("append");
    assert_eq!(
        next[0].journal_seq, 3,
        "positions go on after an empty journal reopens"
    );
    assert_eq!(journal.backlog().expect("backlog"), 1);
    let done = apply(&mut sm, &mut index, journal.pending(10).expect("pending"));
    assert_eq!(
        (done.recorded, done.duplicates),
        (1, 0),
        "not taken for a duplicate"
    );
}

#[test]
fn holder_ids_with_a_nul_are_not_indexed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = licstore_store::open(dir.path()).expect("open");
    let mut sm = storage.state_machine;
    let reader = Reader::new(storage.db.clone());
    let mut journal = AuditJournal::open(&reader, || 3).expect("journal");
    let poisoned = event("A\0\0\0\0\0\0\0\x05", "probe");
    journal
        .append(&mut [event("A", "p1"), poisoned])
        .expect("append");
    let mut index = 0;
    let done = apply(&mut sm, &mut index, journal.pending(10).expect("pending"));
    assert_eq!(done.recorded, 2);
    let trail = AuditReader::new(&reader);
    let of_a = trail
        .records_of_holder(HolderKind::CitizenId, "A", 0, 10)
        .expect("holder");
    assert_eq!(of_a.len(), 1, "only A's own record");
}
