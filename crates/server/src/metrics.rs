//! Prometheus metrics, served as text at `GET /metrics` on `node.metrics_addr` (see
//! [`crate::http`]).
//!
//! Names follow etcd's where the concept is the same (`licstore_` in place of `etcd_`), and
//! the gRPC series use go-grpc-prometheus's names, so existing alerts and dashboards carry
//! over. `deploy/monitoring/metrics.txt` lists every name; alerts and the dashboard use no
//! other, and a test holds the exporter to the list.
//!
//! Sources:
//! - openraft's metrics watch: leadership, term, commit and apply indexes ([`spawn_sampler`]);
//! - RocksDB properties and statistics: size and block cache (sampled with the above);
//! - the gRPC layer [`GrpcMetricsLayer`]: calls by method and code, unary latency;
//! - direct updates: log fsync and apply batch write (the store crate), proposals, snapshots,
//!   peer sends, watch events, the audit journal and shed calls (where they happen).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http_body::Frame;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use openraft::type_config::async_runtime::WatchReceiver;

use crate::node::Node;
use crate::ServerError;

/// Histogram buckets for every duration, in seconds: 100 µs to 10 s, so a healthy fsync
/// (sub-millisecond) and a stalled disk (seconds) land in different buckets.
pub const DURATION_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// How often gauges read from openraft and RocksDB are refreshed when nothing changes.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// 1 while this node knows a leader (itself only with a quorum's recent acknowledgement).
pub const HAS_LEADER: &str = "licstore_server_has_leader";
/// 1 while this node is the leader.
pub const IS_LEADER: &str = "licstore_server_is_leader";
/// The node's current term.
pub const TERM: &str = "licstore_server_term";
/// Leaders seen (a new leader, or the same one in a new term).
pub const LEADER_CHANGES: &str = "licstore_server_leader_changes_seen_total";
/// The commit index as this node knows it (a gauge, as in etcd).
pub const PROPOSALS_COMMITTED: &str = "licstore_server_proposals_committed_total";
/// The applied index (a gauge, as in etcd).
pub const PROPOSALS_APPLIED: &str = "licstore_server_proposals_applied_total";
/// Proposals made on this node and not yet answered.
pub const PROPOSALS_PENDING: &str = "licstore_server_proposals_pending";
/// Proposals made on this node that failed (timeout, leader change, no quorum).
pub const PROPOSALS_FAILED: &str = "licstore_server_proposals_failed_total";
/// Histogram: commands handed to Raft together by the proposer (`proposer.rs`).
pub const PROPOSAL_BATCH_SIZE: &str = "licstore_server_proposal_batch_size";
/// Buckets of [`PROPOSAL_BATCH_SIZE`], in commands.
pub const PROPOSAL_BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Committed entries not yet applied.
pub const APPLY_LAG: &str = "licstore_server_apply_lag_entries";
/// Live SST files plus memtables, in bytes.
pub const DB_SIZE: &str = "licstore_mvcc_db_total_size_in_bytes";
/// Bytes in the block cache.
pub const BLOCK_CACHE_USAGE: &str = "licstore_rocksdb_block_cache_usage_bytes";
/// Block-cache hits over lookups since start.
pub const BLOCK_CACHE_HIT_RATIO: &str = "licstore_rocksdb_block_cache_hit_ratio";
/// RocksDB background errors (failed flushes and compactions) since start.
pub const BACKGROUND_ERRORS: &str = "licstore_rocksdb_background_errors";
/// 1 while RocksDB holds every write back (a write stall in its stop state).
pub const WRITE_STOPPED: &str = "licstore_rocksdb_write_stopped";
/// Open Watch streams.
pub const WATCH_STREAMS: &str = "licstore_watch_streams";
/// Events sent on Watch streams.
pub const WATCH_EVENTS_SENT: &str = "licstore_watch_events_sent_total";
/// States pinned for paged Query listings.
pub const PINNED_SNAPSHOTS: &str = "licstore_query_pinned_snapshots";
/// Snapshots sent to a follower.
pub const SNAPSHOT_SEND_OK: &str = "licstore_network_snapshot_send_success_total";
/// Snapshot sends that failed.
pub const SNAPSHOT_SEND_FAILED: &str = "licstore_network_snapshot_send_failures_total";
/// Time to send a snapshot, in seconds.
pub const SNAPSHOT_SEND_SECONDS: &str = "licstore_network_snapshot_send_total_duration_seconds";
/// Snapshots received and installed.
pub const SNAPSHOT_RECEIVE_OK: &str = "licstore_network_snapshot_receive_success_total";
/// Snapshot receives that failed.
pub const SNAPSHOT_RECEIVE_FAILED: &str = "licstore_network_snapshot_receive_failures_total";
/// Time to receive and install a snapshot, in seconds.
pub const SNAPSHOT_RECEIVE_SECONDS: &str =
    "licstore_network_snapshot_receive_total_duration_seconds";
