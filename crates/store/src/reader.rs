//! The read path: point reads, prefix scans and the state digest, straight from RocksDB.
//!
//! Readers never go through Raft; the server decides beforehand whether the local replica is
//! recent enough for the consistency the caller asked for.

use std::sync::Arc;

use licstore_model::{canonical, HolderKind, License};
use openraft::alias::LogIdOf;
use rocksdb::{Direction, IteratorMode, DB};

use crate::event::{Event, EventFilter};
use crate::keys::CF_SM_VARS;
use crate::keys::SM_DATA_CFS;
use crate::keys::{self, CF_CURRENT, CF_EVENTS, CF_HISTORY, CF_IDENT, CF_INDEX, CF_SM_META};
use crate::keys::{CF_POLICIES, CF_SEAL_KEYS};
use crate::query::{Pinned, Plan, Query, QueryPage};
use crate::txn::cf_handle;
use crate::{codec, StoreError, TypeConfig};
use licstore_seal::KeyRecord;

/// A stretch of the change feed, read from one snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventPage {
    /// Matching events, whole revisions only, in order.
    pub events: Vec<Event>,
    /// The revision to read from next: every event below it has been looked at.
    pub next_revision: u64,
    /// Log index the snapshot reflects; the feed is complete up to it.
    pub applied_index: u64,
    /// Oldest revision still in the feed.
    pub compacted_revision: u64,
}

/// The outcome of a change-feed read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedRead {
    /// Events from the requested revision on.
    Page(EventPage),
    /// The requested revision is below the oldest one retained.
    Compacted {
        /// Oldest revision still available.
        oldest: u64,
    },
}

/// Read access to the local replica.
#[derive(Clone)]
pub struct Reader {
    pub(crate) db: Arc<DB>,
}

/// A digest of the whole replicated state at one applied index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateDigest {
    /// Log index the state reflects.
    pub applied_index: u64,
    /// blake3 over every state-machine key and value, in column-family and key order, except
    /// the secondary indexes.
    pub digest: [u8; 32],
    /// Number of current license records.
    pub records: u64,
}

impl Reader {
    /// Writes the state visible now to a new snapshot file in `dir`, for a backup; see
    /// [`crate::backup::save`].
    pub fn save_backup(
        &self,
        dir: &std::path::Path,
    ) -> Result<(std::path::PathBuf, crate::snapshot::SnapshotMeta), StoreError> {
        crate::backup::save(&self.db, dir)
    }

    /// Wraps the database opened by [`crate::open`].
    pub fn new(db: Arc<DB>) -> Self {
        Reader { db }
    }

    /// Log index of the last applied entry, 0 before the first.
    pub fn applied_index(&self) -> Result<u64, StoreError> {
        applied_index_at(&self.db, None)
    }

    /// Current licenses of one type held by one holder: one point read for types held once,
    /// a prefix scan for types a holder may hold several times.
    pub fn get(
        &self,
        kind: HolderKind,
        holder_id: &str,
        type_code: &str,
    ) -> Result<Vec<License>, StoreError> {
        let cf = cf_handle(&self.db, CF_CURRENT)?;
        if let Some(bytes) = self
            .db
            .get_cf(cf, keys::current_key(kind, holder_id, type_code, ""))?
        {
            return Ok(vec![decode(&bytes)?]);
        }
        self.scan(&keys::holder_type_prefix(kind, holder_id, type_code))
    }

    /// [`Reader::get`] for many `(holder kind, holder id, type code)` at once: the point reads
    /// go to RocksDB as one batch (one pass over the memtables and files for all keys), and
    /// only the pairs without a single-instance record are scanned. Results in request order.
    pub fn get_many(
        &self,
        asked: &[(HolderKind, String, String)],
    ) -> Result<Vec<Vec<License>>, StoreError> {
        let cf = cf_handle(&self.db, CF_CURRENT)?;
        let point_keys: Vec<Vec<u8>> = asked
            .iter()
            .map(|(kind, id, type_code)| keys::current_key(*kind, id, type_code, ""))
            .collect();
        // Decoded before any scan, so no block stays pinned in the cache meanwhile.
        let points: Vec<Option<License>> = self
            .db
            .batched_multi_get_cf(cf, &point_keys, false)
            .into_iter()
            .map(|p| p?.map(|bytes| decode(&bytes)).transpose())
            .collect::<Result<_, StoreError>>()?;
        let mut out = Vec::with_capacity(asked.len());
        for ((kind, id, type_code), point) in asked.iter().zip(points) {
            out.push(match point {
                Some(license) => vec![license],
                None => self.scan(&keys::holder_type_prefix(*kind, id, type_code))?,
            });
        }
        Ok(out)
    }

