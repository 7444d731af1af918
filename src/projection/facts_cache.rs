//! Facts rows of recently read targets, bounded by bytes: a repeated check reads no store.
//! Sharded by key, so the HTTP workers rarely wait on one another; each shard evicts in
//! insertion order (FIFO), which costs the same at any size.
//!
//! A shard's rows live in one buffer of fixed size, a ring (`ring.rs`): an entry is its key
//! and the row in `cache_codec`'s form (about 60 bytes a fact: the row's own subject or
//! address left out, the type a byte) behind a six-byte header, put in at the head; the oldest
//! go out at the tail to make room. A table of eight-byte slots (`slots.rs`: some of the key's
//! hash bits and the entry's offset) finds an entry by its key, and a hit decodes the facts
//! again. Decoded, the same facts take about four times the room (a `Fact` is 168 bytes
//! before its strings, each a heap allocation of its own).
//!
//! Until 2026-12-07 each entry was an allocation of its own, found through a table of
//! pointers and stamps and evicted through a queue of hashes and stamps: about 114 bytes of
//! each ~318-byte entry of an address went to that bookkeeping and the allocator's rounding,
//! and at 1 million tenants the default budget held 1.84 million of the 2 million rows that
//! checks by email read. In the ring an entry takes its bytes and six, and its table slots
//! about twenty (docs/PERFORMANCE.md, 2026-12-07 "ring"); an insertion allocates nothing and an
//! eviction frees nothing.
//!
//! Once a shard is full, a miss is let in only one time in [`ADMIT_WHEN_FULL`]. A mailing
//! list larger than the cache, checked over and over in the same order, would otherwise evict
//! each entry just before it is asked for again (no hits at all, and an insertion and an
//! eviction for every check); with sampled admission the cache keeps a stable share of the
//! list and answers about that share.

use crossbeam_utils::sync::ShardedLock;
use metrics::Counter;
use std::hash::BuildHasher;

use domain::{EventType, Fact};

use crate::cache_codec::{self, Own};
use crate::ring::Ring;
use crate::slots::Slots;

/// Bytes the cached rows may take unless told otherwise (`serve --cache-mb` gives them
/// thirteen sixteenths of its figure).
pub const FACTS_CACHE_BYTES: usize = 64 << 20;

const SHARDS: usize = 16;

/// What an entry of a tenant's or an address's row takes in the ring, about: the tables are
/// made for the budget over this.
const TYPICAL_WEIGHT: usize = 192;

/// The fewest entries a shard's table is made for when the store's rows are counted (a store
/// that grows while served then grows its tables only past about 16 × 4096 cached rows).
const MIN_TABLE: usize = 4096;

/// The entries a shard's table is made for: those its budget holds at a typical weight, or,
/// when the store has fewer rows (`rows`, if known), its share of them and a quarter more (at
/// least [`MIN_TABLE`]).
fn table_entries(shard_budget: usize, rows: Option<u64>) -> usize {
    // (Up to a bound: beyond about a gigabyte of budget, the tables grow as they fill.)
    let by_budget = (shard_budget / TYPICAL_WEIGHT).min(1 << 18);
    let by_rows = rows.map(|r| usize::try_from(r / SHARDS as u64 * 5 / 4).unwrap_or(usize::MAX).max(MIN_TABLE));
    by_rows.map_or(by_budget, |n| n.min(by_budget))
}

/// When a shard is full, one miss in this many goes in (at random).
const ADMIT_WHEN_FULL: u64 = 8;

struct Shard {
    /// The offset in `ring` of each entry held, by its key's hash; grown only while the
    /// shard's budget has room for it (see [`Shard::make_room_for`]), never by an insertion.
    table: Slots,
    ring: Ring,
    /// The state of the shard's xorshift generator, for sampled admission.
    dice: u64,
}

impl Shard {
    /// Whether a miss goes in while the shard is full: one time in [`ADMIT_WHEN_FULL`].
    fn admit(&mut self) -> bool {
        let mut x = self.dice;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.dice = x;
        x % ADMIT_WHEN_FULL == 0
    }

    /// The offset of `key`'s entry, if held.
    fn find(&self, hash: u64, key: &[u8]) -> Option<u32> {
        self.table.find(hash, |at| self.ring.key(at) == key)
    }

    /// Whether the table takes one more entry without growing.
    fn table_has_room(&self) -> bool {
        self.table.len() < self.table.capacity()
    }