/// Raft messages to a peer that failed, by peer id (`To`).
pub const PEER_SENT_FAILURES: &str = "licstore_network_peer_sent_failures_total";
/// Read-index rounds this node ran for linearizable and bounded-staleness reads.
pub const READ_INDEX_ROUNDS: &str = "licstore_server_read_index_rounds_total";
/// gRPC calls started.
pub const GRPC_STARTED: &str = "grpc_server_started_total";
/// gRPC calls finished, by code.
pub const GRPC_HANDLED: &str = "grpc_server_handled_total";
/// Unary gRPC call latency, in seconds.
pub const GRPC_HANDLING_SECONDS: &str = "grpc_server_handling_seconds";

/// Installs the process-wide recorder; the handle renders the text exposition. Call once.
pub fn install() -> Result<PrometheusHandle, ServerError> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&DURATION_BUCKETS_SECONDS)
        .and_then(|b| {
            let batch = Matcher::Full(PROPOSAL_BATCH_SIZE.to_string());
            b.set_buckets_for_metric(batch, &PROPOSAL_BATCH_BUCKETS)
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| ServerError::Internal(format!("metrics recorder: {e}")))?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(HAS_LEADER, "1 while this node knows a leader.");
    describe_gauge!(IS_LEADER, "1 while this node is the leader.");
    describe_gauge!(TERM, "The Raft term this node is in.");
    describe_counter!(LEADER_CHANGES, "Leaders seen: a new leader, or a new term.");
    describe_gauge!(PROPOSALS_COMMITTED, "Commit index known to this node.");
    describe_gauge!(PROPOSALS_APPLIED, "Index applied to the state machine.");
    describe_gauge!(
        PROPOSALS_PENDING,
        "Proposals made here and not yet answered."
    );
    describe_counter!(PROPOSALS_FAILED, "Proposals made here that failed.");
    describe_histogram!(
        PROPOSAL_BATCH_SIZE,
        "Commands this node handed to Raft in one message."
    );
    describe_gauge!(APPLY_LAG, "Committed entries not yet applied.");
    describe_gauge!(
        DB_SIZE,
        Unit::Bytes,
        "RocksDB live SST files plus memtables."
    );
    describe_gauge!(
        BLOCK_CACHE_USAGE,
        Unit::Bytes,
        "Bytes held in the block cache."
    );
    describe_gauge!(
        BLOCK_CACHE_HIT_RATIO,
        "Block-cache hits over lookups since start."
    );
    describe_gauge!(
        BACKGROUND_ERRORS,
        "RocksDB background errors (failed flushes and compactions) since start."
    );
    describe_gauge!(WRITE_STOPPED, "1 while RocksDB holds every write back.");
    describe_gauge!(
        crate::stall::OLDEST_CALL_SECONDS,
        Unit::Seconds,
        "How long the oldest log or state-machine write in flight has run."
    );
    describe_gauge!(WATCH_STREAMS, "Open Watch streams.");
    describe_counter!(WATCH_EVENTS_SENT, "Events sent on Watch streams.");
    describe_gauge!(PINNED_SNAPSHOTS, "States pinned for paged Query listings.");
    describe_counter!(SNAPSHOT_SEND_OK, "Snapshots sent to followers.");
    describe_counter!(SNAPSHOT_SEND_FAILED, "Snapshot sends that failed.");
    describe_counter!(SNAPSHOT_RECEIVE_OK, "Snapshots received and installed.");
    describe_counter!(SNAPSHOT_RECEIVE_FAILED, "Snapshot receives that failed.");
    describe_counter!(
        licstore_store::db::SNAPSHOT_INSTALLS,
        "Whole-state installs: snapshots from a leader and this node's own at start-up."
    );
    describe_counter!(PEER_SENT_FAILURES, "Raft messages to a peer that failed.");
    describe_counter!(
        READ_INDEX_ROUNDS,
        "Read-index rounds run for linearizable and bounded-staleness reads."
    );
    describe_counter!(GRPC_STARTED, "gRPC calls started.");
    describe_counter!(GRPC_HANDLED, "gRPC calls finished, by status code.");
    let seconds = Unit::Seconds;
    describe_histogram!(SNAPSHOT_SEND_SECONDS, seconds, "Time to send a snapshot.");
    describe_histogram!(
        SNAPSHOT_RECEIVE_SECONDS,
        seconds,
        "Time to receive a snapshot."
    );
    describe_histogram!(GRPC_HANDLING_SECONDS, seconds, "Unary gRPC call latency.");
    describe_histogram!(
        licstore_store::db::WAL_FSYNC_SECONDS,
        seconds,
        "Raft log sync."
    );
    describe_gauge!(
        crate::audit::AUDIT_BACKLOG,
        "Audit records durable on this node and not yet in the replicated trail."
    );
    describe_counter!(
        crate::audit::AUDIT_RECORDED,
        "Audit records this node made durable before answering."
    );
    describe_counter!(
        crate::audit::AUDIT_SHIPPED,
        "Audit records this node shipped into the replicated trail."
    );
    describe_gauge!(
        crate::audit::AUDIT_UNSHIPPED_SECONDS,
        seconds,
        "How long this node's oldest unshipped audit records have waited; 0 when none wait."
    );
    describe_gauge!(
        crate::audit::AUDIT_MAX_UNSHIPPED_SECONDS,
        seconds,
        "audit.max_unshipped_ms: past it the node refuses audited calls; 0: no bound."
    );
    describe_counter!(
        crate::audit::AUDIT_QUARANTINED,
        "Journal events the trail refused for good, set aside for a stand-in recording the loss."
    );
    describe_counter!(
        crate::refusals::UNAUTHENTICATED,
        "Calls refused for want of any identity: no usable client certificate or bearer token."
    );
    describe_counter!(
        crate::limits::SHED,
        "Calls answered RESOURCE_EXHAUSTED by the limits, by reason."
    );
    describe_gauge!(
        crate::limits::IN_FLIGHT,
        "Calls in flight that count against limits.max_in_flight."
    );
    let commit = "State-machine batch write.";
    describe_histogram!(licstore_store::db::BACKEND_COMMIT_SECONDS, seconds, commit);
    // Counters that move only on trouble are exported from the start, at zero, so a rate over
    // them is defined before the first failure.
    for name in [
        PROPOSALS_FAILED,
        SNAPSHOT_SEND_OK,
        SNAPSHOT_SEND_FAILED,
        SNAPSHOT_RECEIVE_OK,
        SNAPSHOT_RECEIVE_FAILED,
        WATCH_EVENTS_SENT,
        LEADER_CHANGES,
        READ_INDEX_ROUNDS,
        licstore_store::db::SNAPSHOT_INSTALLS,
        crate::audit::AUDIT_RECORDED,
        crate::audit::AUDIT_SHIPPED,
        crate::refusals::UNAUTHENTICATED,
        crate::audit::AUDIT_QUARANTINED,
    ] {
        counter!(name).increment(0);
    }
    for reason in crate::limits::ShedReason::ALL {
        counter!(crate::limits::SHED, "reason" => reason.as_str()).increment(0);
    }
    gauge!(PROPOSALS_PENDING).set(0.0);
    gauge!(crate::audit::AUDIT_BACKLOG).set(0.0);
    gauge!(crate::audit::AUDIT_UNSHIPPED_SECONDS).set(0.0);
    gauge!(crate::limits::IN_FLIGHT).set(0.0);
}

