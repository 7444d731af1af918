//! Storage: an ordered key-value store of column families with atomic, synced write batches,
//! point and batched reads, and ordered scans. [`KvStore`] is the boundary: the ledger and the
//! projections speak only to it, through [`Store`]. Two engines implement it: RocksDB on
//! disk ([`rocks`], the embedded default) and an in-memory model ([`memory`]) that tests run
//! the same operations against.
//!
//! Only `store::rocks` imports `rocksdb`. Key layouts belong to `projection` and
//! `ledger`.

pub mod memory;
mod rocks;

use std::path::Path;

/// The column families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// seq (u64 big-endian) -> stored event (`format::StoredEvent`). The log itself.
    Events,
    /// controller / event id (16 bytes) -> seq. Makes retries idempotent; ids are unique
    /// within a controller.
    EventIds,
    /// Projection: controller / target -> the target's facts in seq order, one JSON line
    /// each: one point lookup answers a check. Rows only grow, by appends (a merge operator),
    /// so the writer never reads them.
    Facts,
    /// Projection: controller / purpose / seq -> purpose version.
    Purposes,
    /// Projection: controller / notice id -> the notice and the seq of its
    /// `notice.published` event (a notice's wording never changes, so one row each).
    Notices,
    /// Projection: controller / downstream system / `r` or `a` / seq -> a registration of the
    /// system or one of its acknowledgements.
    Downstream,
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
    pub const ALL: [Cf; 10] = [
        Cf::Events,
        Cf::EventIds,
        Cf::Facts,
        Cf::Purposes,
        Cf::Notices,
        Cf::Downstream,
        Cf::Feed,
        Cf::Merkle,
        Cf::Checkpoints,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Events => "events",
            Cf::EventIds => "event_ids",
            Cf::Facts => "facts",
            Cf::Purposes => "purposes",
            Cf::Notices => "notices",
            Cf::Downstream => "downstream",
            Cf::Feed => "feed",
            Cf::Merkle => "merkle",
            Cf::Checkpoints => "checkpoints",
            Cf::Meta => "meta",
        }
    }

    /// Column families derived from the log, which `verify` rebuilds and compares.
    pub const PROJECTIONS: [Cf; 7] =
        [Cf::EventIds, Cf::Facts, Cf::Purposes, Cf::Notices, Cf::Downstream, Cf::Feed, Cf::Merkle];

    /// Whether the projection's rows grow by appending (see [`Batch::append`]).
    pub fn appends(self) -> bool {
        matches!(self, Cf::Facts)
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Db(String),
    #[error("column family {0} is missing")]
    MissingCf(&'static str),
    #[error("io: {0}")]
    Io(String),
    #[error(
        "the database was written in another store layout (it has column family {0}); this version cannot read it"
    )]
    OtherLayout(String),
    #[error("the {0} store cannot do this")]
    Unsupported(&'static str),
    /// The disk is full: the write was not applied.
    #[error("no space left on the data directory's disk")]
    NoSpace,
}

/// How a batch writes one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Append,
    Delete,
    /// Deletes every row from the key up to (not including) the value, as a key.
    DeleteRange,
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

    /// Deletes every row of `cf` with a key from `from` up to (not including) `to`: one
    /// tombstone for the range, however many rows it holds.
    pub fn delete_range(&mut self, cf: Cf, from: Vec<u8>, to: Vec<u8>) {
        self.ops.push((cf, from, to, Op::DeleteRange));
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

    /// Puts the writes in key order (by column family, then key; the writes to one row keep
    /// their order) and folds each run of appends to one row into one append: the same rows
    /// after the batch, written with fewer and ordered insertions, which a large batch of
    /// scattered keys (a rebuild's) writes faster. A batch with a range deletion is left as
    /// it is (its order against the rows in the range matters).
    pub fn sort_by_row(&mut self) {
        if self.ops.iter().any(|(.., op)| *op == Op::DeleteRange) {
            return;
        }
        self.ops.sort_by(|a, b| (a.0.index(), &a.1).cmp(&(b.0.index(), &b.1)));
        self.ops.dedup_by(|next, kept| {
            let fold = kept.3 == Op::Append && next.3 == Op::Append && kept.0 == next.0 && kept.1 == next.1;
            if fold {
                kept.2.extend_from_slice(&next.2);
            }
            fold
        });
    }

    /// The writes in the order they were added.
    pub fn ops(&self) -> impl Iterator<Item = (Cf, &[u8], &[u8], Op)> {
        self.ops.iter().map(|(cf, k, v, op)| (*cf, k.as_slice(), v.as_slice(), *op))
    }
}

