//! The audit trail in the store: each node's journal of the calls it answered and has not yet
//! replicated, and the replicated trail, chained by BLAKE3 (`licstore_model::audit`).
//!
//! **Journal** (`audit_journal`, node-local, never in a snapshot):
//! - `a` → the journal's id (`u64`, big-endian), drawn once when the journal is created, so a
//!   node whose data was wiped starts a new journal instead of reusing old positions;
//! - `e` + position (`u64` BE) → an event (record encoding with `seq` 0 and a zero link);
//! - `n` → the position the next event gets, written with every append, so positions never
//!   repeat after the journal is trimmed empty and the process restarts;
//! - `q` + position → an event the trail refused for good (it no longer decodes), set aside
//!   for inspection; a stand-in recording the loss took its place under `e`.
//!
//! A node appends an event with a synced write before it answers the call, so an answer is
//! never given for a call whose record a crash could lose. Appends of many callers share one
//! sync (the server's audit writer batches them).
//!
//! **Trail** (`audit`, replicated, part of the state machine and of snapshots):
//! - `r` + seq (`u64` BE) → record bytes;
//! - `h` + holder key (`keys::holder_prefix`) + seq → nothing: "who looked at my license";
//! - `j` + journal id → the highest journal position applied, so a batch proposed twice (after
//!   a leader change) is recorded once;
//! - `t` → the tail: last seq (`u64` BE) and its record hash;
//! - `c` → the checkpoint, once the trail has been trimmed: the last removed seq and its
//!   record hash, which the first kept record links to.
//!
//! Applying an `AppendAudit` batch numbers each new event after the tail and links it to the
//! record before, on every replica alike.
//!
//! **Retention.** `TrimAudit` removes the oldest records (and their holder entries) in
//! bounded steps. Each step moves the checkpoint and appends a record of itself in the same
//! write, made at apply (journal position 0) and naming the checkpoint's seq and hash
//! ([`licstore_model::audit::Trim`]). A checker that starts from the checkpoint thus finds it
//! vouched for by a chained record: moving the checkpoint, or removing records, without
//! breaking a link means forging that record too.

use std::sync::Arc;

use licstore_model::audit::{
    decode_record, encode_record, record_hash, AuditEvent, AuditRecord, Trim, TRIM_ACTION,
};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions, DB};

use crate::apply::Applier;
use crate::command::{RejectCode, Rejection};
use crate::keys::{self, CF_AUDIT, CF_AUDIT_JOURNAL};
use crate::txn::cf_handle;
use crate::{Reader, StoreError};

/// Most events one `AppendAudit` command carries.
pub const AUDIT_BATCH_MAX: usize = 2000;

/// Most records one `TrimAudit` command removes, so one apply stays short; a longer trim
/// takes several commands.
pub const AUDIT_TRIM_MAX: u64 = 10_000;

const JOURNAL_ID_KEY: &[u8] = b"a";
const JOURNAL_NEXT_KEY: &[u8] = b"n";
const TAIL_KEY: &[u8] = b"t";
const CHECKPOINT_KEY: &[u8] = b"c";

/// The action of a stand-in for a journal event the trail refused for good.
pub const QUARANTINE_ACTION: &str = "Audit/Quarantine";

