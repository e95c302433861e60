//! The replicated state machine in RocksDB: openraft's `RaftStateMachine` and snapshot builder.
//!
//! Each apply call writes the records, indexes, request results and the last-applied log id in
//! one write batch, so a crash never leaves them out of step. The batch skips the write-ahead
//! log: the entries it applies are already durable in the Raft log, and openraft re-applies them
//! after a crash (see `save_committed`). What is on disk is therefore the state of the last
//! memtable flush, which is atomic across families; `flush_state` forces one before the log
//! behind the applied state is purged.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use licstore_model::TemplateRegistry;
use openraft::alias::{LogIdOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{FlushOptions, WriteBatch, WriteOptions, DB};

use crate::apply::Applier;
use crate::keys::{self, CF_SM_META, SM_DATA_CFS};
use crate::snapshot::{self, SnapshotFile, SnapshotMeta};
use crate::txn::{cf_handle, Txn};
use crate::watchdog::{StorageCall, Watchdog};
use crate::{codec, CommandResult, StoreError, TypeConfig};

type Applied = (Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>);

/// Bytes of records per write batch while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The state machine. Cloning shares the database.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    snapshot_dir: PathBuf,
    templates: Arc<TemplateRegistry>,
    /// Last applied log index, published after each batch reaches the database; change-feed
    /// readers wait on it instead of polling.
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// Applies register here while they run.
    watchdog: Arc<Watchdog>,
}

impl StateMachine {
    /// Opens the state machine and finishes a snapshot install that a crash interrupted.
    pub fn open(
        db: Arc<DB>,
        snapshot_dir: PathBuf,
        templates: Arc<TemplateRegistry>,
        watchdog: Arc<Watchdog>,
    ) -> Result<Self, StoreError> {
        let sm = StateMachine {
            db,
            snapshot_dir,
            templates,
            applied: Arc::new(tokio::sync::watch::Sender::new(0)),
            watchdog,
        };
        let meta_cf = cf_handle(&sm.db, CF_SM_META)?;
        if let Some(name) = sm.db.get_cf(meta_cf, keys::META_INSTALLING)? {
            let name = String::from_utf8_lossy(&name).to_string();
            tracing::warn!(snapshot = %name, "resuming an interrupted snapshot install");
            let path = sm.snapshot_dir.join(&name);
            let meta = snapshot::verify(&path)?;
            sm.install_file(&path, &meta)?;
        }
        snapshot::prune(&sm.snapshot_dir, true)?;
        let (last, _) = sm.read_applied()?;
        sm.applied
            .send_replace(last.map(|l| l.index()).unwrap_or(0));
        Ok(sm)
    }

    /// Follows the last applied log index; it changes only after the state it names is
    /// readable from the database.
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The snapshot folder; received snapshots are written here before install.
    pub fn snapshot_dir(&self) -> &Path {
        &self.snapshot_dir
    }

    /// Last applied log id and membership as stored.
    pub fn read_applied(&self) -> Result<Applied, StoreError> {
        read_applied_from(&self.db, None)
    }

    /// Applies one command into `txn` at log index `index`.
    fn apply_command(
        &self,
        txn: &mut Txn<'_>,
        index: u64,
        cmd: &crate::Command,
    ) -> Result<CommandResult, StoreError> {
        #[cfg(feature = "fault-injection")]
        if crate::fault::drops(crate::fault::drop_amend_every(), index, cmd) {
            // Decided against the database and answered, but written to a batch nobody keeps.
            let mut scratch = Txn::new(&self.db);
            return self.apply_command_unfaulted(&mut scratch, index, cmd);
        }
        self.apply_command_unfaulted(txn, index, cmd)
    }

    fn apply_command_unfaulted(
        &self,
        txn: &mut Txn<'_>,
        index: u64,
        cmd: &crate::Command,
    ) -> Result<CommandResult, StoreError> {
        let mut applier = Applier {
            txn,
            templates: &self.templates,
            index,
            events: 0,
        };
        applier.apply(cmd)
    }

