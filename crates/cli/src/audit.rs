//! `licctl audit`: the replicated audit trail (Audit service; auditor).
//!
//! `audit list` shows records, all or those about one holder ("who looked at my license").
//! `audit verify` reads every node's whole trail page by page and checks the BLAKE3 chain
//! itself (`licstore_model::audit::ChainCheck`), so it trusts no node: it reports the first
//! record that does not follow from the ones before, nodes that cannot be read, and nodes whose
//! trails differ within the length both have.

use std::time::Duration;

use licstore_model::audit::{BrokenLink, ChainCheck};
use licstore_proto::v1 as pb;
use licstore_proto::v1::audit_client::AuditClient;
use serde::Serialize;

use crate::args::AuditCommand;
use crate::exit::{reported, FAILURE};
use crate::licenses::holder_kind;
use crate::output::{emit, Render, Table};
use crate::{convert, Ctx};

/// Records fetched per call when walking a whole trail.
const PAGE: u32 = 1000;

/// Largest page accepted, in bytes (a record is a few hundred).
const PAGE_BYTES_MAX: usize = 16 << 20;

/// Runs one `licctl audit` command.
pub async fn run(ctx: &Ctx, command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List {
            holder,
            from,
            limit,
        } => {
            let (kind, id) = match &holder.holder {
                Some(id) => {
                    let args = crate::args::HolderArgs {
                        holder_kind: holder.holder_kind,
                        holder: id.clone(),
                    };
                    let kind = holder_kind(&args, None)?;
                    (convert::holder_kind_to_proto(kind) as i32, id.clone())
                }
                None => (0, String::new()),
            };
            let request = pb::ListAuditRequest {
                consistency: 0,
                from_seq: from,
                limit,
                holder_kind: kind,
                holder_id: id,
            };
            let mut client = ctx.client()?;
            let response = client
                .retrying(|ch| {
                    let request = request.clone();
                    let audit = AuditClient::new(ch).max_decoding_message_size(PAGE_BYTES_MAX);
                    async move { audit.clone().list_audit(request).await }
                })
                .await?;
            emit(ctx.output, &ListView::of(response))
        }
        AuditCommand::Verify => verify(ctx).await,
    }
}

/// One record as `audit list` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    pub seq: u64,
    pub time_ms: u64,
    pub node_id: u64,
    pub caller: String,
    pub roles: String,
    pub action: String,
    pub outcome: String,
    pub detail: String,
    pub service_item: String,
    pub purpose: String,
    pub holder_id: String,
    pub type_code: String,
    pub identifier: String,
    pub revision: u64,
}

/// What `audit list` prints.
#[derive(Clone, Debug, Serialize)]
pub struct ListView {
    pub records: Vec<Line>,
    pub tail_seq: u64,
}

impl ListView {
    fn of(r: pb::ListAuditResponse) -> ListView {
        let records = r
            .records
            .into_iter()
            .map(|e| Line {
                seq: e.seq,
                time_ms: e.time_ms,
                node_id: e.node_id,
                caller: e.caller,
                roles: e.roles,
                action: e.action,
                outcome: e.outcome,
                detail: e.detail,
                service_item: e.service_item,
                purpose: e.purpose,
                holder_id: e.holder_id,
                type_code: e.type_code,
                identifier: e.identifier,
                revision: e.revision,
            })
            .collect();
        ListView {
            records,
            tail_seq: r.tail_seq,
        }
    }
}

impl Render for ListView {
    fn table(&self) -> Table {
        let headers = [
            "seq",
            "time",
            "node",
            "caller",
            "action",
            "outcome",
            "service item",
            "purpose",
            "holder",
        ];
        let mut t = Table::new(&headers);
        for l in &self.records {
            t.row([
                l.seq.to_string(),
                utc(l.time_ms),
                l.node_id.to_string(),
                l.caller.clone(),
                l.action.clone(),
                l.outcome.clone(),
                l.service_item.clone(),
                l.purpose.clone(),
                l.holder_id.clone(),
            ]);
        }
        t
    }
}