/// What the sampler remembers between readings.
#[derive(Debug, Default)]
struct Seen {
    /// The last (leader, term) counted as a leader change.
    leader_term: Option<(u64, u64)>,
    /// The consensus state last logged.
    logged: Option<RaftView>,
}

/// This node's place in consensus, as consensus log lines name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftView {
    /// This node's id.
    pub node_id: u64,
    /// The term it is in.
    pub term: u64,
    /// `leader`, `candidate`, `follower`, `learner` or `shutdown`.
    pub role: &'static str,
    /// The leader it knows, if any.
    pub leader: Option<u64>,
}

impl RaftView {
    /// Reads the view from openraft's metrics.
    pub fn of(m: &openraft::RaftMetrics<licstore_store::TypeConfig>) -> RaftView {
        use openraft::ServerState;
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Follower => "follower",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        RaftView {
            node_id: m.id,
            term: m.current_term,
            role,
            leader: m.current_leader,
        }
    }

    /// The leader as a log field: its id, or 0 when none is known.
    pub fn leader_or_zero(&self) -> u64 {
        self.leader.unwrap_or(0)
    }
}

/// Whether a reading shows a leader not yet counted: another node, or a new term.
fn is_leader_change(seen: &Option<(u64, u64)>, leader: Option<u64>, term: u64) -> bool {
    match leader {
        Some(id) => *seen != Some((id, term)),
        None => false,
    }
}