    /// Applies `entries` as one write batch and returns their results in order: what
    /// openraft's `apply` does, without the responders.
    pub fn apply_batch(
        &self,
        entries: Vec<openraft::alias::EntryOf<TypeConfig>>,
    ) -> Result<Vec<CommandResult>, StoreError> {
        let _running = self.watchdog.enter(StorageCall::Apply);
        let mut txn = Txn::new(&self.db);
        let mut results = Vec::with_capacity(entries.len());
        let mut last = None;
        let mut membership = None;
        for entry in entries {
            let log_id = entry.log_id();
            let result = match entry.payload {
                EntryPayload::Blank => CommandResult::None,
                EntryPayload::Normal(cmd) => self.apply_command(&mut txn, log_id.index(), &cmd)?,
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembershipOf::<TypeConfig>::new(Some(log_id), m));
                    CommandResult::None
                }
            };
            results.push(result);
            last = Some(log_id);
        }
        if let Some(last) = &last {
            txn.put(
                CF_SM_META,
                keys::META_LAST_APPLIED,
                codec::encode("last applied", last)?,
            )?;
        }
        if let Some(m) = &membership {
            txn.put(
                CF_SM_META,
                keys::META_MEMBERSHIP,
                codec::encode("membership", m)?,
            )?;
        }
        let started = std::time::Instant::now();
        // Not logged: see the module doc. Records, indexes and last-applied land together.
        let mut no_wal = WriteOptions::default();
        no_wal.disable_wal(true);
        self.db.write_opt(txn.into_batch(), &no_wal)?;
        metrics::histogram!(crate::db::BACKEND_COMMIT_SECONDS).record(started.elapsed());
        if let Some(last) = &last {
            self.applied.send_replace(last.index());
        }
        Ok(results)
    }

    /// Replaces the whole state with the snapshot in `path`. Resumable: the name of the file
    /// is recorded first, and a restart that finds it repeats the install.
    pub(crate) fn install_file(&self, path: &Path, meta: &SnapshotMeta) -> Result<(), StoreError> {
        let meta_cf = cf_handle(&self.db, CF_SM_META)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        // Each write registers anew: the install as a whole may take minutes, one write not.
        let install = StorageCall::SnapshotInstall;
        // Durability: the marker must be on disk before any record is replaced.
        let running = self.watchdog.enter(install);
        self.db
            .put_cf_opt(meta_cf, keys::META_INSTALLING, name.as_bytes(), &sync)?;
        drop(running);
        for name in SM_DATA_CFS {
            let _running = self.watchdog.enter(install);
            clear_cf(&self.db, name)?;
        }
        let file = std::fs::File::open(path)?;
        let mut records = snapshot::Records::new(std::io::BufReader::new(file), path)?;
        let mut batch = WriteBatch::default();
        while let Some((cf, key, value)) = records.next_record()? {
            batch.put_cf(cf_handle(&self.db, cf)?, key, value);
            if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
                let _running = self.watchdog.enter(install);
                self.db.write(std::mem::take(&mut batch))?;
            }
        }
        match &meta.last_log_id {
            Some(id) => batch.put_cf(
                meta_cf,
                keys::META_LAST_APPLIED,
                codec::encode("last applied", id)?,
            ),
            None => batch.delete_cf(meta_cf, keys::META_LAST_APPLIED),
        }
        batch.put_cf(
            meta_cf,
            keys::META_MEMBERSHIP,
            codec::encode("membership", &meta.last_membership)?,
        );
        batch.delete_cf(meta_cf, keys::META_INSTALLING);
        // Durability: the install is complete only when this batch, and all before it, are synced.
        let running = self.watchdog.enter(install);
        self.db.write_opt(batch, &sync)?;
        drop(running);
        let index = meta.last_log_id.as_ref().map(|l| l.index()).unwrap_or(0);
        self.applied.send_replace(index);
        Ok(())
    }

    pub(crate) fn build(&self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, StoreError> {
        let snap = self.db.snapshot();
        // Durability: after this flush the state on disk is at least as new as the snapshot,
        // so a node that crashes re-applies its log from there instead of installing the
        // whole snapshot again at start-up.
        let running = self.watchdog.enter(StorageCall::SnapshotFlush);
        flush_state(&self.db)?;
        drop(running);
        let (last_log_id, last_membership) = read_applied_from(&self.db, Some(&snap))?;
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        let path = snapshot::write(&self.db, &snap, &meta, &self.snapshot_dir)?;
        let file = SnapshotFile::open(&path)?;
        snapshot::prune(&self.snapshot_dir, false)?;
        tracing::info!(path = %path.display(), index = ?meta.last_log_id, "built snapshot");
        Ok(SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: file,
        })
    }
}

/// Writes the state machine's memtables to disk in one atomic flush and waits for it, so the
/// applied state on disk is at least as new as when this was called.
pub(crate) fn flush_state(db: &DB) -> Result<(), StoreError> {
    let mut cfs = Vec::with_capacity(SM_DATA_CFS.len() + 1);
    for name in SM_DATA_CFS.iter().chain([&CF_SM_META]) {
        cfs.push(cf_handle(db, name)?);
    }
    let mut wait = FlushOptions::default();
    wait.set_wait(true);
    Ok(db.flush_cfs_opt(&cfs, &wait)?)
}

/// Deletes every key of a column family: one range delete for keys below 0xFF (all text keys
/// and every event key of a realistic revision), then one by one for any key at or above it.
fn clear_cf(db: &DB, name: &'static str) -> Result<(), StoreError> {
    let cf = cf_handle(db, name)?;
    db.delete_range_cf(cf, b"".as_slice(), b"\xff".as_slice())?;
    let mode = rocksdb::IteratorMode::From(b"\xff", rocksdb::Direction::Forward);
    let rest: Vec<Box<[u8]>> = db
        .iterator_cf(cf, mode)
        .map(|item| item.map(|(k, _)| k))
        .collect::<Result<_, _>>()?;
    for key in rest {
        db.delete_cf(cf, key)?;
    }
    Ok(())
}