fn journal_event_key(position: u64) -> [u8; 9] {
    let mut key = [b'e'; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn record_key(seq: u64) -> [u8; 9] {
    let mut key = [b'r'; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn holder_key(event: &AuditEvent, seq: u64) -> Option<Vec<u8>> {
    let kind = event.holder_kind?;
    // A NUL would let one holder's entries pass for another's (the holder key ends in one).
    if event.holder_id.is_empty() || event.holder_id.as_bytes().contains(&0) {
        return None;
    }
    let mut key = vec![b'h'];
    key.extend_from_slice(&keys::holder_prefix(kind, &event.holder_id));
    key.extend_from_slice(&seq.to_be_bytes());
    Some(key)
}

fn high_water_key(journal: u64) -> [u8; 9] {
    let mut key = [b'j'; 9];
    key[1..].copy_from_slice(&journal.to_be_bytes());
    key
}

fn be_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::corrupt(what, "shorter than 8 bytes"))?;
    Ok(u64::from_be_bytes(array))
}

/// A record's place in the chain: the trail's last record (seq 0 and zeros for an empty
/// trail), or the checkpoint, the last record trimmed (seq 0 and zeros before any trim).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditTail {
    /// Its position.
    pub seq: u64,
    /// [`record_hash`] of its bytes.
    pub hash: [u8; 32],
}

fn decode_tail(bytes: &[u8]) -> Result<AuditTail, StoreError> {
    if bytes.len() != 40 {
        return Err(StoreError::corrupt("audit tail", "not 40 bytes"));
    }
    let mut hash = [0; 32];
    hash.copy_from_slice(&bytes[8..]);
    Ok(AuditTail {
        seq: be_u64("audit tail", bytes)?,
        hash,
    })
}

fn encode_tail(tail: &AuditTail) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&tail.seq.to_be_bytes());
    out.extend_from_slice(&tail.hash);
    out
}

/// A node's journal of audit events not yet known to be replicated.
pub struct AuditJournal {
    db: Arc<DB>,
    id: u64,
    /// The position the next event gets.
    next: u64,
}

impl AuditJournal {
    /// Opens the journal of the database `reader` reads, creating it with id `new_id()` the
    /// first time.
    pub fn open(reader: &Reader, new_id: impl FnOnce() -> u64) -> Result<AuditJournal, StoreError> {
        let db = reader.db.clone();
        let cf = cf_handle(&db, CF_AUDIT_JOURNAL)?;
        let id = match db.get_cf(cf, JOURNAL_ID_KEY)? {
            Some(bytes) => be_u64("audit journal id", &bytes)?,
            None => {
                let id = new_id();
                let mut sync = WriteOptions::default();
                // Synced: events written under this id must never be shipped under another.
                sync.set_sync(true);
                db.put_cf_opt(cf, JOURNAL_ID_KEY, id.to_be_bytes(), &sync)?;
                id
            }
        };
        let stored_next = match db.get_cf(cf, JOURNAL_NEXT_KEY)? {
            Some(bytes) => be_u64("audit journal next position", &bytes)?,
            None => 1,
        };
        // The last event still in the journal (a journal written before the next-position
        // key existed has only this).
        let below_f = IteratorMode::From(b"f", Direction::Reverse);
        let last_event = match db.iterator_cf(cf, below_f).next() {
            Some(item) => {
                let (key, _) = item?;
                match key.first() {
                    Some(b'e') => be_u64("audit journal key", &key[1..])?,
                    _ => 0,
                }
            }
            None => 0,
        };
        // The trail may hold positions this journal no longer shows (trimmed): never hand
        // those out again, or their events would be taken for duplicates.
        let shipped = AuditReader::new(reader).high_water(id)?;
        Ok(AuditJournal {
            db,
            id,
            next: stored_next.max(last_event + 1).max(shipped + 1),
        })
    }

    /// Events in the journal not yet trimmed.
    pub fn backlog(&self) -> Result<u64, StoreError> {
        let cf = cf_handle(&self.db, CF_AUDIT_JOURNAL)?;
        let from = IteratorMode::From(b"e", Direction::Forward);
        let first = match self.db.iterator_cf(cf, from).next() {
            Some(item) => {
                let (key, _) = item?;
                match key.first() {
                    Some(b'e') => be_u64("audit journal key", &key[1..])?,
                    _ => return Ok(0),
                }
            }
            None => return Ok(0),
        };
        Ok(self.next.saturating_sub(first))
    }

