//! The embedded engine: RocksDB on disk, one column family per [`Cf`], the `append` merge
//! operator for appending column families, and every batch written with the WAL synced.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Direction, IteratorMode,
    Options, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions, DB,
};

use super::{Batch, Cf, KvStore, Op, Pair, PairIter, StoreError, StoreOptions};

impl From<rocksdb::Error> for StoreError {
    fn from(e: rocksdb::Error) -> Self {
        let text = e.into_string();
        if text.contains("No space left on device") {
            StoreError::NoSpace
        } else {
            StoreError::Db(text)
        }
    }
}

/// Pairs read per page of an ordered scan: a scan holds the database only while it reads a
/// page, so the database can be reopened between pages.
const SCAN_PAGE: usize = 1024;

/// The least memory a store's memtables (and so its write-ahead log) are given outside a bulk
/// pass, as long as it is at most half the cache: below it the store flushes every few
/// seconds under a steady stream of appends (memtables of 33 MiB took durable appends
/// through `serve` from ~13 000 to ~8 000/s: docs/PERFORMANCE.md, 2026-12-07 "memory").
const MEMTABLE_FLOOR: usize = 48 << 20;
/// Free bytes the disk must have before a database that failed for want of space is
/// reopened (its next WAL and MANIFEST need room).
const RECOVERY_ROOM: usize = 8 << 20;

/// The merge operator of appending column families: values are concatenated in order.
/// Concatenation is associative, so it serves as partial merge too.
fn append_merge(_key: &[u8], existing: Option<&[u8]>, operands: &rocksdb::MergeOperands) -> Option<Vec<u8>> {
    let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
    for op in operands {
        out.extend_from_slice(op);
    }
    Some(out)
}

/// The RocksDB database. It sits behind a lock only so that it can be reopened in place: a
/// database that failed a write for want of space refuses every write after, even once space
/// is back, until it is reopened ([`KvStore::recover`]).
pub struct RocksStore {
    db: RwLock<Option<DB>>,
    dir: PathBuf,
    read_only: bool,
    options: StoreOptions,
}

