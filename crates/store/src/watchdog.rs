//! How long the storage calls now in flight have been running.
//!
//! A disk can stop answering without failing: RocksDB may wait for ever on a write stall whose
//! flush cannot finish (a full disk, a recovery that waits on the stalled writer), and a dying
//! device may block `fsync` for minutes. Such a node still sends heartbeats, so the cluster
//! keeps it as leader or counts it in quorums while it can neither append nor apply. The storage
//! calls register here while they run; the server asks [`Watchdog::oldest`] periodically and
//! [`verdict`] decides, apart from any I/O, when to warn and when to stop the node
//! (fail-stop: a restart reopens the database from what is on disk).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The storage calls the watchdog follows. Each kind runs one at a time (openraft serialises
/// log writes and applies; the flusher is one thread), so one slot per kind is enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageCall {
    /// Writing appended Raft entries into the database.
    LogAppend,
    /// Syncing the write-ahead log so appended entries become durable.
    LogSync,
    /// Writing and syncing the vote.
    VoteSave,
    /// Other Raft log metadata writes: committed id, truncation, purge.
    LogMeta,
    /// Writing one applied batch into the state machine.
    Apply,
    /// Flushing the state machine's memtables before a log purge.
    StateFlush,
    /// Flushing the state machine's memtables before a snapshot is written.
    SnapshotFlush,
    /// One write of a snapshot install (each batch registers anew).
    SnapshotInstall,
}

const CALLS: [StorageCall; 8] = [
    StorageCall::LogAppend,
    StorageCall::LogSync,
    StorageCall::VoteSave,
    StorageCall::LogMeta,
    StorageCall::Apply,
    StorageCall::StateFlush,
    StorageCall::SnapshotFlush,
    StorageCall::SnapshotInstall,
];

/// How many times the base limit a flush may take: RocksDB holds a flush back while it would
/// add to a compaction backlog, which a busy but healthy disk can take a while to work off.
const FLUSH_LIMIT_FACTOR: u32 = 3;

impl StorageCall {
    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            StorageCall::LogAppend => "log_append",
            StorageCall::LogSync => "log_sync",
            StorageCall::VoteSave => "vote_save",
            StorageCall::LogMeta => "log_meta",
            StorageCall::Apply => "apply",
            StorageCall::StateFlush => "state_flush",
            StorageCall::SnapshotFlush => "snapshot_flush",
            StorageCall::SnapshotInstall => "snapshot_install",
        }
    }

    /// This call's limit when writes in general get `base`.
    pub fn limit(self, base: Duration) -> Duration {
        match self {
            StorageCall::StateFlush | StorageCall::SnapshotFlush => base * FLUSH_LIMIT_FACTOR,
            _ => base,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Start times of the storage calls in flight. Shared by the log store, the state machine and
/// the flusher thread; the server reads it.
#[derive(Debug)]
pub struct Watchdog {
    epoch: Instant,
    /// Per [`StorageCall`]: microseconds since `epoch` plus one when the running call started,
    /// zero when none runs.
    started_us: [AtomicU64; CALLS.len()],
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            epoch: Instant::now(),
            started_us: Default::default(),
        }
    }
}

impl Watchdog {
    /// A watchdog with nothing in flight.
    pub fn new() -> Arc<Self> {
        Arc::new(Watchdog::default())
    }

    /// Marks `call` as running until the returned guard is dropped.
    pub fn enter(&self, call: StorageCall) -> Running<'_> {
        let now_us = self.epoch.elapsed().as_micros() as u64 + 1;
        self.started_us[call.slot()].store(now_us, Ordering::Release);
        Running { dog: self, call }
    }

    /// The call in flight that has used most of its limit ([`StorageCall::limit`]), and how
    /// long it has been running.
    pub fn oldest(&self) -> Option<(StorageCall, Duration)> {
        let now_us = self.epoch.elapsed().as_micros() as u64 + 1;
        let unit = Duration::from_secs(1);
        CALLS
            .iter()
            .filter_map(|call| {
                let started = self.started_us[call.slot()].load(Ordering::Acquire);
                (started != 0).then(|| (*call, now_us.saturating_sub(started)))
            })
            .max_by_key(|(call, running_us)| {
                u128::from(*running_us) * 1000 / call.limit(unit).as_micros()
            })
            .map(|(call, running_us)| (call, Duration::from_micros(running_us)))
    }
}

