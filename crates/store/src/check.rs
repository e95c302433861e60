//! A consistency walk over the state machine: every record against its digest and its indexes,
//! every index entry against the record it points at. A healthy store yields no problems.
//!
//! The walk reads one RocksDB snapshot, so it sees a single applied index while writes go on.

use licstore_model::{canonical, Identifier, License};
use rocksdb::{IteratorMode, DB};

use crate::command::{Rejection, WriteOutcome};
use crate::event::Event;
use crate::index::{self, IndexSummary};
use crate::keys::{self, CF_CURRENT, CF_EVENTS, CF_HISTORY, CF_IDENT, CF_INDEX};
use crate::keys::{CF_REQUESTS, CF_REQ_REVS};
use crate::txn::cf_handle;
use crate::{codec, StoreError};

type Snap<'a> = rocksdb::Snapshot<'a>;

/// Most problems reported by one walk; the rest are only counted.
pub const MAX_PROBLEMS: usize = 1000;

/// One inconsistency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Column family where it was found.
    pub table: &'static str,
    /// The key, printable (non-UTF-8 bytes escaped).
    pub key: String,
    /// What is wrong.
    pub detail: String,
}

/// The outcome of a walk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Log index the walked state reflects.
    pub applied_index: u64,
    /// Current and superseded records read.
    pub records_checked: u64,
    /// Identifier-index and secondary-index entries read.
    pub index_entries_checked: u64,
    /// Change-feed events read.
    pub events_checked: u64,
    /// Problems found, at most [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
    /// Problems found in all, including those not listed.
    pub problem_count: u64,
}

impl CheckReport {
    fn add(&mut self, table: &'static str, key: &[u8], detail: impl Into<String>) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEMS {
            let key = String::from_utf8_lossy(key).escape_debug().to_string();
            self.problems.push(Problem {
                table,
                key,
                detail: detail.into(),
            });
        }
    }
}

/// Walks records and indexes of `db` as of one snapshot.
pub fn check(db: &DB) -> Result<CheckReport, StoreError> {
    let snap = db.snapshot();
    let mut report = CheckReport {
        applied_index: crate::reader::applied_index_at(db, Some(&snap))?,
        ..CheckReport::default()
    };
    check_current(db, &snap, &mut report)?;
    check_ident(db, &snap, &mut report)?;
    check_history(db, &snap, &mut report)?;
    check_index(db, &snap, &mut report)?;
    check_events(db, &snap, &mut report)?;
    check_requests(db, &snap, &mut report)?;
    Ok(report)
}

/// Every current record: digest, key, identifier index and its secondary-index entries.
fn check_current(db: &DB, snap: &Snap<'_>, report: &mut CheckReport) -> Result<(), StoreError> {
    let ident = cf_handle(db, CF_IDENT)?;
    let index_cf = cf_handle(db, CF_INDEX)?;
    for item in snap.iterator_cf(cf_handle(db, CF_CURRENT)?, IteratorMode::Start) {
        let (key, value) = item?;
        report.records_checked += 1;
        let Some(license) = decoded(report, CF_CURRENT, &key, &value) else {
            continue;
        };
        if !current_key_matches(&key, &license) {
            report.add(
                CF_CURRENT,
                &key,
                "key does not match the record's holder and type",
            );
        }
        match snap.get_cf(ident, license.identifier.as_bytes())? {
            Some(target) if target == key.as_ref() => {}
            Some(_) => report.add(CF_CURRENT, &key, "identifier index points elsewhere"),
            None => report.add(CF_CURRENT, &key, "identifier index entry missing"),
        }
        let want = IndexSummary::of(&license);
        for (kind, index_key) in index::keys_of(&license) {
            let detail = match snap.get_cf(index_cf, &index_key)? {
                None => "missing",
                Some(v)
                    if codec::decode::<IndexSummary>("index", &v).ok() != Some(want.clone()) =>
                {
                    "stale"
                }
                Some(_) => continue,
            };
            report.add(
                CF_CURRENT,
                &key,
                format!("{} index entry {detail}", kind.name()),
            );
        }
    }
    Ok(())
}

/// Every identifier-index entry points at the current record with that identifier.
fn check_ident(db: &DB, snap: &Snap<'_>, report: &mut CheckReport) -> Result<(), StoreError> {
    let ident = cf_handle(db, CF_IDENT)?;
    let current = cf_handle(db, CF_CURRENT)?;
    for item in snap.iterator_cf(ident, IteratorMode::Start) {
        let (key, target) = item?;
        report.index_entries_checked += 1;
        let Some(value) = snap.get_cf(current, &target)? else {
            report.add(CF_IDENT, &key, "points at no current record");
            continue;
        };
        let points_back = canonical::decode(&value).is_ok_and(|l| l.identifier.as_bytes() == &*key);
        if !points_back {
            report.add(CF_IDENT, &key, "points at a record with another identifier");
        }
    }
    Ok(())
}

/// Every superseded record: digest, key, and absence from the identifier index.
fn check_history(db: &DB, snap: &Snap<'_>, report: &mut CheckReport) -> Result<(), StoreError> {
    let ident = cf_handle(db, CF_IDENT)?;
    for item in snap.iterator_cf(cf_handle(db, CF_HISTORY)?, IteratorMode::Start) {
        let (key, value) = item?;
        report.records_checked += 1;
        let Some(license) = decoded(report, CF_HISTORY, &key, &value) else {
            continue;
        };
        if license.identifier.as_bytes() != &*key {
            report.add(CF_HISTORY, &key, "key differs from the record's identifier");
        }
        if snap.get_cf(ident, &key)?.is_some() {
            report.add(
                CF_HISTORY,
                &key,
                "superseded version still in the identifier index",
            );
        }
    }
    Ok(())
}