/// Keeps the Raft gauges current on every change of openraft's metrics (at least every
/// [`SAMPLE_INTERVAL`]) and logs each change of role, term or known leader with the node id.
/// RocksDB's figures take a property read per column family, so they are sampled once per
/// [`SAMPLE_INTERVAL`] only: metrics change on every commit. Runs whether or not metrics are
/// served (without a recorder the gauges cost nothing). Ends when Raft shuts down.
pub fn spawn_sampler(node: Arc<Node>, stats: licstore_store::DbStats) {
    tokio::spawn(async move {
        let mut rx = node.raft.metrics();
        let mut seen = Seen::default();
        let lease = crate::health::leader_lease(&node);
        let mut node_sampled: Option<std::time::Instant> = None;
        loop {
            let contact = node.leader_contact.age();
            sample_raft(&rx.borrow_watched().clone(), lease, contact, &mut seen);
            if node_sampled.is_none_or(|at| at.elapsed() >= SAMPLE_INTERVAL) {
                sample_node(&node, &stats);
                node_sampled = Some(std::time::Instant::now());
            }
            // A timeout is a periodic reading; an error is Raft gone.
            let changed = tokio::time::timeout(SAMPLE_INTERVAL, rx.changed()).await;
            if matches!(changed, Ok(Err(_))) {
                break;
            }
        }
    });
}

fn sample_raft(
    m: &openraft::RaftMetrics<licstore_store::TypeConfig>,
    lease: Duration,
    contact_age: Option<Duration>,
    seen: &mut Seen,
) {
    let view = RaftView::of(m);
    if seen.logged != Some(view) {
        tracing::info!(
            node_id = view.node_id,
            term = view.term,
            role = view.role,
            leader = view.leader_or_zero(),
            "raft state"
        );
        seen.logged = Some(view);
    }
    let term = m.current_term;
    let confirmed = crate::health::leader_confirmed(m, lease, contact_age);
    gauge!(HAS_LEADER).set(f64::from(u8::from(confirmed)));
    let is_leader = confirmed && m.current_leader == Some(m.id);
    gauge!(IS_LEADER).set(f64::from(u8::from(is_leader)));
    gauge!(TERM).set(term as f64);
    if is_leader_change(&seen.leader_term, m.current_leader, term) {
        counter!(LEADER_CHANGES).increment(1);
        seen.leader_term = m.current_leader.map(|id| (id, term));
    }
    let committed = m.local_committed.as_ref().map_or(0, |l| l.index);
    let applied = m.last_applied.as_ref().map_or(0, |l| l.index);
    gauge!(PROPOSALS_COMMITTED).set(committed as f64);
    gauge!(PROPOSALS_APPLIED).set(applied as f64);
    gauge!(APPLY_LAG).set(committed.saturating_sub(applied) as f64);
}

