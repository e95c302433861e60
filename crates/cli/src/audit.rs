//! `licctl audit`: the replicated audit trail (Audit service; auditor).
//!
//! `audit list` shows records, all or those about one holder ("who looked at my license").
//! `audit verify` reads every node's whole trail page by page and checks the BLAKE3 chain
//! itself (`licstore_model::audit::ChainCheck`), so it trusts no node: it reports the first
//! record that does not follow from the ones before, nodes that cannot be read, and nodes whose
//! trails differ within the records both have. A trimmed trail is checked from its checkpoint,
//! which the trail's last trim record must name; with `--archive`, the archived records are
//! checked too and must reach the checkpoint (`audit_archive`).
//! `audit trim` removes the oldest records (admin).

use std::time::Duration;

use std::path::PathBuf;

use licstore_model::audit::{BrokenLink, ChainCheck, Trim};
use licstore_proto::v1 as pb;
use licstore_proto::v1::audit_client::AuditClient;
use serde::Serialize;

use crate::args::AuditCommand;
use crate::exit::{reported, FAILURE};
use crate::licenses::holder_kind;
use crate::output::{emit, Render, Table};
use crate::{convert, Ctx};

/// Records fetched per call when walking a whole trail.
pub(crate) const PAGE: u32 = 1000;

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
        AuditCommand::Verify { archives } => verify(ctx, &archives).await,
        AuditCommand::Export { out, from, through } => {
            crate::audit_archive::export(ctx, &out, from, through).await
        }
        AuditCommand::Trim { through } => trim(ctx, through).await,
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
    /// The last record trimmed away before them; 0 for none.
    pub checkpoint: u64,
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
        let mut t = Table::new(&["endpoint", "checkpoint", "records", "head", "result"]);
        for n in &self.nodes {
            let head = n.head.chars().take(16).collect::<String>();
            t.row([
                n.endpoint.clone(),
                n.checkpoint.to_string(),
                n.records.to_string(),
                head,
                n.result.clone(),
            ]);
        }
        t
    }
}

/// One node's walk: its verdict, and the hash of each record from `first` on (to compare
/// nodes).
struct Walk {
    chain: NodeChain,
    /// The seq of `hashes[0]`: the checkpoint's, else 1.
    first: u64,
    hashes: Vec<[u8; 32]>,
}

/// What walking one node's trail found.
struct Walked {
    check: ChainCheck,
    broken: Option<BrokenLink>,
    /// The tail the node reported on its last page.
    tail: (u64, Vec<u8>),
    /// The checkpoint it reported.
    checkpoint: (u64, [u8; 32]),
    /// The last trim record among the records checked.
    last_trim: Option<Trim>,
}

/// Walks one node's trail from its checkpoint; a node that cannot be read is reported as such,
/// not as a failure of the whole command.
async fn check_node(ctx: &Ctx, endpoint: &str) -> Walk {
    let mut hashes = Vec::new();
    let walked = walk(ctx, endpoint, &mut hashes).await;
    let (result, broken, records, head, checkpoint) = match walked {
        Ok(w) => {
            let result = match &w.broken {
                Some(b) => format!("broken at record {}: {}", b.seq, b.reason),
                None => verdict(&w),
            };
            let records = w.check.checked() - w.checkpoint.0;
            let broken = w.broken.map(|b| b.seq);
            (result, broken, records, w.check.head(), w.checkpoint.0)
        }
        Err(e) => (format!("not read: {e:#}"), None, 0, [0; 32], 0),
    };
    Walk {
        chain: NodeChain {
            endpoint: endpoint.to_owned(),
            records,
            checkpoint,
            head: hex(&head),
            broken_at: broken,
            result,
        },
        first: checkpoint.max(1),
        hashes,
    }
}

/// The verdict on a walk whose every record linked: it reached the tail the node reported,
/// and the last trim record names the checkpoint it started from.
fn verdict(w: &Walked) -> String {
    let (seq, hash) = (&w.tail.0, &w.tail.1);
    let checked = w.check.checked();
    if *seq > checked {
        return format!("reports {seq} records but returned {checked}");
    }
    if *seq == checked && hash.as_slice() != w.check.head() {
        return "the node's tail hash differs from its last record's".to_owned();
    }
    let (at, at_hash) = w.checkpoint;
    match (at, &w.last_trim) {
        (0, None) => "ok".to_owned(),
        (0, Some(t)) => format!(
            "a trim record names checkpoint {}, the node reports none",
            t.through_seq
        ),
        (_, None) => format!("checkpoint {at} is named by no trim record"),
        (_, Some(t)) if (t.through_seq, t.hash) != (at, at_hash) => format!(
            "the last trim record names checkpoint {}, not the node's {at}",
            t.through_seq
        ),
        (_, Some(_)) => "ok".to_owned(),
    }
}

