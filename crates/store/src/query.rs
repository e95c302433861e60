//! Queries over current versions: choosing an index (pure, [`plan`]) and walking it over one
//! RocksDB snapshot ([`run`]).
//!
//! Every filter is evaluated on the index entries' summaries, whatever index was chosen, so the
//! choice changes how much is read, never the answer. Records are read only for the page that
//! is returned; a count reads none.
//!
//! Order is the chosen index's key order, which is stable for a given query. A cursor is the
//! last index key a page covered; the next page starts strictly after it. Pages read from a
//! [`Pinned`] snapshot see one state, so a listing that spans pages returns every match of that
//! state exactly once, whatever is written meanwhile.

use std::sync::Arc;

use licstore_model::{canonical, Date, License, LicenseStatus};
use rocksdb::{Direction, IteratorMode, DB};

use crate::index::{self, date_key, IndexKind, IndexSummary};
use crate::keys::{CF_CURRENT, CF_IDENT, CF_INDEX};
use crate::txn::cf_handle;
use crate::{codec, StoreError};

/// Index entries one page may read before it stops and hands back a cursor.
pub const MAX_SCANNED_PER_PAGE: u64 = 200_000;

/// What to look for; every `None` or empty field matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// License type code.
    pub type_code: Option<String>,
    /// License number printed on the face; needs `type_code`.
    pub license_number: Option<String>,
    /// Recorded statuses, any of.
    pub statuses: Vec<LicenseStatus>,
    /// Issuer code.
    pub issuer_code: Option<String>,
    /// GB/T 2260 region prefix: 2 digits (province), 4 (city) or 6 (county).
    pub region_prefix: Option<String>,
    /// Live (valid or suspended) licenses whose last valid day is before this date.
    pub expires_before: Option<Date>,
    /// Licenses changed after this revision.
    pub changed_since: Option<u64>,
}

/// A key range `[start, end)` of the `index` family.
pub type KeyRange = (Vec<u8>, Vec<u8>);

/// How a query will be answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The index walked.
    pub index: IndexKind,
    /// Key ranges walked, in key order.
    pub ranges: Vec<KeyRange>,
    /// Why this index was chosen.
    pub reason: &'static str,
}

/// Why a query cannot be planned; names the query field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    /// The field at fault.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl Query {
    /// Whether an index entry passes every filter.
    pub fn matches(&self, s: &IndexSummary) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let region_ok = self
            .region_prefix
            .as_deref()
            .is_none_or(|p| s.region_code.starts_with(p));
        let expiry_ok = self.expires_before.is_none_or(|before| {
            index::is_live(s.status) && s.valid_until.is_some_and(|until| until < before)
        });
        eq(&self.type_code, &s.type_code)
            && eq(&self.issuer_code, &s.issuer_code)
            && (self.statuses.is_empty() || self.statuses.contains(&s.status))
            && region_ok
            && expiry_ok
            && self.changed_since.is_none_or(|r| s.revision > r)
    }
}

