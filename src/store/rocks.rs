//! The embedded engine: RocksDB on disk, one column family per [`Cf`], the `append` merge
//! operator for appending column families, and every batch written with the WAL synced.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};

use super::{Batch, Cf, KvStore, Op, Pair, PairIter, StoreError};

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        StoreError::Db(e.into_string())
    }
}

/// The merge operator of appending column families: values are concatenated in order.
/// Concatenation is associative, so it serves as partial merge too.
fn append_merge(_key: &[u8], existing: Option<&[u8]>, operands: &rocksdb::MergeOperands) -> Option<Vec<u8>> {
    let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
    for op in operands {
        out.extend_from_slice(op);
    }
    Some(out)
}

/// The RocksDB database.
pub(crate) struct RocksStore {
    db: DB,
}

impl RocksStore {
    fn options() -> (Options, Vec<ColumnFamilyDescriptor>) {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        let cache = Cache::new_lru_cache(128 << 20);
        let cfs = Cf::ALL
            .iter()
            .map(|cf| {
                let mut block = BlockBasedOptions::default();
                block.set_block_cache(&cache);
                block.set_bloom_filter(10.0, false);
                let mut o = Options::default();
                o.set_block_based_table_factory(&block);
                o.set_compression_type(DBCompressionType::Lz4);
                // A bloom filter on the memtable too, so a lookup of a key that was never
                // written (most addresses of a campaign list) skips the skiplist.
                o.set_memtable_prefix_bloom_ratio(0.05);
                o.set_memtable_whole_key_filtering(true);
                if cf.appends() {
                    o.set_merge_operator_associative("consent-ledger-append", append_merge);
                }
                ColumnFamilyDescriptor::new(cf.name(), o)
            })
            .collect();
        (db_opts, cfs)
    }

    /// Refuses a database with column families this version does not know (an older or
    /// newer layout), before RocksDB would refuse it less clearly.
    fn check_layout(opts: &Options, dir: &Path) -> Result<(), StoreError> {
        let Ok(names) = DB::list_cf(opts, dir) else {
            return Ok(()); // no database yet
        };
        match names.into_iter().find(|n| n != "default" && !Cf::ALL.iter().any(|c| c.name() == n)) {
            Some(unknown) => Err(StoreError::OtherLayout(unknown)),
            None => Ok(()),
        }
    }

    pub(crate) fn open(dir: &Path) -> Result<Self, StoreError> {
        let (opts, cfs) = Self::options();
        Self::check_layout(&opts, dir)?;
        Ok(Self { db: DB::open_cf_descriptors(&opts, dir, cfs)? })
    }

    pub(crate) fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let (mut opts, cfs) = Self::options();
        opts.create_if_missing(false);
        Self::check_layout(&opts, dir)?;
        Ok(Self { db: DB::open_cf_descriptors_read_only(&opts, dir, cfs, false)? })
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(cf.name()).ok_or(StoreError::MissingCf(cf.name()))
    }
}

impl KvStore for RocksStore {
    fn write_synced(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for (cf, k, v, op) in batch.ops() {
            match op {
                Op::Put => wb.put_cf(self.cf(cf)?, k, v),
                Op::Append => wb.merge_cf(self.cf(cf)?, k, v),
                Op::Delete => wb.delete_cf(self.cf(cf)?, k),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let h = self.cf(cf)?;
        self.db
            .batched_multi_get_cf(h, keys.iter(), false)
            .into_iter()
            .map(|r| r.map(|o| o.map(|p| p.to_vec())).map_err(StoreError::from))
            .collect()
    }

    fn iter_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError> {
        Ok(Box::new(
            self.db
                .iterator_cf(self.cf(cf)?, IteratorMode::From(start, Direction::Forward))
                .map(|r| r.map_err(StoreError::from)),
        ))
    }

    fn last_before(&self, cf: Cf, bound: Option<&[u8]>) -> Result<Option<Pair>, StoreError> {
        let h = self.cf(cf)?;
        let mode = match bound {
            Some(b) => IteratorMode::From(b, Direction::Reverse),
            None => IteratorMode::End,
        };
        for item in self.db.iterator_cf(h, mode) {
            let (k, v) = item?;
            // A reverse seek lands on the last key ≤ the bound: skip an exact match.
            if bound.is_some_and(|b| k.as_ref() >= b) {
                continue;
            }
            return Ok(Some((k, v)));
        }
        Ok(None)
    }

    fn checkpoint_to(&self, path: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_of_another_layout_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let db = DB::open_cf(&opts, dir.path(), ["events", "history"]).unwrap();
            drop(db);
        }
        let err = RocksStore::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("history"), "{err}");
        assert!(RocksStore::open_read_only(dir.path()).is_err());
        let fresh = tempfile::tempdir().unwrap();
        assert!(RocksStore::open(fresh.path()).is_ok());
    }
}
