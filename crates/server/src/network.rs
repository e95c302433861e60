//! Outgoing Raft traffic: openraft's network traits over the internal tonic `Raft` service.
//!
//! Each message is one openraft value encoded with bincode inside a `RaftPayload`; snapshots
//! are streamed from the open snapshot file in chunks.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;

use licstore_proto::v1::raft::raft_client::RaftClient;
use licstore_proto::v1::raft::{RaftPayload, SnapshotChunk};
use licstore_store::{codec, NodeId, SnapshotFile, TypeConfig};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::base::{BoxFuture, BoxStream};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::StreamAppendResult;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, OptionalSend, RaftNetworkFactory, RaftNetworkV2};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::ServerError;

type Rpc = RPCError<TypeConfig>;

/// Metadata key carrying the id of the node a Raft message is addressed to.
// TODO(cluster-id): messages name the target node but not the cluster; two clusters that reuse
// node ids and addresses can still talk to each other. A cluster id fixed at initialisation and
// checked on every message would close that.
pub const TARGET_METADATA_KEY: &str = "licstore-target-node";

/// Pause before reporting a failed attempt to open a replication stream. openraft retries
/// stream set-up at once, so without it a dead peer is dialled thousands of times a second.
const STREAM_RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Snapshot data is sent in chunks of this many bytes.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Channels to peers, shared by Raft replication, forwarding and read barriers.
#[derive(Clone, Default)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Dial peers over TLS with this, presenting this node's certificate.
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl Peers {
    /// Peers dialed in plain text, or over TLS when `tls` is given.
    pub fn new(tls: Option<tonic::transport::ClientTlsConfig>) -> Self {
        Peers {
            channels: Arc::default(),
            tls,
        }
    }

    /// A lazily connected channel to `addr` (`host:port`), reused across calls.
    pub fn channel(&self, addr: &str) -> Result<Channel, ServerError> {
        let mut map = self
            .channels
            .lock()
            .map_err(|_| ServerError::Internal("peer map poisoned".into()))?;
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let bad = |e: tonic::transport::Error| ServerError::Config(format!("peer {addr}: {e}"));
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(bad)?
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(bad)?;
        }
        let ch = endpoint.connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    /// A Raft-service stub for `addr`.
    pub fn raft_client(&self, addr: &str) -> Result<RaftClient<Channel>, ServerError> {
        Ok(RaftClient::new(self.channel(addr)?).max_decoding_message_size(256 << 20))
    }
}

/// Creates connections for openraft.
#[derive(Clone)]
pub struct Network {
    peers: Peers,
}