/// Chooses the index for `q`. The most selective kind of filter present wins, in this order:
/// license number, issuer, expiry date, changed-since, region, status, type; with no filter the
/// type-and-number index lists everything.
pub fn plan(q: &Query) -> Result<Plan, QueryError> {
    let t = q.type_code.as_deref();
    if let Some(number) = &q.license_number {
        let Some(t) = t else {
            let reason = "needs type_code: license numbers are unique only within a type".into();
            return Err(QueryError {
                field: "license_number",
                reason,
            });
        };
        let prefix = index::join(
            IndexKind::TypeNumber,
            &[t.as_bytes(), number.as_bytes(), b""],
        );
        return Ok(single(
            IndexKind::TypeNumber,
            prefix,
            "license number and type given",
        ));
    }
    if let Some(issuer) = &q.issuer_code {
        let mut parts: Vec<&[u8]> = vec![issuer.as_bytes()];
        if let Some(t) = t {
            parts.push(t.as_bytes());
        }
        parts.push(b"");
        let prefix = index::join(IndexKind::Issuer, &parts);
        return Ok(single(IndexKind::Issuer, prefix, "issuer given"));
    }
    if let Some(before) = q.expires_before {
        let start = vec![IndexKind::Expiry.tag()];
        let end = index::join(IndexKind::Expiry, &[date_key(before).as_bytes()]);
        return Ok(Plan {
            index: IndexKind::Expiry,
            ranges: vec![(start, end)],
            reason: "expiry date given",
        });
    }
    if let Some(since) = q.changed_since {
        let tag = IndexKind::Revision.tag();
        let end = vec![tag + 1];
        let start = match since.checked_add(1) {
            Some(first) => [&[tag][..], &first.to_be_bytes()].concat(),
            None => end.clone(),
        };
        return Ok(Plan {
            index: IndexKind::Revision,
            ranges: vec![(start, end)],
            reason: "changed-since revision given",
        });
    }
    if let Some(region) = &q.region_prefix {
        let mut prefix = vec![IndexKind::Region.tag()];
        prefix.extend_from_slice(region.as_bytes());
        if let (Some(t), 6) = (t, region.len()) {
            prefix.extend_from_slice(t.as_bytes());
            prefix.push(0);
        }
        return Ok(single(IndexKind::Region, prefix, "region given"));
    }
    if !q.statuses.is_empty() {
        let mut statuses = q.statuses.clone();
        statuses.sort_by_key(|s| s.as_code());
        statuses.dedup();
        let ranges = statuses
            .iter()
            .map(|s| {
                let mut prefix = vec![IndexKind::Status.tag()];
                prefix.extend_from_slice(s.as_code().as_bytes());
                if let Some(t) = t {
                    prefix.extend_from_slice(t.as_bytes());
                    prefix.push(0);
                }
                prefix_range(prefix)
            })
            .collect();
        return Ok(Plan {
            index: IndexKind::Status,
            ranges,
            reason: "status given",
        });
    }
    let prefix = match t {
        Some(t) => index::join(IndexKind::TypeNumber, &[t.as_bytes(), b""]),
        None => vec![IndexKind::TypeNumber.tag()],
    };
    let reason = if t.is_some() {
        "type given"
    } else {
        "no filter: every current version"
    };
    Ok(single(IndexKind::TypeNumber, prefix, reason))
}

fn single(index: IndexKind, prefix: Vec<u8>, reason: &'static str) -> Plan {
    Plan {
        index,
        ranges: vec![prefix_range(prefix)],
        reason,
    }
}

/// The range of every key that starts with `prefix` (which never ends in 0xFF here).
fn prefix_range(prefix: Vec<u8>) -> KeyRange {
    let mut end = prefix.clone();
    match end.last_mut() {
        Some(last) if *last < 0xFF => *last += 1,
        _ => end.push(0xFF),
    }
    (prefix, end)
}

/// One page of answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryPage {
    /// Matching current versions, in index order (empty for a count).
    pub licenses: Vec<License>,
    /// Matches counted: all of them for a count, this page's otherwise.
    pub count: u64,
    /// Where the next page starts; `None` when nothing is left.
    pub next_cursor: Option<Vec<u8>>,
    /// Index entries read.
    pub scanned: u64,
    /// Log index the snapshot reflects.
    pub applied_index: u64,
}

/// A RocksDB snapshot that owns its database handle, so it can outlive one request: the pages
/// of one listing all read the state it pinned.
pub struct Pinned {
    // Declared before `db`: fields drop in order, so the snapshot is released while the database
    // it borrows is still open.
    snap: rocksdb::Snapshot<'static>,
    db: Arc<DB>,
    applied_index: u64,
}