/// Reads last-applied and membership, from a DB snapshot when given.
pub(crate) fn read_applied_from(
    db: &DB,
    snap: Option<&rocksdb::Snapshot<'_>>,
) -> Result<Applied, StoreError> {
    let cf = cf_handle(db, CF_SM_META)?;
    let get = |key: &[u8]| match snap {
        Some(s) => s.get_cf(cf, key),
        None => db.get_cf(cf, key),
    };
    let last: Option<LogIdOf<TypeConfig>> = match get(keys::META_LAST_APPLIED)? {
        Some(b) => Some(codec::decode("last applied", &b)?),
        None => None,
    };
    let membership: StoredMembershipOf<TypeConfig> = match get(keys::META_MEMBERSHIP)? {
        Some(b) => codec::decode("membership", &b)?,
        None => StoredMembershipOf::<TypeConfig>::default(),
    };
    Ok((last, membership))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        let sm = self.clone();
        let (done, built) = tokio::sync::oneshot::channel();
        // A thread of its own at a lower priority: a build copies the whole state, and every
        // replica starts one at the same log index, so on shared cores it would otherwise
        // starve the reads and heartbeats served meanwhile.
        let spawned = std::thread::Builder::new()
            .name("snapshot-build".into())
            .spawn({
                let sm = sm.clone();
                move || {
                    lower_thread_priority();
                    let _ = done.send(sm.build());
                }
            });
        if let Err(error) = spawned {
            // Out of threads: build on the blocking pool at normal priority rather than fail.
            tracing::warn!(%error, "cannot start a snapshot thread; building on the blocking pool");
            let built = tokio::task::spawn_blocking(move || sm.build())
                .await
                .map_err(io::Error::other)?;
            return Ok(built?);
        }
        let built = built
            .await
            .map_err(|_| io::Error::other("snapshot build thread ended without a result"))?;
        Ok(built?)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<Applied, io::Error> {
        Ok(self.read_applied()?)
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Vec::new();
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            batch.push(entry);
            responders.push(responder);
        }
        let sm = self.clone();
        let results = tokio::task::spawn_blocking(move || sm.apply_batch(batch))
            .await
            .map_err(io::Error::other)??;
        for (responder, result) in responders.into_iter().zip(results) {
            if let Some(r) = responder {
                r.send(result);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let sm = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let checked = snapshot::verify(&snapshot.path)?;
            if checked.last_log_id != meta.last_log_id {
                return Err(StoreError::BadSnapshot {
                    path: snapshot.path.display().to_string(),
                    reason: format!(
                        "file covers {:?}, meta says {:?}",
                        checked.last_log_id, meta.last_log_id
                    ),
                });
            }
            let index = meta.last_log_id.as_ref().map(|l| l.index()).unwrap_or(0);
            let dest = sm.snapshot_dir.join(snapshot::file_name(index));
            if snapshot.path != dest {
                std::fs::rename(&snapshot.path, &dest)?;
                snapshot::sync_dir(&sm.snapshot_dir)?;
            }
            sm.install_file(&dest, &meta)?;
            metrics::counter!(crate::db::SNAPSHOT_INSTALLS).increment(1);
            snapshot::prune(&sm.snapshot_dir, false)?;
            tracing::info!(index, "installed snapshot");
            Ok(())
        })
        .await
        .map_err(io::Error::other)??;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        let Some(path) = snapshot::list(&self.snapshot_dir)?.pop() else {
            return Ok(None);
        };
        let meta = snapshot::read_meta(&path)?;
        Ok(Some(SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: SnapshotFile::open(&path)?,
        }))
    }
}

/// Nice value of background threads that copy the whole state (snapshot builds).
pub const BACKGROUND_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`BACKGROUND_NICE`] unless it is already that
/// low. Best effort: a failure only leaves the thread at its normal priority.
#[cfg(target_os = "linux")]
pub fn lower_thread_priority() {
    // SAFETY: gettid has no preconditions; getpriority and setpriority on PRIO_PROCESS with a
    // thread id read or change the nice value of that one thread on Linux and touch no memory.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::getpriority(libc::PRIO_PROCESS, tid) >= BACKGROUND_NICE {
            return;
        }
        libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE)
    };
    if rc != 0 {
        let error = io::Error::last_os_error();
        tracing::debug!(%error, "cannot lower this thread's priority");
    }
}

/// Elsewhere nice values are per process, so the thread keeps its priority.
#[cfg(not(target_os = "linux"))]
pub fn lower_thread_priority() {}