/// A storage call in flight; dropping it marks the call finished.
#[must_use = "the call counts as running only while this guard lives"]
pub struct Running<'a> {
    dog: &'a Watchdog,
    call: StorageCall,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.dog.started_us[self.call.slot()].store(0, Ordering::Release);
    }
}

/// What the server should do about the oldest call in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing runs, or nothing has run long.
    Fine,
    /// A call has run past a quarter of the limit: worth a warning, once per call.
    Slow(StorageCall, Duration),
    /// A call has run past the limit: the node must stop.
    Stuck(StorageCall, Duration),
}

/// Judges the oldest call in flight against its limit for a base `limit`; a zero limit never
/// stops the node.
pub fn verdict(oldest: Option<(StorageCall, Duration)>, limit: Duration) -> Verdict {
    let Some((call, running)) = oldest else {
        return Verdict::Fine;
    };
    if limit.is_zero() {
        return Verdict::Fine;
    }
    let limit = call.limit(limit);
    if running >= limit {
        Verdict::Stuck(call, running)
    } else if running >= limit / 4 {
        Verdict::Slow(call, running)
    } else {
        Verdict::Fine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let s = Duration::from_secs;
        let apply = StorageCall::Apply;
        let flush = StorageCall::StateFlush;
        let cases = [
            (None, s(20), Verdict::Fine),
            (Some((apply, s(1))), s(20), Verdict::Fine),
            (Some((apply, s(5))), s(20), Verdict::Slow(apply, s(5))),
            (Some((apply, s(19))), s(20), Verdict::Slow(apply, s(19))),
            (Some((apply, s(20))), s(20), Verdict::Stuck(apply, s(20))),
            (Some((apply, s(600))), s(20), Verdict::Stuck(apply, s(600))),
            (Some((apply, s(600))), s(0), Verdict::Fine),
            (Some((flush, s(30))), s(20), Verdict::Slow(flush, s(30))),
            (Some((flush, s(60))), s(20), Verdict::Stuck(flush, s(60))),
        ];
        for (oldest, limit, want) in cases {
            assert_eq!(verdict(oldest, limit), want, "{oldest:?} against {limit:?}");
        }
    }

    #[test]
    fn guards_mark_and_clear_their_call() {
        let dog = Watchdog::new();
        assert_eq!(dog.oldest(), None);
        let sync = dog.enter(StorageCall::LogSync);
        std::thread::sleep(Duration::from_millis(20));
        let apply = dog.enter(StorageCall::Apply);
        let (call, running) = dog.oldest().expect("two calls run");
        assert_eq!(call, StorageCall::LogSync);
        assert!(running >= Duration::from_millis(20), "{running:?}");
        drop(sync);
        assert_eq!(dog.oldest().map(|(c, _)| c), Some(StorageCall::Apply));
        drop(apply);
        assert_eq!(dog.oldest(), None);
    }

    #[test]
    fn oldest_is_the_call_nearest_its_limit() {
        let dog = Watchdog::new();
        let _flush = dog.enter(StorageCall::StateFlush);
        std::thread::sleep(Duration::from_millis(1200));
        // The flush has run longer but has three times the allowance.
        let _apply = dog.enter(StorageCall::Apply);
        assert_eq!(dog.oldest().map(|(c, _)| c), Some(StorageCall::StateFlush));
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(dog.oldest().map(|(c, _)| c), Some(StorageCall::Apply));
    }

    #[test]
    fn every_call_has_its_own_slot() {
        for (i, call) in CALLS.iter().enumerate() {
            assert_eq!(call.slot(), i, "{call:?}");
        }
    }
}
