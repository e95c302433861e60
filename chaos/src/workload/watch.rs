//! The watch recorder: one `Watch` stream per node, every event recorded with the time it
//! arrived, reconnecting after errors.
//!
//! Definitions:
//! - A *watcher* is one logical subscriber bound to one node; its id is its index in the node
//!   list given to [`Watchers::start`].
//! - *Resume point*: the revision a (re)opened stream starts from. The API sends whole
//!   revisions and a `progress_revision` up to which everything matching was sent, and says
//!   to resume from `progress_revision + 1` of the last response received; the recorder
//!   resumes from the larger of that and last event revision + 1. A start revision of 0
//!   means "from now on"; until the first response arrives a reconnect asks for 0 again,
//!   which may skip changes (start from 1 to see everything).
//! - A stream that fails with OUT_OF_RANGE (start revision compacted) is resumed from the
//!   oldest available revision named in its `licstore-compacted-revision` metadata; the resume
//!   records the skipped range in [`WatchResume::gap_from`].
//! - A stream silent for `idle_timeout_ms` (progress responses come every
//!   `progress_interval_ms`) is given up and reopened: a partitioned node may never answer.
//!
//! Every resume point is recorded ([`WatchResume`]); a watcher ends at its [`Stop`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use licstore_proto::v1 as pb;
use serde::{Deserialize, Serialize};
use tonic::Code;

use super::{call, NodeAddr, Nodes, Stop};
use crate::recorder::{describe, Recorder};

/// Metadata key with the oldest available revision on OUT_OF_RANGE (the server's name).
pub const COMPACTED_METADATA_KEY: &str = "licstore-compacted-revision";

/// Settings of the watchers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WatchConfig {
    /// First revision wanted; 0 for "from now on".
    pub from_revision: u64,
    /// Progress-only responses while quiet, at this interval.
    pub progress_interval_ms: u32,
    /// A stream silent this long is reopened.
    pub idle_timeout_ms: u64,
    /// How long opening a stream may take.
    pub open_timeout_ms: u64,
    /// Pause before reopening after an error.
    pub retry_pause_ms: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            from_revision: 1,
            progress_interval_ms: 200,
            idle_timeout_ms: 2000,
            open_timeout_ms: 1000,
            retry_pause_ms: 100,
        }
    }
}

/// One change as one watcher received it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub watcher: u64,
    pub node: u64,
    pub revision: u64,
    /// Position among the events of the revision.
    pub seq: u32,
    /// `issue`, `import`, `amend`, … (the API's EventOp without its prefix, lower case).
    pub op: String,
    /// Identifier of the version after the change.
    pub identifier: String,
    /// For an amendment, the version it replaced.
    pub previous_identifier: Option<String>,
    /// `<holder kind>/<holder id>/<type code>`, as [`Key::name`](super::Key::name).
    pub key: String,
    pub version: u32,
    /// Nanoseconds since the run started, when the response carrying it arrived.
    pub at_ns: u64,
}

/// A (re)opening of a watcher's stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchResume {
    pub watcher: u64,
    pub node: u64,
    /// The `from_revision` asked for.
    pub from_revision: u64,
    /// Nanoseconds since the run started.
    pub at_ns: u64,
    /// Why the previous stream ended; `None` for the first opening.
    pub after_error: Option<String>,
    /// Set after OUT_OF_RANGE: revisions `gap_from..from_revision` were compacted and skipped.
    pub gap_from: Option<u64>,
}

/// Everything one watcher recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStream {
    pub watcher: u64,
    pub node: u64,
    /// The start revision asked for.
    pub from_revision: u64,
    /// Highest `progress_revision` received: every change up to it has been delivered.
    pub progress_revision: u64,
    pub events: Vec<WatchEvent>,
    pub resumes: Vec<WatchResume>,
}

/// Running watchers, one per node.
#[derive(Debug)]
pub struct Watchers {
    tasks: tokio::task::JoinSet<WatchStream>,
    progress: Vec<Arc<AtomicU64>>,
}

impl Watchers {
    /// Starts one watcher per node; they run until `stop`.
    pub fn start(
        nodes: &[NodeAddr],
        cfg: &WatchConfig,
        rec: &Recorder,
        stop: &Stop,
    ) -> anyhow::Result<Self> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut progress = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let seen = Arc::new(AtomicU64::new(0));
            let watcher = Watcher {
                nodes: Nodes::new(std::slice::from_ref(node))?,
                cfg: cfg.clone(),
                rec: rec.clone(),
                stop: stop.clone(),
                progress: seen.clone(),
                from: cfg.from_revision,
                out: WatchStream {
                    watcher: i as u64,
                    node: node.id,
                    from_revision: cfg.from_revision,
                    ..WatchStream::default()
                },
            };
            tasks.spawn(watcher.run());
            progress.push(seen);
        }
        Ok(Watchers { tasks, progress })
    }

    /// Waits until every watcher's progress reaches `revision`, at most `timeout`; true when
    /// they all did.
    pub async fn wait_progress(&self, revision: u64, timeout: Duration) -> bool {
        let caught_up = || {
            self.progress
                .iter()
                .all(|p| p.load(Ordering::Relaxed) >= revision)
        };
        let deadline = tokio::time::Instant::now() + timeout;
        while !caught_up() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits for the watchers to end (their [`Stop`]) and returns what they recorded, in
    /// watcher order.
    pub async fn finish(mut self) -> Vec<WatchStream> {
        let mut out = Vec::with_capacity(self.progress.len());
        while let Some(done) = self.tasks.join_next().await {
            if let Ok(stream) = done {
                out.push(stream);
            }
        }
        out.sort_by_key(|s| s.watcher);
        out
    }
}