/// Every secondary-index entry belongs to a current record that owns exactly this key.
fn check_index(db: &DB, snap: &Snap<'_>, report: &mut CheckReport) -> Result<(), StoreError> {
    let ident = cf_handle(db, CF_IDENT)?;
    let current = cf_handle(db, CF_CURRENT)?;
    for item in snap.iterator_cf(cf_handle(db, CF_INDEX)?, IteratorMode::Start) {
        let (key, value) = item?;
        report.index_entries_checked += 1;
        let Some(kind) = index::IndexKind::of_key(&key) else {
            report.add(CF_INDEX, &key, "unknown index tag");
            continue;
        };
        let Ok(summary) = codec::decode::<IndexSummary>("index", &value) else {
            report.add(CF_INDEX, &key, "undecodable entry");
            continue;
        };
        let record = match snap.get_cf(ident, summary.identifier.as_bytes())? {
            Some(ckey) => snap.get_cf(current, &ckey)?,
            None => None,
        };
        let owner = record.and_then(|v| canonical::decode(&v).ok());
        let owned = owner.is_some_and(|l| index::key_of(kind, &l).as_deref() == Some(&*key));
        if !owned {
            let detail = format!("{} entry dangles: no current record owns it", kind.name());
            report.add(CF_INDEX, &key, detail);
        }
    }
    Ok(())
}

/// Every event decodes, sits under its own revision and is inside the retained, applied range.
fn check_events(db: &DB, snap: &Snap<'_>, report: &mut CheckReport) -> Result<(), StoreError> {
    let compacted = crate::reader::compacted_revision_at(db, Some(snap))?;
    for item in snap.iterator_cf(cf_handle(db, CF_EVENTS)?, IteratorMode::Start) {
        let (key, value) = item?;
        report.events_checked += 1;
        let event = codec::decode::<Event>("event", &value).ok();
        let detail = match (keys::event_key_parts(&key), event) {
            (None, _) => "malformed key",
            (_, None) => "undecodable event",
            (Some((rev, seq)), Some(e)) if (rev, seq) != (e.revision, e.seq) => {
                "key differs from the event's revision"
            }
            (Some((rev, _)), _) if rev < compacted => "below the compaction revision",
            (Some((rev, _)), _) if rev > report.applied_index => "beyond the applied index",
            _ => continue,
        };
        report.add(CF_EVENTS, &key, detail);
    }
    Ok(())
}

/// Every stored request result is filed under the revision that stored it, and back.
fn check_requests(db: &DB, snap: &Snap<'_>, report: &mut CheckReport) -> Result<(), StoreError> {
    let revs = cf_handle(db, CF_REQ_REVS)?;
    let requests = cf_handle(db, CF_REQUESTS)?;
    for item in snap.iterator_cf(requests, IteratorMode::Start) {
        let (key, value) = item?;
        report.index_entries_checked += 1;
        let stored =
            codec::decode::<([u8; 32], Result<WriteOutcome, Rejection>)>("request", &value);
        let revision = match stored {
            Ok((_, Ok(outcome))) => outcome.revision,
            Ok((_, Err(_))) => {
                report.add(CF_REQUESTS, &key, "a refusal is stored");
                continue;
            }
            Err(_) => {
                report.add(CF_REQUESTS, &key, "undecodable result");
                continue;
            }
        };
        let id = String::from_utf8_lossy(&key);
        if snap
            .get_cf(revs, keys::req_rev_key(revision, &id))?
            .is_none()
        {
            report.add(CF_REQUESTS, &key, "not filed under its revision");
        }
    }
    for item in snap.iterator_cf(revs, IteratorMode::Start) {
        let (key, _) = item?;
        report.index_entries_checked += 1;
        if snap
            .get_cf(requests, key.get(8..).unwrap_or_default())?
            .is_none()
        {
            report.add(CF_REQ_REVS, &key, "names no stored request");
        }
    }
    Ok(())
}

/// Decodes a record and checks its digest; reports and returns `None` when either fails.
fn decoded(
    report: &mut CheckReport,
    table: &'static str,
    key: &[u8],
    value: &[u8],
) -> Option<License> {
    match canonical::decode(value) {
        Ok(license) if license.digest_matches() => Some(license),
        Ok(_) => {
            report.add(table, key, "digest does not match the record");
            None
        }
        Err(e) => {
            report.add(table, key, format!("undecodable record: {e}"));
            None
        }
    }
}

/// Whether a `current` key is the one the record belongs under: its holder-and-type prefix
/// followed by nothing (a type held once) or the identifier's serial (a type held several times).
fn current_key_matches(key: &[u8], license: &License) -> bool {
    let prefix =
        keys::holder_type_prefix(license.holder.kind, &license.holder.id, &license.type_code);
    let Some(instance) = key.strip_prefix(prefix.as_slice()) else {
        return false;
    };
    let serial = Identifier::parse(&license.identifier).map(|id| id.serial().to_string());
    instance.is_empty() || serial.is_ok_and(|s| s.as_bytes() == instance)
}