impl RocksStore {
    /// The engine's options. Its memory is bounded by `cache_bytes`: one block cache for every
    /// column family, to which the memtables (through a write buffer manager, a quarter of
    /// the cache but at least [`MEMTABLE_FLOOR`] while that is at most half of it) and the
    /// index and filter blocks are charged too, so none of them grows with the data beyond it.
    fn options(store: &StoreOptions) -> (Options, Vec<ColumnFamilyDescriptor>) {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_background_jobs(2);
        db_opts.set_bytes_per_sync(1 << 20);
        // The write-ahead log bounded like the memtables it backs: past it, the column
        // families holding its oldest writes are flushed. Unbounded (RocksDB's default is four
        // times every memtable's size), a store of small, rarely flushed column families kept
        // hundreds of megabytes of log that every open (a restart, `verify`, `apikey`)
        // replayed.
        let memtable_bytes = if store.bulk {
            store.cache_bytes / 4 * 3
        } else {
            (store.cache_bytes / 4).max(MEMTABLE_FLOOR).min(store.cache_bytes / 2)
        };
        db_opts.set_max_total_wal_size(memtable_bytes as u64);
        let cache = Cache::new_lru_cache(store.cache_bytes);
        let memtables = WriteBufferManager::new_write_buffer_manager_with_cache(memtable_bytes, false, cache.clone());
        db_opts.set_write_buffer_manager(&memtables);
        let cfs = Cf::ALL
            .iter()
            .map(|cf| {
                let mut block = BlockBasedOptions::default();
                block.set_block_cache(&cache);
                block.set_bloom_filter(10.0, false);
                block.set_cache_index_and_filter_blocks(true);
                block.set_pin_l0_filter_and_index_blocks_in_cache(true);
                // A file's index and filter in partitions of a block's size, under a small
                // top level kept in the cache, so a point read past the cache reads two small
                // blocks, not a whole file's index (~450 KB for a 30 MB file, read and
                // decompressed again whenever the cache had let it go: at 1 million tenants
                // freshly imported, most of a check's time when it missed the facts cache).
                block.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
                block.set_partition_filters(true);
                block.set_metadata_block_size(4096);
                block.set_pin_top_level_index_and_filter(true);
                let mut o = Options::default();
                o.set_block_based_table_factory(&block);
                o.set_compression_type(DBCompressionType::Lz4);
                if store.bulk {
                    // One column family's memtable may take half of them (the facts take most
                    // of a rebuild's writes), not RocksDB's 64 MiB.
                    o.set_write_buffer_size(memtable_bytes / 2);
                }
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

    fn open_db(dir: &Path, options: &StoreOptions) -> Result<DB, StoreError> {
        let (opts, cfs) = Self::options(options);
        Self::check_layout(&opts, dir)?;
        Ok(DB::open_cf_descriptors(&opts, dir, cfs)?)
    }

    pub fn open(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let db = Self::open_db(dir, &options)?;
        Ok(Self { db: RwLock::new(Some(db)), dir: dir.to_path_buf(), read_only: false, options })
    }

    pub fn open_read_only(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        let (mut opts, cfs) = Self::options(&options);
        opts.create_if_missing(false);
        Self::check_layout(&opts, dir)?;
        let db = DB::open_cf_descriptors_read_only(&opts, dir, cfs, false)?;
        Ok(Self { db: RwLock::new(Some(db)), dir: dir.to_path_buf(), read_only: true, options })
    }

    /// The open database, for the length of one operation.
    fn db(&self) -> Result<Guard<'_>, StoreError> {
        let guard = self.db.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(StoreError::Db("the database is being reopened".into()));
        }
        Ok(Guard(guard))
    }

    /// An ordered scan of `cf` from `start` (inclusive), read a page at a time.
    fn pages<'a>(&'a self, cf: Cf, start: &[u8], fill_cache: bool) -> PairIter<'a> {
        Box::new(Pages { store: self, cf, fill_cache, next: Some(start.to_vec()), buf: VecDeque::new() })
    }

    /// One page of `cf` from `start` (inclusive), at most [`SCAN_PAGE`] pairs; its blocks go
    /// into the block cache only when `fill_cache` says so.
    fn page(&self, cf: Cf, start: &[u8], fill_cache: bool) -> Result<Vec<Pair>, StoreError> {
        let db = self.db()?;
        let h = cf_of(db.get(), cf)?;
        let mut out = Vec::new();
        let mut read = ReadOptions::default();
        read.fill_cache(fill_cache);
        for item in db.get().iterator_cf_opt(h, read, IteratorMode::From(start, Direction::Forward)).take(SCAN_PAGE) {
            out.push(item?);
        }
        Ok(out)
    }

    /// Whether the disk has [`RECOVERY_ROOM`] free: a file of that size is written and
    /// synced in the database's directory, then removed.
    fn has_room(&self) -> bool {
        let probe = self.dir.join("space-probe");
        let written = std::fs::write(&probe, vec![0u8; RECOVERY_ROOM])
            .and_then(|()| std::fs::File::open(&probe).and_then(|f| f.sync_all()));
        let _ = std::fs::remove_file(&probe);
        written.is_ok()
    }
}

/// The database behind the read lock.
struct Guard<'a>(RwLockReadGuard<'a, Option<DB>>);

impl Guard<'_> {
    fn get(&self) -> &DB {
        // `RocksStore::db` hands out a guard only over an open database.
        self.0.as_ref().unwrap_or_else(|| unreachable!("checked in RocksStore::db"))
    }
}

fn cf_of(db: &DB, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
    db.cf_handle(cf.name()).ok_or(StoreError::MissingCf(cf.name()))
}

/// An ordered scan read a page at a time.
struct Pages<'a> {
    store: &'a RocksStore,
    cf: Cf,
    fill_cache: bool,
    next: Option<Vec<u8>>,
    buf: VecDeque<Pair>,
}

