//! Group proposals: the writes that arrive while the proposer is busy go to Raft as one batch.
//!
//! openraft runs its engine commands after every API message, so each `client_write` is
//! appended to the log, flushed and replicated on its own. Here every proposal goes through one
//! task that hands whatever has queued (up to [`MAX_BATCH`]) to `client_write_many`: one
//! message to the Raft core, one log append, one replication wake-up for the whole group. Each
//! command is still its own log entry, so revisions stay log indexes and applying is unchanged.
//!
//! One group is in flight at a time: the next one is handed over once every command of the
//! current one is answered (or after [`GROUP_WAIT_LIMIT`]). No timer holds a write
//! back, so a lone write goes out at once; under load the writes that arrive during one
//! commit form the next group. With 64 clients issuing on 3 local nodes, groups averaged about
//! 30 commands; letting two or four groups overlap made them smaller and cost more CPU per
//! write (see `benches/history.md`).

use futures::stream::BoxStream;
use futures::StreamExt;
use licstore_store::{Command, Raft, TypeConfig};
use openraft::errors::{Fatal, RaftError};
use openraft::raft::{WriteResponse, WriteResult};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most commands handed to Raft in one message.
pub const MAX_BATCH: usize = 256;

/// Longest the next group waits for the one in flight; past it, groups overlap.
pub const GROUP_WAIT_LIMIT: Duration = Duration::from_secs(1);

/// What a proposal comes back with: the applied result and its log id, or why it failed.
pub type Proposed = Result<WriteResponse<TypeConfig>, crate::node::WriteError>;

/// The per-command results of one `client_write_many`, in submission order.
type Results = BoxStream<'static, Result<WriteResult<TypeConfig>, Fatal<TypeConfig>>>;

struct Proposal {
    cmd: Command,
    done: oneshot::Sender<Proposed>,
}

/// The sending side; cloning shares the one proposer task.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::UnboundedSender<Proposal>,
}

impl Proposer {
    /// Starts the proposer task on the current runtime. It ends when every handle is dropped.
    pub fn start(raft: Raft) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, rx));
        Proposer { tx }
    }

    /// Proposes `cmd` and waits until it is applied or refused.
    pub async fn propose(&self, cmd: Command) -> Proposed {
        let (done, answer) = oneshot::channel();
        if self.tx.send(Proposal { cmd, done }).is_err() {
            return Err(RaftError::Fatal(Fatal::Stopped));
        }
        answer
            .await
            .unwrap_or(Err(RaftError::Fatal(Fatal::Stopped)))
    }
}

async fn run(raft: Raft, mut rx: mpsc::UnboundedReceiver<Proposal>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Callers that gave up while queued are dropped here: nothing of theirs reached Raft.
        batch.retain(|p| !p.done.is_closed());
        if batch.is_empty() {
            continue;
        }
        metrics::histogram!(crate::metrics::PROPOSAL_BATCH_SIZE).record(batch.len() as f64);
        let (cmds, dones): (Vec<Command>, Vec<_>) =
            batch.drain(..).map(|p| (p.cmd, p.done)).unzip();
        let results = match raft.client_write_many(cmds).await {
            Ok(results) => results,
            Err(fatal) => {
                for done in dones {
                    let _ = done.send(Err(RaftError::Fatal(fatal.clone())));
                }
                continue;
            }
        };
        let (finished, batch_done) = oneshot::channel::<()>();
        tokio::spawn(async move {
            deliver(results, dones).await;
            let _ = finished.send(());
        });
        // The next group waits for this one, but not for long: a group on a leader that lost
        // its quorum may stay unanswered until the partition heals, and later writes must not
        // queue behind it (Raft refuses them at once if this node no longer leads).
        let _ = tokio::time::timeout(GROUP_WAIT_LIMIT, batch_done).await;
    }
}

/// Hands each result to its caller, in log order (which is also the order results arrive in).
/// Once the stream reports the core stopped, every caller still waiting hears the same.
async fn deliver(mut results: Results, dones: Vec<oneshot::Sender<Proposed>>) {
    let mut stopped: Option<Fatal<TypeConfig>> = None;
    for done in dones {
        let next = match &stopped {
            Some(fatal) => Err(fatal.clone()),
            None => results.next().await.unwrap_or(Err(Fatal::Stopped)),
        };
        let answer = match next {
            Ok(written) => written.map_err(RaftError::APIError),
            Err(fatal) => {
                stopped = Some(fatal.clone());
                Err(RaftError::Fatal(fatal))
            }
        };
        // The caller may have given up (timeout); its result is applied all the same.
        let _ = done.send(answer);
    }
}
