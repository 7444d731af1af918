//! A server's facts cache across a restart: on a clean close the keys of the rows it holds
//! are saved in the data directory, and on the next start a thread reads those rows back into
//! it while the server already answers (on one core it takes about half of it from the
//! checks while it runs; docs/PERFORMANCE.md). A server started on a large ledger otherwise fills
//! its cache one miss at a time (at 1 million tenants, about 150 s of checks at a fifth of
//! the full rate; docs/PERFORMANCE.md). As PostgreSQL's `autoprewarm` and InnoDB's buffer
//! pool dump do, the keys are also saved every [`SAVE_EVERY`] while the server runs, so one
//! that dies (kill -9, a lost machine) starts from keys at most that old.
//!
//! A server with no saved keys (its first start, a lost file) reads the store's facts rows in
//! key order instead, a pass read once, until the cache is full or every row is in: a ledger
//! whose rows fit in the cache (1 million tenants at the default `--cache-mb`) then answers
//! from memory within seconds of its first start (docs/PERFORMANCE.md, 2026-12-07 "ring"); one
//! larger holds a share of its rows in key order, which the checks' misses then replace
//! oldest first.
//!
//! When the saved keys are half the store's facts rows or more (a cache that held most of
//! them), they are read back by one pass over the store in key order that takes the saved
//! ones, not by a point read each: at 1 million tenants that is a third of the time
//! (docs/PERFORMANCE.md, 2026-12-07 "restart").
//!
//! The file holds keys only, never facts: the rows are read from the store as it is when the
//! server starts, through the path a check's miss takes, so a row that changed, went or was
//! never there is read as it is now (or not at all). Keys of facts rows name a subject id or
//! an address's blind index, as the store's own keys do. A file that does not read as this
//! format is ignored (the cache then fills from checks, as without one).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use projection::{Caches, Projections};
use store::{Cf, Store};

/// The file's first bytes; then each key as its length (two bytes, big-endian) and its bytes.
const MAGIC: &[u8] = b"consent-ledger facts cache keys 1\n";

/// Keys read from the store at once (one multi-get).
const BATCH: usize = 512;

