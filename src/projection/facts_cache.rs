//! Decoded facts of recently read targets, bounded by bytes: a repeated check reads no store
//! and decodes nothing. Sharded by key, so the HTTP workers rarely wait on one another; each
//! shard evicts in insertion order (FIFO), which costs the same at any size.
//!
//! Once a shard is full, a miss is let in only one time in [`ADMIT_WHEN_FULL`]. A mailing
//! list larger than the cache, checked over and over in the same order, would otherwise evict
//! each entry just before it is asked for again (no hits at all, and an insertion and an
//! eviction for every check); with sampled admission the cache keeps a stable share of the
//! list and answers about that share.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};

use domain::Fact;

/// Bytes the decoded facts may take unless told otherwise (`serve --cache-mb` gives them
/// half of its figure).
pub const FACTS_CACHE_BYTES: usize = 64 << 20;

const SHARDS: usize = 16;

/// When a shard is full, one miss in this many goes in (at random).
const ADMIT_WHEN_FULL: u64 = 8;

/// An entry: the facts, their weight, and the stamp of the insertion that put them in.
type Map = HashMap<Vec<u8>, (Arc<Vec<Fact>>, usize, u64), foldhash::fast::RandomState>;

#[derive(Default)]
struct Shard {
    map: Map,
    /// Keys with the stamp of their insertion, in the order they went in, for eviction; an
    /// entry whose key was removed or put in again since (another stamp) is skipped.
    order: VecDeque<(Vec<u8>, u64)>,
    bytes: usize,
    stamp: u64,
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

    /// Is this order entry the live one for its key?
    fn is_live(map: &Map, key: &[u8], stamp: u64) -> bool {
        map.get(key).is_some_and(|e| e.2 == stamp)
    }
}

/// The cache. Keys are facts-row keys.
pub struct FactsCache {
    shards: Box<[RwLock<Shard>]>,
    shard_budget: usize,
    hasher: foldhash::fast::FixedState,
}

impl Default for FactsCache {
    fn default() -> Self {
        Self::with_budget(FACTS_CACHE_BYTES)
    }
}

/// What an entry holds in memory: its slots in the map and in the eviction order (each table
/// up to half empty after it grows), the key twice (one copy in each), the `Arc` and the
/// facts' buffer, and each fact's strings; every allocation rounded up to 16 bytes, as an
/// allocator's size classes do. So the budget bounds what the process holds, not a part of
/// it (an estimate that left these out let the cache hold twice its budget).
#[allow(clippy::ptr_arg)] // the buffer's capacity counts, not only its facts
fn weight(key: &[u8], facts: &Vec<Fact>) -> usize {
    fn alloc(bytes: usize) -> usize {
        bytes.next_multiple_of(16)
    }
    const MAP_SLOT: usize = std::mem::size_of::<(Vec<u8>, (Arc<Vec<Fact>>, usize, u64))>() + 1;
    const ORDER_SLOT: usize = std::mem::size_of::<(Vec<u8>, u64)>();
    let strings: usize = facts
        .iter()
        .map(|f| {
            f.subject.as_ref().map_or(0, |s| alloc(s.as_str().len()))
                + f.contact.as_ref().map_or(0, |c| alloc(c.capacity()))
                + f.purpose.as_ref().map_or(0, |p| alloc(p.as_str().len()))
                + f.recipient.as_ref().map_or(0, |r| alloc(r.as_str().len()))
        })
        .sum();
    2 * (MAP_SLOT + ORDER_SLOT)
        + 2 * alloc(key.len())
        + alloc(2 * std::mem::size_of::<usize>() + std::mem::size_of::<Vec<Fact>>())
        + alloc(facts.capacity() * std::mem::size_of::<Fact>())
        + strings
}

