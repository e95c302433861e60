//! `Licenses.Query`: request checking, the plan, and cursors. The walk itself is
//! `licstore_store::query`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use licstore_model::Date;
use licstore_proto::v1 as pb;
use licstore_store::index::IndexKind;
use licstore_store::query::{plan, Pinned, Plan, Query};
use tonic::{Code, Status};

use crate::convert::{self, field_status};
use crate::node::Node;

/// Page size when the request gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Version prefix of cursors, so their format can change without misreading old ones.
const CURSOR_PREFIX: &str = "c2.";

/// Checks a request and turns it into a query; every refusal names its field.
pub fn to_query(node: &Node, req: &pb::QueryRequest) -> Result<Query, Status> {
    let type_code = match filter_text("type_code", &req.type_code)? {
        Some(t) => Some(
            node.templates
                .get(&t)
                .map_err(|_| {
                    let msg = format!("unknown license type {t:?}");
                    field_status(Code::InvalidArgument, "type_code", msg)
                })?
                .type_code
                .clone(),
        ),
        None => None,
    };
    let statuses = req
        .statuses
        .iter()
        .map(|s| convert::status_from_pb_strict("statuses", *s))
        .collect::<Result<Vec<_>, _>>()?;
    let expires_before = match filter_text("expires_before", &req.expires_before)? {
        Some(d) => Some(Date::parse(&d).map_err(|e| {
            let reason = match e {
                licstore_model::ModelError::InvalidField { reason, .. } => reason,
                other => other.to_string(),
            };
            field_status(Code::InvalidArgument, "expires_before", reason)
        })?),
        None => None,
    };
    let region_prefix = match filter_text("region", &req.region)? {
        Some(r) => Some(region_prefix(&r)?),
        None => None,
    };
    Ok(Query {
        type_code,
        license_number: filter_text("license_number", &req.license_number)?,
        statuses,
        issuer_code: filter_text("issuer_code", &req.issuer_code)?.map(|i| i.to_uppercase()),
        region_prefix,
        expires_before,
        changed_since: req.changed_since_revision,
    })
}

/// Longest text filter value, in bytes.
pub const MAX_FILTER_BYTES: usize = 128;