pub type Pair = (Box<[u8]>, Box<[u8]>);

/// Pairs of one column family in key order.
pub type PairIter<'a> = Box<dyn Iterator<Item = Result<Pair, StoreError>> + 'a>;

/// The storage boundary: an ordered key-value store of column families. Every write goes
/// through [`KvStore::write_synced`], which applies a whole batch atomically and returns only
/// once it is durable; reads see whole batches or none of them.
pub trait KvStore: Send + Sync {
    /// Applies `batch` atomically, durable (for an on-disk engine: the WAL synced) before it
    /// returns.
    fn write_synced(&self, batch: &Batch) -> Result<(), StoreError>;

    /// Applies `batch` atomically without waiting for the disk: a process that dies keeps
    /// it (for RocksDB: the WAL is written, not synced), a machine that loses power may lose
    /// the last such batches, never part of one. Only for data kept elsewhere too (a
    /// database ledger's local replica, which applies again what it lost).
    fn write_unsynced(&self, batch: &Batch) -> Result<(), StoreError> {
        self.write_synced(batch)
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Values of many keys in one batched lookup, in the order given.
    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;

    /// Every pair of `cf` from `start` (inclusive) in key order.
    fn iter_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError>;

    /// [`KvStore::iter_from`] for one pass over much of the store (an audit export): what it
    /// reads is not kept in the engine's cache, so it does not push out what point reads keep
    /// there. The same as `iter_from` for an engine without a cache.
    fn scan_once_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError> {
        self.iter_from(cf, start)
    }

    /// What the engine's cache holds and may hold, in bytes (`None` for an engine without
    /// one): for `/metrics`, since a server's memory is the facts cache, this cache and its own.
    fn cache_usage(&self) -> Option<(u64, u64)> {
        None
    }

    /// About how many rows `cf` holds (`None` when the engine cannot say cheaply): RocksDB's
    /// estimate, which counts a row written more than once until compaction folds it, so it
    /// errs high. For sizing in-memory tables at start.
    fn estimated_rows(&self, _cf: Cf) -> Option<u64> {
        None
    }

    /// The last pair whose key is below `bound` (all keys when `None`).
    fn last_before(&self, cf: Cf, bound: Option<&[u8]>) -> Result<Option<Pair>, StoreError>;

    /// Writes a consistent copy of the whole store into the new directory `path`.
    fn checkpoint_to(&self, path: &Path) -> Result<(), StoreError>;

    /// Drops at once whatever storage holds only rows of `cf` from `from` to `to` (both
    /// inclusive), which the caller deletes next anyway ([`Store::clear`]): those rows are
    /// gone, the others stay. For RocksDB, the table files wholly in that range, so that their
    /// rows need not be compacted away one by one; nothing for an engine without files.
    fn drop_files_in(&self, _cf: Cf, _from: &[u8], _to: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Makes a store whose write failed for want of space ([`StoreError::NoSpace`]) take
    /// writes again, once the disk has room; `NoSpace` while it has none.
    fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The store the ledger runs on: one engine behind the [`KvStore`] boundary, with the typed
/// helpers every caller shares.
pub struct Store {
    engine: Box<dyn KvStore>,
}

/// How the embedded engine is opened.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Bytes of memory for the engine's caches: its block cache, with the memtables and the
    /// index and filter blocks charged to it.
    pub cache_bytes: usize,
    /// Opened for one pass over the whole store (`rebuild`, `verify`): scans leave the block
    /// cache alone (a scan of every event would fill it with blocks read once), and the
    /// memtables may take three quarters of `cache_bytes` (otherwise a quarter, but at least
    /// 48 MiB while that is at most half), so that the rows a rebuild writes reach the disk in
    /// fewer, larger files and are compacted less.
    pub bulk: bool,
}

impl StoreOptions {
    /// The default memory, opened for one pass over the whole store (see `bulk`).
    pub fn one_pass() -> Self {
        Self { bulk: true, ..Self::default() }
    }
}

/// The engine's cache when nothing says otherwise.
pub const STORE_CACHE_BYTES: usize = 128 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        Self { cache_bytes: STORE_CACHE_BYTES, bulk: false }
    }
}