/// One node's verdict in `audit verify`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeChain {
    pub endpoint: String,
    /// Records checked.
    pub records: u64,
    /// Hex of the last record's hash.
    pub head: String,
    /// `ok`, or what is wrong.
    pub result: String,
    /// The first record that does not follow from the ones before, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken_at: Option<u64>,
}

/// What `audit verify` prints.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyView {
    pub nodes: Vec<NodeChain>,
}

impl Render for VerifyView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["endpoint", "records", "head", "result"]);
        for n in &self.nodes {
            let head = n.head.chars().take(16).collect::<String>();
            t.row([
                n.endpoint.clone(),
                n.records.to_string(),
                head,
                n.result.clone(),
            ]);
        }
        t
    }
}

/// One node's walk: its verdict, and the hash after each record (to compare nodes).
struct Walk {
    chain: NodeChain,
    hashes: Vec<[u8; 32]>,
}

/// Walks one node's trail from the first record; a node that cannot be read is reported as
/// such, not as a failure of the whole command.
async fn check_node(ctx: &Ctx, endpoint: &str) -> Walk {
    let mut hashes = Vec::new();
    let (result, broken, records, head) = match walk(ctx, endpoint, &mut hashes).await {
        Ok((check, Some(b), _)) => {
            let result = format!("broken at record {}: {}", b.seq, b.reason);
            (result, Some(b.seq), check.checked(), check.head())
        }
        Ok((check, None, (seq, hash))) => {
            let result = if seq > check.checked() {
                format!("reports {seq} records but returned {}", check.checked())
            } else if seq == check.checked() && hash != check.head() {
                "the node's tail hash differs from its last record's".to_owned()
            } else {
                "ok".to_owned()
            };
            (result, None, check.checked(), check.head())
        }
        Err(e) => (format!("not read: {e:#}"), None, 0, [0; 32]),
    };
    Walk {
        chain: NodeChain {
            endpoint: endpoint.to_owned(),
            records,
            head: hex(&head),
            broken_at: broken,
            result,
        },
        hashes,
    }
}

