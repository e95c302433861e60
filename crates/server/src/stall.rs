//! Fail-stop on storage that stopped answering.
//!
//! The storage layer registers its log and state-machine writes with a [`Watchdog`]; a thread
//! of its own (not a tokio task: the calls it watches may hold every runtime worker) reads it
//! every check interval from the moment the database is open. A call running past a quarter of
//! its limit gets one warning; one seen past its limit on two checks in a row makes the process
//! exit at once ([`fail_stop`]). A node whose disk hangs keeps sending heartbeats, so without
//! this it would stay leader (or keep counting in quorums) while committing nothing; after a
//! restart it reopens the database from what is on disk and catches up from the leader, as
//! after any crash.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use licstore_store::watchdog::{verdict, Verdict};
use licstore_store::{DbStats, StorageCall, Watchdog};

/// Gauge: how long the oldest storage call in flight has been running, in seconds.
pub const OLDEST_CALL_SECONDS: &str = "licstore_disk_oldest_call_seconds";

/// How long reading RocksDB's figures for a message may take before it is given up.
const FIGURES_DEADLINE: Duration = Duration::from_secs(1);

/// Starts the watchdog's thread: it exits the process through [`fail_stop`] when a storage
/// call is stuck; with a zero limit it only keeps the gauge up to date.
pub fn spawn(watchdog: Arc<Watchdog>, stats: DbStats, limit: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("storage-watchdog".into())
        .spawn(move || {
            let reason = watch_until_stuck(&watchdog, &stats, limit);
            fail_stop(&format!("storage stopped answering: {reason}"));
        })
        .map(drop)
}

/// Logs `reason` and ends the process with status 1 at once: no destructors, no runtime or
/// RocksDB teardown, which would wait on the very calls that hang (RocksDB joins its
/// background threads at exit). What was acknowledged is in the synced Raft log.
pub fn fail_stop(reason: &str) -> ! {
    tracing::error!(%reason, "exiting at once (fail-stop)");
    // SAFETY: _exit(2) ends the process without running any user-space code; nothing of
    // ours needs to run (durable state is synced before it is acknowledged).
    unsafe { libc::_exit(1) }
}

/// Checks `watchdog` until a call has been stuck past `limit` on two checks in a row, and
/// returns a description of it; never returns for a zero limit. A check that comes far later
/// than scheduled (the process was paused or starved) decides nothing.
pub fn watch_until_stuck(watchdog: &Watchdog, stats: &DbStats, limit: Duration) -> String {
    let every = (limit / 8).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut warned: Option<StorageCall> = None;
    let mut stuck_before: Option<StorageCall> = None;
    let mut last = Instant::now();
    metrics::gauge!(OLDEST_CALL_SECONDS).set(0.0);
    loop {
        std::thread::sleep(every);
        let late = last.elapsed() > every * 3;
        last = Instant::now();
        let oldest = watchdog.oldest();
        let running_s = oldest.map_or(0.0, |(_, d)| d.as_secs_f64());
        metrics::gauge!(OLDEST_CALL_SECONDS).set(running_s);
        if late {
            stuck_before = None;
            continue;
        }
        match verdict(oldest, limit) {
            Verdict::Fine => (warned, stuck_before) = (None, None),
            Verdict::Slow(call, running) => {
                stuck_before = None;
                if warned != Some(call) {
                    warned = Some(call);
                    tracing::warn!(
                        call = call.name(),
                        running_ms = running.as_millis() as u64,
                        limit_ms = call.limit(limit).as_millis() as u64,
                        rocks = %figures(stats),
                        "storage call is slow; the node stops if it reaches the limit"
                    );
                }
            }
            Verdict::Stuck(call, running) if stuck_before == Some(call) => {
                return format!(
                    "storage call {} has run for {} ms (limit {} ms); {}",
                    call.name(),
                    running.as_millis(),
                    call.limit(limit).as_millis(),
                    figures(stats)
                );
            }
            Verdict::Stuck(call, _) => stuck_before = Some(call),
        }
    }
}

/// RocksDB's background-error count and write-stop flag, read on a helper thread: the reading
/// takes the database mutex, which a hung call may hold.
fn figures(stats: &DbStats) -> String {
    let stats = stats.clone();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("storage-figures".into())
        .spawn(move || {
            let _ = tx.send(stats.read());
        });
    if let Err(e) = spawned {
        return format!("rocksdb figures unavailable: {e}");
    }
    match rx.recv_timeout(FIGURES_DEADLINE) {
        Ok(f) => format!(
            "rocksdb background errors {}, writes stopped {}",
            f.background_errors, f.write_stopped
        ),
        Err(_) => "rocksdb figures unavailable: the database does not answer".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs [`watch_until_stuck`] on a thread; its answer, if any, within `wait`.
    fn watch(storage: &licstore_store::Storage, limit: Duration, wait: Duration) -> Option<String> {
        let (dog, stats) = (storage.watchdog.clone(), storage.stats.clone());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(watch_until_stuck(&dog, &stats, limit));
        });
        rx.recv_timeout(wait).ok()
    }

    #[test]
    fn reports_a_call_that_outlives_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = licstore_store::open(dir.path()).expect("open");
        let limit = Duration::from_millis(400);
        // Nothing runs: no verdict within several limits.
        assert_eq!(watch(&storage, limit, limit * 4), None);
        let _running = storage.watchdog.enter(StorageCall::Apply);
        let reason = watch(&storage, limit, limit * 10).expect("a stuck apply is reported");
        assert!(reason.contains("apply"), "{reason}");
        assert!(reason.contains("background errors 0"), "{reason}");
    }

    #[test]
    fn zero_limit_never_reports() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = licstore_store::open(dir.path()).expect("open");
        let _running = storage.watchdog.enter(StorageCall::LogSync);
        assert_eq!(
            watch(&storage, Duration::ZERO, Duration::from_millis(500)),
            None
        );
    }
}
