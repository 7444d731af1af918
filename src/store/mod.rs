//! Storage: the RocksDB database, its column families and atomic, synced write batches.
//!
//! This is the only module that imports `rocksdb`. Everything above it speaks in column
//! families, keys and values; key layouts belong to `crate::projection` and `crate::ledger`.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions, DB,
};

/// The column families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// seq (u64 big-endian) -> stored event (`format::StoredEvent`). The log itself.
    Events,
    /// event id (16 bytes) -> seq. Makes retries idempotent.
    EventIds,
    /// Projection: controller / target -> the target's facts in seq order, one JSON line
    /// each: one point lookup answers a check. Rows only grow, by appends (a merge operator),
    /// so the writer never reads them.
    Facts,
    /// Projection: controller / purpose / seq -> purpose version.
    Purposes,
    /// Projection: controller / seq -> (). The controller's events in order, for the feed.
    Feed,
    /// Merkle tree: level ‖ index -> hash of each complete subtree (RFC 6962).
    Merkle,
    /// Signed checkpoints: tree size (u64 big-endian) -> C2SP signed note.
    Checkpoints,
    /// Store metadata: the format version (`format`), checked on open.
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 8] =
        [Cf::Events, Cf::EventIds, Cf::Facts, Cf::Purposes, Cf::Feed, Cf::Merkle, Cf::Checkpoints, Cf::Meta];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Events => "events",
            Cf::EventIds => "event_ids",
            Cf::Facts => "facts",
            Cf::Purposes => "purposes",
            Cf::Feed => "feed",
            Cf::Merkle => "merkle",
            Cf::Checkpoints => "checkpoints",
            Cf::Meta => "meta",
        }
    }

    /// Column families derived from the log, which `verify` rebuilds and compares.
    pub const PROJECTIONS: [Cf; 5] = [Cf::EventIds, Cf::Facts, Cf::Purposes, Cf::Feed, Cf::Merkle];

    /// Whether the projection's rows grow by appending (see [`Batch::append`]).
    pub fn appends(self) -> bool {
        matches!(self, Cf::Facts)
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("column family {0} is missing")]
    MissingCf(&'static str),
    #[error("io: {0}")]
    Io(String),
    #[error(
        "the database was written in another store layout (it has column family {0}); this version cannot read it"
    )]
    OtherLayout(String),
}

/// How a batch writes one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Append,
    Delete,
}

/// A set of writes applied atomically.
#[derive(Debug, Default)]
pub struct Batch {
    ops: Vec<(Cf, Vec<u8>, Vec<u8>, Op)>,
}

impl Batch {
    /// Sets a row.
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((cf, key, value, Op::Put));
    }

    /// Appends `value` to a row of an appending column family (creating it if need be).
    pub fn append(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((cf, key, value, Op::Append));
    }

    /// Deletes a row.
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push((cf, key, Vec::new(), Op::Delete));
    }

    /// A projection row as its column family takes it.
    pub fn row(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        if cf.appends() {
            self.append(cf, key, value)
        } else {
            self.put(cf, key, value)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub type Pair = (Box<[u8]>, Box<[u8]>);

/// The database.
pub struct Store {
    db: DB,
}

impl Store {
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

    /// Opens (creating if needed) the database in `dir` for reading and writing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let (opts, cfs) = Self::options();
        Self::check_layout(&opts, dir)?;
        Ok(Self { db: DB::open_cf_descriptors(&opts, dir, cfs)? })
    }

    /// Opens the database read-only; works while a server holds it open.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let (mut opts, cfs) = Self::options();
        opts.create_if_missing(false);
        Self::check_layout(&opts, dir)?;
        Ok(Self { db: DB::open_cf_descriptors_read_only(&opts, dir, cfs, false)? })
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(cf.name()).ok_or(StoreError::MissingCf(cf.name()))
    }

    /// Applies `batch` atomically with the write-ahead log synced to disk before returning.
    pub fn write_synced(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for (cf, k, v, op) in &batch.ops {
            match op {
                Op::Put => wb.put_cf(self.cf(*cf)?, k, v),
                Op::Append => wb.merge_cf(self.cf(*cf)?, k, v),
                Op::Delete => wb.delete_cf(self.cf(*cf)?, k),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(wb, &wo)?;
        Ok(())
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    /// Values of many keys in one batched lookup, in the order given.
    pub fn multi_get<K: AsRef<[u8]>>(&self, cf: Cf, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let h = self.cf(cf)?;
        self.db
            .batched_multi_get_cf(h, keys.iter(), false)
            .into_iter()
            .map(|r| r.map(|o| o.map(|p| p.to_vec())).map_err(StoreError::from))
            .collect()
    }

    /// Every pair whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Pair>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(cf)?, IteratorMode::From(prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }

    /// The last pair whose key starts with `prefix`.
    pub fn last_with_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Option<Pair>, StoreError> {
        // Keys under a prefix end in at most 8 bytes of big-endian seq, so this bound is past
        // them all.
        let mut upper = prefix.to_vec();
        upper.extend_from_slice(&[0xff; 9]);
        let mut iter = self.db.iterator_cf(self.cf(cf)?, IteratorMode::From(&upper, Direction::Reverse));
        match iter.next() {
            Some(item) => {
                let (k, v) = item?;
                Ok(k.starts_with(prefix).then_some((k, v)))
            }
            None => Ok(None),
        }
    }

    /// The pair with the greatest key.
    pub fn last(&self, cf: Cf) -> Result<Option<Pair>, StoreError> {
        match self.db.iterator_cf(self.cf(cf)?, IteratorMode::End).next() {
            Some(item) => Ok(Some(item?)),
            None => Ok(None),
        }
    }

    /// Writes a consistent checkpoint of the whole database into the new directory `path`
    /// (RocksDB's checkpoint: hard links to the table files where it can, the rest copied).
    pub fn checkpoint_to(&self, path: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(path)?;
        Ok(())
    }

    /// Iterates every pair of `cf` from `start` (inclusive) in key order.
    pub fn iter_from<'a>(
        &'a self,
        cf: Cf,
        start: &[u8],
    ) -> Result<impl Iterator<Item = Result<Pair, StoreError>> + 'a, StoreError> {
        Ok(self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::From(start, Direction::Forward))
            .map(|r| r.map_err(StoreError::from)))
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
        let err = Store::open(dir.path()).err().expect("refused");
        assert!(err.to_string().contains("history"), "{err}");
        assert!(Store::open_read_only(dir.path()).is_err());
        let fresh = tempfile::tempdir().unwrap();
        assert!(Store::open(fresh.path()).is_ok());
    }
}