impl Iterator for Pages<'_> {
    type Item = Result<Pair, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            let start = self.next.take()?;
            match self.store.page(self.cf, &start, self.fill_cache) {
                Ok(page) => {
                    if page.len() == SCAN_PAGE {
                        // The smallest key after the page's last.
                        self.next = page.last().map(|(k, _)| {
                            let mut after = k.to_vec();
                            after.push(0);
                            after
                        });
                    }
                    self.buf = page.into();
                }
                Err(e) => return Some(Err(e)),
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// A store closed cleanly leaves its memtables flushed, so the next open (a restart, `verify`,
/// a command beside a running server) replays no write-ahead log. A failed flush loses
/// nothing: the log still holds every write.
impl Drop for RocksStore {
    fn drop(&mut self) {
        if self.read_only {
            return;
        }
        let Ok(guard) = self.db.read() else { return };
        let Some(db) = guard.as_ref() else { return };
        let cfs: Vec<_> = Cf::ALL.iter().filter_map(|cf| db.cf_handle(cf.name())).collect();
        let _ = db.flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default());
    }
}

impl RocksStore {
    fn write(&self, batch: &Batch, sync: bool) -> Result<(), StoreError> {
        let db = self.db()?;
        let db = db.get();
        let mut wb = WriteBatch::default();
        for (cf, k, v, op) in batch.ops() {
            match op {
                Op::Put => wb.put_cf(cf_of(db, cf)?, k, v),
                Op::Append => wb.merge_cf(cf_of(db, cf)?, k, v),
                Op::Delete => wb.delete_cf(cf_of(db, cf)?, k),
                Op::DeleteRange => wb.delete_range_cf(cf_of(db, cf)?, k, v),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        db.write_opt(wb, &wo)?;
        Ok(())
    }
}

impl KvStore for RocksStore {
    fn write_synced(&self, batch: &Batch) -> Result<(), StoreError> {
        self.write(batch, true)
    }

    fn write_unsynced(&self, batch: &Batch) -> Result<(), StoreError> {
        self.write(batch, false)
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db()?;
        Ok(db.get().get_cf(cf_of(db.get(), cf)?, key)?)
    }

    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let db = self.db()?;
        let h = cf_of(db.get(), cf)?;
        db.get()
            .batched_multi_get_cf(h, keys.iter(), false)
            .into_iter()
            .map(|r| r.map(|o| o.map(|p| p.to_vec())).map_err(StoreError::from))
            .collect()
    }

    fn iter_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError> {
        Ok(self.pages(cf, start, !self.options.bulk))
    }

    fn cache_usage(&self) -> Option<(u64, u64)> {
        // One cache serves every column family (memtables, index and filter blocks charged
        // to it): any family's property reads it whole.
        let db = self.db().ok()?;
        let h = cf_of(db.get(), Cf::Events).ok()?;
        let used = db.get().property_int_value_cf(h, "rocksdb.block-cache-usage").ok()??;
        Some((used, self.options.cache_bytes as u64))
    }

    fn scan_once_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError> {
        Ok(self.pages(cf, start, false))
    }

    fn estimated_rows(&self, cf: Cf) -> Option<u64> {
        let db = self.db().ok()?;
        let h = cf_of(db.get(), cf).ok()?;
        db.get().property_int_value_cf(h, "rocksdb.estimate-num-keys").ok()?
    }

    fn last_before(&self, cf: Cf, bound: Option<&[u8]>) -> Result<Option<Pair>, StoreError> {
        let db = self.db()?;
        let h = cf_of(db.get(), cf)?;
        let mode = match bound {
            Some(b) => IteratorMode::From(b, Direction::Reverse),
            None => IteratorMode::End,
        };
        for item in db.get().iterator_cf(h, mode) {
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
        let db = self.db()?;
        rocksdb::checkpoint::Checkpoint::new(db.get())?.create_checkpoint(path)?;
        Ok(())
    }

    fn drop_files_in(&self, cf: Cf, from: &[u8], to: &[u8]) -> Result<(), StoreError> {
        let db = self.db()?;
        // RocksDB's DeleteFilesInRange: files of level 0 stay, so do files that reach past
        // the range; both are left to the caller's range deletion.
        db.get().delete_file_in_range_cf(cf_of(db.get(), cf)?, from, to)?;
        Ok(())
    }

    /// Reopens the database in place once the disk has room again (RocksDB keeps refusing
    /// writes after one failed for want of space until it is reopened). Readers wait only for
    /// the reopen itself; nothing acknowledged is touched, as the failed write was never
    /// applied.
    fn recover(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        if !self.has_room() {
            return Err(StoreError::NoSpace);
        }
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        // Closing releases the database's lock file, so it can be opened again.
        drop(slot.take());
        *slot = Some(Self::open_db(&self.dir, &self.options)?);
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
        let err = RocksStore::open(dir.path(), StoreOptions::default()).err().expect("refused");
        assert!(err.to_string().contains("history"), "{err}");
        assert!(RocksStore::open_read_only(dir.path(), StoreOptions::default()).is_err());
        let fresh = tempfile::tempdir().unwrap();
        assert!(RocksStore::open(fresh.path(), StoreOptions::default()).is_ok());
    }

    /// Files of a column family's bottom level, after every row was compacted down when
    /// `compact`.
    fn bottom_files(store: &RocksStore, cf: Cf, compact: bool) -> u64 {
        let db = store.db().unwrap();
        let h = cf_of(db.get(), cf).unwrap();
        if compact {
            db.get().compact_range_cf(h, None::<&[u8]>, None::<&[u8]>);
        }
        db.get().property_int_value_cf(h, "rocksdb.num-files-at-level6").unwrap().unwrap()
    }

    #[test]
    fn clearing_a_column_family_drops_its_files_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let rows = |store: &super::super::Store, cf| store.scan_prefix(cf, &[]).unwrap().len();
        {
            let rocks = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
            let mut batch = Batch::default();
            for i in 0u32..2000 {
                batch.append(Cf::Facts, i.to_be_bytes().to_vec(), vec![7; 100]);
                batch.put(Cf::Feed, i.to_be_bytes().to_vec(), vec![8; 100]);
            }
            rocks.write_synced(&batch).unwrap();
            assert_eq!(bottom_files(&rocks, Cf::Facts, true), 1);
            assert_eq!(bottom_files(&rocks, Cf::Feed, true), 1);
            // A row written after the file is in the memtable: the range deletion takes it.
            let mut later = Batch::default();
            later.append(Cf::Facts, 5000u32.to_be_bytes().to_vec(), vec![9]);
            rocks.write_synced(&later).unwrap();
            let store = super::super::Store::on(rocks);
            store.clear(Cf::Facts).unwrap();
            assert_eq!(rows(&store, Cf::Facts), 0);
            assert_eq!(rows(&store, Cf::Feed), 2000);
        }
        let rocks = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(bottom_files(&rocks, Cf::Facts, false), 0, "the table file was dropped, not left to compaction");
        assert_eq!(bottom_files(&rocks, Cf::Feed, false), 1);
        let store = super::super::Store::on(rocks);
        assert_eq!(rows(&store, Cf::Facts), 0);
        assert_eq!(rows(&store, Cf::Feed), 2000);
    }

    #[test]
    fn the_rows_of_a_family_are_estimated_from_the_memtable_and_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        assert_eq!(rocks.estimated_rows(Cf::Facts), Some(0));
        let mut batch = Batch::default();
        for i in 0u32..10_000 {
            batch.append(Cf::Facts, i.to_be_bytes().to_vec(), b"row".to_vec());
        }
        rocks.write_synced(&batch).unwrap();
        let in_memtable = rocks.estimated_rows(Cf::Facts).unwrap();
        assert!((10_000..=20_000).contains(&in_memtable), "{in_memtable}");
        drop(rocks);
        let rocks = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        let in_files = rocks.estimated_rows(Cf::Facts).unwrap();
        assert!((10_000..=20_000).contains(&in_files), "{in_files}");
        assert_eq!(rocks.estimated_rows(Cf::Events), Some(0));
    }