/// A text filter: surrounding spaces are ignored, empty means no filter, blank or over-long
/// values are refused.
pub fn filter_text(field: &str, value: &str) -> Result<Option<String>, Status> {
    let trimmed = value.trim();
    if value.len() > MAX_FILTER_BYTES {
        let msg = format!("longer than {MAX_FILTER_BYTES} bytes");
        return Err(field_status(Code::InvalidArgument, field, msg));
    }
    if trimmed.is_empty() && !value.is_empty() {
        return Err(field_status(Code::InvalidArgument, field, "blank"));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

/// The key prefix for a GB/T 2260 region: trailing `00` pairs of a 6-digit code widen it to
/// the city or province, so `310000` matches every county of Shanghai.
pub fn region_prefix(region: &str) -> Result<String, Status> {
    let bad = |why: &str| field_status(Code::InvalidArgument, "region", why);
    if !region.bytes().all(|b| b.is_ascii_digit()) || ![2, 4, 6].contains(&region.len()) {
        return Err(bad("must be 2, 4 or 6 digits of a GB/T 2260 code"));
    }
    if !licstore_model::region::is_known_province(&region[..2]) {
        return Err(bad("not in a known GB/T 2260 province"));
    }
    let mut prefix = region;
    while prefix.len() > 2 && prefix.ends_with("00") {
        prefix = &prefix[..prefix.len() - 2];
    }
    Ok(prefix.to_string())
}

/// The plan for a query, or `INVALID_ARGUMENT` naming the filter that cannot be planned.
pub fn plan_of(q: &Query) -> Result<Plan, Status> {
    plan(q).map_err(|e| field_status(Code::InvalidArgument, e.field, e.reason))
}

/// Page size for a request: 0 for a count, the default when unset.
pub fn page_size(req: &pb::QueryRequest) -> Result<usize, Status> {
    if req.count_only {
        if !req.cursor.is_empty() {
            let msg = "not used with count_only: a count always covers every match";
            return Err(field_status(Code::InvalidArgument, "cursor", msg));
        }
        return Ok(0);
    }
    match req.page_size {
        0 => Ok(DEFAULT_PAGE_SIZE as usize),
        n if n > MAX_PAGE_SIZE => Err(field_status(
            Code::InvalidArgument,
            "page_size",
            format!("at most {MAX_PAGE_SIZE}"),
        )),
        n => Ok(n as usize),
    }
}

/// Where a listing continues: the node and pinned state it reads, and the last key covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The node that pinned the state; later pages must go to it.
    pub node_id: u64,
    /// The pinned state's number in that node's [`Pins`].
    pub pin: u64,
    /// Last index key the previous page covered.
    pub key: Vec<u8>,
}

/// Encodes a cursor as `c2.<node>.<pin>.<hex key>`.
pub fn encode_cursor(c: &Cursor) -> String {
    format!(
        "{CURSOR_PREFIX}{}.{}.{}",
        c.node_id,
        c.pin,
        convert::hex(&c.key)
    )
}

/// Decodes a cursor and checks it lies in the ranges this plan walks and was issued here.
pub fn decode_cursor(cursor: &str, plan: &Plan, node_id: u64) -> Result<Option<Cursor>, Status> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| field_status(Code::InvalidArgument, "cursor", why);
    let not_ours = || bad("not a cursor returned by Query");
    let mut parts = cursor
        .strip_prefix(CURSOR_PREFIX)
        .ok_or_else(not_ours)?
        .split('.');
    let (Some(node), Some(pin), Some(hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_ours());
    };
    let c = Cursor {
        node_id: node.parse().map_err(|_| not_ours())?,
        pin: pin.parse().map_err(|_| not_ours())?,
        key: unhex(hex).ok_or_else(not_ours)?,
    };
    let inside = plan.ranges.iter().any(|(start, end)| {
        c.key.as_slice() >= start.as_slice() && c.key.as_slice() < end.as_slice()
    });
    if !inside {
        return Err(bad("belongs to a query with other filters"));
    }
    if c.node_id != node_id {
        let msg = format!(
            "issued by node {}; the pages of one listing are read from the state that node \
             pinned, so send them there",
            c.node_id
        );
        return Err(field_status(Code::FailedPrecondition, "cursor", msg));
    }
    Ok(Some(c))
}

/// How long a pinned listing state lives without a page being read from it.
pub const PIN_IDLE: Duration = Duration::from_secs(60);
/// Pinned listing states per node at most; beyond it the least recently used is dropped.
pub const MAX_PINS: usize = 256;

/// Pinned states of unfinished listings, by number. Decisions only: the caller passes the time.
#[derive(Default)]
pub struct Pins {
    inner: Mutex<PinTable>,
}

#[derive(Default)]
struct PinTable {
    next: u64,
    pins: HashMap<u64, (Arc<Pinned>, Instant)>,
}

impl Pins {
    /// Keeps `pin` for later pages and returns its number.
    pub fn insert(&self, pin: Arc<Pinned>, now: Instant) -> u64 {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.pins
            .retain(|_, (_, used)| now.saturating_duration_since(*used) < PIN_IDLE);
        while t.pins.len() >= MAX_PINS {
            let oldest = t
                .pins
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => t.pins.remove(&id),
                None => break,
            };
        }
        t.next += 1;
        let id = t.next;
        t.pins.insert(id, (pin, now));
        id
    }

    /// The pinned state `id`, if it has not expired; marks it used.
    pub fn get(&self, id: u64, now: Instant) -> Option<Arc<Pinned>> {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (pin, used) = t.pins.get_mut(&id)?;
        if now.saturating_duration_since(*used) >= PIN_IDLE {
            t.pins.remove(&id);
            return None;
        }
        *used = now;
        Some(pin.clone())
    }

    /// Drops `id` once its listing is complete.
    pub fn remove(&self, id: u64) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.pins.remove(&id);
    }

    /// Number of pinned states kept.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pins
            .len()
    }

    /// True when no state is pinned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `FAILED_PRECONDITION` for a cursor whose pinned state is gone.
