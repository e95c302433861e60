//! The Raft log and vote in RocksDB, with group commit.
//!
//! `append` writes the entries in one batch (readable at once, as openraft requires) and hands
//! the completion callback to a flusher thread. The flusher takes every callback queued so far,
//! syncs the write-ahead log once, and only then reports those entries durable: one fsync covers
//! all appends that arrived while the previous one ran.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::keys::{self, CF_RAFT_LOG, CF_RAFT_META};
use crate::txn::cf_handle;
use crate::watchdog::{StorageCall, Watchdog};
use crate::{codec, StoreError, TypeConfig};

type Entry = EntryOf<TypeConfig>;

/// The Raft log storage. Cloning shares the database and the flusher.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    flusher: mpsc::Sender<IOFlushed<TypeConfig>>,
    watchdog: Arc<Watchdog>,
}

impl LogStore {
    /// Creates the log store and starts its flusher thread; its writes register with
    /// `watchdog` while they run.
    pub fn new(db: Arc<DB>, watchdog: Arc<Watchdog>) -> Self {
        let (tx, rx) = mpsc::channel::<IOFlushed<TypeConfig>>();
        // A weak handle, so that dropping the storage closes the database at once.
        let flush_db = Arc::downgrade(&db);
        let flush_dog = watchdog.clone();
        std::thread::Builder::new()
            .name("log-flusher".into())
            .spawn(move || run_flusher(&flush_db, &rx, &flush_dog))
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start log flusher"));
        LogStore {
            db,
            flusher: tx,
            watchdog,
        }
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StoreError> {
        let cf = cf_handle(&self.db, CF_RAFT_META)?;
        match self.db.get_cf(cf, key)? {
            Some(bytes) => Ok(Some(codec::decode("raft meta", &bytes)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), StoreError> {
        let cf = cf_handle(&self.db, CF_RAFT_META)?;
        self.db
            .put_cf(cf, key, codec::encode("raft meta", value)?)?;
        Ok(())
    }

    fn last_entry(&self) -> Result<Option<Entry>, StoreError> {
        let cf = cf_handle(&self.db, CF_RAFT_LOG)?;
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            Some(item) => {
                let (_, value) = item?;
                Ok(Some(codec::decode("log entry", &value)?))
            }
            None => Ok(None),
        }
    }

    fn read_range(&self, start: u64, end_inclusive: Option<u64>) -> Result<Vec<Entry>, StoreError> {
        let cf = cf_handle(&self.db, CF_RAFT_LOG)?;
        let from = keys::log_key(start);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Forward))
        {
            let (key, value) = item?;
            let index =
                keys::log_index(&key).ok_or_else(|| StoreError::corrupt("log key", "length"))?;
            if end_inclusive.is_some_and(|end| index > end) {
                break;
            }
            let entry: Entry = codec::decode("log entry", &value)?;
            if entry.index() != index {
                return Err(StoreError::corrupt(
                    "log entry",
                    format!("key {index} holds {}", entry.index()),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// Syncs the WAL for every batch of queued callbacks, then completes them.
fn run_flusher(db: &Weak<DB>, rx: &mpsc::Receiver<IOFlushed<TypeConfig>>, watchdog: &Watchdog) {
    while let Ok(first) = rx.recv() {
        let mut waiting = vec![first];
        waiting.extend(rx.try_iter());
        // Durability: entries are reported flushed only after this sync returns.
        let started = std::time::Instant::now();
        let running = watchdog.enter(StorageCall::LogSync);
        let result = match db.upgrade() {
            Some(db) => db.flush_wal(true).map_err(|e| e.to_string()),
            None => Err("database closed".to_string()),
        };
        drop(running);
        metrics::histogram!(crate::db::WAL_FSYNC_SECONDS).record(started.elapsed());
        for callback in waiting {
            callback.io_completed(result.clone().map_err(io::Error::other));
        }
    }
}

fn range_start(range: &impl RangeBounds<u64>) -> u64 {
    match range.start_bound() {
        Bound::Included(x) => *x,
        Bound::Excluded(x) => x.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

fn range_end_inclusive(range: &impl RangeBounds<u64>) -> Option<u64> {
    match range.end_bound() {
        Bound::Included(x) => Some(*x),
        Bound::Excluded(0) => None,
        Bound::Excluded(x) => Some(x - 1),
        Bound::Unbounded => None,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        if matches!(range.end_bound(), Bound::Excluded(0)) {
            return Ok(Vec::new());
        }
        Ok(self.read_range(range_start(&range), range_end_inclusive(&range))?)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        Ok(self.get_meta(keys::META_VOTE)?)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged: Option<LogIdOf<TypeConfig>> = self.get_meta(keys::META_LAST_PURGED)?;
        let last = self.last_entry()?.map(|e| e.log_id());
        Ok(LogState {
            last_log_id: last.or(last_purged),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        let _running = self.watchdog.enter(StorageCall::VoteSave);
        self.put_meta(keys::META_VOTE, vote)?;
        // Durability: a vote must survive a crash or the node could vote twice in one term.
        self.db.flush_wal(true).map_err(io::Error::other)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let _running = self.watchdog.enter(StorageCall::LogMeta);
        // Not synced: the committed id is a hint for replay at start-up; losing the latest value
        // only means replaying less, and the leader re-sends the commit index.
        Ok(self.put_meta(keys::META_COMMITTED, &committed)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        let stored: Option<Option<LogIdOf<TypeConfig>>> = self.get_meta(keys::META_COMMITTED)?;
        Ok(stored.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let cf = cf_handle(&self.db, CF_RAFT_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                cf,
                keys::log_key(entry.index()),
                codec::encode("log entry", &entry)?,
            );
        }
        // Written (and readable) now; durable once the flusher has synced the WAL.
        let running = self.watchdog.enter(StorageCall::LogAppend);
        self.db.write(batch).map_err(io::Error::other)?;
        drop(running);
        self.flusher
            .send(callback)
            .map_err(|_| io::Error::other("log flusher thread has stopped"))
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let start = last_log_id.map(|id| id.index() + 1).unwrap_or(0);
        let cf = cf_handle(&self.db, CF_RAFT_LOG)?;
        let _running = self.watchdog.enter(StorageCall::LogMeta);
        // Not synced: entries that reappear after a crash are uncommitted and the leader
        // truncates them again; appends that follow are ordered after this in the WAL.
        self.db
            .delete_range_cf(cf, keys::log_key(start), keys::log_key(u64::MAX))
            .map_err(io::Error::other)?;
        self.db
            .delete_cf(cf, keys::log_key(u64::MAX))
            .map_err(io::Error::other)
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // Durability: purged entries must already be reflected in the state machine on disk,
        // whose batches skip the write-ahead log; the flush puts them there, and the sync makes
        // the purge marker durable before any entry is deleted.
        let (db, dog) = (self.db.clone(), self.watchdog.clone());
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || {
            let _running = dog.enter(StorageCall::StateFlush);
            crate::state_machine::flush_state(&db)
        })
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
        let flush_ms = started.elapsed().as_millis();
        tracing::debug!(
            flush_ms,
            upto = log_id.index(),
            "state flushed before log purge"
        );
        let _running = self.watchdog.enter(StorageCall::LogMeta);
        self.put_meta(keys::META_LAST_PURGED, &log_id)?;
        self.db.flush_wal(true).map_err(io::Error::other)?;
        let cf = cf_handle(&self.db, CF_RAFT_LOG)?;
        self.db
            .delete_range_cf(cf, keys::log_key(0), keys::log_key(log_id.index() + 1))
            .map_err(io::Error::other)
    }
}