impl FactsCache {
    /// A cache that holds at most about `bytes` of decoded facts (0 holds nothing).
    pub fn with_budget(bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|i| RwLock::new(Shard { dice: 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1), ..Shard::default() }))
                .collect(),
            shard_budget: bytes / SHARDS,
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    fn shard(&self, key: &[u8]) -> &RwLock<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    pub fn get(&self, key: &[u8]) -> Option<Arc<Vec<Fact>>> {
        self.shard(key).read().ok()?.map.get(key).map(|e| e.0.clone())
    }

    pub fn remove(&self, key: &[u8]) {
        if let Ok(mut shard) = self.shard(key).write() {
            if let Some((_, w, _)) = shard.map.remove(key) {
                shard.bytes -= w;
            }
        }
    }

    /// Puts `facts` in for `key`, evicting the oldest entries of its shard to stay within
    /// budget (when the shard is full, only a sample of the misses goes in). `still_valid` is
    /// asked under the shard's lock (a commit may have made the entry stale since it was
    /// read); nothing goes in when it says no.
    pub fn insert(&self, key: Vec<u8>, facts: Arc<Vec<Fact>>, still_valid: impl Fn() -> bool) {
        let w = weight(&key, &facts);
        if w > self.shard_budget {
            return;
        }
        let Ok(mut guard) = self.shard(&key).write() else { return };
        if !still_valid() {
            return;
        }
        let shard = &mut *guard;
        if shard.bytes + w > self.shard_budget && !shard.map.contains_key(&key) && !shard.admit() {
            return;
        }
        shard.stamp += 1;
        let stamp = shard.stamp;
        if let Some((_, old, _)) = shard.map.insert(key.clone(), (facts, w, stamp)) {
            shard.bytes -= old;
        }
        shard.bytes += w;
        shard.order.push_back((key, stamp));
        while shard.bytes > self.shard_budget {
            let Some((oldest, stamp)) = shard.order.pop_front() else { break };
            if Shard::is_live(&shard.map, &oldest, stamp) {
                if let Some((_, w, _)) = shard.map.remove(&oldest) {
                    shard.bytes -= w;
                }
            }
        }
        // Order entries of removed or replaced entries pile up; drop them now and then, so
        // the order stays within twice the entries.
        if shard.order.len() > 2 * shard.map.len() + 64 {
            let map = &shard.map;
            shard.order.retain(|(k, stamp)| Shard::is_live(map, k, *stamp));
        }
    }

    /// Entries and bytes held now.
    pub fn usage(&self) -> (usize, usize) {
        self.shards.iter().filter_map(|s| s.read().ok()).fold((0, 0), |(n, b), s| (n + s.map.len(), b + s.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// An address's facts row as the projection writes it: linked to a tenant, who opted in.
    fn address_row(i: u32) -> Vec<u8> {
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
        let mut row = Vec::new();
        crate::fact_codec::encode_fact(&linked, &mut row);
        crate::fact_codec::encode_fact(&granted, &mut row);
        row
    }

    #[test]
    fn an_entry_weighs_what_it_holds_the_spare_room_of_its_buffer_too() {
        let facts = crate::fact_codec::decode_facts(&address_row(7)).unwrap();
        assert_eq!(facts.capacity(), facts.len(), "decoded facts take no spare room");
        let key = format!("council\0c{:0>43}", 7).into_bytes();
        let w = weight(&key, &facts);
        // At least the key twice, the facts' buffer and their strings.
        let strings: usize = facts
            .iter()
            .map(|f| f.subject.as_ref().map_or(0, |s| s.as_str().len()) + f.contact.as_ref().map_or(0, String::len))
            .sum();
        assert!(w >= 2 * key.len() + facts.len() * std::mem::size_of::<Fact>() + strings, "{w}");
        let mut roomy = Vec::with_capacity(4 * facts.len());
        roomy.extend(facts.iter().cloned());
        assert!(weight(&key, &roomy) >= w + 3 * facts.len() * std::mem::size_of::<Fact>());
    }

    fn facts(n: usize) -> Arc<Vec<Fact>> {
        let f: Fact = serde_json::from_str(
            r#"{"seq":1,"id":"0190a0a0-0000-7000-8000-000000000001","type":"consent.granted",
                "subject":"T-1","purpose":"newsletter","occurred_at":0,"recorded_at":0}"#,
        )
        .unwrap();
        Arc::new(vec![f; n])
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_a_list_larger_than_it_still_hits() {
        let cache = FactsCache::with_budget(1 << 20);
        // A list of about four times what the cache holds, checked three times in the same order,
        // each miss filling the cache as a check does.
        let keys = 8_000u32;
        let mut hits = [0u32; 3];
        for pass in &mut hits {
            for i in 0..keys {
                let key = i.to_be_bytes();
                match cache.get(&key) {
                    Some(_) => *pass += 1,
                    None => cache.insert(key.to_vec(), facts(2), || true),
                }
            }
        }
        let (entries, bytes) = cache.usage();
        assert!(bytes <= 1 << 20, "{bytes} bytes held");
        assert!(entries > 1000 && (entries as u32) < keys, "{entries} entries held");
        assert_eq!(hits[0], 0);
        // In insertion order alone the cache would evict every entry just before its turn
        // came again: no hits at all. It keeps a stable share instead.
        assert!(2 * hits[2] as usize > entries, "only {} of the {entries} entries held hit in the third pass", hits[2]);
        // A key it holds is refreshed in place, full or not.
        let held = (0..keys).find(|i| cache.get(&i.to_be_bytes()).is_some()).expect("a key held");
        cache.insert(held.to_be_bytes().to_vec(), facts(1), || true);
        assert_eq!(cache.get(&held.to_be_bytes()).map(|f| f.len()), Some(1));
    }

    #[test]
    fn a_stale_fill_goes_nowhere_and_removal_frees_its_bytes() {
        let cache = FactsCache::with_budget(1 << 20);
        cache.insert(b"k".to_vec(), facts(1), || false);
        assert!(cache.get(b"k").is_none());
        cache.insert(b"k".to_vec(), facts(3), || true);
        cache.insert(b"k".to_vec(), facts(1), || true);
        assert_eq!(cache.get(b"k").unwrap().len(), 1, "a new fill replaces the old");
        cache.remove(b"k");
        assert_eq!(cache.usage(), (0, 0));
        // Removed keys do not grow the eviction order without bound.
        for _ in 0..10_000 {
            cache.insert(b"k".to_vec(), facts(1), || true);
            cache.remove(b"k");
        }
        assert!(cache.shards.iter().all(|s| s.read().unwrap().order.len() <= 65));
    }

    #[test]
    fn a_cache_of_no_bytes_holds_nothing() {
        let cache = FactsCache::with_budget(0);
        cache.insert(b"k".to_vec(), facts(1), || true);
        assert_eq!(cache.usage(), (0, 0));
    }
}