    /// The bytes more entries can take without evicting any: none once the table is full and
    /// cannot grow, else what the ring has left.
    fn free(&self, shard_budget: usize) -> usize {
        if !self.table_has_room() && self.ring_beside(self.table.capacity() * 2, shard_budget).is_none() {
            0
        } else {
            self.ring.limit().saturating_sub(self.ring.held())
        }
    }

    /// The ring's bytes beside a table for `entries`, if the shard's budget holds both and the
    /// ring has not yet put in more than that (it can shrink only before it has been round).
    fn ring_beside(&self, entries: usize, shard_budget: usize) -> Option<usize> {
        let ring = shard_budget.checked_sub(Slots::bytes_for(entries))?;
        (self.ring.written() <= ring as u64).then_some(ring)
    }

    /// Makes the table room for `entries`, the ring giving up the bytes, if
    /// [`Shard::ring_beside`] allows (a table grows by placing every entry again under the
    /// shard's lock). Returns whether it has the room.
    fn make_room_for(&mut self, entries: usize, shard_budget: usize) -> bool {
        if self.table.capacity() >= entries {
            return true;
        }
        match self.ring_beside(entries, shard_budget) {
            Some(ring) if self.ring.set_limit(ring) => {
                self.table.grow_to(entries);
                true
            }
            _ => false,
        }
    }
}

/// The cache. Keys are facts-row keys.
pub struct FactsCache {
    /// Each shard's lock is sharded by thread slot (`ShardedLock`): a read locks only the
    /// slot of its own thread, so readers on different cores write no common line; a write
    /// (an insertion, a removal) locks every slot.
    shards: Box<[ShardedLock<Shard>]>,
    shard_budget: usize,
    hasher: foldhash::fast::FixedState,
    /// Lookups answered from the cache and not, since the start (counted by the caller, once
    /// a batch: see [`FactsCache::count`]).
    hits: Counter,
    misses: Counter,
}

/// What the cache holds and how well it answers, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactsCacheUsage {
    pub entries: u64,
    /// What the shards take: their tables and what their rings hold (see
    /// [`FactsCache::usage`]), at most `budget`.
    pub bytes: u64,
    pub budget: u64,
    pub hits: u64,
    pub misses: u64,
}

impl Default for FactsCache {
    fn default() -> Self {
        Self::with_budget(FACTS_CACHE_BYTES)
    }
}

impl FactsCache {
    /// A cache that holds at most about `bytes` of rows (0 holds nothing), its tables made
    /// for as many entries as the budget holds (see [`FactsCache::for_rows`]).
    pub fn with_budget(bytes: usize) -> Self {
        Self::for_rows(bytes, None)
    }

