//! A write batch with read-your-writes, used while applying a batch of log entries.
//!
//! Later entries in one apply call must see what earlier ones wrote, but nothing may reach the
//! database until the whole batch, with the new last-applied log id, is written at once.
//!
//! Families that applying only ever writes ([`WRITE_ONLY_CFS`]) are kept out of the
//! read-your-writes overlay: most keys of a new license go there, and copying each of them
//! into a map cost as much as writing it.

use std::collections::{BTreeMap, HashMap};

use rocksdb::{WriteBatch, DB};

use crate::keys::{CF_EVENTS, CF_INDEX};
use crate::StoreError;

/// Column families that are written but never read while applying.
const WRITE_ONLY_CFS: [&str; 2] = [CF_INDEX, CF_EVENTS];

/// Pending writes of one column family: `None` is a delete.
type Pending = HashMap<Vec<u8>, Option<Vec<u8>>>;

pub(crate) struct Txn<'a> {
    db: &'a DB,
    batch: WriteBatch,
    /// Pending writes per readable column family, found by name.
    overlay: Vec<(&'static str, Pending)>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(db: &'a DB) -> Self {
        Txn {
            db,
            batch: WriteBatch::default(),
            overlay: Vec::new(),
        }
    }

    pub(crate) fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if WRITE_ONLY_CFS.contains(&cf) {
            let why = format!("{cf} is write-only while applying");
            return Err(StoreError::corrupt("transaction", why));
        }
        if let Some(v) = self.pending(cf).and_then(|p| p.get(key)) {
            return Ok(v.clone());
        }
        Ok(self.db.get_cf(cf_handle(self.db, cf)?, key)?)
    }

    pub(crate) fn put(
        &mut self,
        cf: &'static str,
        key: &[u8],
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.batch.put_cf(cf_handle(self.db, cf)?, key, &value);
        if let Some(pending) = self.pending_mut(cf) {
            pending.insert(key.to_vec(), Some(value));
        }
        Ok(())
    }

    pub(crate) fn delete(&mut self, cf: &'static str, key: &[u8]) -> Result<(), StoreError> {
        self.batch.delete_cf(cf_handle(self.db, cf)?, key);
        if let Some(pending) = self.pending_mut(cf) {
            pending.insert(key.to_vec(), None);
        }
        Ok(())
    }

    fn pending(&self, cf: &'static str) -> Option<&Pending> {
        self.overlay
            .iter()
            .find(|(name, _)| *name == cf)
            .map(|(_, p)| p)
    }

    /// The overlay of `cf`, created on first use; `None` for a write-only family.
    fn pending_mut(&mut self, cf: &'static str) -> Option<&mut Pending> {
        if WRITE_ONLY_CFS.contains(&cf) {
            return None;
        }
        let at = match self.overlay.iter().position(|(name, _)| *name == cf) {
            Some(at) => at,
            None => {
                self.overlay.push((cf, Pending::new()));
                self.overlay.len() - 1
            }
        };
        self.overlay.get_mut(at).map(|(_, p)| p)
    }

    /// Deletes `[from, to)` in the batch only: the overlay does not see it, so callers must not
    /// read the range back through this transaction.
    pub(crate) fn delete_range(
        &mut self,
        cf: &'static str,
        from: &[u8],
        to: &[u8],
    ) -> Result<(), StoreError> {
        self.batch
            .delete_range_cf(cf_handle(self.db, cf)?, from, to);
        Ok(())
    }

    /// The first `limit` keys of `cf` below `bound`, in key order, as this transaction sees
    /// them: stored keys with the batch's own puts added and its deletes removed. The answer
    /// depends only on that combined view, never on how much of it is still in the batch, so
    /// replicas that split their apply batches differently agree.
    pub(crate) fn keys_below(
        &self,
        cf: &'static str,
        bound: &[u8],
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let pending: BTreeMap<&[u8], bool> = self
            .pending(cf)
            .into_iter()
            .flatten()
            .filter(|(key, _)| key.as_slice() < bound)
            .map(|(key, value)| (key.as_slice(), value.is_some()))
            .collect();
        let mut puts = pending
            .iter()
            .filter(|(_, put)| **put)
            .map(|(k, _)| *k)
            .peekable();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mode = rocksdb::IteratorMode::Start;
        for item in self.db.iterator_cf(cf_handle(self.db, cf)?, mode) {
            let (key, _) = item?;
            if key.as_ref() >= bound || out.len() >= limit {
                break;
            }
            while let Some(put) = puts.next_if(|p| *p < key.as_ref()) {
                out.push(put.to_vec());
            }
            // A key the batch deletes is gone; one it rewrites comes from `puts` in its turn.
            if !pending.contains_key(key.as_ref()) {
                out.push(key.to_vec());
            }
        }
        out.extend(puts.map(<[u8]>::to_vec));
        out.truncate(limit);
        Ok(out)
    }

    pub(crate) fn into_batch(self) -> WriteBatch {
        self.batch
    }
}

/// Looks up a column family that `open` created.
pub(crate) fn cf_handle<'d>(
    db: &'d DB,
    name: &'static str,
) -> Result<&'d rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(name)
        .ok_or_else(|| StoreError::corrupt("column family", format!("{name} missing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_only_families_reach_the_batch_but_refuse_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = crate::open(dir.path()).expect("open");
        let db = &storage.db;
        let mut txn = Txn::new(db);
        for cf in WRITE_ONLY_CFS {
            txn.put(cf, b"k", b"v".to_vec()).expect("put");
            assert!(txn.get(cf, b"k").is_err(), "{cf} read inside the batch");
        }
        let readable = crate::keys::CF_IDENT;
        txn.put(readable, b"k", b"v".to_vec()).expect("put");
        assert_eq!(txn.get(readable, b"k").expect("get"), Some(b"v".to_vec()));
        db.write(txn.into_batch()).expect("write");
        for cf in WRITE_ONLY_CFS.into_iter().chain([readable]) {
            let stored = db
                .get_cf(cf_handle(db, cf).expect("cf"), b"k")
                .expect("get");
            assert_eq!(stored, Some(b"v".to_vec()), "{cf}");
        }
    }

    #[test]
    fn keys_below_sees_the_batch_and_the_database_as_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = crate::open(dir.path()).expect("open");
        let cf = crate::keys::CF_REQ_REVS;
        let db = &storage.db;
        for key in ["a", "c", "e", "g"] {
            db.put_cf(cf_handle(db, cf).expect("cf"), key, b"")
                .expect("put");
        }
        let mut txn = Txn::new(db);
        txn.put(cf, b"b", Vec::new()).expect("put");
        txn.delete(cf, b"c").expect("delete");
        txn.put(cf, b"e", Vec::new()).expect("rewrite");
        txn.put(cf, b"f", Vec::new()).expect("put");
        let logical = ["a", "b", "e", "f"];
        for limit in 0..6 {
            let got = txn.keys_below(cf, b"g", limit).expect("keys");
            let want: Vec<Vec<u8>> = logical
                .iter()
                .take(limit)
                .map(|k| k.as_bytes().to_vec())
                .collect();
            assert_eq!(got, want, "limit {limit}");
        }
    }
}
