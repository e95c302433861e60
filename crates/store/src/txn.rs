//! A write batch with read-your-writes, used while applying a batch of log entries.
//!
//! Later entries in one apply call must see what earlier ones wrote, but nothing may reach the
//! database until the whole batch, with the new last-applied log id, is written at once.

use std::collections::HashMap;

use rocksdb::{WriteBatch, DB};

use crate::StoreError;

pub(crate) struct Txn<'a> {
    db: &'a DB,
    batch: WriteBatch,
    overlay: HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(db: &'a DB) -> Self {
        Txn {
            db,
            batch: WriteBatch::default(),
            overlay: HashMap::new(),
        }
    }

    pub(crate) fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.overlay.get(&(cf, key.to_vec())) {
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
        self.overlay.insert((cf, key.to_vec()), Some(value));
        Ok(())
    }

    pub(crate) fn delete(&mut self, cf: &'static str, key: &[u8]) -> Result<(), StoreError> {
        self.batch.delete_cf(cf_handle(self.db, cf)?, key);
        self.overlay.insert((cf, key.to_vec()), None);
        Ok(())
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
