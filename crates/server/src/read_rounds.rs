//! Read-index rounds shared by concurrent reads.
//!
//! A linearizable read needs a read index learnt from the leader *after* the read arrived; it
//! may then be served once the local replica has applied that index. Asking the leader once
//! per read costs a round trip and a quorum heartbeat each, so reads share rounds instead:
//! at most one round is in flight per `ReadRounds` (a node keeps one for its own reads and one
//! for read-index calls it answers), and every read that arrived before that round
//! started waits for the next one, which one of them starts. Under load a round serves every
//! read that queued during the previous one.
//!
//! A bounded-staleness read may use any round that *started* no earlier than its bound before
//! it arrived, so while rounds are frequent it waits for none.
//!
//! The rounds know nothing of Raft: the caller passes the function that fetches a read index.

use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;
use tonic::{Code, Status};

/// The outcome of the last finished round.
#[derive(Clone, Debug)]
struct Round {
    /// When the round asked for its read index.
    started: Instant,
    /// The read index, or the refusal (code and message); `None` when the round was abandoned
    /// (its caller went away) and proves nothing.
    outcome: Option<Result<u64, (Code, String)>>,
}

/// Read-index rounds of one node.
pub struct ReadRounds {
    /// Whether a round is in flight.
    running: Mutex<bool>,
    /// The last finished round; every change wakes the waiting reads.
    done: watch::Sender<Option<Round>>,
}

impl Default for ReadRounds {
    fn default() -> Self {
        ReadRounds {
            running: Mutex::new(false),
            done: watch::channel(None).0,
        }
    }
}

/// Clears `running` and publishes the round's end even when the fetching future is dropped.
struct RoundGuard<'a> {
    rounds: &'a ReadRounds,
    started: Instant,
    outcome: Option<Result<u64, (Code, String)>>,
}

impl Drop for RoundGuard<'_> {
    fn drop(&mut self) {
        *self.rounds.running.lock().expect("read rounds lock") = false;
        let round = Round {
            started: self.started,
            outcome: self.outcome.take(),
        };
        self.rounds.done.send_replace(Some(round));
    }
}

impl ReadRounds {
    /// A read index from a round that started at or after `not_before`: for a linearizable
    /// read, the moment it arrived; for a bounded-staleness read, that moment less the bound.
    pub async fn read_index<F, Fut>(&self, not_before: Instant, fetch: F) -> Result<u64, Status>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<u64, Status>>,
    {
        loop {
            let mut rx = self.done.subscribe();
            if let Some(answer) = usable(&rx.borrow_and_update(), not_before) {
                return answer;
            }
            if self.claim() {
                return self.run_round(&fetch).await;
            }
            // A round is in flight: wait for its end, then look again.
            if rx.changed().await.is_err() {
                return Err(Status::unavailable("read rounds stopped"));
            }
        }
    }

    /// Takes the right to run the next round, if no round is in flight.
    fn claim(&self) -> bool {
        let mut running = self.running.lock().expect("read rounds lock");
        !std::mem::replace(&mut *running, true)
    }

    async fn run_round<F, Fut>(&self, fetch: &F) -> Result<u64, Status>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<u64, Status>>,
    {
        let mut guard = RoundGuard {
            rounds: self,
            started: Instant::now(),
            outcome: None,
        };
        metrics::counter!(crate::metrics::READ_INDEX_ROUNDS).increment(1);
        let result = fetch().await;
        guard.outcome = Some(match &result {
            Ok(index) => Ok(*index),
            Err(s) => Err((s.code(), s.message().to_string())),
        });
        result
    }
}

/// What the last round answers for a read that needs a round started at `not_before` or
/// later: nothing if it is too old or was abandoned.
fn usable(round: &Option<Round>, not_before: Instant) -> Option<Result<u64, Status>> {
    let round = round.as_ref()?;
    if round.started < not_before {
        return None;
    }
    match round.outcome.as_ref()? {
        Ok(index) => Some(Ok(*index)),
        Err((code, message)) => Some(Err(Status::new(*code, message.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A fetch that takes 20 ms and returns how many fetches have started.
    fn counting(
        calls: Arc<AtomicU64>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<u64, Status>> + Send>> {
        move || {
            let calls = calls.clone();
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(n)
            })
        }
    }

    #[tokio::test]
    async fn concurrent_reads_share_rounds_and_never_use_an_earlier_one() {
        let rounds = Arc::new(ReadRounds::default());
        let calls = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let (rounds, calls) = (rounds.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let arrived = Instant::now();
                let before = calls.load(Ordering::SeqCst);
                let got = rounds.read_index(arrived, counting(calls)).await.unwrap();
                // The round used started after this read arrived, so it is a later fetch
                // than any that had started before.
                assert!(
                    got > before,
                    "read used round {got}, {before} had started before"
                );
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = calls.load(Ordering::SeqCst);
        assert!((1..=10).contains(&n), "{n} rounds for 200 concurrent reads");
    }

    #[tokio::test]
    async fn a_bounded_read_reuses_a_recent_round_and_an_error_is_shared() {
        let rounds = ReadRounds::default();
        let calls = Arc::new(AtomicU64::new(0));
        let first = rounds
            .read_index(Instant::now(), counting(calls.clone()))
            .await;
        assert_eq!(first.unwrap(), 1);
        let bound = Instant::now() - Duration::from_secs(5);
        let again = rounds.read_index(bound, counting(calls.clone())).await;
        assert_eq!((again.unwrap(), calls.load(Ordering::SeqCst)), (1, 1));
        let fresh = rounds
            .read_index(Instant::now(), counting(calls.clone()))
            .await;
        assert_eq!(fresh.unwrap(), 2);
        let failing = || async { Err::<u64, _>(Status::unavailable("no leader")) };
        let err = rounds
            .read_index(Instant::now(), failing)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
    }

    #[tokio::test]
    async fn an_abandoned_round_lets_the_next_read_run_one() {
        let rounds = Arc::new(ReadRounds::default());
        let stuck = || std::future::pending::<Result<u64, Status>>();
        let r = rounds.clone();
        let abandoned = tokio::spawn(async move { r.read_index(Instant::now(), stuck).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        abandoned.abort();
        let _ = abandoned.await;
        let calls = Arc::new(AtomicU64::new(0));
        let got = tokio::time::timeout(
            Duration::from_secs(2),
            rounds.read_index(Instant::now(), counting(calls)),
        )
        .await
        .expect("a read after an abandoned round must not hang");
        assert_eq!(got.unwrap(), 1);
    }
}
