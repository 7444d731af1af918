//! `verify`'s comparison of the projections with the log in constant memory: a multiset hash
//! of rows, one sum for what the log implies and one for what the store holds.
//!
//! Each row is an element (for a facts row, which grows by appends, each of its records is
//! one, with the row's key), hashed by SHA-256 under a key drawn at random for the run, cut to
//! 128 bits and added up modulo 2^128, a sum per column family. The order of the additions
//! does not matter, so the log's side is summed as it is read and the store's side by
//! scanning each column family once, with nothing held between them.
//!
//! Equal sums mean equal multisets of elements, but for a chance below 2^-90: the key is
//! drawn after the store was written, so whoever changed it could not aim at a sum, and for
//! two different multisets the sums' difference is a combination of hashes unknown to them
//! with coefficients of at most the log's length. Equal multisets mean equal projections:
//! - a column family that is set, not appended to, has one row a key in the store; the log's
//!   rows for it are then one a key too (a key written twice would be two elements against
//!   one), so the two hold the same rows;
//! - a facts row's records are checked to come in strictly increasing seqs as it is scanned,
//!   and to be at least one (records name their event's seq, and an event adds at most one
//!   record to a row), so a row is the set of its records in seq order, which is what the
//!   log implies for it.
//!
//! When the sums differ (or a row is not in order, or not records at all), which row is
//! wrong is found by the row-by-row comparison that `verify` falls back to.

use std::sync::atomic::{AtomicBool, Ordering};

use rand::RngCore;
use sha2::{Digest as _, Sha256};
use store::{Cf, Store, StoreError};

/// One sum per column family of [`Cf::PROJECTIONS`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sums([u128; Cf::PROJECTIONS.len()]);

impl Sums {
    fn add(&mut self, cf: Cf, hash: u128) {
        if let Some(at) = Cf::PROJECTIONS.iter().position(|c| *c == cf) {
            self.0[at] = self.0[at].wrapping_add(hash);
        }
    }

    /// Adds another's sums to these.
    pub(crate) fn merge(&mut self, other: &Sums) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b);
        }
    }
}

/// Hashes elements under the run's key.
#[derive(Clone)]
pub(crate) struct ElementHasher {
    /// SHA-256 with the key's block absorbed; each element continues a copy of it.
    keyed: Sha256,
}