    #[test]
    fn table_files_index_and_filter_in_partitions_and_every_row_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        let mut batch = Batch::default();
        for i in 0u32..50_000 {
            batch.append(Cf::Facts, i.to_be_bytes().to_vec(), i.to_le_bytes().repeat(8));
        }
        rocks.write_synced(&batch).unwrap();
        assert_eq!(bottom_files(&rocks, Cf::Facts, true), 1);
        let db = rocks.db().unwrap();
        let h = cf_of(db.get(), Cf::Facts).unwrap();
        let props = db.get().property_value_cf(h, "rocksdb.aggregated-table-properties").unwrap().unwrap();
        let figure = |name: &str| -> u64 {
            let at = props.find(name).unwrap_or_else(|| panic!("no {name} in {props}")) + name.len();
            props[at..]
                .trim_start_matches([' ', '='])
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        // Fifty thousand rows take far more than one 4 KB block of index and of filter.
        assert!(figure("index partitions") > 1, "{props}");
        assert!(figure("filter block size") > 0, "{props}");
        drop(db);
        let store = super::super::Store::on(rocks);
        let keys: Vec<[u8; 4]> = (0u32..50_000).step_by(997).map(u32::to_be_bytes).collect();
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        for (k, row) in keys.iter().zip(store.multi_get(Cf::Facts, &keys).unwrap()) {
            let i = u32::from_be_bytes((*k).try_into().unwrap());
            assert_eq!(row.as_deref(), Some(&i.to_le_bytes().repeat(8)[..]));
        }
        assert_eq!(store.multi_get(Cf::Facts, &[&50_001u32.to_be_bytes()[..]]).unwrap(), vec![None]);
    }

