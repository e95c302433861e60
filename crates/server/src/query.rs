//! `Licenses.Query`: request checking, the plan, and cursors. The walk itself is
//! `licstore_store::query`.

use licstore_model::Date;
use licstore_proto::v1 as pb;
use licstore_store::index::IndexKind;
use licstore_store::query::{plan, Plan, Query};
use tonic::{Code, Status};

use crate::convert::{self, field_status};
use crate::node::Node;

/// Page size when the request gives none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Version prefix of cursors, so their format can change without misreading old ones.
const CURSOR_PREFIX: &str = "c1.";

/// Checks a request and turns it into a query; every refusal names its field.
pub fn to_query(node: &Node, req: &pb::QueryRequest) -> Result<Query, Status> {
    let text = |field: &str, v: &str| filter_text(field, v);
    let type_code = match text("type_code", &req.type_code)? {
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
    let expires_before = match text("expires_before", &req.expires_before)? {
        Some(d) => Some(Date::parse(&d).map_err(|e| {
            let reason = match e {
                licstore_model::ModelError::InvalidField { reason, .. } => reason,
                other => other.to_string(),
            };
            field_status(Code::InvalidArgument, "expires_before", reason)
        })?),
        None => None,
    };
    let region_prefix = match text("region", &req.region)? {
        Some(r) => Some(region_prefix(&r)?),
        None => None,
    };
    Ok(Query {
        type_code,
        license_number: text("license_number", &req.license_number)?,
        statuses,
        issuer_code: text("issuer_code", &req.issuer_code)?.map(|i| i.to_uppercase()),
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

/// Encodes the last index key of a page.
pub fn encode_cursor(key: &[u8]) -> String {
    format!("{CURSOR_PREFIX}{}", convert::hex(key))
}

/// Decodes a cursor and checks it lies in the ranges this plan walks.
pub fn decode_cursor(cursor: &str, plan: &Plan) -> Result<Option<Vec<u8>>, Status> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| field_status(Code::InvalidArgument, "cursor", why);
    let hex = cursor
        .strip_prefix(CURSOR_PREFIX)
        .ok_or_else(|| bad("not a cursor returned by Query"))?;
    let key = unhex(hex).ok_or_else(|| bad("not a cursor returned by Query"))?;
    let inside = plan
        .ranges
        .iter()
        .any(|(start, end)| key.as_slice() >= start.as_slice() && key.as_slice() < end.as_slice());
    if !inside {
        return Err(bad("belongs to a query with other filters"));
    }
    Ok(Some(key))
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
        let key = b"s01T\0ID".to_vec();
        assert_eq!(decode_cursor(&encode_cursor(&key), &p).unwrap(), Some(key));
        assert_eq!(decode_cursor("", &p).unwrap(), None);
        for bad in ["zz", "c1.0", "c1.zz", &encode_cursor(b"tT\0N\0ID")] {
            let e = decode_cursor(bad, &p).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{bad}");
            assert!(
                e.message().starts_with("cursor: "),
                "{bad}: {}",
                e.message()
            );
        }
    }
}
