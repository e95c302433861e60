//! The audit journal and trail on a real RocksDB store: synced journal appends that survive a
//! reopen, batches applied once however often they are proposed, a chain that checks, and the
//! holder index; trims that keep the rest of the chain checkable from a vouched checkpoint.

mod common;

use std::sync::Arc;

use common::entries;
use licstore_model::audit::{
    check_chain, decode_record, encode_record, record_hash, AuditEvent, AuditRecord, ChainCheck,
    Trim,
};
use licstore_model::HolderKind;
use licstore_store::audit::{
    AuditAppended, AuditJournal, AuditReader, AuditTail, AuditTrimmed, AUDIT_BATCH_MAX,
    AUDIT_TRIM_MAX,
};
use licstore_store::Rejection;
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

/// Applies a trim by `caller` through `through_seq`.
fn trim(
    sm: &mut StateMachine,
    index: &mut u64,
    through_seq: u64,
    event: Vec<u8>,
) -> Result<AuditTrimmed, Rejection> {
    *index += 1;
    let cmd = Command::TrimAudit { through_seq, event };
    match sm
        .apply_batch(entries(*index, vec![cmd]))
        .expect("apply")
        .remove(0)
    {
        CommandResult::AuditTrim(done) => done,
        other => panic!("unexpected {other:?}"),
    }
}

/// The record of a trim as a server proposes it.
fn trim_event(caller: &str) -> Vec<u8> {
    encode_record(&AuditRecord {
        seq: 0,
        prev: [0; 32],
        event: AuditEvent {
            time_ms: 1_790_000_000_000,
            node_id: 2,
            caller: caller.into(),
            roles: "admin".into(),
            ..Default::default()
        },
    })
}

/// A store whose trail holds `events` journalled and applied, with its reader.
fn trail_of(dir: &std::path::Path, events: &mut [AuditEvent]) -> (StateMachine, Reader, u64) {
    let storage = licstore_store::open(dir).expect("open");
    let mut sm = storage.state_machine;
    let reader = Reader::new(storage.db.clone());
    let mut journal = AuditJournal::open(&reader, || 44).expect("journal");
    let mut index = 0;
    for chunk in events.chunks_mut(AUDIT_BATCH_MAX) {
        journal.append(chunk).expect("append");
        apply(
            &mut sm,
            &mut index,
            journal.pending(AUDIT_BATCH_MAX).expect("pending"),
        );
        journal
            .trim_through(chunk[chunk.len() - 1].journal_seq)
            .expect("trim journal");
    }
    (sm, reader, index)
}

#[test]
fn a_trim_leaves_a_vouched_checkpoint_the_rest_of_the_chain_links_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut events = [
        event("A", "p1"),
        event("B", "p2"),
        event("A", "p3"),
        event("A", "p4"),
        event("B", "p5"),
    ];
    let (mut sm, reader, mut index) = trail_of(dir.path(), &mut events);
    let trail = AuditReader::new(&reader);
    let before = trail.records(1, 100).expect("records");
    let third = record_hash(&before[2]);

    let done = trim(&mut sm, &mut index, 3, trim_event("ops")).expect("trimmed");
    let checkpoint = AuditTail {
        seq: 3,
        hash: third,
    };
    assert_eq!(
        (done.checkpoint, done.trimmed, done.tail_seq),
        (checkpoint, 3, 6)
    );
    // A reader made before the trim reads the state it was made on, whole.
    assert_eq!(
        trail.checkpoint().expect("checkpoint"),
        AuditTail::default()
    );
    assert_eq!(trail.records(1, 100).expect("records"), before);
    let applied_before = trail.applied_index().expect("applied");
    let trail = AuditReader::new(&reader);
    assert_eq!(trail.applied_index().expect("applied"), applied_before + 1);
    assert_eq!(trail.checkpoint().expect("checkpoint"), checkpoint);
    // What is left checks from the checkpoint, and its last record vouches for it.
    let kept = trail.records(1, 100).expect("records");
    assert_eq!(kept.len(), 3, "records 4, 5 and the trim's own");
    let mut check = ChainCheck::after(checkpoint.seq, checkpoint.hash);
    for bytes in &kept {
        check.next(bytes).expect("links");
    }
    assert_eq!(trail.tail().expect("tail").hash, check.head());
    let own = decode_record(&kept[2]).expect("record");
    assert_eq!(own.event.caller, "ops");
    let vouched = Trim::of_record(&own).expect("the trim's record");
    assert_eq!(
        (vouched.through_seq, vouched.hash, vouched.records),
        (3, third, 3)
    );
    // Holder entries of trimmed records go with them.
    let of_a = trail
        .records_of_holder(HolderKind::CitizenId, "A", 0, 10)
        .expect("holder");
    let seqs: Vec<u64> = of_a
        .iter()
        .map(|b| decode_record(b).expect("r").seq)
        .collect();
    assert_eq!(seqs, [4]);

    // Asked again (a retried proposal): nothing removed, nothing recorded.
    let again = trim(&mut sm, &mut index, 2, trim_event("ops")).expect("no-op");
    assert_eq!(
        (again.checkpoint, again.trimmed, again.tail_seq),
        (checkpoint, 0, 6)
    );
    let refusals = [
        (
            trim(&mut sm, &mut index, 7, trim_event("ops")),
            "through_seq",
        ),
        (trim(&mut sm, &mut index, 5, b"junk".to_vec()), "event"),
    ];
    for (result, field) in refusals {
        assert_eq!(result.expect_err("refused").field, field);
    }
    assert_eq!(
        AuditReader::new(&reader).tail().expect("tail").seq,
        6,
        "refusals record nothing"
    );
}