impl Pinned {
    /// Pins the current state of `db`.
    pub fn new(db: Arc<DB>) -> Result<Pinned, StoreError> {
        let snap = db.snapshot();
        // SAFETY: the snapshot borrows the database behind `db`. `Pinned` keeps that `Arc`
        // alive for at least as long as the snapshot (see the field order), and never hands out
        // the snapshot with the extended lifetime.
        let snap = unsafe {
            std::mem::transmute::<rocksdb::Snapshot<'_>, rocksdb::Snapshot<'static>>(snap)
        };
        let applied_index = crate::reader::applied_index_at(&db, Some(&snap))?;
        Ok(Pinned {
            snap,
            db,
            applied_index,
        })
    }

    /// Log index the pinned state reflects.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
}

/// Walks `plan` for `q` over a pinned state, from just after `cursor`. `page_size` of 0 counts
/// every match instead of returning records.
pub fn run(
    pinned: &Pinned,
    q: &Query,
    plan: &Plan,
    cursor: Option<&[u8]>,
    page_size: usize,
) -> Result<QueryPage, StoreError> {
    let (db, snap) = (pinned.db.as_ref(), &pinned.snap);
    let mut page = QueryPage {
        applied_index: pinned.applied_index,
        ..QueryPage::default()
    };
    let cf = cf_handle(db, CF_INDEX)?;
    let mut hits: Vec<IndexSummary> = Vec::new();
    let mut last_key: Option<Vec<u8>> = None;
    'ranges: for (start, end) in &plan.ranges {
        if cursor.is_some_and(|c| c >= end.as_slice()) {
            continue;
        }
        let from = match cursor {
            Some(c) if c >= start.as_slice() => c,
            _ => start.as_slice(),
        };
        for item in snap.iterator_cf(cf, IteratorMode::From(from, Direction::Forward)) {
            let (key, value) = item?;
            if key.as_ref() >= end.as_slice() {
                break;
            }
            if cursor == Some(key.as_ref()) {
                continue;
            }
            let summary: IndexSummary = codec::decode("index summary", &value)?;
            let wanted = q.matches(&summary);
            if page_size > 0
                && (wanted && hits.len() == page_size || page.scanned >= MAX_SCANNED_PER_PAGE)
            {
                page.next_cursor = last_key.take();
                break 'ranges;
            }
            page.scanned += 1;
            last_key = Some(key.to_vec());
            if wanted {
                page.count += 1;
                if page_size > 0 {
                    hits.push(summary);
                }
            }
        }
    }
    page.licenses = load_records(db, snap, &hits)?;
    Ok(page)
}

