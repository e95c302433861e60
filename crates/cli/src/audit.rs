//! `licctl audit`: the replicated audit trail (Audit service; auditor).
//!
//! `audit list` shows records, all or those about one holder ("who looked at my license").
//! `audit verify` reads every node's whole trail page by page and checks the BLAKE3 chain
//! itself (`licstore_model::audit::ChainCheck`), so it trusts no node: it reports the first
//! record that does not follow from the ones before, and nodes whose trails of equal length end
//! in different records.

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
const PAGE: u32 = 10_000;

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
                    async move { AuditClient::new(ch).list_audit(request).await }
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

/// Walks one node's trail from the first record.
async fn check_node(ctx: &Ctx, endpoint: &str) -> anyhow::Result<NodeChain> {
    let timeout = Duration::from_millis(ctx.timeout_ms.unwrap_or(30_000));
    let mut client = ctx.client_for(&[endpoint.to_owned()], timeout)?;
    let mut check = ChainCheck::from_start();
    let mut broken: Option<BrokenLink> = None;
    let tail = loop {
        let request = pb::ListAuditRequest {
            from_seq: check.checked() + 1,
            limit: PAGE,
            ..Default::default()
        };
        let page = client
            .retrying(|ch| {
                let request = request.clone();
                async move { AuditClient::new(ch).list_audit(request).await }
            })
            .await?;
        for record in &page.records {
            if let Err(b) = check.next(&record.raw) {
                broken = Some(b);
                break;
            }
        }
        if broken.is_some() || page.records.len() < PAGE as usize {
            break (page.tail_seq, page.tail_hash);
        }
    };
    let head = check.head();
    let result = match (&broken, tail) {
        (Some(b), _) => format!("broken at record {}: {}", b.seq, b.reason),
        (None, (seq, hash)) if seq == check.checked() && hash != head => {
            "the node's tail hash differs from its last record's".to_owned()
        }
        (None, _) => "ok".to_owned(),
    };
    Ok(NodeChain {
        endpoint: endpoint.to_owned(),
        records: check.checked(),
        head: hex(&head),
        broken_at: broken.map(|b| b.seq),
        result,
    })
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

/// `licctl audit verify`: every endpoint's trail checked; exits 1 if any is broken or two of
/// equal length disagree.
async fn verify(ctx: &Ctx) -> anyhow::Result<()> {
    let mut nodes = Vec::with_capacity(ctx.endpoints.len());
    for endpoint in &ctx.endpoints {
        nodes.push(check_node(ctx, endpoint).await?);
    }
    let mut bad = nodes.iter().filter(|n| n.result != "ok").count();
    for i in 0..nodes.len() {
        let disagrees = nodes[..i]
            .iter()
            .any(|o| o.records == nodes[i].records && o.head != nodes[i].head);
        if disagrees && nodes[i].result == "ok" {
            nodes[i].result = "ends in a different record than another node's trail".to_owned();
            bad += 1;
        }
    }
    emit(ctx.output, &VerifyView { nodes })?;
    match bad {
        0 => Ok(()),
        n => Err(reported(
            FAILURE,
            format!("{n} nodes' audit trails do not check"),
        )),
    }
}