    /// The journal's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Gives each event this journal's id and the next positions, and writes them with one
    /// synced write: once this returns, a crash of the process or the machine keeps them.
    pub fn append(&mut self, events: &mut [AuditEvent]) -> Result<(), StoreError> {
        let cf = cf_handle(&self.db, CF_AUDIT_JOURNAL)?;
        let mut batch = WriteBatch::default();
        let mut position = self.next;
        for event in events.iter_mut() {
            event.journal = self.id;
            event.journal_seq = position;
            let bytes = encode_record(&AuditRecord {
                seq: 0,
                prev: [0; 32],
                event: event.clone(),
            });
            batch.put_cf(cf, journal_event_key(position), bytes);
            position += 1;
        }
        batch.put_cf(cf, JOURNAL_NEXT_KEY, position.to_be_bytes());
        let mut sync = WriteOptions::default();
        // Synced: the caller answers the audited calls once this returns.
        sync.set_sync(true);
        self.db.write_opt(batch, &sync)?;
        self.next = position;
        Ok(())
    }

    /// Up to `limit` events not yet trimmed, oldest first, as event bytes.
    pub fn pending(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .pending_at(limit)?
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect())
    }

    /// Up to `limit` events not yet trimmed, oldest first, with their positions.
    pub fn pending_at(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.positioned(b'e', limit)
    }

    /// Up to `limit` entries under `tag` (`e` events, `q` set aside), by position.
    fn positioned(&self, tag: u8, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let cf = cf_handle(&self.db, CF_AUDIT_JOURNAL)?;
        let mut out = Vec::new();
        let start = [tag];
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item?;
            if key.first() != Some(&tag) || out.len() >= limit {
                break;
            }
            out.push((be_u64("audit journal key", &key[1..])?, value.to_vec()));
        }
        Ok(out)
    }

    /// Sets aside the event at `position`, which the trail refused for good (`why`): its bytes
    /// move under `q`, and a stand-in made by node `node_id` at `time_ms` takes its place, so
    /// the trail records at that position that a record was lost and where its bytes are.
    /// Synced: the stand-in must not vanish while the bytes it replaces stay set aside. Only
    /// bytes that do not decode here either are set aside; answers whether it set any aside.
    pub fn quarantine(
        &self,
        position: u64,
        node_id: u64,
        time_ms: u64,
        why: &str,
    ) -> Result<bool, StoreError> {
        let cf = cf_handle(&self.db, CF_AUDIT_JOURNAL)?;
        let key = journal_event_key(position);
        let mut quarantined = key;
        quarantined[0] = b'q';
        // Set aside already: what is under `e` now is its stand-in.
        if self.db.get_cf(cf, quarantined)?.is_some() {
            return Ok(false);
        }
        // Shipped and trimmed meanwhile: nothing to set aside.
        let Some(bytes) = self.db.get_cf(cf, key)? else {
            return Ok(false);
        };
        // A refusal by a leader that decodes differently (another version) is no proof.
        if decode_record(&bytes).is_ok() {
            return Ok(false);
        }
        let why: String = why.chars().take(120).collect();
        let digest = blake3::hash(&bytes).to_hex();
        let stand_in = AuditEvent {
            time_ms,
            node_id,
            journal: self.id,
            journal_seq: position,
            action: QUARANTINE_ACTION.to_owned(),
            outcome: "data_loss".to_owned(),
            detail: format!(
                "journal event {position} refused by the trail ({why}); its {} bytes are kept \
                 on node {node_id}, blake3 {}",
                bytes.len(),
                &digest.as_str()[..16]
            ),
            ..Default::default()
        };
        let mut batch = WriteBatch::default();
        batch.put_cf(cf, quarantined, &bytes);
        let record = AuditRecord {
            seq: 0,
            prev: [0; 32],
            event: stand_in,
        };
        batch.put_cf(cf, key, encode_record(&record));
        let mut sync = WriteOptions::default();
        // Synced: the stand-in is what the trail will hold at this position.
        sync.set_sync(true);
        self.db.write_opt(batch, &sync)?;
        Ok(true)
    }

    /// The events set aside by [`AuditJournal::quarantine`], with their positions.
    pub fn quarantined(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.positioned(b'q', usize::MAX)
    }

    /// Drops the events at positions up to `position`: the trail holds them. Not synced: an
    /// event that comes back after a crash is shipped again and recorded once.
    pub fn trim_through(&self, position: u64) -> Result<(), StoreError> {
        let cf = cf_handle(&self.db, CF_AUDIT_JOURNAL)?;
        let end = position.saturating_add(1);
        self.db
            .delete_range_cf(cf, journal_event_key(0), journal_event_key(end))?;
        Ok(())
    }
}