/// The chain check of one node's trail from its checkpoint, where it broke if it did; the
/// checkpoint's hash, then the hash of each record checked, go to `hashes`.
async fn walk(ctx: &Ctx, endpoint: &str, hashes: &mut Vec<[u8; 32]>) -> anyhow::Result<Walked> {
    let timeout = Duration::from_millis(ctx.timeout_ms.unwrap_or(30_000));
    let mut client = ctx.client_for(&[endpoint.to_owned()], timeout)?;
    let mut walked: Option<Walked> = None;
    // The trail as long as it was when the walk began: one that grows faster than pages come
    // would otherwise never end.
    let mut end: Option<u64> = None;
    loop {
        let from_seq = walked.as_ref().map_or(1, |w| w.check.checked() + 1);
        let page = page_of(&mut client, from_seq).await?;
        let w = match &mut walked {
            Some(w) if w.checkpoint.0 != page.checkpoint_seq => anyhow::bail!(
                "trimmed while being read (checkpoint {} then {}); run again",
                w.checkpoint.0,
                page.checkpoint_seq
            ),
            Some(w) => w,
            None => walked.insert(start_walk(&page, hashes)?),
        };
        w.tail = (page.tail_seq, page.tail_hash);
        for record in &page.records {
            match w.check.next(&record.raw) {
                Ok(r) => w.last_trim = Trim::of_record(&r).or(w.last_trim),
                Err(b) => {
                    w.broken = Some(b);
                    return Ok(walked.expect("set above"));
                }
            }
            hashes.push(w.check.head());
        }
        let end = *end.get_or_insert(page.tail_seq);
        if page.records.len() < PAGE as usize || w.check.checked() >= end {
            return Ok(walked.expect("set above"));
        }
    }
}

/// A walk starting at the checkpoint the first page reports.
fn start_walk(page: &pb::ListAuditResponse, hashes: &mut Vec<[u8; 32]>) -> anyhow::Result<Walked> {
    let at = page.checkpoint_seq;
    let hash: [u8; 32] = match at {
        0 => [0; 32],
        _ => page
            .checkpoint_hash
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("checkpoint {at}: its hash is not 32 bytes"))?,
    };
    let check = match at {
        0 => ChainCheck::from_start(),
        _ => {
            hashes.push(hash);
            ChainCheck::after(at, hash)
        }
    };
    Ok(Walked {
        check,
        broken: None,
        tail: (0, Vec::new()),
        checkpoint: (at, hash),
        last_trim: None,
    })
}