fn sample_node(node: &Node, stats: &licstore_store::DbStats) {
    let figures = stats.read();
    gauge!(DB_SIZE).set(figures.total_size_bytes as f64);
    gauge!(BLOCK_CACHE_USAGE).set(figures.block_cache_usage_bytes as f64);
    let lookups = figures.block_cache_hits + figures.block_cache_misses;
    // No lookups yet: NaN, which compares false in any alert, rather than a made-up ratio.
    let ratio = match lookups {
        0 => f64::NAN,
        n => figures.block_cache_hits as f64 / n as f64,
    };
    gauge!(BLOCK_CACHE_HIT_RATIO).set(ratio);
    gauge!(BACKGROUND_ERRORS).set(figures.background_errors as f64);
    gauge!(WRITE_STOPPED).set(f64::from(u8::from(figures.write_stopped)));
    let watches = node.watches.load(std::sync::atomic::Ordering::Relaxed);
    gauge!(WATCH_STREAMS).set(watches as f64);
    gauge!(PINNED_SNAPSHOTS).set(node.pins.len() as f64);
    let unshipped = node.audit.unshipped_for().as_secs_f64();
    gauge!(crate::audit::AUDIT_UNSHIPPED_SECONDS).set(unshipped);
    let bound = node.audit.max_unshipped().as_secs_f64();
    gauge!(crate::audit::AUDIT_MAX_UNSHIPPED_SECONDS).set(bound);
}

/// Counts a proposal in flight for as long as it lives.
pub struct PendingProposal(());

impl PendingProposal {
    /// Counts one more pending proposal.
    pub fn start() -> Self {
        gauge!(PROPOSALS_PENDING).increment(1.0);
        PendingProposal(())
    }
}

impl Drop for PendingProposal {
    fn drop(&mut self) {
        gauge!(PROPOSALS_PENDING).decrement(1.0);
    }
}

/// Records a finished snapshot transfer in the send or receive series.
pub fn snapshot_done(sending: bool, ok: bool, elapsed: Duration) {
    let (done, failed, seconds) = if sending {
        (
            SNAPSHOT_SEND_OK,
            SNAPSHOT_SEND_FAILED,
            SNAPSHOT_SEND_SECONDS,
        )
    } else {
        (
            SNAPSHOT_RECEIVE_OK,
            SNAPSHOT_RECEIVE_FAILED,
            SNAPSHOT_RECEIVE_SECONDS,
        )
    };
    if ok {
        counter!(done).increment(1);
        histogram!(seconds).record(elapsed);
    } else {
        counter!(failed).increment(1);
    }
}

/// The kind of a gRPC method, as go-grpc-prometheus's `grpc_type` label spells it.
fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("licstore.v1.Licenses", "Import") => "client_stream",
        ("licstore.v1.Licenses", "Watch") => "server_stream",
        ("licstore.v1.Cluster", "Snapshot") => "server_stream",
        ("licstore.v1.raft.Raft", "StreamAppend") => "bidi_stream",
        ("licstore.v1.raft.Raft", "InstallSnapshot") => "client_stream",
        ("grpc.health.v1.Health", "Watch") => "server_stream",
        (_, "ServerReflectionInfo") => "bidi_stream",
        _ => "unary",
    }
}

