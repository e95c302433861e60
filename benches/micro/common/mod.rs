//! Shared by the micro-benchmarks: generated records as store commands, and a RocksDB store
//! in a temporary directory that commands are applied to the way Raft applies them.
//!
//! Records come from `licctl gen`'s generator with a fixed seed and as-of date, so every run
//! measures the same data. They become [`ImportItem`]s as the server's import path makes them
//! (template already resolved by the generator, holder id uppercase, status and reason parsed),
//! without its validation: commands reach the state machine already validated.

// Each bench binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::io;

use futures::stream;
use licstore_cli::dataset::Record;
use licstore_cli::gen::Generator;
use licstore_model::{Date, Holder, HolderKind, Issuer, LicenseStatus, NewLicense};
use licstore_store::{open, Command, ImportItem, Reader, Storage, TypeConfig};
use openraft::alias::EntryOf;
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::testing::log_id;

/// Seed of the generated dataset.
pub const SEED: u64 = 20_260_101;

/// The generator's as-of date: records are valid (or expired) on it.
pub fn as_of() -> Date {
    Date::new(2026, 1, 1).expect("fixed date")
}

/// The generator of the benchmark dataset.
pub fn generator(seed: u64) -> Generator {
    Generator::new(seed, as_of()).expect("generator")
}

/// A lookup key: what `Reader::get` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// Holder kind.
    pub kind: HolderKind,
    /// Citizen ID number or USCC.
    pub holder_id: String,
    /// 21-character type code.
    pub type_code: String,
}

impl Key {
    /// The key a created license is stored under.
    pub fn of(item: &ImportItem) -> Key {
        let license = &item.license;
        Key {
            kind: license.holder.kind,
            holder_id: license.holder.id.clone(),
            type_code: license.type_code.clone(),
        }
    }
}

fn date(text: &str) -> Date {
    Date::parse(text).expect("generated date")
}

/// The model form of a generated record's content.
pub fn new_license(record: &Record) -> NewLicense {
    let l = &record.license;
    NewLicense {
        type_code: l.type_code.clone(),
        holder: Holder {
            kind: l.holder.kind.parse().expect("generated holder kind"),
            id: l.holder.id.trim().to_uppercase(),
            name: l.holder.name.clone(),
            legacy_checksum: false,
        },
        license_number: l.license_number.clone(),
        issuer: Issuer {
            code: l.issuer.code.clone(),
            name: l.issuer.name.clone(),
        },
        issue_date: date(&l.issue_date),
        valid_from: date(&l.valid_from),
        valid_until: (!l.valid_until.is_empty()).then(|| date(&l.valid_until)),
        region_code: l.region_code.clone(),
        face: l.face.clone(),
        serial: (!l.serial.is_empty()).then(|| l.serial.clone()),
    }
}

/// A generated record as one item of an import, under `request_id`.
pub fn import_item(record: &Record, request_id: String) -> ImportItem {
    let reason = &record.status_reason;
    ImportItem {
        request_id,
        identifier: (!record.identifier.is_empty()).then(|| record.identifier.clone()),
        license: new_license(record),
        legacy_checksum: false,
        status: record.status.parse().expect("generated status"),
        status_reason: (!reason.is_empty()).then(|| reason.clone()),
        seal: Vec::new(),
        serial_derived: false,
    }
}

/// Generated items, numbered request ids `<prefix>-<n>`, endlessly.
pub fn items(seed: u64, prefix: &'static str) -> impl Iterator<Item = ImportItem> {
    let mut generator = generator(seed);
    let mut n = 0u64;
    std::iter::from_fn(move || {
        n += 1;
        Some(import_item(
            &generator.next_record(),
            format!("{prefix}-{n}"),
        ))
    })
}

/// Generated items that a new issue could carry: status valid, no reason.
pub fn valid_items(seed: u64, prefix: &'static str) -> impl Iterator<Item = ImportItem> {
    items(seed, prefix).filter(|item| item.status == LicenseStatus::Valid)
}

/// A store in its own temporary directory, with the next log index to apply at.
pub struct BenchStore {
    storage: Storage,
    next_index: u64,
    runtime: tokio::runtime::Runtime,
    // Last: the directory is removed after the database is closed.
    _dir: tempfile::TempDir,
}

impl BenchStore {
    /// An empty store with default options.
    pub fn new() -> BenchStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = open(dir.path()).expect("open store");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        BenchStore {
            storage,
            next_index: 1,
            runtime,
            _dir: dir,
        }
    }

    /// Applies `commands` in one state-machine apply call, one log entry each, at the next
    /// log indexes. Results are not collected (no responders), as on a follower.
    pub fn apply(&mut self, commands: Vec<Command>) {
        let first = self.next_index;
        self.next_index += commands.len() as u64;
        let entries: Vec<Result<EntryResponder<TypeConfig>, io::Error>> = commands
            .into_iter()
            .zip(first..)
            .map(|(command, index)| {
                let id = log_id::<TypeConfig>(1, 1, index);
                Ok((EntryOf::<TypeConfig>::new_normal(id, command), None))
            })
            .collect();
        let sm = &mut self.storage.state_machine;
        let applied = self.runtime.block_on(sm.apply(stream::iter(entries)));
        applied.expect("apply");
    }

    /// A reader of the store.
    pub fn reader(&self) -> Reader {
        Reader::new(self.storage.db.clone())
    }

    /// Live SST files plus memtables, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.storage.stats.read().total_size_bytes
    }

    /// Number of current licenses, by a count over the listing index.
    pub fn current_count(&self) -> u64 {
        let query = licstore_store::query::Query::default();
        let plan = licstore_store::query::plan(&query).expect("plan");
        let page = self.reader().query(&query, &plan, None, 0).expect("count");
        page.count
    }
}
