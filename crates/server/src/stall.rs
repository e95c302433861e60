//! Fail-stop on storage that stopped answering.
//!
//! The storage layer registers its log and state-machine writes with a [`Watchdog`]; this task
//! reads it every check interval. A call running past a quarter of the limit gets one warning;
//! past the limit, [`stuck_storage`] resolves and the node exits. A node whose disk hangs keeps
//! sending heartbeats, so without this it would stay leader (or keep counting in quorums) while
//! committing nothing; after a restart it reopens the database from what is on disk and catches
//! up from the leader, as after any crash.

use std::time::Duration;

use licstore_store::watchdog::{verdict, Verdict};
use licstore_store::{DbStats, StorageCall, Watchdog};
use std::sync::Arc;

/// Gauge: how long the oldest storage call in flight has been running, in seconds.
pub const OLDEST_CALL_SECONDS: &str = "licstore_disk_oldest_call_seconds";

/// How long reading RocksDB's figures for the report may take before it is given up.
const FIGURES_DEADLINE: Duration = Duration::from_secs(1);

/// Resolves with a description once a storage call has run for `limit`; never resolves for a
/// zero limit.
pub async fn stuck_storage(watchdog: Arc<Watchdog>, stats: DbStats, limit: Duration) -> String {
    if limit.is_zero() {
        return std::future::pending().await;
    }
    let every = (limit / 8).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: Option<StorageCall> = None;
    loop {
        tick.tick().await;
        let oldest = watchdog.oldest();
        let running_s = oldest.map_or(0.0, |(_, d)| d.as_secs_f64());
        metrics::gauge!(OLDEST_CALL_SECONDS).set(running_s);
        match verdict(oldest, limit) {
            Verdict::Fine => warned = None,
            Verdict::Slow(call, running) => {
                if warned != Some(call) {
                    warned = Some(call);
                    let rocks = figures(&stats).await;
                    tracing::warn!(
                        call = call.name(),
                        running_ms = running.as_millis() as u64,
                        limit_ms = limit.as_millis() as u64,
                        %rocks,
                        "storage call is slow; the node stops if it reaches the limit"
                    );
                }
            }
            Verdict::Stuck(call, running) => {
                let rocks = figures(&stats).await;
                return format!(
                    "storage call {} has run for {} ms (limit {} ms); {rocks}",
                    call.name(),
                    running.as_millis(),
                    limit.as_millis()
                );
            }
        }
    }
}

/// RocksDB's background-error count and write-stop flag, read off the async threads: the
/// reading takes the database mutex, which a hung call may hold.
async fn figures(stats: &DbStats) -> String {
    let stats = stats.clone();
    let read = tokio::task::spawn_blocking(move || stats.read());
    match tokio::time::timeout(FIGURES_DEADLINE, read).await {
        Ok(Ok(f)) => format!(
            "rocksdb background errors {}, writes stopped {}",
            f.background_errors, f.write_stopped
        ),
        Ok(Err(e)) => format!("rocksdb figures unavailable: {e}"),
        Err(_) => "rocksdb figures unavailable: the database does not answer".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolves_once_a_call_outlives_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = licstore_store::open(dir.path()).expect("open");
        let dog = storage.watchdog.clone();
        let limit = Duration::from_millis(400);
        let check = stuck_storage(dog.clone(), storage.stats.clone(), limit);
        let mut check = Box::pin(check);
        // Nothing runs: no verdict within twice the limit.
        let quiet = tokio::time::timeout(limit * 2, &mut check).await;
        assert!(quiet.is_err(), "resolved with nothing in flight: {quiet:?}");
        let running = dog.enter(StorageCall::Apply);
        let reason = tokio::time::timeout(limit * 10, &mut check)
            .await
            .expect("a stuck apply must be reported");
        drop(running);
        assert!(reason.contains("apply"), "{reason}");
        assert!(reason.contains("background errors 0"), "{reason}");
    }

    #[tokio::test]
    async fn zero_limit_never_resolves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = licstore_store::open(dir.path()).expect("open");
        let _running = storage.watchdog.enter(StorageCall::LogSync);
        let check = stuck_storage(
            storage.watchdog.clone(),
            storage.stats.clone(),
            Duration::ZERO,
        );
        let waited = tokio::time::timeout(Duration::from_millis(300), check).await;
        assert!(waited.is_err(), "{waited:?}");
    }
}