/// go-grpc-prometheus's spelling of a status code (`grpc_code`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// One call being measured.
struct Call {
    labels: [(&'static str, String); 3],
    unary: bool,
    started: Instant,
}

impl Call {
    /// Parses `/package.Service/Method`; anything else is counted under "unknown".
    fn begin(path: &str) -> Call {
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .unwrap_or(("unknown", "unknown"));
        let kind = grpc_type(service, method);
        let labels = [
            ("grpc_type", kind.to_string()),
            ("grpc_service", service.to_string()),
            ("grpc_method", method.to_string()),
        ];
        counter!(GRPC_STARTED, &labels).increment(1);
        Call {
            labels,
            unary: kind == "unary",
            started: Instant::now(),
        }
    }

    fn finish(self, code: tonic::Code) {
        let mut labels = self.labels.to_vec();
        if self.unary {
            histogram!(GRPC_HANDLING_SECONDS, &labels).record(self.started.elapsed());
        }
        labels.push(("grpc_code", code_name(code).to_string()));
        counter!(GRPC_HANDLED, &labels).increment(1);
    }
}

/// The status code in a header or trailer map, if it carries one.
fn status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(tonic::Code::from_i32(value.parse().ok()?))
}

/// A tower layer for tonic's server that counts calls by method and code and times unary ones.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner }
    }
}

/// The service [`GrpcMetricsLayer`] wraps around the routes.
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

type Body = tonic::body::Body;

impl<S, B> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let call = Call::begin(req.uri().path());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            // A call that fails before any message carries its status in the headers.
            if let Some(code) = status_in(response.headers()) {
                call.finish(code);
                return Ok(response);
            }
            let (parts, body) = response.into_parts();
            let body = Body::new(Observed {
                inner: body,
                call: Some(call),
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

/// A response body that records its call when the trailers (with the status) go out.
struct Observed {
    inner: Body,
    call: Option<Call>,
}

impl Observed {
    fn finish(&mut self, code: tonic::Code) {
        if let Some(call) = self.call.take() {
            call.finish(code);
        }
    }
}

impl http_body::Body for Observed {
    type Data = <Body as http_body::Body>::Data;
    type Error = <Body as http_body::Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    self.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(tonic::Code::Unknown),
            Poll::Ready(None) => self.finish(tonic::Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    /// A body dropped before its trailers: the client went away.
    fn drop(&mut self) {
        self.finish(tonic::Code::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_changes_count_new_leaders_and_new_terms() {
        // (last counted, leader now, term now, counts)
        let cases = [
            (None, None, 1, false),
            (None, Some(1), 1, true),
            (Some((1, 1)), Some(1), 1, false),
            (Some((1, 1)), None, 2, false),
            (Some((1, 1)), Some(1), 2, true),
            (Some((1, 1)), Some(2), 1, true),
        ];
        for (seen, leader, term, counts) in cases {
            let got = is_leader_change(&seen, leader, term);
            assert_eq!(got, counts, "{seen:?} {leader:?} {term}");
        }
    }

    #[test]
    fn every_streaming_rpc_in_the_protos_has_its_grpc_type() {
        let protos = [
            (
                "licstore.v1",
                include_str!("../../../proto/licstore/v1/licstore.proto"),
            ),
            (
                "licstore.v1.raft",
                include_str!("../../../proto/licstore/v1/raft.proto"),
            ),
        ];
        let mut checked = 0;
        for (package, text) in protos {
            let mut service = String::new();
            for line in text.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("service ") {
                    let name = rest.trim_end_matches('{').trim();
                    service = format!("{package}.{name}");
                }
                let Some(rest) = line.strip_prefix("rpc ") else {
                    continue;
                };
                let method = rest.split('(').next().unwrap_or_default().trim();
                let (request, response) = rest.split_once("returns").expect("rpc line");
                let want = match (request.contains("(stream"), response.contains("(stream")) {
                    (false, false) => "unary",
                    (true, false) => "client_stream",
                    (false, true) => "server_stream",
                    (true, true) => "bidi_stream",
                };
                assert_eq!(grpc_type(&service, method), want, "{service}/{method}");
                checked += 1;
            }
        }
        assert!(checked > 20, "only {checked} rpcs found in the protos");
    }

    #[test]
    fn call_paths_split_into_service_and_method() {
        let call = Call::begin("/licstore.v1.Licenses/Watch");
        assert_eq!(call.labels[0].1, "server_stream");
        assert_eq!(call.labels[1].1, "licstore.v1.Licenses");
        assert_eq!(call.labels[2].1, "Watch");
        assert!(!call.unary);
        let odd = Call::begin("nonsense");
        assert_eq!(odd.labels[1].1, "unknown");
        assert!(odd.unary);
    }
}
