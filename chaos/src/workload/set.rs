//! The set workload: issue N new licenses with unique holders, one attempt each.
//!
//! License `i` (holder number `holder_base + i`, marker `s<holder number>`) is issued by client
//! `first_client + i % clients`; each client issues its licenses one after the other, to a node
//! chosen per [`Placement`] (ChaCha8 on stream `client` of the run seed). Every issue is a
//! `Create` op; nothing is retried, so the history says exactly which creates took effect
//! (`Ok`), which did not (`Fail`) and which may have (`Unknown`). The final check is a
//! [`final_read`](fn@super::final_read) of [`SetReport::keys`]: every `Ok` create must be there,
//! no `Fail` create may be.

use std::time::Duration;

use licstore_proto::v1 as pb;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::license::{Key, LicenseFactory};
use super::{call, request, NodeAddr, Nodes, Placement, Stop, DEFAULT_REQUEST_TIMEOUT_MS};
use crate::history::{OpKind, Outcome};
use crate::recorder::{Invocation, Recorder};

/// Settings of the set workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetConfig {
    /// Licenses to issue, N.
    pub count: usize,
    /// Concurrent sequential clients.
    pub clients: usize,
    pub first_client: u64,
    /// Holder number of license 0.
    pub holder_base: u64,
    pub seed: u64,
    pub placement: Placement,
    pub request_timeout_ms: u64,
    /// Pause after an issue that did not succeed.
    pub error_pause_ms: u64,
}

impl Default for SetConfig {
    fn default() -> Self {
        SetConfig {
            count: 50,
            clients: 2,
            first_client: 100,
            holder_base: 100_000,
            seed: 0,
            placement: Placement::Any,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            error_pause_ms: 50,
        }
    }
}

/// What the set workload issued.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SetReport {
    /// Names of every key it tried to create, in license order.
    pub keys: Vec<String>,
    /// Creates that returned `Ok`.
    pub ok: usize,
}

/// Issues the licenses (see the module doc) until done or `stop`.
pub async fn run_set(
    cfg: &SetConfig,
    nodes: &[NodeAddr],
    rec: &Recorder,
    stop: &Stop,
) -> anyhow::Result<SetReport> {
    anyhow::ensure!(cfg.clients > 0, "need clients");
    let factory = LicenseFactory::new()?;
    let keys = (0..cfg.count as u64)
        .map(|i| factory.key(cfg.holder_base + i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let nodes = Nodes::new(nodes)?;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..cfg.clients {
        let mine: Vec<(u64, Key)> = (c..keys.len())
            .step_by(cfg.clients)
            .map(|i| (cfg.holder_base + i as u64, keys[i].clone()))
            .collect();
        let client = SetClient {
            id: cfg.first_client + c as u64,
            cfg: cfg.clone(),
            nodes: nodes.clone(),
            factory: factory.clone(),
            rec: rec.clone(),
        };
        let stop = stop.clone();
        tasks.spawn(async move { client.issue_all(mine, &stop).await });
    }
    let mut ok = 0;
    while let Some(done) = tasks.join_next().await {
        ok += done.unwrap_or(0);
    }
    let keys = keys.iter().map(Key::name).collect();
    Ok(SetReport { keys, ok })
}

struct SetClient {
    id: u64,
    cfg: SetConfig,
    nodes: Nodes,
    factory: LicenseFactory,
    rec: Recorder,
}

impl SetClient {
    /// Issues `licenses` (holder number, key) in order; returns how many were `Ok`.
    async fn issue_all(&self, licenses: Vec<(u64, Key)>, stop: &Stop) -> usize {
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed);
        rng.set_stream(self.id);
        let mut ok = 0;
        for (holder, key) in licenses {
            if stop.stopped() {
                break;
            }
            let node = match self.cfg.placement {
                Placement::Pinned => self.id as usize,
                Placement::Any => rng.random_range(0..self.nodes.len()),
            };
            match self.issue(&key, node, format!("s{holder}")).await {
                Outcome::Ok => ok += 1,
                _ => {
                    stop.sleep(Duration::from_millis(self.cfg.error_pause_ms))
                        .await
                }
            }
        }
        ok
    }

    async fn issue(&self, key: &Key, node: usize, marker: String) -> Outcome {
        let op = self.rec.invoke(Invocation {
            client: self.id,
            key: key.name(),
            kind: OpKind::Create,
            value: Some(marker.clone()),
            node: Some(self.nodes.id(node)),
        });
        let issue = pb::IssueRequest {
            request_id: licstore_client::new_request_id(),
            license: Some(self.factory.license(key, &marker)),
            lenient_holder_check: false,
            seal_bundle: Vec::new(),
        };
        let timeout_ms = self.cfg.request_timeout_ms;
        let mut stub = self.nodes.licenses(node);
        match call(timeout_ms, stub.issue(request(issue, timeout_ms))).await {
            Ok(resp) => {
                self.rec.ok_write(op, Some(resp.revision));
                Outcome::Ok
            }
            Err(status) => self.rec.error(op, &status),
        }
    }
}
