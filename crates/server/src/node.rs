//! A running node: the openraft handle plus what the services share — the reader, the
//! templates, peer channels — and the two paths every request takes: writes through Raft
//! (forwarded to the leader from a follower) and read barriers for linearizable reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use licstore_client::LEADER_METADATA_KEY;
use licstore_model::TemplateRegistry;
use licstore_proto::v1::raft::{RaftPayload, ReadIndexRequest};
use licstore_store::{codec, Command, CommandResult, NodeId, Raft, Reader, TypeConfig};
use openraft::errors::{ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::ReadPolicy;
use tonic::Status;

/// How long a follower waits to apply up to a leader's read index.
pub const READ_WAIT: Duration = Duration::from_secs(5);
/// How long a write may wait to commit before the caller is told to retry.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call to another node (forward, read index) may take.
pub const PEER_CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a request waits for a leader to become known (an election, or a follower that has
/// not yet heard from a new leader) before it is told to retry.
pub const LEADER_WAIT: Duration = Duration::from_secs(5);

/// Read consistency requested by a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read started.
    Linearizable,
    /// Reflects every write acknowledged earlier than this before the read started.
    BoundedStaleness(Duration),
    /// Served from the local replica as it is.
    Serializable,
}

/// Shared state of a node.
pub struct Node {
    /// This node's id.
    pub id: NodeId,
    /// This node's gRPC address (`host:port`), as recorded in the membership.
    pub addr: String,
    /// The Raft handle.
    pub raft: Raft,
    /// Groups concurrent writes into one Raft message.
    pub proposer: crate::proposer::Proposer,
    /// Local reads.
    pub reader: Reader,
    /// License templates.
    pub templates: Arc<TemplateRegistry>,
    /// The seal keys this node holds.
    pub sealer: Arc<crate::sealing::Sealer>,
    /// Channels to other nodes.
    pub peers: crate::network::Peers,
    /// Where received snapshots are written.
    pub snapshot_dir: PathBuf,
    /// The state machine's last applied log index, updated once the state is readable.
    pub applied: tokio::sync::watch::Receiver<u64>,
    /// Open Watch streams.
    pub watches: std::sync::atomic::AtomicUsize,
    /// One whole-state walk (digest, check) at a time: a caller that gives up does not stop a
    /// walk already running, so without this, impatient retries would pile walks up.
    pub walks: tokio::sync::Semaphore,
    /// States pinned for listings that span several Query pages.
    pub pins: crate::query::Pins,
    /// Read-index rounds shared by concurrent reads served here.
    pub rounds: crate::read_rounds::ReadRounds,
    /// Read-index rounds run for other nodes' reads (the internal `ReadIndex` call). Kept
    /// apart from `rounds`, whose rounds may ask another node: a call joining one of those
    /// could wait on a node that is waiting on this one.
    pub served_rounds: crate::read_rounds::ReadRounds,
    /// Until when reads may not be answered from the leader lease (see
    /// [`Node::suspend_lease`]).
    pub lease_off_until: std::sync::Mutex<Option<std::time::Instant>>,
    /// When this node last accepted an append or heartbeat from a leader.
    pub leader_contact: crate::health::LeaderContact,
    /// The audit journal and its writer.
    pub audit: crate::audit::AuditLog,
    /// Request size, rate and in-flight limits.
    pub limits: Arc<crate::limits::Limits>,
}

/// A write's result and the log index it was applied at.
type WriteResult = Result<(CommandResult, u64), Status>;
/// What openraft says when it refuses a proposal.
pub(crate) type WriteError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

impl Node {
    /// The leader's id and address as this node knows them.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let id = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&id)?
            .addr
            .clone();
        Some((id, addr))
    }

    /// The leader as [`Node::leader`] gives it, waiting up to [`LEADER_WAIT`] for one to be
    /// known.
    pub async fn wait_leader(&self) -> Option<(NodeId, String)> {
        if let Some(known) = self.leader() {
            return Some(known);
        }
        let known = |m: &openraft::RaftMetrics<TypeConfig>| m.current_leader.is_some();
        let _ = self
            .raft
            .wait(Some(LEADER_WAIT))
            .metrics(known, "a leader is known")
            .await;
        self.leader()
    }

    /// This node's id, term, role and known leader, for consensus log lines.
    pub fn raft_view(&self) -> crate::metrics::RaftView {
        crate::metrics::RaftView::of(&self.raft.metrics().borrow_watched())
    }

    /// Whether this node is the leader as far as it knows.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().current_leader == Some(self.id)
    }

    /// `UNAVAILABLE`, naming the leader in metadata when one is known.
    pub fn unavailable(&self, message: &str) -> Status {
        let mut status = Status::unavailable(message.to_string());
        if let Some((_, addr)) = self.leader() {
            if let Ok(v) = addr.parse() {
                status.metadata_mut().insert(LEADER_METADATA_KEY, v);
            }
        }
        status
    }

    /// Proposes a command; on a follower, hands it to the leader.
    pub async fn write(&self, cmd: Command) -> WriteResult {
        let mut refused = match self.propose(cmd.clone()).await? {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        if leader_unknown(&refused) && self.wait_leader().await.is_some() {
            // Refused without being appended, so proposing again cannot apply it twice.
            refused = match self.propose(cmd.clone()).await? {
                Ok(done) => return Ok(done),
                Err(e) => e,
            };
        }
        match self.forward_target(&refused) {
            Some(addr) => self.forward(&addr, &cmd).await,
            None => Err(self.write_error(refused)),
        }
    }

    /// Proposes a command here only; used for writes forwarded by a follower.
    pub async fn write_local(&self, cmd: Command) -> WriteResult {
        self.propose(cmd).await?.map_err(|e| self.write_error(e))
    }

    /// A proposal through the node's proposer, bounded by [`WRITE_TIMEOUT`], so a leader
    /// without a quorum answers.
    async fn propose(
        &self,
        cmd: Command,
    ) -> Result<Result<(CommandResult, u64), WriteError>, Status> {
        let _pending = crate::metrics::PendingProposal::start();
        let proposed = tokio::time::timeout(WRITE_TIMEOUT, self.proposer.propose(cmd)).await;
        if !matches!(&proposed, Ok(Ok(_))) && !matches!(&proposed, Ok(Err(e)) if refused(e)) {
            metrics::counter!(crate::metrics::PROPOSALS_FAILED).increment(1);
        }
        match proposed {
            Ok(result) => Ok(result.map(|resp| (resp.response, resp.log_id.index()))),
            Err(_) => Err(self.unavailable(&format!(
                "not committed within {WRITE_TIMEOUT:?} (no quorum?); \
                 retry with the same request id"
            ))),
        }
    }

    fn forward_target(
        &self,
        e: &RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    ) -> Option<String> {
        let f: &ForwardToLeader<TypeConfig> = e.forward_to_leader()?;
        let node = f.leader_node.as_ref()?;
        (f.leader_id != Some(self.id)).then(|| node.addr.clone())
    }

    fn write_error(&self, e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Status {
        match e.api_error() {
            Some(ClientWriteError::ForwardToLeader(f)) => match &f.leader_id {
                Some(id) => self.unavailable(&format!("not the leader; node {id} is")),
                None => self.unavailable("no leader; retry"),
            },
            Some(ClientWriteError::LogEntryDiscarded(_)) => self.unavailable(
                "leader changed before the write committed; retry with the same request id",
            ),
            Some(other) => Status::failed_precondition(other.to_string()),
            None => Status::unavailable(format!("raft stopped: {e}")),
        }
    }

    async fn forward(&self, addr: &str, cmd: &Command) -> WriteResult {
        let data = codec::encode("command", cmd).map_err(|e| Status::internal(e.to_string()))?;
        let mut client = self
            .peers
            .raft_client(addr)
            .map_err(|e| Status::internal(e.to_string()))?;
        let call = client.forward(RaftPayload { data });
        let resp = match tokio::time::timeout(WRITE_TIMEOUT + PEER_CALL_TIMEOUT, call).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(status)) if is_peer_answer(&status) => return Err(status),
            Ok(Err(status)) => {
                return Err(self.unavailable(&format!("leader at {addr}: {}", status.message())))
            }
            Err(_) => return Err(self.unavailable(&format!("leader at {addr} did not answer"))),
        };
        codec::decode("forwarded result", &resp.into_inner().data)
            .map_err(|e| Status::internal(e.to_string()))
    }

    /// Blocks until a read at `consistency` may be served from the local replica: until it
    /// has applied a read index from a round that started late enough (see
    /// [`crate::read_rounds`]).
    pub async fn read_barrier(&self, consistency: Consistency) -> Result<(), Status> {
        let arrived = std::time::Instant::now();
        let not_before = match consistency {
            Consistency::Serializable => return Ok(()),
            Consistency::Linearizable => arrived,
            Consistency::BoundedStaleness(bound) => arrived.checked_sub(bound).unwrap_or(arrived),
        };
        let index = self
            .rounds
            .read_index(not_before, || self.fetch_read_index())
            .await?;
        self.wait_applied(index).await
    }

    /// Stops answering reads from the leader lease for two election timeouts. Called before
    /// this node hands leadership over: a transfer asks voters to grant their vote although
    /// their lease on this leader still runs, so the lease proves nothing until it has lapsed.
    pub fn suspend_lease(&self) {
        let lease_ms = self.raft.config().election_timeout_max.saturating_mul(2);
        let until = std::time::Instant::now() + Duration::from_millis(lease_ms);
        *self.lease_off_until.lock().expect("lease lock") = Some(until);
    }

    fn lease_allowed(&self) -> bool {
        let off_until = *self.lease_off_until.lock().expect("lease lock");
        off_until.is_none_or(|t| std::time::Instant::now() >= t)
    }

    /// The leader's read index, for a follower's linearizable read. A node that is not the
    /// leader refuses rather than asking another node, so two nodes that each take the other
    /// for the leader cannot wait on each other.
    pub async fn read_index(&self) -> Result<u64, Status> {
        let arrived = std::time::Instant::now();
        let own = || async {
            match self.leader_read_index().await {
                Ok(index) => Ok(index),
                Err(e) => Err(self.unavailable(&format!("not leader: {e}"))),
            }
        };
        self.served_rounds.read_index(arrived, own).await
    }

    /// A read index confirmed by this node's own leadership: from the lease while it holds,
    /// else from a quorum-acknowledged heartbeat round.
    async fn leader_read_index(
        &self,
    ) -> Result<u64, RaftError<TypeConfig, LinearizableReadError<TypeConfig>>> {
        if self.lease_allowed() {
            // A leader whose quorum acknowledged it within the lease (the longest election
            // timeout) answers from the lease: no voter grants a vote while its own lease on
            // this leader runs, so no other leader can have committed anything meanwhile.
            // Stale or not leader: fall through to a ReadIndex round.
            let lease = self.raft.get_read_log_id(ReadPolicy::LeaseRead).await;
            if let Ok((read_log_id, _)) = lease {
                return Ok(read_log_id.index());
            }
        }
        let (read_log_id, _) = self.raft.get_read_log_id(ReadPolicy::ReadIndex).await?;
        Ok(read_log_id.index())
    }

    /// One read-index round: this node's own as leader, or the leader's over the internal
    /// service on a follower.
    async fn fetch_read_index(&self) -> Result<u64, Status> {
        match self.leader_read_index().await {
            Ok(index) => return Ok(index),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {}
            Err(e) => return Err(self.unavailable(&format!("cannot confirm leadership: {e}"))),
        }
        let (leader_id, addr) = self
            .wait_leader()
            .await
            .ok_or_else(|| self.unavailable("no leader"))?;
        if leader_id == self.id {
            // Elected while waiting: confirm leadership as any leader would.
            return self
                .leader_read_index()
                .await
                .map_err(|e| self.unavailable(&format!("leadership changing: {e}")));
        }
        let mut client = self
            .peers
            .raft_client(&addr)
            .map_err(|e| Status::internal(e.to_string()))?;
        let call = client.read_index(ReadIndexRequest {});
        match tokio::time::timeout(PEER_CALL_TIMEOUT, call).await {
            Ok(Ok(resp)) => Ok(resp.into_inner().read_index),
            Ok(Err(status)) => {
                let msg = format!("read index from {addr}: {}", status.message());
                Err(self.unavailable(&msg))
            }
            Err(_) => Err(self.unavailable(&format!("leader at {addr} did not answer"))),
        }
    }

    /// Waits until the state machine has applied `index` and its state is readable.
    async fn wait_applied(&self, index: u64) -> Result<(), Status> {
        let mut applied = self.applied.clone();
        let caught_up = tokio::time::timeout(READ_WAIT, async {
            applied.wait_for(|a| *a >= index).await.is_ok()
        })
        .await;
        match caught_up {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.unavailable("state machine stopped")),
            Err(_) => Err(self.unavailable(&format!(
                "replica did not catch up to {index} within {READ_WAIT:?}"
            ))),
        }
    }
}

/// Whether openraft turned a proposal away because this node is not the leader: a hand-off to
/// the leader, not a failed proposal.
fn refused(e: &WriteError) -> bool {
    matches!(e.api_error(), Some(ClientWriteError::ForwardToLeader(_)))
}

/// Whether openraft refused a proposal because no leader is known yet.
fn leader_unknown(e: &WriteError) -> bool {
    matches!(
        e.api_error(),
        Some(ClientWriteError::ForwardToLeader(f)) if f.leader_id.is_none()
    )
}

/// Whether a status from the leader is its own answer, passed on as it is, rather than a
/// transport failure, which is reported as `UNAVAILABLE` with this node's leader hint.
fn is_peer_answer(status: &Status) -> bool {
    let transport = matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    );
    !transport || status.metadata().get(LEADER_METADATA_KEY).is_some()
}