struct Watcher {
    nodes: Nodes,
    cfg: WatchConfig,
    rec: Recorder,
    stop: Stop,
    progress: Arc<AtomicU64>,
    /// The next resume point.
    from: u64,
    out: WatchStream,
}

impl Watcher {
    async fn run(mut self) -> WatchStream {
        let pause = Duration::from_millis(self.cfg.retry_pause_ms);
        let mut ended: Option<(String, Option<u64>)> = None;
        while !self.stop.stopped() {
            let (after_error, gap_from) = ended.take().unzip();
            self.out.resumes.push(WatchResume {
                watcher: self.out.watcher,
                node: self.out.node,
                from_revision: self.from,
                at_ns: self.rec.now_ns(),
                after_error,
                gap_from: gap_from.flatten(),
            });
            match self.stream_once().await {
                Some(end) => ended = Some(end),
                None => break,
            }
            self.stop.sleep(pause).await;
        }
        self.out
    }

    /// Runs one stream; `None` at the stop, else why it ended and, after OUT_OF_RANGE, the
    /// resume point it had before jumping over the compacted revisions.
    async fn stream_once(&mut self) -> Option<(String, Option<u64>)> {
        let req = pb::WatchRequest {
            from_revision: self.from,
            progress_interval_ms: self.cfg.progress_interval_ms,
            ..pb::WatchRequest::default()
        };
        let mut stub = self.nodes.licenses(0);
        let opened = tokio::select! {
            r = call(self.cfg.open_timeout_ms, stub.watch(req)) => r,
            _ = self.stop.wait() => return None,
        };
        let mut stream = match opened {
            Ok(s) => s,
            Err(status) => return Some(self.ended_by(&status)),
        };
        let idle = Duration::from_millis(self.cfg.idle_timeout_ms);
        loop {
            let next = tokio::select! {
                r = tokio::time::timeout(idle, stream.message()) => r,
                _ = self.stop.wait() => return None,
            };
            match next {
                Ok(Ok(Some(resp))) => self.record(resp),
                Ok(Ok(None)) => return Some(("stream ended by the server".into(), None)),
                Ok(Err(status)) => return Some(self.ended_by(&status)),
                Err(_) => {
                    let why = format!("no message within {} ms", self.cfg.idle_timeout_ms);
                    return Some((why, None));
                }
            }
        }
    }

    /// The error's description; on OUT_OF_RANGE moves the resume point to the oldest
    /// available revision and returns the one it replaces.
    fn ended_by(&mut self, status: &tonic::Status) -> (String, Option<u64>) {
        let oldest = status
            .metadata()
            .get(COMPACTED_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match oldest {
            Some(oldest) if status.code() == Code::OutOfRange && oldest > self.from => {
                let skipped = std::mem::replace(&mut self.from, oldest);
                (describe(status), Some(skipped))
            }
            _ => (describe(status), None),
        }
    }

    fn record(&mut self, resp: pb::WatchResponse) {
        let at_ns = self.rec.now_ns();
        let mut next = self.from.max(resp.progress_revision.saturating_add(1));
        for e in resp.events {
            next = next.max(e.revision.saturating_add(1));
            self.out.events.push(self.event(e, at_ns));
        }
        self.from = next;
        self.out.progress_revision = self.out.progress_revision.max(resp.progress_revision);
        self.progress
            .store(self.out.progress_revision, Ordering::Relaxed);
    }

    fn event(&self, e: pb::Event, at_ns: u64) -> WatchEvent {
        let op = pb::EventOp::try_from(e.op)
            .map(|op| op.as_str_name())
            .unwrap_or("EVENT_OP_UNKNOWN");
        let holder = e.holder.unwrap_or_default();
        let kind = match pb::HolderKind::try_from(holder.kind) {
            Ok(pb::HolderKind::CitizenId) => "citizen_id",
            Ok(pb::HolderKind::Uscc) => "uscc",
            _ => "unspecified",
        };
        WatchEvent {
            watcher: self.out.watcher,
            node: self.out.node,
            revision: e.revision,
            seq: e.seq,
            op: op.trim_start_matches("EVENT_OP_").to_lowercase(),
            identifier: e.identifier,
            previous_identifier: Some(e.previous_identifier).filter(|p| !p.is_empty()),
            key: format!("{kind}/{}/{}", holder.id, e.type_code),
            version: e.version,
            at_ns,
        }
    }
}