/// How often a running server saves its cache's keys (besides on a clean stop).
pub(crate) const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Writes the keys of the rows `caches` holds to `path` (through a temporary file renamed
/// over it, so a crash leaves the old file or the new one). Keys written.
pub(crate) fn save(path: &Path, caches: &Caches) -> io::Result<u64> {
    let temporary = path.with_extension("keys.new");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        // Blind indexes and subject ids: as private as the store that holds them.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = BufWriter::new(options.open(&temporary)?);
    out.write_all(MAGIC)?;
    let (mut written, mut failed) = (0u64, None);
    caches.for_each_facts_key(|key| {
        let Ok(len) = u16::try_from(key.len()) else { return };
        if failed.is_none() {
            match out.write_all(&len.to_be_bytes()).and_then(|()| out.write_all(key)) {
                Ok(()) => written += 1,
                Err(e) => failed = Some(e),
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    out.into_inner().map_err(io::IntoInnerError::into_error)?.sync_all()?;
    std::fs::rename(&temporary, path)?;
    Ok(written)
}

/// The thread that reads the saved rows back into the cache, then saves the cache's keys
/// every [`SAVE_EVERY`]; stopped (and waited for) when dropped.
pub(crate) struct Warmer {
    stop: Arc<AtomicBool>,
    /// Set when the warm-up ended on its own (the file read, the cache full, a file it could
    /// not read, or none), not stopped.
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Warmer {
    /// Stops the thread and waits for it: true when it had ended on its own. A server closed
    /// before then holds only part of the saved rows, and saving its keys would lose the rest.
    pub(crate) fn finish(mut self) -> bool {
        self.stop_and_join();
        self.done.load(Ordering::Acquire)
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

impl Drop for Warmer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts reading the rows whose keys `path` holds (if it exists) into `caches`, a batch at a
/// time, until the file ends, the cache is full, or the returned [`Warmer`] is dropped; then,
/// until dropped, saves the cache's keys to `path` `every` so long ([`SAVE_EVERY`]). `None`
/// when no thread could be started.
pub(crate) fn start(
    path: PathBuf,
    store: Arc<Store>,
    caches: Arc<Caches>,
    every: std::time::Duration,
) -> Option<Warmer> {
    let (stop, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (stopped, ended) = (stop.clone(), done.clone());
    let handle = std::thread::Builder::new()
        .name("warm-facts-cache".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let projections = Projections::new(&store, &caches);
            match File::open(&path) {
                Ok(file) => match warm(file, &path, store.estimated_rows(Cf::Facts), &projections, &caches, &stopped) {
                    Ok(warmed) => tracing::info!(
                        rows = warmed.rows,
                        scanned = warmed.scanned,
                        seconds = started.elapsed().as_secs_f64(),
                        "facts cache warmed"
                    ),
                    Err(e) => tracing::warn!(error = %e, "the saved facts cache keys were not read back"),
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match by_pass(&projections, &caches, &stopped, |_| true, Bound::NONE) {
                        Ok(warmed) => tracing::info!(
                            rows = warmed.rows,
                            seconds = started.elapsed().as_secs_f64(),
                            "facts cache filled from the store (no saved keys)"
                        ),
                        Err(e) => tracing::warn!(error = %e, "the facts cache was not filled from the store"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the saved facts cache keys were not read back"),
            }
            if stopped.load(Ordering::Acquire) {
                return;
            }
            ended.store(true, Ordering::Release);
            let mut since = std::time::Instant::now();
            while !stopped.load(Ordering::Acquire) {
                std::thread::park_timeout(every.saturating_sub(since.elapsed()));
                if !stopped.load(Ordering::Acquire) && since.elapsed() >= every {
                    let started = std::time::Instant::now();
                    match save(&path, &caches) {
                        Ok(keys) => tracing::info!(
                            keys,
                            seconds = started.elapsed().as_secs_f64(),
                            "saved the facts cache's keys"
                        ),
                        Err(e) => tracing::warn!(error = %e, "the facts cache's keys were not saved"),
                    }
                    since = std::time::Instant::now();
                }
            }
        })
        .ok()?;
    Some(Warmer { stop, done, handle: Some(handle) })
}

/// Reads the rows whose keys `file` (at `path`) holds (the format of [`save`]) into the cache,
/// the store holding about `store_rows` facts rows. When the keys are at least half of those
/// rows, one pass over the store in key order takes the saved ones ([`by_pass`]): a pass reads
/// a row in about a third of a point read's time (docs/PERFORMANCE.md), and a server whose
/// cache held most rows (1 million tenants at the default `--cache-mb`) is back in a third of
/// the time. Otherwise the keys are read back in the file's order ([`by_point_reads`]), which
/// is also the order they were cached in.
///
/// The store's count is an estimate (RocksDB's): one short of the truth would have the pass
/// read far more rows than were saved. So the pass ends once it has found every saved key or
/// read three times as many rows as there are keys (three rows of a pass cost about one point
/// read) without finding them all; the keys it has not found are then read back by point
/// reads (which skip the rows already in). A short estimate so costs at most about twice
/// the point reads alone, never a pass over a store many times the saved set.
fn warm(
    file: File,
    path: &Path,
    store_rows: Option<u64>,
    projections: &Projections<'_>,
    caches: &Caches,
    stop: &AtomicBool,
) -> io::Result<Warmed> {
    let saved = SavedKeys::read(BufReader::new(file), stop)?;
    if stop.load(Ordering::Acquire) {
        return Ok(Warmed::default());
    }
    let mut warmed = Warmed::default();
    let keys = saved.hashes.len() as u64;
    if store_rows.is_some_and(|rows| keys.saturating_mul(2) >= rows) {
        let bound = Bound { rows: keys, scanned: keys.saturating_mul(3) };
        warmed = by_pass(projections, caches, stop, |key| saved.holds(key), bound)?;
        if warmed.scanned < bound.scanned || warmed.rows >= bound.rows {
            return Ok(warmed);
        }
    }
    drop(saved);
    warmed.rows += by_point_reads(BufReader::new(File::open(path)?), projections, caches, stop)?;
    Ok(warmed)
}

/// What a warm-up did: rows put in the cache, and rows a pass over the store read to find
/// them (0 when none ran).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Warmed {
    rows: u64,
    scanned: u64,
}

/// Where a pass ends besides the store's end: once it has put in `rows` rows, or read
/// `scanned` rows (checked a batch at a time).
#[derive(Debug, Clone, Copy)]
struct Bound {
    rows: u64,
    scanned: u64,
}

impl Bound {
    /// A pass that ends only at the store's end (or a full cache, or a stop).
    const NONE: Bound = Bound { rows: u64::MAX, scanned: u64::MAX };
}

/// The saved keys as a set of their hashes (eight bytes a key, whatever its length; a key
/// taken for another by a shared hash only puts one more row, as the store has it, in).
struct SavedKeys {
    hasher: std::collections::hash_map::RandomState,
    hashes: Vec<u64>,
}

impl SavedKeys {
    fn read(mut input: impl Read, stop: &AtomicBool) -> io::Result<Self> {
        let mut keys = Self { hasher: Default::default(), hashes: Vec::new() };
        let mut key = Vec::new();
        let mut each = KeysFile::open(&mut input)?;
        while !stop.load(Ordering::Acquire) && each.next_into(&mut key)? {
            keys.hashes.push(std::hash::BuildHasher::hash_one(&keys.hasher, &key));
        }
        keys.hashes.sort_unstable();
        keys.hashes.dedup();
        Ok(keys)
    }

    fn holds(&self, key: &[u8]) -> bool {
        self.hashes.binary_search(&std::hash::BuildHasher::hash_one(&self.hasher, key)).is_ok()
    }
}

/// The keys of a file in [`save`]'s format, read one at a time.
struct KeysFile<R> {
    input: R,
}

impl<R: Read> KeysFile<R> {
    /// Reads and checks the file's first bytes.
    fn open(mut input: R) -> io::Result<Self> {
        let mut magic = vec![0; MAGIC.len()];
        input.read_exact(&mut magic)?;
        if magic != MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a facts cache keys file"));
        }
        Ok(Self { input })
    }

    /// Reads the next key into `key`: false at the file's end, or at a key cut short (one
    /// written by a process that died mid-write), which ends the file.
    fn next_into(&mut self, key: &mut Vec<u8>) -> io::Result<bool> {
        let mut len = [0u8; 2];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        key.resize(usize::from(u16::from_be_bytes(len)), 0);
        Ok(self.input.read_exact(key).is_ok())
    }
}

/// Reads keys from `input` (the format of [`save`]) and their rows into the cache, a batch of
/// point reads at a time, in the file's order. Rows put in.
fn by_point_reads(
    input: impl Read,
    projections: &Projections<'_>,
    caches: &Caches,
    stop: &AtomicBool,
) -> io::Result<u64> {
    let mut each = KeysFile::open(input)?;
    let mut rows = 0u64;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut ended = false;
    while !ended && !stop.load(Ordering::Acquire) && caches.facts_have_room() {
        batch.clear();
        while batch.len() < BATCH {
            let mut key = Vec::new();
            if !each.next_into(&mut key)? {
                ended = true;
                break;
            }
            batch.push(key);
        }
        let keys: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        rows += projections.warm_facts(&keys).map_err(|e| io::Error::other(e.to_string()))? as u64;
    }
    Ok(rows)
}

/// Reads the store's facts rows that `keep` takes, in key order, into the cache until it is
/// full, every row read, `stop`, or `bound`: with every row taken and no bound, what a server
/// with no saved keys (its first start, or one whose keys file was lost) does, so that it
/// holds at once the rows it would otherwise read one miss at a time.
fn by_pass(
    projections: &Projections<'_>,
    caches: &Caches,
    stop: &AtomicBool,
    keep: impl Fn(&[u8]) -> bool,
    bound: Bound,
) -> io::Result<Warmed> {
    let (mut warmed, mut from) = (Warmed::default(), Some(Vec::new()));
    while let Some(at) = from.take() {
        if stop.load(Ordering::Acquire)
            || !caches.facts_have_room()
            || warmed.rows >= bound.rows
            || warmed.scanned >= bound.scanned
        {
            break;
        }
        let (put, read, next) =
            projections.warm_facts_from(&at, BATCH, &keep).map_err(|e| io::Error::other(e.to_string()))?;
        warmed.rows += put as u64;
        warmed.scanned += read as u64;
        from = next;
    }
    Ok(warmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{ControllerId, Fact, SubjectId};
    use projection::{encode_fact, facts_key, TargetKey};
    use store::{memory::MemoryStore, Batch, Cf};

    /// The key of tenant `i`'s facts row.
    fn key(i: u32) -> Vec<u8> {
        let controller = ControllerId::parse("council").unwrap();
        facts_key(&controller, TargetKey::Subject(&SubjectId::parse(format!("T-{i}")).unwrap()))
    }

    /// Tenant `i` opted in to the newsletter.
    fn facts(i: u32) -> Vec<Fact> {
        vec![serde_json::from_value(serde_json::json!({
            "seq": i + 1, "id": uuid::Uuid::from_u128(u128::from(i) + 1), "type": "consent.granted",
            "subject": format!("T-{i}"), "purpose": "newsletter", "occurred_at": 0, "recorded_at": 0,
        }))
        .unwrap()]
    }

    /// A store holding the rows of tenants `0..n`.
    fn store_of(n: u32) -> Arc<Store> {
        let store = Store::memory(&MemoryStore::new());
        let mut batch = Batch::default();
        for i in 0..n {
            let mut row = Vec::new();
            for f in facts(i) {
                encode_fact(&f, &mut row);
            }
            batch.put(Cf::Facts, key(i), row);
        }
        store.write_synced(&batch).unwrap();
        Arc::new(store)
    }

    /// Where a test's keys are saved (the directory goes when the first is dropped).
    fn keys_file() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("facts-cache.keys");
        (dir, file)
    }

    /// What `caches` holds: its keys, in the order `save` writes them.
    fn held(caches: &Caches) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        caches.for_each_facts_key(|k| keys.push(k.to_vec()));
        keys
    }

    fn warm_from(path: &Path, store: &Store, caches: &Caches) -> io::Result<u64> {
        let stop = AtomicBool::new(false);
        let projections = Projections::new(store, caches);
        Ok(warm(File::open(path)?, path, store.estimated_rows(Cf::Facts), &projections, caches, &stop)?.rows)
    }

    /// A server whose checks read the first five of 3000 tenants and every `step`-th restarts
    /// after one row they read changed and another went: what it holds then, in the order it
    /// holds them, and what it held before but the row that went.
    fn restarted(step: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (_dir, file) = keys_file();
        let store = store_of(3000);
        let before = Caches::with_facts_budget(8 << 20);
        let asked: Vec<Vec<u8>> = (0..3000).filter(|i| *i < 5 || *i as usize % step == 0).map(key).collect();
        Projections::new(&store, &before).facts_many(&asked).unwrap();
        assert_eq!(save(&file, &before).unwrap(), asked.len() as u64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "private");
        }

        // Meanwhile one tenant's row changes and another's goes (gone rows are not cached).
        let mut batch = Batch::default();
        let mut row = Vec::new();
        for f in facts(7) {
            encode_fact(&f, &mut row);
        }
        batch.put(Cf::Facts, key(2), row);
        batch.delete(Cf::Facts, key(4));
        store.write_synced(&batch).unwrap();

        let after = Caches::with_facts_budget(8 << 20);
        assert_eq!(warm_from(&file, &store, &after).unwrap(), asked.len() as u64 - 1);
        let usage = after.facts_usage();
        assert_eq!((usage.hits, usage.misses), (0, 0), "warming counts no lookups");
        // Answered from the cache now, as the store holds them now.
        let read = Projections::new(&store, &after).facts_many(&[key(0), key(2), key(4)]).unwrap();
        assert_eq!(read, vec![facts(0), facts(7), Vec::new()]);
        assert_eq!(after.facts_usage().hits, 2);
        let mut expected = held(&before);
        expected.retain(|k| *k != key(4));
        (held(&after), expected)
    }

    #[test]
    fn the_rows_a_server_held_are_held_again_after_a_restart_as_the_store_has_them_now() {
        // A fifth of the store's rows: read back by point reads, in the order they were held.
        let (after, expected) = restarted(5);
        assert!(after == expected, "the same keys, each shard's in the same order");
    }

    #[test]
    fn when_the_saved_keys_are_half_the_store_s_rows_one_pass_in_key_order_reads_them_back() {
        let (mut after, mut expected) = restarted(2);
        assert!(after != expected, "not in the held order: read in key order");
        after.sort();
        expected.sort();
        assert!(after == expected, "the same keys");
    }

    #[test]
    fn a_pass_chosen_on_a_short_estimate_of_the_store_reads_a_bounded_share_of_it() {
        let store = store_of(20_000);
        let stop = AtomicBool::new(false);
        let mut in_order: Vec<Vec<u8>> = (0..20_000).map(key).collect();
        in_order.sort();
        let restart = |asked: &[Vec<u8>], estimate: Option<u64>| {
            let (_dir, file) = keys_file();
            let before = Caches::with_facts_budget(8 << 20);
            Projections::new(&store, &before).facts_many(asked).unwrap();
            assert_eq!(save(&file, &before).unwrap(), asked.len() as u64);
            let after = Caches::with_facts_budget(8 << 20);
            let projections = Projections::new(&store, &after);
            let warmed = warm(File::open(&file).unwrap(), &file, estimate, &projections, &after, &stop).unwrap();
            let (mut now, mut asked) = (held(&after), asked.to_vec());
            now.sort();
            asked.sort();
            assert!(now == asked, "every saved key held again");
            warmed
        };

        // 400 tenants spread over the store, which says it holds 400 rows (it holds 20 000):
        // the pass stops after reading three times the keys, point reads take the rest.
        let spread: Vec<Vec<u8>> = (0..20_000).step_by(50).map(key).collect();
        let warmed = restart(&spread, Some(400));
        assert_eq!(warmed.rows, 400);
        assert!((1200..1200 + BATCH as u64).contains(&warmed.scanned), "{warmed:?}: not the whole store");
        // On the true count, point reads alone.
        assert_eq!(restart(&spread, store.estimated_rows(Cf::Facts)), Warmed { rows: 400, scanned: 0 });

        // The first 400 rows in key order: the pass ends once it has found them all.
        let first = &in_order[..400];
        assert_eq!(restart(first, Some(400)), Warmed { rows: 400, scanned: BATCH as u64 });
    }

    #[test]
    fn with_no_saved_keys_the_store_s_rows_are_read_in_until_the_cache_is_full() {
        let store = store_of(3000);
        let stop = AtomicBool::new(false);
        let caches = Caches::with_facts_budget(8 << 20);
        let projections = Projections::new(&store, &caches);
        assert_eq!(by_pass(&projections, &caches, &stop, |_| true, Bound::NONE).unwrap().rows, 3000);
        let mut all: Vec<Vec<u8>> = (0..3000).map(key).collect();
        all.sort();
        let mut held_now = held(&caches);
        held_now.sort();
        assert_eq!(held_now, all, "every row");
        assert_eq!((caches.facts_usage().hits, caches.facts_usage().misses), (0, 0), "no lookups counted");
        assert_eq!(projections.facts_many(&[key(17)]).unwrap(), vec![facts(17)]);
        assert_eq!(caches.facts_usage().hits, 1, "answered from the rows read in");

        // A cache smaller than the store: filled, within its budget, with rows in key order.
        let store = store_of(20_000);
        let small = Caches::with_facts_budget(1 << 20);
        let read = by_pass(&Projections::new(&store, &small), &small, &stop, |_| true, Bound::NONE).unwrap().rows;
        let usage = small.facts_usage();
        assert!(read < 20_000 && !small.facts_have_room(), "{read} rows read, {} held", usage.entries);
        assert!(usage.bytes <= usage.budget && usage.entries > 1000, "{usage:?}");
        let mut in_order: Vec<Vec<u8>> = (0..20_000).map(key).collect();
        in_order.sort();
        assert!(held(&small).iter().all(|k| in_order[..read as usize].contains(k)), "the first rows in key order");
        // Stopped, it reads nothing.
        let stopped = AtomicBool::new(true);
        let fresh = Caches::with_facts_budget(1 << 20);
        assert_eq!(
            by_pass(&Projections::new(&store, &fresh), &fresh, &stopped, |_| true, Bound::NONE).unwrap().rows,
            0
        );
    }

    #[test]
    fn a_smaller_cache_warms_until_full_and_a_damaged_file_puts_in_what_it_holds_or_nothing() {
        let (_dir, file) = keys_file();
        let store = store_of(20_000);
        let big = Caches::with_facts_budget(32 << 20);
        Projections::new(&store, &big).facts_many(&(0..20_000).map(key).collect::<Vec<_>>()).unwrap();
        assert_eq!(save(&file, &big).unwrap(), 20_000);

        let small = Caches::with_facts_budget(1 << 20);
        let put = warm_from(&file, &store, &small).unwrap();
        let usage = small.facts_usage();
        assert!(put < 20_000 && usage.entries > 1000, "{put} rows put in, {} held", usage.entries);
        assert!(usage.bytes <= usage.budget);

        // Cut in the middle of a key: the keys before the cut.
        let bytes = std::fs::read(&file).unwrap();
        let mut cut = MAGIC.len();
        for _ in 0..10 {
            cut += 2 + usize::from(u16::from_be_bytes([bytes[cut], bytes[cut + 1]]));
        }
        cut += 5;
        std::fs::write(&file, &bytes[..cut]).unwrap();
        let caches = Caches::with_facts_budget(8 << 20);
        assert_eq!(warm_from(&file, &store, &caches).unwrap(), 10);

        // Not this format: nothing.
        std::fs::write(&file, b"something else entirely, longer than the magic").unwrap();
        let caches = Caches::with_facts_budget(8 << 20);
        assert!(warm_from(&file, &store, &caches).is_err());
        assert_eq!(caches.facts_usage().entries, 0);
    }

    #[test]
    fn a_warmer_that_read_its_file_or_had_none_says_it_is_done() {
        let (_dir, file) = keys_file();
        let store = store_of(10);
        let caches = Arc::new(Caches::with_facts_budget(1 << 20));
        let nothing = start(file.clone(), store.clone(), caches.clone(), SAVE_EVERY).expect("a thread");
        until_done(&nothing);
        assert!(nothing.finish(), "no file: nothing to read");
        assert!(!file.exists(), "and nothing saved before its time");
        Projections::new(&store, &caches).facts_many(&(0..10).map(key).collect::<Vec<_>>()).unwrap();
        save(&file, &caches).unwrap();
        let fresh = Arc::new(Caches::with_facts_budget(1 << 20));
        let warmer = start(file, store, fresh.clone(), SAVE_EVERY).expect("a file to read");
        until_done(&warmer);
        assert_eq!(fresh.facts_usage().entries, 10);
        assert!(warmer.finish(), "read to the end");
    }

    /// A server stopped while its warm-up still reads the saved keys holds only part of their
    /// rows: its warmer says it did not end on its own, so the stop keeps the old file, and
    /// nothing is saved meanwhile. The keys come through a named pipe, so the warm-up is
    /// exactly as far as the test lets it be.
    #[cfg(unix)]
    #[test]
    fn a_warmer_stopped_before_it_read_its_file_says_so_and_saves_nothing() {
        use std::os::unix::fs::FileTypeExt;
        let (_dir, file) = keys_file();
        let made = std::process::Command::new("mkfifo").arg(&file).status().expect("mkfifo runs");
        assert!(made.success());
        let store = store_of(600);
        let caches = Arc::new(Caches::with_facts_budget(1 << 20));
        // Saves every 10 ms once done, so a warmer that wrongly thought itself done would
        // replace the pipe with a file at once.
        let warmer = start(file.clone(), store, caches, std::time::Duration::from_millis(10)).expect("a thread");
        let mut keys = std::fs::OpenOptions::new().write(true).open(&file).expect("the warmer reads the pipe");
        keys.write_all(MAGIC).unwrap();
        for i in 0..600 {
            let k = key(i);
            keys.write_all(&(k.len() as u16).to_be_bytes()).unwrap();
            keys.write_all(&k).unwrap();
        }
        // The keys are in the pipe, but not its end, when the server stops.
        warmer.stop.store(true, Ordering::Release);
        drop(keys);
        assert!(!warmer.finish(), "stopped before the end of its file");
        assert!(std::fs::metadata(&file).unwrap().file_type().is_fifo(), "nothing saved over the old file");
    }

    /// Waits (at most 20 s, for a slow machine) until the warm-up ended on its own.
    fn until_done(warmer: &Warmer) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !warmer.done.load(Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "the warm-up never ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn a_running_server_saves_its_keys_every_so_often() {
        let (_dir, file) = keys_file();
        let store = store_of(100);
        let caches = Arc::new(Caches::with_facts_budget(1 << 20));
        let every = std::time::Duration::from_millis(100);
        // Saved keys, none of them (with no file at all, every row would be read in at once).
        std::fs::write(&file, MAGIC).unwrap();
        let warmer = start(file.clone(), store.clone(), caches.clone(), every).expect("a thread");
        Projections::new(&store, &caches).facts_many(&(0..40).map(key).collect::<Vec<_>>()).unwrap();
        let saved = |n: usize| {
            let fresh = Caches::with_facts_budget(1 << 20);
            warm_from(&file, &store, &fresh).is_ok_and(|rows| rows as usize == n)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !saved(40) {
            assert!(std::time::Instant::now() < deadline, "the keys were never saved");
            std::thread::sleep(every);
        }
        // And again as the cache changes.
        Projections::new(&store, &caches).facts_many(&(40..100).map(key).collect::<Vec<_>>()).unwrap();
        while !saved(100) {
            assert!(std::time::Instant::now() < deadline, "the new keys were never saved");
            std::thread::sleep(every);
        }
        assert!(warmer.finish());
    }
}