fn load_records(
    db: &DB,
    snap: &rocksdb::Snapshot<'_>,
    hits: &[IndexSummary],
) -> Result<Vec<License>, StoreError> {
    let ident = cf_handle(db, CF_IDENT)?;
    let current = cf_handle(db, CF_CURRENT)?;
    let mut out = Vec::with_capacity(hits.len());
    for hit in hits {
        let dangling = || StoreError::corrupt("index", format!("{} dangles", hit.identifier));
        let ckey = snap
            .get_cf(ident, hit.identifier.as_bytes())?
            .ok_or_else(dangling)?;
        let bytes = snap.get_cf(current, &ckey)?.ok_or_else(dangling)?;
        out.push(canonical::decode(&bytes).map_err(|e| StoreError::corrupt("license", e))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Query {
        Query::default()
    }

    #[test]
    fn planner_prefers_the_most_selective_filter() {
        let d = Date::new(2027, 1, 1).ok();
        let s = |v: &str| Some(v.to_string());
        let cases = [
            (q(), IndexKind::TypeNumber),
            (
                Query {
                    type_code: s("T"),
                    ..q()
                },
                IndexKind::TypeNumber,
            ),
            (
                Query {
                    type_code: s("T"),
                    license_number: s("N"),
                    issuer_code: s("I"),
                    ..q()
                },
                IndexKind::TypeNumber,
            ),
            (
                Query {
                    issuer_code: s("I"),
                    expires_before: d,
                    ..q()
                },
                IndexKind::Issuer,
            ),
            (
                Query {
                    expires_before: d,
                    changed_since: Some(3),
                    ..q()
                },
                IndexKind::Expiry,
            ),
            (
                Query {
                    changed_since: Some(3),
                    region_prefix: s("31"),
                    ..q()
                },
                IndexKind::Revision,
            ),
            (
                Query {
                    region_prefix: s("31"),
                    statuses: vec![LicenseStatus::Valid],
                    ..q()
                },
                IndexKind::Region,
            ),
            (
                Query {
                    statuses: vec![LicenseStatus::Valid],
                    type_code: s("T"),
                    ..q()
                },
                IndexKind::Status,
            ),
        ];
        for (i, (query, want)) in cases.into_iter().enumerate() {
            assert_eq!(plan(&query).unwrap().index, want, "case {i}: {query:?}");
        }
    }

    #[test]
    fn license_number_needs_a_type() {
        let query = Query {
            license_number: Some("N".into()),
            ..q()
        };
        assert_eq!(plan(&query).unwrap_err().field, "license_number");
    }

    #[test]
    fn ranges_cover_exactly_their_prefix() {
        let cases: [(Query, &[u8], &[u8]); 4] = [
            (
                Query {
                    type_code: Some("T".into()),
                    ..q()
                },
                b"tT\0",
                b"tT\x01",
            ),
            (
                Query {
                    statuses: vec![LicenseStatus::Revoked],
                    ..q()
                },
                b"s03",
                b"s04",
            ),
            (
                Query {
                    changed_since: Some(1),
                    ..q()
                },
                b"r\0\0\0\0\0\0\0\x02",
                b"s",
            ),
            (
                Query {
                    expires_before: Date::new(2030, 1, 2).ok(),
                    ..q()
                },
                b"e",
                b"e20300102",
            ),
        ];
        for (query, start, end) in cases {
            let plan = plan(&query).unwrap();
            assert_eq!(
                plan.ranges,
                vec![(start.to_vec(), end.to_vec())],
                "{query:?}"
            );
        }
    }

    #[test]
    fn several_statuses_walk_in_key_order() {
        let query = Query {
            statuses: vec![
                LicenseStatus::Revoked,
                LicenseStatus::Valid,
                LicenseStatus::Valid,
            ],
            ..q()
        };
        let plan = plan(&query).unwrap();
        let starts: Vec<&[u8]> = plan.ranges.iter().map(|r| r.0.as_slice()).collect();
        assert_eq!(starts, vec![b"s01".as_slice(), b"s03".as_slice()]);
    }

    #[test]
    fn filters_are_checked_on_summaries() {
        let summary = IndexSummary {
            identifier: "X".into(),
            type_code: "T".into(),
            status: LicenseStatus::Suspended,
            issuer_code: "I".into(),
            region_code: "310115".into(),
            valid_until: Date::new(2026, 5, 1).ok(),
            revision: 10,
        };
        let cases = [
            (
                Query {
                    region_prefix: Some("3101".into()),
                    ..q()
                },
                true,
            ),
            (
                Query {
                    region_prefix: Some("3102".into()),
                    ..q()
                },
                false,
            ),
            (
                Query {
                    expires_before: Date::new(2026, 5, 2).ok(),
                    ..q()
                },
                true,
            ),
            (
                Query {
                    expires_before: Date::new(2026, 5, 1).ok(),
                    ..q()
                },
                false,
            ),
            (
                Query {
                    changed_since: Some(9),
                    ..q()
                },
                true,
            ),
            (
                Query {
                    changed_since: Some(10),
                    ..q()
                },
                false,
            ),
            (
                Query {
                    statuses: vec![LicenseStatus::Valid],
                    ..q()
                },
                false,
            ),
        ];
        for (query, want) in cases {
            assert_eq!(query.matches(&summary), want, "{query:?}");
        }
    }
}