impl ElementHasher {
    /// A hasher under a key drawn now from the operating system's generator.
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 64];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self::with_key(&key)
    }

    fn with_key(key: &[u8; 64]) -> Self {
        let mut keyed = Sha256::new();
        keyed.update(key);
        Self { keyed }
    }

    fn hash(&self, cf: Cf, key: &[u8], value: &[u8]) -> u128 {
        let mut h = self.keyed.clone();
        h.update(cf.name().as_bytes());
        h.update([0]);
        h.update((key.len() as u64).to_le_bytes());
        h.update(key);
        h.update(value);
        let digest = h.finalize();
        let mut cut = [0u8; 16];
        cut.copy_from_slice(&digest[..16]);
        u128::from_le_bytes(cut)
    }

    /// Adds a row the log implies (for a facts row, the record an event appends to it).
    pub(crate) fn add_row(&self, sums: &mut Sums, cf: Cf, key: &[u8], value: &[u8]) {
        sums.add(cf, self.hash(cf, key, value));
    }

    /// The sum of the rows `store` holds in `cf`, or `None` when a facts row is not one or more
    /// records in strictly increasing seqs (which the log never implies), or once `stop` is
    /// set (the answer is no longer wanted).
    pub(crate) fn stored(&self, store: &Store, cf: Cf, stop: &AtomicBool) -> Result<Option<Sums>, StoreError> {
        let mut sums = Sums::default();
        for item in store.iter_from(cf, &[])? {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let (k, v) = item?;
            if !cf.appends() {
                self.add_row(&mut sums, cf, &k, &v);
                continue;
            }
            let mut last = None;
            let mut ordered = true;
            let split = projection::for_each_record(&v, |record, seq| {
                ordered &= last.is_none_or(|l| l < seq);
                last = Some(seq);
                self.add_row(&mut sums, cf, &k, record);
            });
            // (A row of no records is one the log never implies either.)
            if split.is_err() || !ordered || last.is_none() {
                return Ok(None);
            }
        }
        Ok(Some(sums))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A facts row's records: each a length byte and a payload whose first byte is the seq.
    fn record(seq: u8, tail: u8) -> Vec<u8> {
        vec![2, seq, tail]
    }

    fn stored_sums(rows: &[(Cf, Vec<u8>, Vec<u8>)]) -> Option<Sums> {
        let store = Store::memory(&store::memory::MemoryStore::new());
        let mut batch = store::Batch::default();
        for (cf, k, v) in rows {
            batch.row(*cf, k.clone(), v.clone());
        }
        store.write_unsynced(&batch).unwrap();
        let hasher = ElementHasher::with_key(&[7; 64]);
        let mut all = Sums::default();
        for cf in Cf::PROJECTIONS {
            all.merge(&hasher.stored(&store, cf, &AtomicBool::new(false)).unwrap()?);
        }
        Some(all)
    }

    fn log_sums(rows: &[(Cf, Vec<u8>, Vec<u8>)]) -> Sums {
        let hasher = ElementHasher::with_key(&[7; 64]);
        let mut sums = Sums::default();
        for (cf, k, v) in rows {
            hasher.add_row(&mut sums, *cf, k, v);
        }
        sums
    }

    /// Rows as the log implies them: a facts record for each of `seqs` (ascending, one a row's
    /// event), spread over three keys, and an id row each.
    fn implied(seqs: &[u8]) -> Vec<(Cf, Vec<u8>, Vec<u8>)> {
        let mut rows = Vec::new();
        for (i, seq) in seqs.iter().enumerate() {
            rows.push((Cf::Facts, vec![b'k', seq % 3], record(*seq, i as u8)));
            rows.push((Cf::EventIds, vec![b'i', *seq], vec![*seq]));
        }
        rows
    }

    proptest! {
        #[test]
        fn the_store_sums_to_the_log_exactly_when_it_holds_the_rows_the_log_implies(
            seqs in proptest::collection::btree_set(1u8..120, 1..40),
            change in 0usize..6,
            at in any::<prop::sample::Index>(),
        ) {
            let seqs: Vec<u8> = seqs.into_iter().collect();
            let log = implied(&seqs);
            // The store as the writer leaves it: appended records merged into their rows.
            prop_assert_eq!(stored_sums(&log), Some(log_sums(&log)));
            // The same sums in any order of the log's rows.
            let mut reversed = log.clone();
            reversed.reverse();
            prop_assert_eq!(log_sums(&reversed), log_sums(&log));
            let mut store = log.clone();
            let i = at.index(store.len());
            match change {
                // A row left out, a byte changed, a key changed.
                0 => { store.remove(i); }
                1 => { let v = &mut store[i].2; let last = v.len() - 1; v[last] ^= 1; }
                2 => store[i].1.push(b'x'),
                // A record appended twice (a row set twice to the same value is no change),
                // or a row with no event.
                3 if store[i].0 == Cf::Facts => { let row = store[i].clone(); store.push(row); }
                3 => { store.remove(i); }
                4 if i % 2 == 0 => store.push((Cf::Feed, vec![b'f', seqs[0]], Vec::new())),
                4 => store.push((Cf::Facts, vec![b'e'], Vec::new())),
                // Records of one row out of seq order.
                _ => {
                    let first_of_row = store.iter().position(|(cf, k, _)| *cf == Cf::Facts && k == &store[i].1);
                    if let (Cf::Facts, Some(j)) = (store[i].0, first_of_row) {
                        if j != i {
                            let moved = store.remove(i);
                            store.insert(j, moved);
                        } else {
                            store.remove(i);
                        }
                    } else {
                        store.remove(i);
                    }
                }
            }
            prop_assert_ne!(stored_sums(&store), Some(log_sums(&log)));
        }
    }

    #[test]
    fn a_scan_told_to_stop_answers_nothing() {
        let rows = implied(&[1, 2, 3]);
        let store = Store::memory(&store::memory::MemoryStore::new());
        let mut batch = store::Batch::default();
        for (cf, k, v) in &rows {
            batch.row(*cf, k.clone(), v.clone());
        }
        store.write_unsynced(&batch).unwrap();
        let hasher = ElementHasher::with_key(&[7; 64]);
        assert!(hasher.stored(&store, Cf::Facts, &AtomicBool::new(false)).unwrap().is_some());
        assert_eq!(hasher.stored(&store, Cf::Facts, &AtomicBool::new(true)).unwrap(), None);
    }

    #[test]
    fn two_runs_draw_different_keys() {
        let (a, b) = (ElementHasher::random(), ElementHasher::random());
        assert_ne!(a.hash(Cf::Feed, b"k", b"v"), b.hash(Cf::Feed, b"k", b"v"));
    }
}