pub fn expired_cursor() -> Status {
    let msg = format!(
        "expired: pages of one listing must follow within {}s of each other and the node must \
         not restart in between; start the query again",
        PIN_IDLE.as_secs()
    );
    field_status(Code::FailedPrecondition, "cursor", msg)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The plan as the API shows it.
pub fn plan_to_pb(plan: &Plan, scanned: u64) -> pb::QueryPlan {
    pb::QueryPlan {
        index: plan.index.name().to_string(),
        reason: plan.reason.to_string(),
        ranges: plan
            .ranges
            .iter()
            .map(|(a, b)| {
                format!(
                    "[{}, {})",
                    printable(plan.index, a),
                    printable(plan.index, b)
                )
            })
            .collect(),
        entries_scanned: scanned,
    }
}

/// A key with its tag spelled out, binary revisions as numbers and other bytes escaped.
fn printable(kind: IndexKind, key: &[u8]) -> String {
    let body = key.get(1..).unwrap_or_default();
    let shown = match (kind, <[u8; 8]>::try_from(body)) {
        (IndexKind::Revision, Ok(rev)) => u64::from_be_bytes(rev).to_string(),
        _ => body.escape_ascii().to_string(),
    };
    format!("{}:{shown}", kind.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_widen_by_trailing_zero_pairs() {
        let cases = [
            ("310000", Some("31")),
            ("310100", Some("3101")),
            ("310115", Some("310115")),
            ("31", Some("31")),
            ("3101", Some("3101")),
            ("3", None),
            ("31011", None),
            ("99", None),
            ("31x1", None),
        ];
        for (input, want) in cases {
            assert_eq!(region_prefix(input).ok().as_deref(), want, "{input}");
        }
    }

    #[test]
    fn cursors_round_trip_and_stay_inside_their_plan() {
        let q = Query {
            statuses: vec![licstore_model::LicenseStatus::Valid],
            ..Query::default()
        };
        let p = plan(&q).expect("plan");
        let c = Cursor {
            node_id: 2,
            pin: 9,
            key: b"s01T\0ID".to_vec(),
        };
        assert_eq!(
            decode_cursor(&encode_cursor(&c), &p, 2).unwrap(),
            Some(c.clone())
        );
        assert_eq!(decode_cursor("", &p, 2).unwrap(), None);
        let elsewhere = decode_cursor(&encode_cursor(&c), &p, 3).unwrap_err();
        assert_eq!(elsewhere.code(), Code::FailedPrecondition);
        let other_query = encode_cursor(&Cursor {
            key: b"tT\0N\0ID".to_vec(),
            ..c
        });
        for bad in [
            "zz",
            "c2.0",
            "c2.1.2.zz",
            "c2.x.1.73",
            "c2.1.1.73.9",
            &other_query,
        ] {
            let e = decode_cursor(bad, &p, 2).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
            assert!(
                e.message().starts_with("cursor: "),
                "{bad}: {}",
                e.message()
            );
        }
    }

    #[test]
    fn pins_expire_when_idle_and_the_oldest_goes_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = licstore_store::open(dir.path()).expect("open");
        let reader = licstore_store::Reader::new(storage.db.clone());
        let pin = || Arc::new(reader.pin().expect("pin"));
        let pins = Pins::default();
        let t0 = Instant::now();
        let a = pins.insert(pin(), t0);
        assert!(
            pins.get(a, t0 + PIN_IDLE / 2).is_some(),
            "used: idle time restarts"
        );
        assert!(pins.get(a, t0 + PIN_IDLE).is_some());
        assert!(pins.get(a, t0 + PIN_IDLE * 3).is_none(), "idle too long");
        for _ in 0..MAX_PINS + 5 {
            pins.insert(pin(), t0);
        }
        assert_eq!(pins.len(), MAX_PINS);
        let b = pins.insert(pin(), t0);
        pins.remove(b);
        assert!(pins.get(b, t0).is_none());
    }
}
