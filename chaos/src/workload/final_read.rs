//! The final read: after the run, every key read through every node at linearizable
//! consistency.
//!
//! A node may still be electing or catching up when the run ends, so each key is retried with
//! a doubling backoff (from `initial_backoff_ms` up to `max_backoff_ms`) until it is read or
//! the shared deadline (`timeout_ms` from the start) passes; keys not read by then are listed
//! in [`FinalRead::unread`] with the last error. NOT_FOUND is an answer (the key is absent),
//! not an error. Nodes are read in parallel, each node's keys one after the other. These reads
//! are not part of the history.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tonic::Code;

use super::license::{marker_of, Key};
use super::{call, request, NodeAddr, Nodes, DEFAULT_REQUEST_TIMEOUT_MS};
use crate::recorder::describe;

/// Settings of the final read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinalReadConfig {
    /// Deadline of the whole read, from its start.
    pub timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for FinalReadConfig {
    fn default() -> Self {
        FinalReadConfig {
            timeout_ms: 30_000,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            initial_backoff_ms: 50,
            max_backoff_ms: 1000,
        }
    }
}

/// A key's value and the revision of its record, or `None` when the key is absent. A record
/// without the marker field reads as value `""`.
pub type FinalValue = Option<(String, u64)>;

/// What every node answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalRead {
    /// Node id -> key name -> value, for every key the node answered.
    pub values: BTreeMap<u64, BTreeMap<String, FinalValue>>,
    /// (node id, key name, last error) of every read that did not succeed in time.
    pub unread: Vec<(u64, String, String)>,
}

/// Reads every key (names as [`Key::name`]) through every node; see the module doc.
pub async fn final_read(
    nodes: &[NodeAddr],
    keys: &[String],
    cfg: &FinalReadConfig,
) -> anyhow::Result<FinalRead> {
    let parsed = keys
        .iter()
        .map(|k| Key::parse(k).ok_or_else(|| anyhow::anyhow!("not a key name: {k:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let deadline = Instant::now() + Duration::from_millis(cfg.timeout_ms);
    let mut tasks = tokio::task::JoinSet::new();
    for node in nodes {
        let stub = Nodes::new(std::slice::from_ref(node))?;
        let (keys, cfg, id) = (parsed.clone(), cfg.clone(), node.id);
        tasks.spawn(async move { (id, read_node(&stub, &keys, &cfg, deadline).await) });
    }
    let mut out = FinalRead::default();
    while let Some(done) = tasks.join_next().await {
        let (id, (values, unread)) = done?;
        out.values.insert(id, values);
        out.unread
            .extend(unread.into_iter().map(|(k, e)| (id, k, e)));
    }
    out.unread.sort();
    Ok(out)
}

type NodeValues = (BTreeMap<String, FinalValue>, Vec<(String, String)>);

async fn read_node(
    stub: &Nodes,
    keys: &[Key],
    cfg: &FinalReadConfig,
    deadline: Instant,
) -> NodeValues {
    let mut values = BTreeMap::new();
    let mut unread = Vec::new();
    for key in keys {
        match read_key(stub, key, cfg, deadline).await {
            Ok(v) => drop(values.insert(key.name(), v)),
            Err(e) => unread.push((key.name(), e)),
        }
    }
    (values, unread)
}

/// One key, retried until answered or `deadline`.
async fn read_key(
    stub: &Nodes,
    key: &Key,
    cfg: &FinalReadConfig,
    deadline: Instant,
) -> Result<FinalValue, String> {
    let mut backoff = Duration::from_millis(cfg.initial_backoff_ms.max(1));
    let max_backoff = Duration::from_millis(cfg.max_backoff_ms.max(1));
    let mut last = String::from("deadline passed before the first attempt");
    while Instant::now() < deadline {
        let req = request(key.get_request(), cfg.request_timeout_ms);
        match call(cfg.request_timeout_ms, stub.licenses(0).get(req)).await {
            Ok(resp) => {
                let found = resp.license.as_ref();
                return Ok(found.map(|l| (marker_of(l).unwrap_or_default(), l.revision)));
            }
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => last = describe(&s),
        }
        if Instant::now() + backoff >= deadline {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(max_backoff);
    }
    Err(last)
}
