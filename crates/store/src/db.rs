//! Opening the RocksDB instance that holds the Raft log and the state machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use licstore_model::TemplateRegistry;
use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, DB};

use crate::keys::ALL_CFS;
use crate::{LogStore, StateMachine, StoreError};

/// Block cache shared by all column families, in bytes.
pub const DEFAULT_BLOCK_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// An opened data directory: the log store and the state machine over one database.
pub struct Storage {
    /// The Raft log and vote.
    pub log_store: LogStore,
    /// The replicated state machine.
    pub state_machine: StateMachine,
    /// The database, for readers.
    pub db: Arc<DB>,
}

fn cf_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    // Ten bits per key: point reads by (holder, type) skip files that cannot hold the key.
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts
}

/// Tunables of the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Block cache shared by all column families, in bytes.
    pub block_cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
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
    let cfs = ALL_CFS
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, cf_options(&cache)));
    let db = Arc::new(DB::open_cf_descriptors(&db_opts, dir.join("db"), cfs)?);
    let snapshot_dir: PathBuf = dir.join("snapshots");
    std::fs::create_dir_all(&snapshot_dir)?;
    let templates = Arc::new(TemplateRegistry::builtin());
    let state_machine = StateMachine::open(db.clone(), snapshot_dir, templates)?;
    Ok(Storage {
        log_store: LogStore::new(db.clone()),
        state_machine,
        db,
    })
}
