//! The import workload: small `Import` streams of new licenses, each record a `Create` op.
//!
//! Stream `s` carries records `s * R .. (s + 1) * R` (R = `records_per_stream`, at most
//! [`MAX_RECORDS_PER_STREAM`]); record `i` is holder number `holder_base + i` with marker
//! `i<holder number>` and a fresh request id. `clients` streams run at once, each to a node
//! chosen per [`Placement`].
//!
//! A stream's records are in flight together, so each record is recorded as its own client
//! (`first_client + i`): a client of the history never has two operations in flight. All of a
//! stream's ops are invoked when it opens and completed from its summary:
//! - a record listed in `rejections` is `Fail` with `field: reason`;
//! - the others are `Ok` at the summary's `last_revision` (a stream of at most
//!   [`MAX_RECORDS_PER_STREAM`] records is one Raft proposal on the server, so they share it),
//!   unless the counts do not add up or name duplicates (which the summary does not place),
//!   then they are `Unknown`;
//! - when the stream itself fails (error status, deadline) every record is `Unknown`.

use std::collections::HashMap;

use licstore_proto::v1 as pb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::license::{Key, LicenseFactory};
use super::{call, request, NodeAddr, Nodes, Placement, Stop};
use crate::history::OpKind;
use crate::recorder::{describe, Invocation, Recorder};

/// Most records per stream: the server's import batch (one proposal per batch).
pub const MAX_RECORDS_PER_STREAM: usize = 500;

/// Settings of the import workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportConfig {
    /// Number of streams.
    pub streams: usize,
    pub records_per_stream: usize,
    /// Streams in flight at once.
    pub clients: usize,
    /// Client id of record 0; record `i` is client `first_client + i`.
    pub first_client: u64,
    /// Holder number of record 0.
    pub holder_base: u64,
    pub seed: u64,
    pub placement: Placement,
    /// Deadline of a whole stream, summary included.
    pub stream_timeout_ms: u64,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            streams: 2,
            records_per_stream: 50,
            clients: 1,
            first_client: 10_000,
            holder_base: 200_000,
            seed: 0,
            placement: Placement::Any,
            stream_timeout_ms: 5000,
        }
    }
}

/// What the import workload sent.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ImportReport {
    /// Names of every key sent, in record order.
    pub keys: Vec<String>,
    /// Streams that returned a summary.
    pub summaries: usize,
}

/// Sends the streams (see the module doc) until done or `stop`.
pub async fn run_import(
    cfg: &ImportConfig,
    nodes: &[NodeAddr],
    rec: &Recorder,
    stop: &Stop,
) -> anyhow::Result<ImportReport> {
    anyhow::ensure!(cfg.clients > 0, "need clients");
    let r = cfg.records_per_stream;
    anyhow::ensure!(
        (1..=MAX_RECORDS_PER_STREAM).contains(&r),
        "records_per_stream {r}"
    );
    let factory = LicenseFactory::new()?;
    let total = cfg.streams * r;
    let keys = (0..total as u64)
        .map(|i| factory.key(cfg.holder_base + i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let importer = Importer {
        cfg: cfg.clone(),
        nodes: Nodes::new(nodes)?,
        factory,
        rec: rec.clone(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..cfg.clients {
        let (importer, stop) = (importer.clone(), stop.clone());
        let streams: Vec<(usize, Vec<Key>)> = (c..cfg.streams)
            .step_by(cfg.clients)
            .map(|s| (s, keys[s * r..(s + 1) * r].to_vec()))
            .collect();
        tasks.spawn(async move { importer.send_all(c as u64, streams, &stop).await });
    }
    let mut summaries = 0;
    while let Some(done) = tasks.join_next().await {
        summaries += done.unwrap_or(0);
    }
    let keys = keys.iter().map(Key::name).collect();
    Ok(ImportReport { keys, summaries })
}

#[derive(Clone)]
struct Importer {
    cfg: ImportConfig,
    nodes: Nodes,
    factory: LicenseFactory,
    rec: Recorder,
}

impl Importer {
    /// Sends `streams` (index, keys) one after the other; returns how many got a summary.
    async fn send_all(&self, lane: u64, streams: Vec<(usize, Vec<Key>)>, stop: &Stop) -> usize {
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed);
        rng.set_stream(self.cfg.first_client.wrapping_add(lane));
        let mut summaries = 0;
        for (s, keys) in streams {
            if stop.stopped() {
                break;
            }
            let node = match self.cfg.placement {
                Placement::Pinned => lane as usize,
                Placement::Any => rng.random_range(0..self.nodes.len()),
            };
            summaries += usize::from(self.send(s, &keys, node).await);
        }
        summaries
    }

    /// One stream; true when it returned a summary.
    async fn send(&self, s: usize, keys: &[Key], node: usize) -> bool {
        let first = s * self.cfg.records_per_stream;
        let mut ops = Vec::with_capacity(keys.len());
        let mut records = Vec::with_capacity(keys.len());
        for (j, key) in keys.iter().enumerate() {
            let i = (first + j) as u64;
            let marker = format!("i{}", self.cfg.holder_base + i);
            ops.push(self.rec.invoke(Invocation {
                client: self.cfg.first_client + i,
                key: key.name(),
                kind: OpKind::Create,
                value: Some(marker.clone()),
                node: Some(self.nodes.id(node)),
            }));
            records.push(pb::ImportRecord {
                request_id: licstore_client::new_request_id(),
                license: Some(self.factory.license(key, &marker)),
                ..pb::ImportRecord::default()
            });
        }
        let timeout_ms = self.cfg.stream_timeout_ms;
        let body = request(tokio_stream::iter(records), timeout_ms);
        let mut stub = self.nodes.licenses(node);
        match call(timeout_ms, stub.import(body)).await {
            Ok(summary) => {
                self.complete(&ops, &summary);
                true
            }
            Err(status) => {
                for &op in &ops {
                    self.rec.unknown(op, describe(&status));
                }
                false
            }
        }
    }

    /// Completes a stream's ops from its summary; see the module doc.
    fn complete(&self, ops: &[u64], summary: &pb::ImportSummary) {
        let rejected: HashMap<u64, String> = summary
            .rejections
            .iter()
            .map(|r| (r.index, format!("{}: {}", r.field, r.reason)))
            .collect();
        let sent = ops.len() as u64;
        let accounted = summary.imported + summary.rejected == sent;
        let clean = summary.received == sent && summary.duplicates == 0 && accounted;
        for (index, &op) in ops.iter().enumerate() {
            match rejected.get(&(index as u64)) {
                Some(reason) => self.rec.fail(op, reason.clone()),
                None if clean => self.rec.ok_write(op, Some(summary.last_revision)),
                None => self.rec.unknown(op, unaccounted(summary, sent)),
            };
        }
    }
}

fn unaccounted(summary: &pb::ImportSummary, sent: u64) -> String {
    format!(
        "summary does not place every record: sent {sent}, received {}, imported {}, \
         duplicates {}, rejected {}",
        summary.received, summary.imported, summary.duplicates, summary.rejected
    )
}