impl Network {
    /// A network using the shared peer channels.
    pub fn new(peers: Peers) -> Self {
        Network { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &licstore_store::Node) -> Connection {
        // Exported at zero from the first contact, so a rate over it is defined before trouble.
        let to = [("To", target.to_string())];
        metrics::counter!(crate::metrics::PEER_SENT_FAILURES, &to).increment(0);
        Connection {
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// One peer as seen by openraft.
pub struct Connection {
    target: NodeId,
    addr: String,
    peers: Peers,
}

fn encode<T: Serialize>(value: &T) -> Result<RaftPayload, Rpc> {
    let data =
        codec::encode("raft message", value).map_err(|e| Rpc::Network(NetworkError::new(&e)))?;
    Ok(RaftPayload { data })
}

fn decode<T: DeserializeOwned>(payload: RaftPayload) -> Result<T, Rpc> {
    codec::decode("raft message", &payload.data).map_err(|e| Rpc::Network(NetworkError::new(&e)))
}

fn status_to_rpc(status: tonic::Status) -> Rpc {
    if status.code() == tonic::Code::Unavailable {
        Rpc::Unreachable(Unreachable::new(&status))
    } else {
        Rpc::Network(NetworkError::new(&status))
    }
}

impl Connection {
    fn client(&self) -> Result<RaftClient<Channel>, Rpc> {
        self.peers
            .raft_client(&self.addr)
            .map_err(|e| Rpc::Unreachable(Unreachable::new(&e)))
    }

    /// Sends one request with a deadline and decodes the answer.
    async fn unary<Req, Resp, F, Fut>(&self, req: &Req, ttl: Duration, call: F) -> Result<Resp, Rpc>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(RaftClient<Channel>, tonic::Request<RaftPayload>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let payload = self.addressed(encode(req)?);
        let fut = call(self.client()?, payload);
        let result = match tokio::time::timeout(ttl, fut).await {
            Ok(Ok(resp)) => return decode(resp.into_inner()),
            Ok(Err(status)) => Err(status_to_rpc(status)),
            Err(elapsed) => Err(Rpc::Unreachable(Unreachable::new(&elapsed))),
        };
        self.count_failure();
        result
    }

    /// Counts a message to this peer that did not get an answer.
    fn count_failure(&self) {
        let to = [("To", self.target.to_string())];
        metrics::counter!(crate::metrics::PEER_SENT_FAILURES, &to).increment(1);
    }

    /// Wraps a message with the id of the node it is meant for, which the receiver checks.
    fn addressed<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.metadata_mut()
            .insert(TARGET_METADATA_KEY, self.target.into());
        req
    }

    /// The snapshot as a lazy stream of chunks: the meta first, then the file read from its
    /// open handle, one chunk at a time. A read error ends the stream early, which the receiver
    /// detects through the file digest.
    fn snapshot_stream(
        vote: &VoteOf<TypeConfig>,
        snapshot: &SnapshotOf<TypeConfig, SnapshotFile>,
    ) -> Result<impl futures::Stream<Item = SnapshotChunk> + Send + 'static, std::io::Error> {
        let meta = codec::encode("snapshot meta", &(vote, &snapshot.meta))?;
        let mut file = snapshot.snapshot.file.try_clone()?;
        file.seek(SeekFrom::Start(0))?;
        let head = futures::stream::once(async move {
            SnapshotChunk {
                meta,
                data: Vec::new(),
            }
        });
        let body = futures::stream::unfold(Some(file), |state| async move {
            let mut file = state?;
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                read_full(&mut file, &mut buf).map(|n| {
                    buf.truncate(n);
                    (file, buf)
                })
            });
            match read.await {
                Ok(Ok((file, buf))) if !buf.is_empty() => Some((
                    SnapshotChunk {
                        meta: Vec::new(),
                        data: buf,
                    },
                    Some(file),
                )),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading snapshot file");
                    None
                }
                _ => None,
            }
        });
        Ok(head.chain(body))
    }
}

fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

impl RaftNetworkV2<TypeConfig> for Connection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, Rpc> {
        self.unary(&rpc, option.hard_ttl(), |mut c, p| async move {
            c.append_entries(p).await
        })
        .await
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        _option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, Rpc>>, Rpc>>
    where
        S: futures::Stream<Item = AppendEntriesRequest<TypeConfig>>
            + OptionalSend
            + Unpin
            + 'static,
    {
        Box::pin(async move {
            let mut client = self.client()?;
            // Encoding a request cannot fail for these plain types; if it ever did, the stream
            // would end and openraft would restart replication.
            let requests = input.scan((), |_, req| futures::future::ready(encode(&req).ok()));
            let resp = match client.stream_append(self.addressed(requests)).await {
                Ok(resp) => resp,
                Err(status) => {
                    self.count_failure();
                    tokio::time::sleep(STREAM_RETRY_PAUSE).await;
                    return Err(status_to_rpc(status));
                }
            };
            let results = resp
                .into_inner()
                .map(|item| decode(item.map_err(status_to_rpc)?));
            Ok(Box::pin(results) as BoxStream<'s, _>)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, Rpc> {
        self.unary(&rpc, option.hard_ttl(), |mut c, p| async move {
            c.vote(p).await
        })
        .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, Rpc> {
        self.unary(&rpc, option.hard_ttl(), |mut c, p| async move {
            c.pre_vote(p).await
        })
        .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, Rpc> {
        self.unary(&req, option.hard_ttl(), |mut c, p| async move {
            c.transfer_leader(p).await
        })
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let stream = Self::snapshot_stream(&vote, &snapshot)
            .map_err(|e| NetworkError::<TypeConfig>::new(&e))?;
        tracing::info!(target = self.target, meta = %snapshot.meta, "sending snapshot");
        let mut client = self.client()?;
        let send = client.install_snapshot(self.addressed(stream));
        let started = std::time::Instant::now();
        let result = tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            resp = send => match resp.map_err(status_to_rpc) {
                Ok(resp) => decode(resp.into_inner()).map_err(StreamingError::from),
                Err(e) => Err(e.into()),
            },
        };
        crate::metrics::snapshot_done(true, result.is_ok(), started.elapsed());
        result
    }

    fn backoff(&self) -> Option<Backoff> {
        Some(Backoff::new(std::iter::repeat(Duration::from_millis(200))))
    }
}

/// Builds an `AnyError` for a status, for openraft error types that need one.
pub fn any_error(message: impl ToString) -> AnyError {
    AnyError::error(message)
}
