//! The in-memory model of the storage boundary: a sorted map per column family behind one
//! lock, so a batch is applied atomically and every read sees whole batches. It is the
//! reference the RocksDB engine is tested against (`tests/store_model.rs`), and it can serve
//! a ledger in tests. Clones share the same data, so a ledger "reopened" on a clone sees what
//! the first one wrote, as a restarted process sees its disk.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::{Batch, Cf, KvStore, Op, Pair, PairIter, StoreError};

type Table = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Default)]
pub struct MemoryStore {
    tables: Arc<RwLock<[Table; Cf::ALL.len()]>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, [Table; Cf::ALL.len()]> {
        // Nothing that holds the lock can panic half way through a batch (map inserts and
        // appends only; allocation failure aborts), so a poisoned lock still guards whole
        // batches.
        self.tables.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl KvStore for MemoryStore {
    fn estimated_rows(&self, cf: Cf) -> Option<u64> {
        Some(self.read()[cf.index()].len() as u64)
    }

    fn write_synced(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut tables = self.tables.write().unwrap_or_else(|e| e.into_inner());
        for (cf, k, v, op) in batch.ops() {
            let table = &mut tables[cf.index()];
            match op {
                Op::Put => {
                    table.insert(k.to_vec(), v.to_vec());
                }
                Op::Append => table.entry(k.to_vec()).or_default().extend_from_slice(v),
                Op::Delete => {
                    table.remove(k);
                }
                Op::DeleteRange => {
                    let doomed: Vec<Vec<u8>> = table
                        .range(k.to_vec()..)
                        .take_while(|(key, _)| key.as_slice() < v)
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in doomed {
                        table.remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read()[cf.index()].get(key).cloned())
    }

    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let tables = self.read();
        Ok(keys.iter().map(|k| tables[cf.index()].get(*k).cloned()).collect())
    }

    fn iter_from<'a>(&'a self, cf: Cf, start: &[u8]) -> Result<PairIter<'a>, StoreError> {
        // A snapshot of the range, so the iterator holds no lock while the caller works.
        let pairs: Vec<Pair> = self.read()[cf.index()]
            .range(start.to_vec()..)
            .map(|(k, v)| (k.clone().into_boxed_slice(), v.clone().into_boxed_slice()))
            .collect();
        Ok(Box::new(pairs.into_iter().map(Ok)))
    }

    fn last_before(&self, cf: Cf, bound: Option<&[u8]>) -> Result<Option<Pair>, StoreError> {
        let tables = self.read();
        let table = &tables[cf.index()];
        let last = match bound {
            Some(b) => table.range(..b.to_vec()).next_back(),
            None => table.iter().next_back(),
        };
        Ok(last.map(|(k, v)| (k.clone().into_boxed_slice(), v.clone().into_boxed_slice())))
    }

    fn checkpoint_to(&self, _path: &Path) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("in-memory"))
    }
}
