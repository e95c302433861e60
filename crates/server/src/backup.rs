//! `Cluster.Snapshot`: a consistent copy of the replicated state, streamed to the caller.
//!
//! The node first catches up to a linearizable read index, so the copy holds every write
//! acknowledged before the call. The copy is written to a file under `<data dir>/backups` while
//! the node's one whole-state walk permit is held, opened, and its name removed at once: the
//! open handle keeps the data for the stream, and nothing is left behind when the caller goes
//! away or the node crashes (a crash mid-copy leaves a partial file that the next backup clears).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use licstore_proto::v1 as pb;
use licstore_store::snapshot::SnapshotMeta;
use licstore_store::StoreError;
use openraft::vote::RaftLeaderId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::node::{Consistency, Node};

/// Bytes of the file per message.
pub const CHUNK_BYTES: u64 = 1024 * 1024;

/// The stream `Cluster.Snapshot` answers with.
pub type SnapshotStream = ReceiverStream<Result<pb::SnapshotResponse, Status>>;

/// The copy being sent: the open, already unlinked file and what it holds.
struct Copy {
    file: File,
    revision: u64,
    term: u64,
    size_bytes: u64,
}

/// Takes the copy and starts streaming it.
pub async fn stream(node: Arc<Node>) -> Result<SnapshotStream, Status> {
    node.read_barrier(Consistency::Linearizable).await?;
    let dir = backup_dir(&node.snapshot_dir);
    let copy = {
        let _walk = node
            .walks
            .acquire()
            .await
            .map_err(|_| Status::unavailable("node stopping"))?;
        let reader = node.reader.clone();
        tokio::task::spawn_blocking(move || take_copy(&reader, &dir))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("taking the copy: {e}")))?
    };
    tracing::info!(
        revision = copy.revision,
        term = copy.term,
        bytes = copy.size_bytes,
        "streaming a backup"
    );
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || send(copy, &tx));
    Ok(ReceiverStream::new(rx))
}

/// `<data dir>/backups`, beside the snapshot folder.
fn backup_dir(snapshot_dir: &Path) -> PathBuf {
    snapshot_dir.with_file_name("backups")
}

fn take_copy(reader: &licstore_store::Reader, dir: &Path) -> Result<Copy, StoreError> {
    // Anything here is left over from a copy a crash interrupted; the walk permit means no
    // other copy is being written.
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let (path, meta) = reader.save_backup(dir)?;
    let file = File::open(&path)?;
    std::fs::remove_file(&path)?;
    let size_bytes = file.metadata()?.len();
    let (revision, term) = position(&meta);
    Ok(Copy {
        file,
        revision,
        term,
        size_bytes,
    })
}

/// The applied index and its term; zeros for an empty state.
fn position(meta: &SnapshotMeta) -> (u64, u64) {
    meta.last_log_id
        .as_ref()
        .map_or((0, 0), |l| (l.index(), l.committed_leader_id().term()))
}

/// Reads the file in chunks into the stream; stops when the caller goes away.
fn send(mut copy: Copy, tx: &mpsc::Sender<Result<pb::SnapshotResponse, Status>>) {
    let mut remaining = copy.size_bytes;
    loop {
        let take = remaining.min(CHUNK_BYTES);
        let mut blob = vec![0u8; take as usize];
        if let Err(e) = copy.file.read_exact(&mut blob) {
            let _ = tx.blocking_send(Err(Status::internal(format!("reading the copy: {e}"))));
            return;
        }
        remaining -= take;
        let message = pb::SnapshotResponse {
            revision: copy.revision,
            term: copy.term,
            size_bytes: copy.size_bytes,
            remaining_bytes: remaining,
            blob,
        };
        if tx.blocking_send(Ok(message)).is_err() || remaining == 0 {
            return;
        }
    }
}