    /// Bytes the block cache (every column family's but the default's) holds for `store`: its
    /// blocks and the memtables charged to it.
    fn cache_usage(store: &RocksStore) -> u64 {
        store.cache_usage().expect("a RocksDB store reports its cache").0
    }

    #[test]
    fn a_bulk_open_or_a_scan_once_leaves_the_block_cache_alone() {
        let dir = tempfile::tempdir().unwrap();
        {
            let rocks = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
            let mut batch = Batch::default();
            // Values that do not compress, so the table's blocks are about 10 MB.
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0u32..20_000 {
                let value: Vec<u8> = (0..64)
                    .flat_map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x.to_le_bytes()
                    })
                    .collect();
                batch.put(Cf::Events, i.to_be_bytes().to_vec(), value);
            }
            rocks.write_synced(&batch).unwrap();
            let db = rocks.db().unwrap();
            db.get().compact_range_cf(cf_of(db.get(), Cf::Events).unwrap(), None::<&[u8]>, None::<&[u8]>);
        }
        let scanned = |bulk: bool| {
            let rocks = RocksStore::open(dir.path(), StoreOptions { bulk, ..StoreOptions::default() }).unwrap();
            let before = cache_usage(&rocks);
            assert_eq!(rocks.iter_from(Cf::Events, &[]).unwrap().count(), 20_000);
            cache_usage(&rocks).saturating_sub(before)
        };
        let (filled, left) = (scanned(false), scanned(true));
        assert!(filled > 8 << 20, "a scan fills the cache with the blocks it reads: {filled} bytes");
        assert!(left < 1 << 20, "a bulk open's scan leaves it alone: {left} bytes");
        // A pass over everything on a store opened normally (a server's audit export) leaves
        // it alone too, and reads every pair.
        let rocks = RocksStore::open(dir.path(), StoreOptions::default()).unwrap();
        let before = cache_usage(&rocks);
        assert_eq!(rocks.scan_once_from(Cf::Events, &[]).unwrap().count(), 20_000);
        assert_eq!(rocks.scan_once_from(Cf::Events, &19_000u32.to_be_bytes()).unwrap().count(), 1_000);
        let once = cache_usage(&rocks).saturating_sub(before);
        assert!(once < 1 << 20, "a scan once leaves it alone: {once} bytes");
    }
}