/// What applying an `AppendAudit` batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditAppended {
    /// Records added to the trail.
    pub recorded: u64,
    /// Events skipped as already recorded.
    pub duplicates: u64,
    /// The trail's last seq afterwards.
    pub tail_seq: u64,
    /// For each journal in the batch, the highest position the trail now holds, whether this
    /// batch recorded it or an earlier one did.
    pub high_water: Vec<(u64, u64)>,
}

/// The trail's bounds after a `TrimAudit` command.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditTrimmed {
    /// The last record removed, by this trim or an earlier one.
    pub checkpoint: AuditTail,
    /// Records this command removed; 0 when it found them gone already.
    pub trimmed: u64,
    /// The trail's last seq afterwards (the trim's own record, when it removed any).
    pub tail_seq: u64,
}

impl Applier<'_, '_> {
    /// Appends journal events to the trail, skipping those already recorded.
    pub(crate) fn append_audit(
        &mut self,
        events: &[Vec<u8>],
    ) -> Result<Result<AuditAppended, Rejection>, StoreError> {
        if events.len() > AUDIT_BATCH_MAX {
            let reason = format!("{} events; at most {AUDIT_BATCH_MAX}", events.len());
            return Ok(Err(Rejection::new(
                RejectCode::InvalidArgument,
                "events",
                reason,
            )));
        }
        let mut decoded = Vec::with_capacity(events.len());
        for (i, bytes) in events.iter().enumerate() {
            match decode_record(bytes) {
                Ok(record) => decoded.push(record.event),
                Err(e) => {
                    let field = format!("events[{i}]");
                    return Ok(Err(Rejection::new(
                        RejectCode::InvalidArgument,
                        &field,
                        e.to_string(),
                    )));
                }
            }
        }
        let mut tail = match self.txn.get(CF_AUDIT, TAIL_KEY)? {
            Some(bytes) => decode_tail(&bytes)?,
            None => AuditTail::default(),
        };
        let mut out = AuditAppended::default();
        let mut journals: Vec<u64> = Vec::new();
        for event in decoded {
            if !journals.contains(&event.journal) {
                journals.push(event.journal);
            }
            let high = self.audit_high_water(event.journal)?;
            if event.journal_seq <= high {
                out.duplicates += 1;
                continue;
            }
            let (journal, position) = (event.journal, event.journal_seq);
            self.push_audit_record(&mut tail, event)?;
            self.txn.put(
                CF_AUDIT,
                &high_water_key(journal),
                position.to_be_bytes().to_vec(),
            )?;
            out.recorded += 1;
        }
        self.txn.put(CF_AUDIT, TAIL_KEY, encode_tail(&tail))?;
        out.tail_seq = tail.seq;
        for journal in journals {
            out.high_water
                .push((journal, self.audit_high_water(journal)?));
        }
        Ok(Ok(out))
    }

    /// Writes `event` as the record after `tail` (and its holder entry), and moves `tail` to
    /// it; the caller stores the tail.
    fn push_audit_record(
        &mut self,
        tail: &mut AuditTail,
        event: AuditEvent,
    ) -> Result<(), StoreError> {
        let record = AuditRecord {
            seq: tail.seq + 1,
            prev: tail.hash,
            event,
        };
        let bytes = encode_record(&record);
        if let Some(key) = holder_key(&record.event, record.seq) {
            self.txn.put(CF_AUDIT, &key, Vec::new())?;
        }
        *tail = AuditTail {
            seq: record.seq,
            hash: record_hash(&bytes),
        };
        self.txn.put(CF_AUDIT, &record_key(record.seq), bytes)
    }