    /// A cache of at most `bytes` (its rings and tables together), for a store of about
    /// `rows` facts rows (`None`: unknown).
    ///
    /// Each shard's table is made at once for the entries it can come to hold: those its
    /// budget holds at a typical weight ([`TYPICAL_WEIGHT`]), or, when the store has fewer
    /// rows than that, its share of the rows and a quarter more (at least [`MIN_TABLE`]); its
    /// ring takes the rest of the shard's budget. A table grows by placing every entry again
    /// under the shard's lock, and as checks fill the cache evenly all shards grow in the same
    /// second (at 1 million tenants, a stall of tens of milliseconds for every check waiting
    /// on them); a table made far larger than its entries spreads them over memory that every
    /// lookup misses in the processor's caches (at 200 000 tenants a table made for the budget
    /// was ten times the entries, and a check's two lookups cost 0.4 µs more). Memory is
    /// reserved, not touched, until entries fill it.
    pub fn for_rows(bytes: usize, rows: Option<u64>) -> Self {
        let shard_budget = bytes / SHARDS;
        let entries = table_entries(shard_budget, rows);
        // (A budget too small for a table and a ring of any use holds nothing.)
        let table_capacity = if Slots::bytes_for(entries.max(4)) < shard_budget / 2 { entries.max(4) } else { 0 };
        let ring = shard_budget.saturating_sub(Slots::bytes_for(table_capacity));
        Self {
            shards: (0..SHARDS)
                .map(|i| {
                    ShardedLock::new(Shard {
                        table: Slots::with_capacity(table_capacity),
                        ring: Ring::with_limit(ring),
                        dice: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1),
                    })
                })
                .collect(),
            shard_budget,
            hasher: foldhash::fast::FixedState::default(),
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    /// Makes each shard's table room for its share of `rows` facts rows (as [`FactsCache::for_rows`]
    /// would have made it), if it has less and its ring has not yet been round: for a store
    /// that gained rows since the cache was made (a database node's replica once it has caught
    /// up), before it serves, so that its tables do not grow by rehashing while checks wait.
    pub fn make_room_for(&self, rows: u64) {
        let entries = table_entries(self.shard_budget, Some(rows));
        for shard in self.shards.iter() {
            if let Ok(mut shard) = shard.write() {
                shard.make_room_for(entries, self.shard_budget);
            }
        }
    }

    /// The entries each shard's table is made for now (a test's view of the sizing).
    #[cfg(test)]
    fn table_capacity(&self) -> usize {
        self.shards[0].read().map(|s| s.table.capacity()).unwrap_or(0)
    }

    /// The key's hash and its shard: the shard from bits above the low 32, which a table's
    /// slots keep and place entries by (`slots.rs`).
    fn shard(&self, key: &[u8]) -> (u64, &ShardedLock<Shard>) {
        let hash = self.hasher.hash_one(key);
        (hash, &self.shards[(hash >> 32) as usize % SHARDS])
    }

    /// Every fact of `key`'s row, if the cache holds it (reads go through
    /// [`FactsCache::get_where`]).
    #[cfg(test)]
    pub fn get(&self, key: &[u8]) -> Option<Vec<Fact>> {
        self.get_where(key, |_, _| true)
    }

    /// The facts of `key`'s row that `keep` takes by type and purpose, if the cache holds the
    /// row (the others are not built: `cache_codec::decode_where`).
    pub fn get_where(&self, key: &[u8], keep: impl Fn(EventType, Option<&str>) -> bool) -> Option<Vec<Fact>> {
        let (hash, shard) = self.shard(key);
        let shard = shard.read().ok()?;
        let at = shard.find(hash, key)?;
        // Only what was encoded goes in; a row that does not decode now is read from the store.
        cache_codec::decode_where(shard.ring.row(at), Own::of_key(key), keep).ok()
    }

    /// Whether the cache holds `key` (counting nothing, decoding nothing).
    pub fn contains(&self, key: &[u8]) -> bool {
        let (hash, shard) = self.shard(key);
        shard.read().is_ok_and(|s| s.find(hash, key).is_some())
    }

    /// Calls `f` with every key held, each shard's in the order they went in (the order in
    /// which putting them back in again gives each shard the same eviction order). A running
    /// server does this every few minutes, so no lock is held for long: each shard's ring is
    /// walked a slice at a time, its keys copied out (an entry evicted meanwhile is left
    /// out), and `f` is called with no lock held.
    pub fn for_each_key(&self, mut f: impl FnMut(&[u8])) {
        const SLICE: usize = 1024;
        let (mut keys, mut ends) = (Vec::new(), Vec::with_capacity(SLICE));
        for shard in self.shards.iter() {
            let mut from = Some(0);
            while let Some(at) = from {
                keys.clear();
                ends.clear();
                let Ok(s) = shard.read() else { break };
                from = s.ring.walk(at, SLICE, |at, key| {
                    // Held, not removed or put in again since.
                    if s.table.find(self.hasher.hash_one(key), |held| held == at).is_some() {
                        keys.extend_from_slice(key);
                        ends.push(keys.len());
                    }
                });
                drop(s);
                let mut start = 0;
                for &end in &ends {
                    f(&keys[start..end]);
                    start = end;
                }
            }
        }
    }

    /// Whether more entries go in without evicting any (a few short of the budget, as the
    /// shards fill unevenly).
    pub fn has_room(&self) -> bool {
        let free: usize = self.shards.iter().filter_map(|s| s.read().ok()).map(|s| s.free(self.shard_budget)).sum();
        free > self.shard_budget / 2
    }

    pub fn remove(&self, key: &[u8]) {
        let (hash, shard) = self.shard(key);
        if let Ok(mut shard) = shard.write() {
            let Shard { table, ring, .. } = &mut *shard;
            if table.remove(hash, |at| ring.key(at) == key).is_some() {
                // Nothing left to pass: the ring's bytes are free at once.
                if table.is_empty() {
                    ring.clear();
                }
            }
        }
    }

    /// Puts `facts` in for `key`, evicting the oldest entries of its shard to make room
    /// (when the shard is full, only a sample of the misses goes in). `still_valid` is asked
    /// under the shard's lock (a commit may have made the facts stale since they were read);
    /// nothing goes in when it says no.
    pub fn insert(&self, key: &[u8], facts: &[Fact], still_valid: impl Fn() -> bool) {
        let row = cache_codec::encode(facts, Own::of_key(key));
        let (hash, shard) = self.shard(key);
        let Ok(mut guard) = shard.write() else { return };
        let Some(len) = guard.ring.record_len(key, &row) else { return };
        if !still_valid() {
            return;
        }
        let shard = &mut *guard;
        let held = {
            let Shard { table, ring, .. } = &mut *shard;
            table.remove(hash, |at| ring.key(at) == key).is_some()
        };
        if !shard.table_has_room() {
            let more = shard.table.len() + 1;
            if !shard.make_room_for(more.max(shard.table.capacity() * 2), self.shard_budget) && !held && !shard.admit()
            {
                return;
            }
        } else if !held && !shard.ring.fits(len) && !shard.admit() {
            return;
        }
        let hasher = &self.hasher;
        let Shard { table, ring, .. } = shard;
        // An entry the ring lets go is taken out of the table, unless the key was put in
        // again since (its slot then holds another offset).
        let forget = |table: &mut Slots, at: u32, key: &[u8]| {
            table.remove(hasher.hash_one(key), |held| held == at);
        };
        while table.len() >= table.capacity() {
            if !ring.pop(|at, key| forget(table, at, key)) {
                break;
            }
        }
        let Some(at) = ring.push(key, &row, |at, key| forget(table, at, key)) else { return };
        table.insert(hash, at);
    }

    /// Counts the hits and misses of a batch of lookups (an addition each a batch, not a
    /// key, to the calling thread's slot).
    pub fn count(&self, hits: usize, misses: usize) {
        if hits > 0 {
            self.hits.add(hits as u64);
        }
        if misses > 0 {
            self.misses.add(misses as u64);
        }
    }

    /// Entries held now, and the bytes the shards take: their tables and what their rings
    /// hold (entries, removed entries not yet passed, gaps).
    pub fn usage(&self) -> (usize, usize) {
        self.shards
            .iter()
            .filter_map(|s| s.read().ok())
            .fold((0, 0), |(n, b), s| (n + s.table.len(), b + s.table.allocation_size() + s.ring.held()))
    }

    /// What the cache holds, its budget, and the lookups counted so far.
    pub fn figures(&self) -> FactsCacheUsage {
        let (entries, bytes) = self.usage();
        FactsCacheUsage {
            entries: entries as u64,
            bytes: bytes as u64,
            budget: (self.shard_budget * SHARDS) as u64,
            hits: self.hits.get(),
            misses: self.misses.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact_codec::encode_fact;

    /// An address's facts: linked to a tenant, who opted in.
    fn address_facts(i: u32) -> Vec<Fact> {
        let contact = format!("{i:0>43}");
        let linked: Fact = serde_json::from_value(serde_json::json!({
            "seq": 3 * i + 1, "id": uuid::Uuid::from_u128(u128::from(i)), "type": "contact.linked",
            "subject": format!("tenant-{i}"), "contact": contact, "occurred_at": 1_700_000_000_000_000i64,
            "recorded_at": 1_700_000_000_000_000i64,
        }))
        .unwrap();
        let granted = Fact {
            seq: u64::from(3 * i + 2),
            kind: domain::EventType::ConsentGranted,
            purpose: Some(domain::PurposeId::parse("newsletter").unwrap()),
            channel: Some(domain::Channel::Email),
            ..linked.clone()
        };
        vec![linked, granted]
    }

    /// The key of that address's row (`facts_key`).
    fn address_key(i: u32) -> Vec<u8> {
        format!("council\0c{i:0>43}\0").into_bytes()
    }

    /// The bytes the store keeps for a row of `facts`.
    fn stored(facts: &[Fact]) -> Vec<u8> {
        let mut row = Vec::new();
        for f in facts {
            encode_fact(f, &mut row);
        }
        row
    }

    #[test]
    fn a_hit_answers_the_facts_put_in_and_an_entry_takes_no_more_than_the_stored_row() {
        let budget = 1 << 20;
        let cache = FactsCache::with_budget(budget);
        let key = address_key(7);
        cache.insert(&key, &address_facts(7), || true);
        assert_eq!(cache.get(&key).unwrap(), address_facts(7));
        assert!(cache.get(&address_key(8)).is_none());
        for i in 0..20_000 {
            cache.insert(&address_key(i), &address_facts(i), || true);
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= budget, "{bytes} bytes held");
        // All an entry weighs (its bytes and header in the ring, its share of the table) is
        // less than the key and row the store holds for it: the budget holds at least as many
        // addresses as their stored bytes would fill.
        let stored_bytes = key.len() + stored(&address_facts(7)).len();
        assert!(entries * stored_bytes >= budget * 9 / 10, "{entries} entries of {stored_bytes} stored bytes");
        // Every entry held still answers its own facts.
        let held: Vec<u32> = (0..20_000).filter(|i| cache.get(&address_key(*i)).is_some()).collect();
        assert_eq!(held.len(), entries);
        for i in held.iter().step_by(97) {
            assert_eq!(cache.get(&address_key(*i)).unwrap(), address_facts(*i));
        }
    }

    /// `n` facts of one subject.
    fn facts(n: usize) -> Vec<Fact> {
        let f: Fact = serde_json::from_str(
            r#"{"seq":1,"id":"0190a0a0-0000-7000-8000-000000000001","type":"consent.granted",
                "subject":"T-1","purpose":"newsletter","occurred_at":0,"recorded_at":0}"#,
        )
        .unwrap();
        vec![f; n]
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_a_list_larger_than_it_still_hits() {
        let cache = FactsCache::with_budget(1 << 20);
        // A list of about four times what the cache holds, checked three times in the same order,
        // each miss filling the cache as a check does.
        let keys = 32_000u32;
        let mut hits = [0u32; 3];
        for pass in &mut hits {
            for i in 0..keys {
                let key = i.to_be_bytes();
                match cache.get(&key) {
                    Some(_) => *pass += 1,
                    None => cache.insert(&key, &facts(2), || true),
                }
            }
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 1 << 20, "{bytes} bytes held");
        assert!(entries > 4000 && (entries as u32) < keys, "{entries} entries held");
        assert_eq!(hits[0], 0);
        // In insertion order alone the cache would evict every entry just before its turn
        // came again: no hits at all. It keeps a stable share instead.
        assert!(2 * hits[2] as usize > entries, "only {} of the {entries} entries held hit in the third pass", hits[2]);
        // A key it holds is refreshed in place, full or not.
        let held = (0..keys).find(|i| cache.get(&i.to_be_bytes()).is_some()).expect("a key held");
        cache.insert(&held.to_be_bytes(), &facts(1), || true);
        assert_eq!(cache.get(&held.to_be_bytes()).map(|f| f.len()), Some(1));
        // (Its old bytes wait for the ring to pass them, so the refresh may evict the oldest.)
        let mut listed = 0;
        cache.for_each_key(|k| listed += usize::from(k == held.to_be_bytes()));
        assert_eq!(listed, 1, "a refreshed key is still one entry");
        assert!((entries - 1..=entries).contains(&cache.usage().0));
    }

    #[test]
    fn a_stale_fill_goes_nowhere_and_removal_frees_its_bytes() {
        let cache = FactsCache::with_budget(1 << 20);
        cache.insert(b"k", &facts(1), || false);
        assert!(cache.get(b"k").is_none());
        cache.insert(b"k", &facts(3), || true);
        cache.insert(b"k", &facts(1), || true);
        assert_eq!(cache.get(b"k").unwrap().len(), 1, "a new fill replaces the old");
        let empty = FactsCache::with_budget(1 << 20).usage();
        cache.remove(b"k");
        assert_eq!(cache.usage(), empty, "the last entry of its shard gone, its bytes are free");
        for _ in 0..10_000 {
            cache.insert(b"k", &facts(1), || true);
            cache.remove(b"k");
        }
        assert_eq!(cache.usage(), empty);
        // A removed entry among others is not found, and its bytes go when the ring passes them.
        for i in 0..2000u32 {
            cache.insert(&i.to_be_bytes(), &facts(1), || true);
        }
        cache.remove(&7u32.to_be_bytes());
        assert!(cache.get(&7u32.to_be_bytes()).is_none() && cache.get(&8u32.to_be_bytes()).is_some());
        assert_eq!(cache.usage().0, 1999);
    }

    #[test]
    fn entries_smaller_than_expected_do_not_grow_a_full_shard_past_its_budget() {
        let budget = 1 << 20;
        let cache = FactsCache::with_budget(budget);
        let made = cache.table_capacity();
        // Rows of no facts: the ring would hold far more of them than the table was made for.
        for i in 0..200_000u32 {
            cache.insert(&i.to_be_bytes(), &[], || true);
            if i % 10_000 == 0 {
                assert!(cache.usage().1 <= budget, "{:?} after {i}", cache.usage());
            }
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= budget, "{bytes}");
        assert!(entries > made * SHARDS / 2, "{entries} entries, tables made for {made} a shard");
        // The tables grew while the rings had room for them, then stayed.
        let grown = cache.table_capacity();
        for i in 200_000..300_000u32 {
            cache.insert(&i.to_be_bytes(), &[], || true);
        }
        assert_eq!(cache.table_capacity(), grown);
        assert!((299_000..300_000u32).any(|i| cache.get(&i.to_be_bytes()).is_some()), "the newest are held");
    }

    #[test]
    fn the_keys_held_are_listed_once_each_in_the_order_they_went_in() {
        let cache = FactsCache::with_budget(1 << 20);
        for i in 0..3000u32 {
            cache.insert(&i.to_be_bytes(), &facts(1), || true);
        }
        // Put in again (now the newest), and taken out.
        cache.insert(&5u32.to_be_bytes(), &facts(2), || true);
        cache.remove(&6u32.to_be_bytes());
        let mut listed = Vec::new();
        cache.for_each_key(|k| listed.push(u32::from_be_bytes(k.try_into().unwrap())));
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        let expected: Vec<u32> = (0..3000).filter(|i| *i != 6).collect();
        assert_eq!(sorted, expected, "every key held, once");
        // Within a shard, oldest first: 5 comes after every other key of its shard.
        let shard_of = |i: u32| (cache.shard(&i.to_be_bytes()).0 >> 32) as usize % SHARDS;
        let of_five: Vec<u32> = listed.iter().copied().filter(|i| shard_of(*i) == shard_of(5)).collect();
        assert_eq!(of_five.last(), Some(&5));
        assert!(of_five[..of_five.len() - 1].windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_cache_of_no_bytes_holds_nothing() {
        let cache = FactsCache::with_budget(0);
        cache.insert(b"k", &facts(1), || true);
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn tables_are_made_for_the_rows_the_store_holds_and_still_take_more() {
        let budget = 64 << 20;
        let by_budget = FactsCache::with_budget(budget).table_capacity();
        assert!(by_budget >= budget / SHARDS / TYPICAL_WEIGHT, "{by_budget}");
        // A store of 16 000 rows: each shard's table made for its thousand and a quarter more,
        // at least MIN_TABLE, not the budget's 13 000.
        let small = FactsCache::for_rows(budget, Some(16_000));
        let made = small.table_capacity();
        assert!((MIN_TABLE..by_budget).contains(&made), "{made} of {by_budget}");
        // More rows than it was made for still go in (the tables grow), within the budget.
        let n = 40 * MIN_TABLE as u32;
        for i in 0..n {
            small.insert(&address_key(i), &address_facts(i), || true);
        }
        let (entries, bytes) = small.usage();
        assert_eq!(entries, n as usize);
        assert!(bytes <= budget, "{bytes}");
        assert!(small.get(&address_key(n - 1)).is_some() && small.get(&address_key(0)).is_some());
        // A store of more rows than the budget holds: made as for the budget.
        assert_eq!(FactsCache::for_rows(budget, Some(100_000_000)).table_capacity(), by_budget);
        // A cache made for an empty store, then given room for the rows it has come to hold
        // (a database node after catching up): as if made for them, its entries kept.
        let empty = FactsCache::for_rows(budget, Some(0));
        empty.insert(&address_key(7), &address_facts(7), || true);
        let before = empty.table_capacity();
        assert!(before < 160_000 / SHARDS, "{before}");
        empty.make_room_for(160_000);
        assert!(empty.table_capacity() >= 160_000 / SHARDS * 5 / 4, "{}", empty.table_capacity());
        assert_eq!(empty.get(&address_key(7)), Some(address_facts(7)));
        empty.make_room_for(100_000_000);
        assert!(empty.table_capacity() >= by_budget * 7 / 8, "{}", empty.table_capacity());
    }
}