#[test]
fn a_long_trim_goes_in_bounded_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let total = AUDIT_TRIM_MAX + 500;
    let mut events: Vec<AuditEvent> = (0..total).map(|i| event("A", &format!("p{i}"))).collect();
    let (mut sm, reader, mut index) = trail_of(dir.path(), &mut events);
    let first = trim(&mut sm, &mut index, total, trim_event("ops")).expect("first step");
    assert_eq!(
        (first.checkpoint.seq, first.trimmed),
        (AUDIT_TRIM_MAX, AUDIT_TRIM_MAX)
    );
    let second = trim(&mut sm, &mut index, total, trim_event("ops")).expect("second step");
    assert_eq!((second.checkpoint.seq, second.trimmed), (total, 500));
    let trail = AuditReader::new(&reader);
    let kept = trail.records(1, 10).expect("records");
    assert_eq!(
        kept.len(),
        2,
        "the two trims' records, made after record {total}"
    );
    let mut check = ChainCheck::after(second.checkpoint.seq, second.checkpoint.hash);
    for bytes in &kept {
        check.next(bytes).expect("links to the checkpoint");
    }
    let left = trail
        .records_of_holder(HolderKind::CitizenId, "A", 0, 10)
        .expect("holder");
    assert!(left.is_empty(), "no holder entry outlives its record");
}

#[test]
fn trimmable_stops_at_the_first_record_not_older_than_the_cutoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |ms: u64| AuditEvent {
        time_ms: ms,
        ..event("A", "p")
    };
    let mut events = [at(10), at(20), at(50), at(30), at(60)];
    let (_sm, reader, _) = trail_of(dir.path(), &mut events);
    let trail = AuditReader::new(&reader);
    // (cutoff, through, limit) -> (end of the old run, first younger record)
    let cases = [
        ((40, 5, 100), (2, Some((3, 50)))),
        ((10, 5, 100), (0, Some((1, 10)))),
        ((100, 5, 100), (5, None)),
        ((100, 4, 100), (4, None)),
        ((100, 5, 3), (3, None)),
        ((55, 5, 100), (4, Some((5, 60)))),
    ];
    for ((cutoff, through, limit), expected) in cases {
        let got = trail.trimmable(cutoff, through, limit).expect("scan");
        assert_eq!(
            got, expected,
            "cutoff {cutoff} through {through} limit {limit}"
        );
    }
}

#[test]
fn an_event_the_trail_refuses_for_good_is_set_aside_for_a_stand_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = licstore_store::open(dir.path()).expect("open");
    let db = storage.db.clone();
    let mut sm = storage.state_machine;
    let reader = Reader::new(db.clone());
    let mut journal = AuditJournal::open(&reader, || 61).expect("journal");
    journal
        .append(&mut [event("A", "p1"), event("A", "p2"), event("A", "p3")])
        .expect("append");
    // Event 2's bytes rot on disk.
    let cf = db
        .cf_handle(licstore_store::keys::CF_AUDIT_JOURNAL)
        .expect("journal family");
    let mut key = vec![b'e'];
    key.extend_from_slice(&2u64.to_be_bytes());
    db.put_cf(&cf, &key, b"rotten").expect("spoil");

    let pending = journal.pending_at(10).expect("pending");
    let positions: Vec<u64> = pending.iter().map(|(p, _)| *p).collect();
    assert_eq!(positions, [1, 2, 3]);
    let events = pending.into_iter().map(|(_, bytes)| bytes).collect();
    let mut index = 0;
    index += 1;
    let cmd = Command::AppendAudit { events };
    let refused = match sm
        .apply_batch(entries(index, vec![cmd]))
        .expect("apply")
        .remove(0)
    {
        CommandResult::Audit(Err(refused)) => refused,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(refused.field, "events[1]");

    let good = journal.quarantine(1, 5, 1, "not rotten").expect("read");
    assert!(!good, "an event that decodes is never set aside");
    let set_aside = journal
        .quarantine(2, 5, 1_790_000_000_000, &refused.message)
        .expect("set aside");
    assert!(set_aside);
    assert_eq!(
        journal.quarantined().expect("kept"),
        [(2, b"rotten".to_vec())]
    );
    let done = apply(&mut sm, &mut index, journal.pending(10).expect("pending"));
    assert_eq!((done.recorded, done.high_water), (3, vec![(61, 3)]));
    let trail = AuditReader::new(&reader);
    let records = trail.records(1, 10).expect("records");
    check_chain(records.iter().map(Vec::as_slice)).expect("chain");
    let stand_in = decode_record(&records[1]).expect("record").event;
    assert_eq!(
        (stand_in.action.as_str(), stand_in.outcome.as_str()),
        (licstore_store::audit::QUARANTINE_ACTION, "data_loss")
    );
    assert_eq!(
        (stand_in.journal, stand_in.journal_seq, stand_in.node_id),
        (61, 2, 5)
    );
    assert!(
        stand_in.detail.contains("kept on node 5"),
        "{}",
        stand_in.detail
    );
    // Set aside twice (a retried shipment): the stand-in stays, the bytes kept are the first.
    assert!(!journal
        .quarantine(2, 5, 1, "again")
        .expect("already set aside"));
    journal.trim_through(3).expect("trim");
    assert!(!journal
        .quarantine(2, 5, 1, "gone")
        .expect("nothing left to set aside"));
    assert_eq!(
        journal.quarantined().expect("kept"),
        [(2, b"rotten".to_vec())]
    );
}
