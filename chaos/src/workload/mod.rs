//! The client workloads of the chaos suite. Each one drives real `licstored` nodes over gRPC
//! and records every operation in a [`Recorder`](crate::recorder::Recorder).
//!
//! - [`register`]: K keys, each one license; C sequential clients read (linearizable `Get`)
//!   and compare-and-set (`Amend` of the identifier last seen) a marker in a face field.
//! - [`set`]: N new licenses with unique holders, one attempt each.
//! - [`import`]: small `Import` streams; every record is a create.
//! - [`watch`]: one change-feed stream per node, reconnecting from the last revision seen.
//! - [`final_read`](mod@final_read): after the run, every key through every node, linearizable.
//! - [`phase`]: ok/fail/unknown counts and ok-ops/s per phase of a run.
//!
//! Rules every workload follows: one attempt per operation with a fresh request id and a
//! per-request deadline, no internal retries (a retry could turn an unknown into a fail); a
//! client has at most one operation in flight; loops end at a [`Stop`].
//!
//! Definitions shared here: a [`NodeAddr`] is a node id with its gRPC `host:port`; a
//! [`Nodes`] holds one lazily connected channel per node.

pub mod final_read;
pub mod import;
pub mod license;
pub mod phase;
pub mod register;
pub mod set;
pub mod watch;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use licstore_proto::v1::licenses_client::LicensesClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;

use crate::tls::ClientTls;
use tonic::{Response, Status};

pub use final_read::{final_read, FinalRead, FinalReadConfig};
pub use license::{Key, LicenseFactory, MARKER_FIELD};
pub use phase::{phase_stats, PhaseStats};

/// Timeout for opening a TCP connection to a node.
pub const CONNECT_TIMEOUT_MS: u64 = 500;
/// Default per-request deadline.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 1000;

/// A node id, its client address `host:port` and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    pub id: u64,
    pub addr: String,
    /// The run's client certificate and CA; `None`: plain text.
    #[serde(skip)]
    pub tls: Option<ClientTls>,
}

/// One channel per node; channels connect lazily and reconnect after failures.
#[derive(Clone, Debug)]
pub struct Nodes {
    nodes: Vec<(NodeAddr, Channel)>,
}

impl Nodes {
    /// Channels to `nodes`; fails on an empty list or an unparsable address.
    pub fn new(nodes: &[NodeAddr]) -> anyhow::Result<Self> {
        anyhow::ensure!(!nodes.is_empty(), "no nodes given");
        let mut out = Vec::with_capacity(nodes.len());
        for n in nodes {
            let endpoint = crate::tls::endpoint(&n.addr, n.tls.as_ref())
                .with_context(|| format!("node {} address {:?}", n.id, n.addr))?
                .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
                .tcp_nodelay(true);
            out.push((n.clone(), endpoint.connect_lazy()));
        }
        Ok(Nodes { nodes: out })
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: [`Nodes::new`] refuses an empty list.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The id of node number `i` (modulo the count).
    pub fn id(&self, i: usize) -> u64 {
        self.nodes[i % self.nodes.len()].0.id
    }

    /// A license-service stub on node number `i` (modulo the count).
    pub fn licenses(&self, i: usize) -> LicensesClient<Channel> {
        let channel = self.nodes[i % self.nodes.len()].1.clone();
        LicensesClient::new(channel).max_decoding_message_size(64 << 20)
    }
}

/// Where a client sends its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Client `c` always uses node number `c % nodes`.
    Pinned,
    /// Each operation picks a node at random.
    Any,
}

/// When a workload ends: at a deadline, or earlier when its [`StopHandle`] fires.
#[derive(Clone, Debug)]
pub struct Stop {
    deadline: Instant,
    signal: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Ends the workloads holding the matching [`Stop`]; dropping it does not stop them.
#[derive(Debug)]
pub struct StopHandle(tokio::sync::watch::Sender<bool>);

impl StopHandle {
    /// Asks every workload to stop after its current operation.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// Stops at `deadline`.
    pub fn at(deadline: Instant) -> Self {
        Stop {
            deadline,
            signal: None,
        }
    }

    /// Stops after `duration` from now.
    pub fn after(duration: Duration) -> Self {
        Self::at(Instant::now() + duration)
    }

    /// Stops at `deadline` or when the handle fires, whichever is first.
    pub fn with_handle(deadline: Instant) -> (StopHandle, Stop) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stop = Stop {
            deadline,
            signal: Some(rx),
        };
        (StopHandle(tx), stop)
    }

    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the workload should end now.
    pub fn stopped(&self) -> bool {
        Instant::now() >= self.deadline || self.signal.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Resolves when the workload should end.
    pub async fn wait(&self) {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        let Some(mut signal) = self.signal.clone() else {
            return tokio::time::sleep_until(deadline).await;
        };
        let fired = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return,
            r = signal.wait_for(|s| *s) => r.is_ok(),
        };
        // Not fired means the handle was dropped: only the deadline is left.
        if !fired {
            tokio::time::sleep_until(deadline).await
        }
    }

    /// Sleeps `duration` or until the stop, whichever is first.
    pub async fn sleep(&self, duration: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = self.wait() => {}
        }
    }
}

/// One attempt of a unary call: the request carries `timeout_ms` as its gRPC deadline and the
/// client stops waiting after it (then `DEADLINE_EXCEEDED`).
pub async fn call<T, Fut>(timeout_ms: u64, fut: Fut) -> Result<T, Status>
where
    Fut: Future<Output = Result<Response<T>, Status>>,
{
    let timeout = Duration::from_millis(timeout_ms);
    match tokio::time::timeout(timeout, fut).await {
        Ok(result) => result.map(Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {timeout_ms} ms"
        ))),
    }
}

/// A request with `timeout_ms` as its gRPC deadline.
pub fn request<T>(msg: T, timeout_ms: u64) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.set_timeout(Duration::from_millis(timeout_ms));
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_fires_by_handle_or_deadline() {
        let (handle, stop) = Stop::with_handle(Instant::now() + Duration::from_secs(60));
        assert!(!stop.stopped());
        handle.stop();
        assert!(stop.stopped());
        tokio::time::timeout(Duration::from_secs(1), stop.wait())
            .await
            .expect("wait returns once stopped");
        let past = Stop::after(Duration::ZERO);
        assert!(past.stopped());
        tokio::time::timeout(Duration::from_secs(1), past.wait())
            .await
            .expect("wait returns at the deadline");
    }

    #[test]
    fn nodes_need_an_entry_and_a_parsable_address() {
        assert!(Nodes::new(&[]).is_err());
        let bad = NodeAddr {
            id: 1,
            addr: "not an address".into(),
            tls: None,
        };
        assert!(Nodes::new(&[bad]).is_err());
    }
}