    /// All current licenses of a holder, in type order.
    pub fn list_by_holder(
        &self,
        kind: HolderKind,
        holder_id: &str,
    ) -> Result<Vec<License>, StoreError> {
        self.scan(&keys::holder_prefix(kind, holder_id))
    }

    /// A license version by identifier: the current one or a superseded one.
    pub fn get_by_identifier(&self, identifier: &str) -> Result<Option<License>, StoreError> {
        let ident = cf_handle(&self.db, CF_IDENT)?;
        if let Some(ckey) = self.db.get_cf(ident, identifier.as_bytes())? {
            let current = cf_handle(&self.db, CF_CURRENT)?;
            if let Some(bytes) = self.db.get_cf(current, ckey)? {
                return Ok(Some(decode(&bytes)?));
            }
        }
        let history = cf_handle(&self.db, CF_HISTORY)?;
        match self.db.get_cf(history, identifier.as_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The record of a registered seal key.
    pub fn seal_key(&self, key_id: &licstore_seal::KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let key = keys::seal_key_record_key(key_id.as_bytes());
        match get_at(&self.db, None, CF_SEAL_KEYS, &key)? {
            Some(bytes) => Ok(Some(decode_key_record(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The key an authority's new licenses are sealed with, if it has one.
    pub fn active_seal_key(&self, authority: &str) -> Result<Option<KeyRecord>, StoreError> {
        let active = get_at(
            &self.db,
            None,
            CF_SEAL_KEYS,
            &keys::seal_active_key(authority),
        )?;
        let Some(id) = active.filter(|id| !id.is_empty()) else {
            return Ok(None);
        };
        let id: [u8; 16] = id
            .try_into()
            .map_err(|_| StoreError::corrupt("active seal key", "not 16 bytes"))?;
        self.seal_key(&licstore_seal::KeyId::from_bytes(id))
    }

    /// Every registered seal key, in key-id order.
    pub fn seal_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.scan_cf(CF_SEAL_KEYS, b"k", decode_key_record)
    }

    /// Every imported trust list's anchor, by root key id ascending.
    pub fn trust_anchors(&self) -> Result<Vec<crate::TrustAnchor>, StoreError> {
        self.scan_cf(CF_SEAL_KEYS, b"t", |bytes| {
            codec::decode("trust anchor", bytes)
        })
    }

    /// The root key id `authority` is trusted through, if it came with a trust list.
    pub fn trusted_via(&self, authority: &str) -> Result<Option<[u8; 16]>, StoreError> {
        let key = keys::trusted_authority_key(authority);
        crate::trust_anchors::decode_root_id(get_at(&self.db, None, CF_SEAL_KEYS, &key)?)
    }

    /// The fields `service_item` sees of licenses of `type_code` (none without a rule).
    pub fn disclosure_fields(
        &self,
        service_item: &str,
        type_code: &str,
    ) -> Result<Vec<String>, StoreError> {
        let key = keys::disclosure_rule_key(service_item, type_code);
        match get_at(&self.db, None, CF_POLICIES, &key)? {
            Some(bytes) => crate::policies::decode_fields(&bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Every disclosure rule, ordered by service item then type code.
    pub fn disclosure_rules(&self) -> Result<Vec<crate::DisclosureRule>, StoreError> {
        let cf = cf_handle(&self.db, CF_POLICIES)?;
        let mut rules = Vec::new();
        for item in self.db.prefix_iterator_cf(cf, b"d") {
            let (key, value) = item?;
            let Some(rest) = key.strip_prefix(b"d") else {
                break;
            };
            let mut parts = rest.splitn(2, |b| *b == 0);
            let (Some(item), Some(type_code)) = (parts.next(), parts.next()) else {
                return Err(StoreError::corrupt("disclosure rule key", "no separator"));
            };
            let text = |b: &[u8]| {
                String::from_utf8(b.to_vec())
                    .map_err(|e| StoreError::corrupt("disclosure rule key", e))
            };
            rules.push(crate::DisclosureRule {
                service_item: text(item)?,
                type_code: text(type_code)?,
                fields: crate::policies::decode_fields(&value)?,
            });
        }
        Ok(rules)
    }

    /// The principal registered under `name`, from the latest applied state.
    pub fn principal(&self, name: &str) -> Result<Option<crate::Principal>, StoreError> {
        let key = keys::principal_key(name);
        match get_at(&self.db, None, CF_POLICIES, &key)? {
            Some(bytes) => crate::principals::decode_principal(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the bearer token `jti` is revoked.
    pub fn token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let key = keys::revoked_token_key(jti);
        Ok(get_at(&self.db, None, CF_POLICIES, &key)?.is_some())
    }

    /// Every revoked token still kept, in id order.
    pub fn revoked_tokens(&self) -> Result<Vec<crate::revoked_tokens::RevokedToken>, StoreError> {
        let cf = cf_handle(&self.db, CF_POLICIES)?;
        let mut out = Vec::new();
        let mode = IteratorMode::From(b"x", Direction::Forward);
        for item in self.db.iterator_cf(cf, mode) {
            let (key, value) = item?;
            if key.first() != Some(&b'x') {
                break;
            }
            out.push(crate::revoked_tokens::RevokedToken {
                jti: String::from_utf8_lossy(&key[1..]).into_owned(),
                expires_at_s: crate::revoked_tokens::decode_expiry(&value)?,
            });
        }
        Ok(out)
    }

    /// Every principal, in name order.
    pub fn principals(&self) -> Result<Vec<crate::Principal>, StoreError> {
        self.policies_under(b'p', crate::principals::decode_principal)
    }

    /// The service item registered under `name`, from the latest applied state.
    pub fn service_item(&self, name: &str) -> Result<Option<crate::ServiceItem>, StoreError> {
        let key = keys::service_item_key(name);
        match get_at(&self.db, None, CF_POLICIES, &key)? {
            Some(bytes) => crate::service_items::decode_service_item(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every service item, in name order.
    pub fn service_items(&self) -> Result<Vec<crate::ServiceItem>, StoreError> {
        self.policies_under(b'i', crate::service_items::decode_service_item)
    }

    /// The decoded values of the `policies` keys tagged `tag`, in key order.
    fn policies_under<T>(
        &self,
        tag: u8,
        decode: fn(&[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let cf = cf_handle(&self.db, CF_POLICIES)?;
        let mut out = Vec::new();
        let from = [tag];
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(&from, Direction::Forward))
        {
            let (key, value) = item?;
            if key.first() != Some(&tag) {
                break;
            }
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// One value of a state-machine family, read from the latest state.
    pub(crate) fn get_cf_bytes(
        &self,
        cf: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        get_at(&self.db, None, cf, key)
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<License>, StoreError> {
        self.scan_cf(CF_CURRENT, prefix, decode)
    }

    /// Every value under `prefix` in `cf`, decoded, in key order.
    fn scan_cf<T>(
        &self,
        cf: &'static str,
        prefix: &[u8],
        decode: fn(&[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let cf = cf_handle(&self.db, cf)?;
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(cf, IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(decode(&value)?);
        }
        Ok(out)
    }

    /// Reads the change feed from `from_revision` on: events passing `filter`, until `max_events`
    /// match or `max_scanned` are read, always finishing the revision it is in.
    pub fn events(
        &self,
        from_revision: u64,
        filter: &EventFilter,
        max_events: usize,
        max_scanned: usize,
    ) -> Result<FeedRead, StoreError> {
        let snap = self.db.snapshot();
        let compacted_revision = compacted_revision_at(&self.db, Some(&snap))?;
        if from_revision < compacted_revision {
            return Ok(FeedRead::Compacted {
                oldest: compacted_revision,
            });
        }
        let applied_index = applied_index_at(&self.db, Some(&snap))?;
        let mut page = EventPage {
            next_revision: from_revision.max(applied_index + 1),
            applied_index,
            compacted_revision,
            ..EventPage::default()
        };
        let start = keys::event_key(from_revision, 0);
        let mode = IteratorMode::From(&start, Direction::Forward);
        let (mut scanned, mut last_revision) = (0usize, None);
        for item in snap.iterator_cf(cf_handle(&self.db, CF_EVENTS)?, mode) {
            let (key, value) = item?;
            let (revision, _) = keys::event_key_parts(&key)
                .ok_or_else(|| StoreError::corrupt("event key", "length"))?;
            let full = page.events.len() >= max_events || scanned >= max_scanned;
            if full && last_revision != Some(revision) {
                page.next_revision = revision;
                break;
            }
            scanned += 1;
            last_revision = Some(revision);
            let event: Event = codec::decode("event", &value)?;
            if filter.matches(&event) {
                page.events.push(event);
            }
        }
        Ok(FeedRead::Page(page))
    }

    /// Oldest revision still in the change feed (0 before any compaction).
    pub fn compacted_revision(&self) -> Result<u64, StoreError> {
        compacted_revision_at(&self.db, None)
    }

    /// One page of a planned query over the current state; see [`crate::query::run`].
    pub fn query(
        &self,
        query: &Query,
        plan: &Plan,
        cursor: Option<&[u8]>,
        page_size: usize,
    ) -> Result<QueryPage, StoreError> {
        crate::query::run(&self.pin()?, query, plan, cursor, page_size)
    }

    /// Pins the current state for a query that will span several pages.
    pub fn pin(&self) -> Result<Pinned, StoreError> {
        Pinned::new(self.db.clone())
    }

    /// Walks every record and index entry; see [`crate::check`].
    pub fn check(&self) -> Result<crate::CheckReport, StoreError> {
        crate::check::check(&self.db)
    }

    /// Digest of the whole state machine, read from one consistent RocksDB snapshot.
    pub fn state_digest(&self) -> Result<StateDigest, StoreError> {
        let snap = self.db.snapshot();
        let applied_index = applied_index_at(&self.db, Some(&snap))?;
        let mut hasher = blake3::Hasher::new();
        let mut records = 0u64;
        // Secondary-index entries are left out: they are derived from `current`, `check`
        // verifies them against it, and they are most of the keys.
        for name in SM_DATA_CFS.into_iter().filter(|n| *n != CF_INDEX) {
            hasher.update(name.as_bytes());
            for item in snap.iterator_cf(cf_handle(&self.db, name)?, IteratorMode::Start) {
                let (key, value) = item?;
                hasher.update(&(key.len() as u64).to_le_bytes());
                hasher.update(&key);
                hasher.update(&(value.len() as u64).to_le_bytes());
                hasher.update(&value);
                if name == CF_CURRENT {
                    records += 1;
                }
            }
        }
        Ok(StateDigest {
            applied_index,
            digest: *hasher.finalize().as_bytes(),
            records,
        })
    }
}

/// Reads a state-machine value as of `snap`, or as of now without one.
pub(crate) fn get_at(
    db: &DB,
    snap: Option<&rocksdb::Snapshot<'_>>,
    cf: &'static str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let cf = cf_handle(db, cf)?;
    Ok(match snap {
        Some(s) => s.get_cf(cf, key)?,
        None => db.get_cf(cf, key)?,
    })
}

/// Log index of the last applied entry as of `snap` (or now), 0 before the first.
pub(crate) fn applied_index_at(
    db: &DB,
    snap: Option<&rocksdb::Snapshot<'_>>,
) -> Result<u64, StoreError> {
    match get_at(db, snap, CF_SM_META, keys::META_LAST_APPLIED)? {
        Some(b) => Ok(codec::decode::<LogIdOf<TypeConfig>>("last applied", &b)?.index()),
        None => Ok(0),
    }
}

/// The change feed's compaction revision as of `snap` (or now), 0 before any compaction.
pub(crate) fn compacted_revision_at(
    db: &DB,
    snap: Option<&rocksdb::Snapshot<'_>>,
) -> Result<u64, StoreError> {
    match get_at(db, snap, CF_SM_VARS, keys::VAR_COMPACTED)? {
        Some(b) => crate::apply::decode_u64("compaction revision", &b),
        None => Ok(0),
    }
}

fn decode_key_record(bytes: &[u8]) -> Result<KeyRecord, StoreError> {
    KeyRecord::from_bytes(bytes).map_err(|e| StoreError::corrupt("seal key record", e))
}

fn decode(bytes: &[u8]) -> Result<License, StoreError> {
    canonical::decode(bytes).map_err(|e| StoreError::corrupt("license", e))
}