/// The page of the whole trail from `from_seq` on, [`PAGE`] records at most.
pub(crate) async fn page_of(
    client: &mut licstore_client::Client,
    from_seq: u64,
) -> anyhow::Result<pb::ListAuditResponse> {
    let request = pb::ListAuditRequest {
        from_seq,
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
    Ok(page)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC for ms since the Unix epoch.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let day = licstore_model::Date::from_unix_secs(secs);
    let in_day = secs % 86_400;
    let (h, m, s) = (in_day / 3600, in_day / 60 % 60, in_day % 60);
    format!("{day} {h:02}:{m:02}:{s:02}")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `licctl audit verify`: every endpoint's trail checked, with the archives if any; exits 1
/// if any is broken, cannot be read, or holds a different record than another node's trail
/// (or the archives) at the same position. Keeps 32 bytes per record and node in memory.
async fn verify(ctx: &Ctx, archives: &[PathBuf]) -> anyhow::Result<()> {
    let mut walks = Vec::with_capacity(ctx.endpoints.len() + 1);
    for endpoint in &ctx.endpoints {
        walks.push(check_node(ctx, endpoint).await);
    }
    if !archives.is_empty() {
        let archived = crate::audit_archive::read_archives(archives)?;
        for w in walks.iter_mut().filter(|w| w.chain.result == "ok") {
            let at = w.chain.checkpoint;
            if archived.broken.is_none() && at > archived.last_seq() {
                w.chain.result = format!(
                    "checkpoint {at} is past the archives' last record {}: records between are \
                     in neither",
                    archived.last_seq()
                );
            }
        }
        walks.push(archive_walk(archived));
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

/// The archives as one more trail to compare the nodes' with.
fn archive_walk(a: crate::audit_archive::Archived) -> Walk {
    let last = a.hashes.last().copied().unwrap_or_default();
    Walk {
        chain: NodeChain {
            endpoint: format!("archive {}", a.files.join(", ")),
            records: a.hashes.len() as u64,
            checkpoint: a.first_seq - 1,
            head: hex(&last),
            result: a.broken.clone().unwrap_or_else(|| "ok".to_owned()),
            broken_at: None,
        },
        first: a.first_seq,
        hashes: a.hashes,
    }
}

/// What `audit trim` did.
#[derive(Clone, Debug, Serialize)]
pub struct TrimView {
    pub checkpoint_seq: u64,
    /// Hex of the checkpoint record's hash.
    pub checkpoint_hash: String,
    pub trimmed: u64,
    pub tail_seq: u64,
}

impl Render for TrimView {
    fn table(&self) -> Table {
        let mut t = Table::new(&["checkpoint", "hash", "trimmed", "tail"]);
        t.row([
            self.checkpoint_seq.to_string(),
            self.checkpoint_hash.chars().take(16).collect(),
            self.trimmed.to_string(),
            self.tail_seq.to_string(),
        ]);
        t
    }
}

/// `licctl audit trim`: a retried trim removes nothing twice (records already gone are not
/// an error).
async fn trim(ctx: &Ctx, through_seq: u64) -> anyhow::Result<()> {
    let request = pb::TrimAuditRequest { through_seq };
    let mut client = ctx.client()?;
    let done = client
        .retrying(|ch| async move { AuditClient::new(ch).trim_audit(request).await })
        .await?;
    let view = TrimView {
        checkpoint_seq: done.checkpoint_seq,
        checkpoint_hash: hex(&done.checkpoint_hash),
        trimmed: done.trimmed,
        tail_seq: done.tail_seq,
    };
    emit(ctx.output, &view)
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
            let seq = first_difference((walks[i].first, &walks[i].hashes), (w.first, &w.hashes))?;
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

/// The first seq at which two trails, each as its first seq and the hash of each record from
/// there, differ within the records both have.
fn first_difference(a: (u64, &[[u8; 32]]), b: (u64, &[[u8; 32]])) -> Option<u64> {
    let start = a.0.max(b.0);
    let skip =
        |(first, _): (u64, &[[u8; 32]])| usize::try_from(start - first).unwrap_or(usize::MAX);
    a.1.iter()
        .skip(skip(a))
        .zip(b.1.iter().skip(skip(b)))
        .position(|(x, y)| x != y)
        .map(|i| start + i as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(endpoint: &str, hashes: &[u8]) -> Walk {
        Walk {
            chain: NodeChain {
                endpoint: endpoint.into(),
                records: hashes.len() as u64,
                checkpoint: 0,
                head: String::new(),
                result: "ok".into(),
                broken_at: None,
            },
            first: 1,
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
    fn a_walk_holds_when_it_reaches_the_tail_and_its_checkpoint_is_vouched_for() {
        let h = |n: u8| [n; 32];
        let trim = |through_seq: u64, hash: [u8; 32]| Trim {
            through_seq,
            hash,
            records: through_seq,
        };
        // (tail reported, records checked to, checkpoint, last trim record) -> verdict start
        let cases = [
            ((9, h(9)), 9, (0, h(0)), None, "ok"),
            (
                (12, h(9)),
                9,
                (0, h(0)),
                None,
                "reports 12 records but returned 9",
            ),
            (
                (9, h(8)),
                9,
                (0, h(0)),
                None,
                "the node's tail hash differs",
            ),
            ((9, h(9)), 9, (4, h(4)), Some(trim(4, h(4))), "ok"),
            (
                (9, h(9)),
                9,
                (4, h(4)),
                None,
                "checkpoint 4 is named by no trim record",
            ),
            (
                (9, h(9)),
                9,
                (4, h(4)),
                Some(trim(4, h(5))),
                "the last trim record names",
            ),
            (
                (9, h(9)),
                9,
                (4, h(4)),
                Some(trim(3, h(4))),
                "the last trim record names",
            ),
            (
                (9, h(9)),
                9,
                (0, h(0)),
                Some(trim(4, h(4))),
                "a trim record names checkpoint 4",
            ),
        ];
        for (tail, checked, checkpoint, last_trim, expected) in cases {
            let walked = Walked {
                check: ChainCheck::after(checked, tail.1),
                broken: None,
                tail: (tail.0, h(9).to_vec()),
                checkpoint,
                last_trim,
            };
            let got = verdict(&walked);
            assert!(got.starts_with(expected), "{got} / {expected}");
        }
    }

    #[test]
    fn trails_differ_at_the_first_unequal_hash_within_the_shorter() {
        type Trail<'a> = (u64, &'a [[u8; 32]]);
        let h = |n: u8| [n; 32];
        let cases: [(Trail, Trail, Option<u64>); 8] = [
            ((1, &[h(1), h(2)]), (1, &[h(1), h(2), h(3)]), None),
            ((1, &[h(1), h(2)]), (1, &[h(1), h(9)]), Some(2)),
            ((1, &[h(7)]), (1, &[h(1), h(2)]), Some(1)),
            ((1, &[]), (1, &[h(1)]), None),
            // A trimmed trail starts at its checkpoint: compared where both have records.
            ((3, &[h(3), h(4)]), (1, &[h(1), h(2), h(3), h(4)]), None),
            ((3, &[h(3), h(9)]), (1, &[h(1), h(2), h(3), h(4)]), Some(4)),
            ((1, &[h(1), h(2)]), (3, &[h(3)]), None),
            ((2, &[h(8), h(3)]), (1, &[h(1), h(2), h(3)]), Some(2)),
        ];
        for (a, b, expected) in cases {
            assert_eq!(first_difference(a, b), expected, "{a:?} {b:?}");
        }
    }
}
