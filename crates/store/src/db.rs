//! Opening the RocksDB instance that holds the Raft log and the state machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use licstore_model::TemplateRegistry;
use rocksdb::statistics::{StatsLevel, Ticker};
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options, DB};

use crate::keys::{ALL_CFS, CF_RAFT_LOG};
use crate::watchdog::Watchdog;
use crate::{LogStore, StateMachine, StoreError};

/// Block cache shared by all column families, in bytes.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Memtables of all column families together, in bytes.
pub const DEFAULT_MEMTABLE_BUDGET_BYTES: usize = 256 * 1024 * 1024;

/// Size at which RocksDB's info log (`LOG`) rolls over, in bytes.
pub const INFO_LOG_FILE_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Rolled-over info logs kept; with the current one, at most 40 MiB of them.
pub const INFO_LOG_FILES_KEPT: usize = 4;

/// Histogram of Raft log syncs (the flusher's WAL fsync), in seconds; etcd's
/// `etcd_disk_wal_fsync_duration_seconds`.
pub const WAL_FSYNC_SECONDS: &str = "licstore_disk_wal_fsync_duration_seconds";
/// Histogram of state-machine batch writes, in seconds; etcd's
/// `etcd_disk_backend_commit_duration_seconds`.
pub const BACKEND_COMMIT_SECONDS: &str = "licstore_disk_backend_commit_duration_seconds";

/// Counter of whole-state installs into the state machine: snapshots from a leader, and this
/// node's own latest snapshot when it starts with an applied state older than it.
pub const SNAPSHOT_INSTALLS: &str = "licstore_snapshot_installs_total";

/// An opened data directory: the log store and the state machine over one database.
pub struct Storage {
    /// The Raft log and vote.
    pub log_store: LogStore,
    /// The replicated state machine.
    pub state_machine: StateMachine,
    /// The database, for readers.
    pub db: Arc<DB>,
    /// Size and cache figures for monitoring.
    pub stats: DbStats,
    /// The log and state-machine writes in flight, for the server's stall check.
    pub watchdog: Arc<Watchdog>,
}

/// Size and block-cache figures of an open database, read on demand for monitoring.
#[derive(Clone)]
pub struct DbStats {
    db: Arc<DB>,
    cache: Cache,
    /// Holds the statistics object RocksDB fills in.
    options: Arc<Options>,
}

/// One reading of [`DbStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbFigures {
    /// Live SST files plus memtables over every column family, in bytes.
    pub total_size_bytes: u64,
    /// Bytes held in the block cache.
    pub block_cache_usage_bytes: u64,
    /// Block-cache hits since the database was opened.
    pub block_cache_hits: u64,
    /// Block-cache misses since the database was opened.
    pub block_cache_misses: u64,
    /// Background errors (failed flushes and compactions) since the database was opened.
    pub background_errors: u64,
    /// Whether RocksDB is holding every write back (a write stall in its stop state).
    pub write_stopped: bool,
}

impl DbStats {
    /// Reads the current figures. Cheap: properties and counters, no I/O.
    pub fn read(&self) -> DbFigures {
        let mut total_size_bytes = 0;
        for name in ALL_CFS {
            let Some(cf) = self.db.cf_handle(name) else {
                continue;
            };
            for property in [
                "rocksdb.total-sst-files-size",
                "rocksdb.cur-size-all-mem-tables",
            ] {
                let value = self.db.property_int_value_cf(&cf, property);
                total_size_bytes += value.ok().flatten().unwrap_or(0);
            }
        }
        DbFigures {
            total_size_bytes,
            block_cache_usage_bytes: self.cache.get_usage() as u64,
            block_cache_hits: self.options.get_ticker_count(Ticker::BlockCacheHit),
            block_cache_misses: self.options.get_ticker_count(Ticker::BlockCacheMiss),
            background_errors: self.int_property("rocksdb.background-errors"),
            write_stopped: self.int_property("rocksdb.is-write-stopped") != 0,
        }
    }

    fn int_property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }
}

fn cf_options(name: &str, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Ten bits per key: point reads by (holder, type) skip files that cannot hold the key.
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_compression_per_level(&compression_per_level(name));
    opts
}

/// Compression by level. Log entries are never compressed: they are deleted once a snapshot
/// covers them, so compressing them on every flush and compaction buys nothing. Elsewhere
/// level 0 is written as it is, since a flush runs on every memtable switch and its files are
/// soon compacted into the level below, which like every lower level is LZ4-compressed (with
/// dynamic level sizes, entry 1 applies to whichever level level 0 compacts into).
pub fn compression_per_level(cf: &str) -> Vec<DBCompressionType> {
    let mut levels = vec![DBCompressionType::Lz4; LEVELS];
    levels[0] = DBCompressionType::None;
    if cf == CF_RAFT_LOG {
        levels.fill(DBCompressionType::None);
    }
    levels
}

/// RocksDB's default number of levels.
const LEVELS: usize = 7;

/// Tunables of the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Block cache shared by all column families, in bytes.
    pub block_cache_bytes: usize,
    /// Memtables of all column families together, in bytes: past it RocksDB flushes (all
    /// families at once, see `atomic_flush`). Without it each of the twelve families could
    /// hold two 64 MiB memtables.
    pub memtable_budget_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
            memtable_budget_bytes: DEFAULT_MEMTABLE_BUDGET_BYTES,
        }
    }
}

/// [`open_with`] and the default options.
pub fn open(dir: &Path) -> Result<Storage, StoreError> {
    open_with(dir, &StoreOptions::default())
}

/// Opens (creating if needed) the database under `dir/db` and the snapshot folder
/// `dir/snapshots`, and finishes any snapshot install that a crash interrupted.
pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Storage, StoreError> {
    std::fs::create_dir_all(dir)?;
    let cache = Cache::new_lru_cache(options.block_cache_bytes);
    let mut db_opts = Options::default();
    db_opts.create_if_missing(true);
    db_opts.create_missing_column_families(true);
    db_opts.set_max_background_jobs(2);
    // The state machine's batches skip the write-ahead log (the Raft log already holds them).
    // Flushing all families together keeps what is on disk a state that existed: records,
    // indexes and last-applied from the same moment.
    db_opts.set_atomic_flush(true);
    db_opts.set_db_write_buffer_size(options.memtable_budget_bytes);
    // Left alone, RocksDB's info log grows without bound until a restart; with a small memtable
    // budget (a flush every few writes) it filled a 128 MiB data disk within two minutes.
    db_opts.set_max_log_file_size(INFO_LOG_FILE_MAX_BYTES);
    db_opts.set_keep_log_file_num(INFO_LOG_FILES_KEPT);
    // Tickers only (no timers): block-cache hits and misses for monitoring, at little cost.
    db_opts.enable_statistics();
    db_opts.set_statistics_level(StatsLevel::ExceptTimers);
    let cfs = ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(name, &cache)));
    let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir.join("db"), cfs)?);
    let snapshot_dir: PathBuf = dir.join("snapshots");
    std::fs::create_dir_all(&snapshot_dir)?;
    let templates = Arc::new(TemplateRegistry::builtin());
    let watchdog = Watchdog::new();
    let state_machine = StateMachine::open(db.clone(), snapshot_dir, templates, watchdog.clone())?;
    let stats = DbStats {
        db: db.clone(),
        cache,
        options: Arc::new(db_opts),
    };
    Ok(Storage {
        log_store: LogStore::new(db.clone(), watchdog.clone()),
        state_machine,
        db,
        stats,
        watchdog,
    })
}