/// The chain check of one node's trail, where it broke if it did, and the tail the node
/// reported on its last page; the hash after each record checked goes to `hashes`.
async fn walk(
    ctx: &Ctx,
    endpoint: &str,
    hashes: &mut Vec<[u8; 32]>,
) -> anyhow::Result<(ChainCheck, Option<BrokenLink>, (u64, Vec<u8>))> {
    let timeout = Duration::from_millis(ctx.timeout_ms.unwrap_or(30_000));
    let mut client = ctx.client_for(&[endpoint.to_owned()], timeout)?;
    let mut check = ChainCheck::from_start();
    // The trail as long as it was when the walk began: one that grows faster than pages come
    // would otherwise never end.
    let mut end: Option<u64> = None;
    loop {
        let request = pb::ListAuditRequest {
            from_seq: check.checked() + 1,
            limit: PAGE,
            ..Default::default()
        };
        let page = client
            .retrying(|ch| {
                let request = request.clone();
                let audit = AuditClient::new(ch).max_decoding_message_size(PAGE_BYTES_MAX);
                async move { audit.clone().list_audit(request).await }
            })
            .await?;
        for record in &page.records {
            if let Err(b) = check.next(&record.raw) {
                return Ok((check, Some(b), (page.tail_seq, page.tail_hash)));
            }
            hashes.push(check.head());
        }
        let end = *end.get_or_insert(page.tail_seq);
        if page.records.len() < PAGE as usize || check.checked() >= end {
            return Ok((check, None, (page.tail_seq, page.tail_hash)));
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC for ms since the Unix epoch.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let day = licstore_model::Date::from_unix_secs(secs);
    let in_day = secs % 86_400;
    let (h, m, s) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
    format!("{day} {h:02}:{m:02}:{s:02}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `licctl audit verify`: every endpoint's trail checked; exits 1 if any is broken, cannot
/// be read, or ends, at some length, in a different record than another node's trail of at
/// least that length. Keeps 32 bytes per record and node in memory.
async fn verify(ctx: &Ctx) -> anyhow::Result<()> {
    let mut walks = Vec::with_capacity(ctx.endpoints.len());
    for endpoint in &ctx.endpoints {
        walks.push(check_node(ctx, endpoint).await);
    }
    let verdicts: Vec<Option<String>> =
        (0..walks.len()).map(|i| difference_of(&walks, i)).collect();
    for (walk, verdict) in walks.iter_mut().zip(verdicts) {
        if let (Some(v), "ok") = (verdict, walk.chain.result.as_str()) {
            walk.chain.result = v;
        }
    }
    let nodes: Vec<NodeChain> = walks.into_iter().map(|w| w.chain).collect();
    let bad = nodes.iter().filter(|n| n.result != "ok").count();
    emit(ctx.output, &VerifyView { nodes })?;
    match bad {
        0 => Ok(()),
        n => Err(reported(
            FAILURE,
            format!("{n} nodes' audit trails do not check"),
        )),
    }
}

/// How node `i`'s trail differs from the others', naming them; `None` when it agrees with all.
/// A node that differs from every other one of three or more is the odd one out, and is told
/// so.
fn difference_of(walks: &[Walk], i: usize) -> Option<String> {
    let diffs: Vec<(&str, u64)> = walks
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .filter_map(|(_, w)| {
            let seq = first_difference(&walks[i].hashes, &w.hashes)?;
            Some((w.chain.endpoint.as_str(), seq))
        })
        .collect();
    let seq = diffs.iter().map(|(_, s)| *s).min()?;
    if walks.len() >= 3 && diffs.len() == walks.len() - 1 {
        return Some(format!("record {seq} differs from every other node's"));
    }
    let others: Vec<&str> = diffs.iter().map(|(e, _)| *e).collect();
    Some(format!("record {seq} differs from {}'s", others.join(", ")))
}

/// The first position (from 1) at which two trails, as hashes after each record, differ
/// within the length both have.
fn first_difference(a: &[[u8; 32]], b: &[[u8; 32]]) -> Option<u64> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .map(|i| i as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(endpoint: &str, hashes: &[u8]) -> Walk {
        Walk {
            chain: NodeChain {
                endpoint: endpoint.into(),
                records: hashes.len() as u64,
                head: String::new(),
                result: "ok".into(),
                broken_at: None,
            },
            hashes: hashes.iter().map(|n| [*n; 32]).collect(),
        }
    }

    #[test]
    fn the_node_that_differs_is_named() {
        let three = [
            walk("a", &[1, 9, 3]),
            walk("b", &[1, 2]),
            walk("c", &[1, 2, 3, 4]),
        ];
        let verdicts: Vec<Option<String>> = (0..3).map(|i| difference_of(&three, i)).collect();
        assert_eq!(
            verdicts,
            [
                Some("record 2 differs from every other node's".to_owned()),
                Some("record 2 differs from a's".to_owned()),
                Some("record 2 differs from a's".to_owned()),
            ]
        );
        let agreeing = [walk("a", &[1, 2]), walk("b", &[1, 2, 3])];
        assert_eq!(difference_of(&agreeing, 0), None);
        assert_eq!(difference_of(&agreeing, 1), None);
    }

    #[test]
    fn trails_differ_at_the_first_unequal_hash_within_the_shorter() {
        type Hashes<'a> = &'a [[u8; 32]];
        let h = |n: u8| [n; 32];
        let cases: [(Hashes, Hashes, Option<u64>); 4] = [
            (&[h(1), h(2)], &[h(1), h(2), h(3)], None),
            (&[h(1), h(2)], &[h(1), h(9)], Some(2)),
            (&[h(7)], &[h(1), h(2)], Some(1)),
            (&[], &[h(1)], None),
        ];
        for (a, b, expected) in cases {
            assert_eq!(first_difference(a, b), expected, "{a:?} {b:?}");
        }
    }
}