    /// Removes records after the checkpoint through `through_seq` (at most
    /// [`AUDIT_TRIM_MAX`]), moves the checkpoint to the last one removed and appends the
    /// trim's record. A trim that removes nothing (already done) records nothing.
    pub(crate) fn trim_audit(
        &mut self,
        through_seq: u64,
        event: &[u8],
    ) -> Result<Result<AuditTrimmed, Rejection>, StoreError> {
        let reject = |code, field: &str, why: String| Ok(Err(Rejection::new(code, field, why)));
        let mut event = match decode_record(event) {
            Ok(record) => record.event,
            Err(e) => return reject(RejectCode::InvalidArgument, "event", e.to_string()),
        };
        let mut tail = self.audit_mark(TAIL_KEY)?;
        let checkpoint = self.audit_mark(CHECKPOINT_KEY)?;
        if through_seq > tail.seq {
            let why = format!("{through_seq} is past the trail's last record {}", tail.seq);
            return reject(RejectCode::FailedPrecondition, "through_seq", why);
        }
        if through_seq <= checkpoint.seq {
            return Ok(Ok(AuditTrimmed {
                checkpoint,
                trimmed: 0,
                tail_seq: tail.seq,
            }));
        }
        let end = through_seq.min(checkpoint.seq + AUDIT_TRIM_MAX);
        let mut hash = checkpoint.hash;
        for seq in checkpoint.seq + 1..=end {
            let bytes = self
                .txn
                .get(CF_AUDIT, &record_key(seq))?
                .ok_or_else(|| StoreError::corrupt("audit trail", format!("no record {seq}")))?;
            let record = decode_record(&bytes)
                .map_err(|e| StoreError::corrupt("audit record", e.to_string()))?;
            if let Some(key) = holder_key(&record.event, seq) {
                self.txn.delete(CF_AUDIT, &key)?;
            }
            self.txn.delete(CF_AUDIT, &record_key(seq))?;
            hash = record_hash(&bytes);
        }
        let trim = Trim {
            through_seq: end,
            hash,
            records: end - checkpoint.seq,
        };
        let checkpoint = AuditTail { seq: end, hash };
        // Made here, not in a journal: position 0 marks it, and the high-water marks stay.
        event.journal = 0;
        event.journal_seq = 0;
        event.action = TRIM_ACTION.to_owned();
        event.outcome = "ok".to_owned();
        event.detail = trim.detail();
        self.push_audit_record(&mut tail, event)?;
        self.txn
            .put(CF_AUDIT, CHECKPOINT_KEY, encode_tail(&checkpoint))?;
        self.txn.put(CF_AUDIT, TAIL_KEY, encode_tail(&tail))?;
        Ok(Ok(AuditTrimmed {
            checkpoint,
            trimmed: trim.records,
            tail_seq: tail.seq,
        }))
    }

    fn audit_mark(&self, key: &[u8]) -> Result<AuditTail, StoreError> {
        match self.txn.get(CF_AUDIT, key)? {
            Some(bytes) => decode_tail(&bytes),
            None => Ok(AuditTail::default()),
        }
    }

    fn audit_high_water(&self, journal: u64) -> Result<u64, StoreError> {
        match self.txn.get(CF_AUDIT, &high_water_key(journal))? {
            Some(bytes) => be_u64("audit high water", &bytes),
            None => Ok(0),
        }
    }
}

/// Reads of the replicated trail, all from the state applied when the reader was made: a
/// page's records, tail and checkpoint agree even while a trim or a batch is applied.
pub struct AuditReader<'a> {
    db: &'a DB,
    snap: rocksdb::Snapshot<'a>,
}