impl Store {
    /// Runs on any engine.
    pub fn on(engine: impl KvStore + 'static) -> Self {
        Self { engine: Box::new(engine) }
    }

    /// Opens (creating if needed) the RocksDB database in `dir` for reading and writing.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with the engine's memory bounded as `options` say.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        Ok(Self::on(rocks::RocksStore::open(dir, options)?))
    }

    /// Opens the RocksDB database in `dir` read-only; works while a server holds it open.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        Self::open_read_only_with(dir, StoreOptions::default())
    }

    /// [`Store::open_read_only`] with the engine's memory as `options` say.
    pub fn open_read_only_with(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        Ok(Self::on(rocks::RocksStore::open_read_only(dir, options)?))
    }

    /// A store in memory (see [`memory::MemoryStore`]); clones of `engine` share its data.
    pub fn memory(engine: &memory::MemoryStore) -> Self {
        Self::on(engine.clone())
    }

    /// Applies `batch` atomically, durable before it returns.
    pub fn write_synced(&self, batch: &Batch) -> Result<(), StoreError> {
        self.engine.write_synced(batch)
    }

    /// Applies `batch` atomically without waiting for the disk (see
    /// [`KvStore::write_unsynced`]).
    pub fn write_unsynced(&self, batch: &Batch) -> Result<(), StoreError> {
        self.engine.write_unsynced(batch)
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine.get(cf, key)
    }

    /// Values of many keys in one batched lookup, in the order given.
    pub fn multi_get<K: AsRef<[u8]>>(&self, cf: Cf, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let keys: Vec<&[u8]> = keys.iter().map(AsRef::as_ref).collect();
        self.engine.multi_get(cf, &keys)
    }

    /// Every pair whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: Cf, prefix: &[u8]) -> Result<Vec<Pair>, StoreError> {
        let mut out = Vec::new();
        for item in self.engine.iter_from(cf, prefix)? {
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
        Ok(self.engine.last_before(cf, Some(&upper))?.filter(|(k, _)| k.starts_with(prefix)))
    }

    /// The pair with the greatest key.
    pub fn last(&self, cf: Cf) -> Result<Option<Pair>, StoreError> {
        self.engine.last_before(cf, None)
    }

    /// Removes every row of `cf`, synced: the engine drops the files holding only its rows
    /// ([`KvStore::drop_files_in`]), then one range deletion from the first key to the last
    /// (and the last) covers the rest, not a deletion a row. A reader iterating `cf`
    /// meanwhile may see part of it gone: for a store no one else reads (`rebuild`).
    pub fn clear(&self, cf: Cf) -> Result<(), StoreError> {
        let first = self.iter_from(cf, &[])?.next().transpose()?;
        if let (Some((first, _)), Some((last, _))) = (first, self.last(cf)?) {
            self.engine.drop_files_in(cf, &first, &last)?;
            let mut batch = Batch::default();
            batch.delete_range(cf, first.to_vec(), last.to_vec());
            batch.delete(cf, last.to_vec());
            self.write_synced(&batch)?;
        }
        Ok(())
    }

    /// Writes a consistent checkpoint of the whole store into the new directory `path`.
    pub fn checkpoint_to(&self, path: &Path) -> Result<(), StoreError> {
        self.engine.checkpoint_to(path)
    }

    /// Makes the store take writes again after a [`StoreError::NoSpace`], once there is room.
    pub fn recover(&self) -> Result<(), StoreError> {
        self.engine.recover()
    }

    /// Iterates every pair of `cf` from `start` (inclusive) in key order.
    pub fn iter_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError> {
        self.engine.iter_from(cf, start)
    }

    /// Bytes the engine's cache holds and its capacity (see [`KvStore::cache_usage`]).
    pub fn cache_usage(&self) -> Option<(u64, u64)> {
        self.engine.cache_usage()
    }

    /// About how many rows `cf` holds (see [`KvStore::estimated_rows`]).
    pub fn estimated_rows(&self, cf: Cf) -> Option<u64> {
        self.engine.estimated_rows(cf)
    }

    /// Iterates every pair of `cf` from `start` (inclusive) in key order, leaving the block
    /// cache to the point reads (see [`KvStore::scan_once_from`]).
    pub fn scan_once_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError> {
        self.engine.scan_once_from(cf, start)
    }
}

#[cfg(test)]
mod tests;
