//! Incoming Raft traffic and the internal calls between nodes (forwarded writes, read index).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use licstore_proto::v1::raft::raft_server::Raft as RaftRpc;
use licstore_proto::v1::raft::{RaftPayload, ReadIndexRequest, ReadIndexResponse, SnapshotChunk};
use licstore_store::{codec, Command, SnapshotFile, TypeConfig};
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::raft::{AppendEntriesResponse, StreamAppendError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use crate::network::TARGET_METADATA_KEY;
use crate::node::Node;

/// The internal service.
pub struct RaftService {
    node: Arc<Node>,
}

impl RaftService {
    /// Serves `node`.
    pub fn new(node: Arc<Node>) -> Self {
        RaftService { node }
    }
}

impl RaftService {
    /// Refuses a message meant for another node id: a peer with a stale or wrong address book
    /// must not make this node act as someone else.
    fn check_target<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let Some(v) = req.metadata().get(TARGET_METADATA_KEY) else {
            return Ok(());
        };
        let target: Option<u64> = v.to_str().ok().and_then(|t| t.parse().ok());
        if target == Some(self.node.id) {
            return Ok(());
        }
        Err(Status::failed_precondition(format!(
            "message addressed to node {}, this is node {}",
            v.to_str().unwrap_or("?"),
            self.node.id
        )))
    }
}

fn decode<T: DeserializeOwned>(payload: &RaftPayload) -> Result<T, Status> {
    codec::decode("raft message", &payload.data)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let data = codec::encode("raft message", value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { data }))
}

fn fatal(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft: {e}"))
}

type PayloadStream = Pin<Box<dyn Stream<Item = Result<RaftPayload, Status>> + Send>>;

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_target(&req)?;
        let rpc = decode(req.get_ref())?;
        let resp = self.node.raft.append_entries(rpc).await.map_err(fatal)?;
        if !matches!(resp, AppendEntriesResponse::HigherVote(_)) {
            self.node.leader_contact.heard();
        }
        reply(&resp)
    }

    type StreamAppendStream = PayloadStream;

    async fn stream_append(
        &self,
        req: Request<Streaming<RaftPayload>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        self.check_target(&req)?;
        // A request that fails to arrive or to decode ends the input, so responses never get out
        // of step with requests; the leader then restarts replication.
        let input = req.into_inner().scan((), |_, r| {
            futures::future::ready(r.ok().and_then(|p| codec::decode("append", &p.data).ok()))
        });
        let node = self.node.clone();
        let output = self
            .node
            .raft
            .stream_append(input)
            .map(move |result| match result {
                Ok(r) => {
                    if !matches!(r, Err(StreamAppendError::HigherVote(_))) {
                        node.leader_contact.heard();
                    }
                    codec::encode("append result", &r)
                        .map(|data| RaftPayload { data })
                        .map_err(|e| Status::internal(e.to_string()))
                }
                Err(e) => Err(fatal(e)),
            });
        Ok(Response::new(Box::pin(output)))
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(&req)?;
        let rpc = decode(req.get_ref())?;
        reply(&self.node.raft.vote(rpc).await.map_err(fatal)?)
    }

    async fn pre_vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(&req)?;
        let rpc = decode(req.get_ref())?;
        reply(&self.node.raft.pre_vote(rpc).await.map_err(fatal)?)
    }

    async fn transfer_leader(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_target(&req)?;
        let rpc = decode(req.get_ref())?;
        reply(
            &self
                .node
                .raft
                .handle_transfer_leader(rpc)
                .await
                .map_err(fatal)?,
        )
    }

    async fn install_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
        self.check_target(&req)?;
        let started = std::time::Instant::now();
        let result = self.receive_snapshot(req).await;
        crate::metrics::snapshot_done(false, result.is_ok(), started.elapsed());
        result
    }

    async fn read_index(
        &self,
        _req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        let read_index = self.node.read_index().await?;
        Ok(Response::new(ReadIndexResponse {
            read_index,
            leader_id: self.node.id,
        }))
    }

    async fn forward(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let cmd: Command = decode(req.get_ref())?;
        // The follower validated this already; the leader checks again so that nothing reaches
        // the log through this port that the public API would refuse.
        crate::api::revalidate(&cmd, &self.node.templates)?;
        crate::sealing::check_forwarded(&cmd, &self.node.reader)?;
        let result = self.node.write_local(cmd).await?;
        reply(&result)
    }
}

impl RaftService {
    /// Writes a streamed snapshot to a synced file, then hands it to openraft to install.
    async fn receive_snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftPayload>, Status> {
        let mut stream = req.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let (vote, meta): (VoteOf<TypeConfig>, SnapshotMetaOf<TypeConfig>) =
            codec::decode("snapshot meta", &first.meta)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let path = self
            .node
            .snapshot_dir
            .join(format!(".incoming-{}", licstore_client::new_request_id()));
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            received += chunk.data.len() as u64;
            file.write_all(&chunk.data)
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        // Durability: the received file is the source of a resumable install; sync it first.
        file.sync_all()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        drop(file);
        consensus_info!(self.node, bytes = received, meta = %meta, "received snapshot");
        let data = SnapshotFile::open(&path).map_err(|e| Status::internal(e.to_string()))?;
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: data,
        };
        let result = self.node.raft.install_full_snapshot(vote, snapshot).await;
        let _ = tokio::fs::remove_file(&path).await;
        reply(&result.map_err(fatal)?)
    }
}