impl<'a> AuditReader<'a> {
    /// A reader of the trail as the database `reader` reads has it applied now.
    pub fn new(reader: &'a Reader) -> AuditReader<'a> {
        AuditReader {
            db: &reader.db,
            snap: reader.db.snapshot(),
        }
    }

    /// The log index applied in the state this reader reads.
    pub fn applied_index(&self) -> Result<u64, StoreError> {
        crate::reader::applied_index_at(self.db, Some(&self.snap))
    }

    /// The trail's last record.
    pub fn tail(&self) -> Result<AuditTail, StoreError> {
        let cf = cf_handle(self.db, CF_AUDIT)?;
        match self.snap.get_cf(cf, TAIL_KEY)? {
            Some(bytes) => decode_tail(&bytes),
            None => Ok(AuditTail::default()),
        }
    }

    /// The last record trimmed away; seq 0 before any trim.
    pub fn checkpoint(&self) -> Result<AuditTail, StoreError> {
        let cf = cf_handle(self.db, CF_AUDIT)?;
        match self.snap.get_cf(cf, CHECKPOINT_KEY)? {
            Some(bytes) => decode_tail(&bytes),
            None => Ok(AuditTail::default()),
        }
    }

    /// How far the trail may be trimmed without removing a record made at `cutoff_ms` or
    /// later, looking at no record past `through_seq` and at most `limit` records: the last
    /// seq of the unbroken run of older records after the checkpoint (the checkpoint's seq
    /// when there is none), and the first record not older than the cutoff, with its time, if
    /// the scan met one. Node clocks and shipping delays make times only roughly follow
    /// seqs, so the run stops at the first younger record rather than skipping it.
    pub fn trimmable(
        &self,
        cutoff_ms: u64,
        through_seq: u64,
        limit: u64,
    ) -> Result<(u64, Option<(u64, u64)>), StoreError> {
        let checkpoint = self.checkpoint()?;
        let mut end = checkpoint.seq;
        let last = through_seq.min(checkpoint.seq.saturating_add(limit));
        let cf = cf_handle(self.db, CF_AUDIT)?;
        let start = record_key(checkpoint.seq + 1);
        let mode = IteratorMode::From(&start, Direction::Forward);
        for item in self.snap.iterator_cf(cf, mode) {
            let (key, bytes) = item?;
            if key.first() != Some(&b'r') {
                break;
            }
            let record = decode_record(&bytes)
                .map_err(|e| StoreError::corrupt("audit record", e.to_string()))?;
            if record.seq > last {
                break;
            }
            if record.event.time_ms >= cutoff_ms {
                return Ok((end, Some((record.seq, record.event.time_ms))));
            }
            end = record.seq;
        }
        Ok((end, None))
    }

    /// The highest position of `journal` the trail holds (0 for none).
    pub fn high_water(&self, journal: u64) -> Result<u64, StoreError> {
        let cf = cf_handle(self.db, CF_AUDIT)?;
        match self.snap.get_cf(cf, high_water_key(journal))? {
            Some(bytes) => be_u64("audit high water", &bytes),
            None => Ok(0),
        }
    }

    /// Up to `limit` records from seq `from` on, as stored bytes.
    pub fn records(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let cf = cf_handle(self.db, CF_AUDIT)?;
        let start = record_key(from.max(1));
        let mut out = Vec::new();
        for item in self
            .snap
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item?;
            if key.first() != Some(&b'r') || out.len() >= limit {
                break;
            }
            out.push(value.to_vec());
        }
        Ok(out)
    }

    /// Up to `limit` records about one holder, from seq `from` on, as stored bytes.
    pub fn records_of_holder(
        &self,
        kind: licstore_model::HolderKind,
        holder_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let cf = cf_handle(self.db, CF_AUDIT)?;
        let mut prefix = vec![b'h'];
        prefix.extend_from_slice(&keys::holder_prefix(kind, holder_id));
        let mut start = prefix.clone();
        start.extend_from_slice(&from.to_be_bytes());
        let mut out = Vec::new();
        for item in self
            .snap
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
        {
            let (key, _) = item?;
            if !key.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let seq = be_u64("audit holder key", &key[prefix.len()..])?;
            let bytes = self
                .snap
                .get_cf(cf, record_key(seq))?
                .ok_or_else(|| StoreError::corrupt("audit holder index", "names no record"))?;
            out.push(bytes);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
