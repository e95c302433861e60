//! A consistency walk over the state machine: every record against its digest and its indexes,
//! every index entry against the record it points at. A healthy store yields no problems.
//!
//! The walk reads one RocksDB snapshot, so it sees a single applied index while writes go on.

use licstore_model::{canonical, Identifier, License};
use rocksdb::{IteratorMode, DB};

use crate::keys::{self, CF_CURRENT, CF_HISTORY, CF_IDENT, CF_SM_META};
use crate::txn::cf_handle;
use crate::{codec, StoreError, TypeConfig};

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
    /// Identifier-index entries read.
    pub index_entries_checked: u64,
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
    let mut report = CheckReport::default();
    if let Some(b) = snap.get_cf(cf_handle(db, CF_SM_META)?, keys::META_LAST_APPLIED)? {
        let id: openraft::alias::LogIdOf<TypeConfig> = codec::decode("last applied", &b)?;
        report.applied_index = id.index();
    }
    let ident = cf_handle(db, CF_IDENT)?;
    for item in snap.iterator_cf(cf_handle(db, CF_CURRENT)?, IteratorMode::Start) {
        let (key, value) = item?;
        report.records_checked += 1;
        let Some(license) = decoded(&mut report, CF_CURRENT, &key, &value) else {
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
    }
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
    for item in snap.iterator_cf(cf_handle(db, CF_HISTORY)?, IteratorMode::Start) {
        let (key, value) = item?;
        report.records_checked += 1;
        let Some(license) = decoded(&mut report, CF_HISTORY, &key, &value) else {
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
    Ok(report)
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
