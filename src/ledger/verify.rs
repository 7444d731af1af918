//! Integrity verification of a store: every event's canonical bytes, leaf hash and signature
//! are re-derived in seq order, and the projections compared with what the log implies, first
//! by sums in constant memory ([`row_sums`](super::row_sums)), then, only when those differ,
//! row by row with the rows the log implies held as digests. The first failure is named by
//! seq.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest as _, Sha256};
use std::fmt;

use canonical::to_canonical_bytes;
use format::{leaf_hash, StoredEvent};
use log::merkle::Frontier;
use projection::seq_key;
use signing::Verifier;

use super::keys::ValidKey;
use super::row_sums::{ElementHasher, Sums};
use store::{Cf, Store, StoreError};

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The event at `seq` is missing, malformed, re-encoded, mis-hashed or mis-signed.
    Event { seq: u64, what: &'static str },
    /// A projection row differs from what the log implies; `seq` is the event it belongs to
    /// when that can be told.
    Projection { cf: &'static str, seq: Option<u64>, what: &'static str },
    /// A Merkle node a database keeps is missing, extra, or not the tree's.
    Node { level: u8, index: u64, what: &'static str },
    /// A database's head row does not describe its events.
    Head { what: &'static str },
    /// A signed checkpoint does not open with the keyring or is not the tree at its size.
    Checkpoint { size: u64, what: String },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Event { seq, what } => write!(f, "event seq {seq}: {what}"),
            Failure::Projection { cf, seq: Some(s), what } => {
                write!(f, "projection {cf}, row of event seq {s}: {what}")
            }
            Failure::Projection { cf, seq: None, what } => write!(f, "projection {cf}: {what}"),
            Failure::Node { level, index, what } => write!(f, "Merkle node level {level} index {index}: {what}"),
            Failure::Head { what } => write!(f, "the head row: {what}"),
            Failure::Checkpoint { size, what } => write!(f, "checkpoint of size {size}: {what}"),
        }
    }
}

#[derive(Debug)]
pub struct Report {
    pub events: u64,
    pub failure: Option<Failure>,
}

fn tail_seq(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The seq of the event a projection row belongs to: for a tree node, the last leaf it covers.
fn row_seq(cf: Cf, key: &[u8], value: &[u8]) -> Option<u64> {
    match cf {
        Cf::EventIds => tail_seq(value),
        Cf::Merkle => {
            let level = u32::from(*key.first()?);
            let index = tail_seq(key)?;
            index.checked_add(1)?.checked_shl(level)
        }
        Cf::Facts => projection::decode_facts(value).ok()?.last().map(|f| f.seq),
        _ => tail_seq(key),
    }
}

/// The seq of the first event on which two facts rows differ (for a rewritten row).
fn first_difference(want: &[u8], got: &[u8]) -> Option<u64> {
    let (w, g) = (projection::fact_records(want).ok()?, projection::fact_records(got).ok()?);
    let i = w.iter().zip(&g).position(|(a, b)| a != b).unwrap_or(w.len().min(g.len()));
    let line = w.get(i).or_else(|| g.get(i))?;
    projection::decode_facts(line).ok()?.first().map(|f| f.seq)
}

/// Events read from the log and checked together, on every core.
const BLOCK: usize = 8192;

/// One event after the parallel pass: its leaf hash and the projection rows it implies
/// (all but the Merkle nodes, which the tree adds in order), or what is wrong with it.
type Checked = Result<([u8; 32], Vec<projection::Row>), &'static str>;

/// One event after [`check_run`]: its leaf hash and what `derive` made of it, or what is wrong.
pub(super) type CheckedWith<T> = Result<([u8; 32], T), &'static str>;

/// Checks one run of events whose first has `first_seq`: position, record, parse, canonical
/// bytes, leaf hash, key and period, and signatures (batch-verified), and derives from each
/// event what `derive` makes of it (for a store's `verify`, its projection rows).
fn check_run<T>(
    run: &[store::Pair],
    first_seq: u64,
    keys: &[ValidKey],
    derive: &(impl Fn(&format::EventDoc) -> Result<T, &'static str> + Sync),
) -> Vec<CheckedWith<T>> {
    let mut out: Vec<CheckedWith<T>> = Vec::with_capacity(run.len());
    let mut stored_of: Vec<Option<StoredEvent>> = Vec::with_capacity(run.len());
    for (i, (k, v)) in run.iter().enumerate() {
        let seq = first_seq + i as u64;
        let checked = (|| {
            if **k != seq_key(seq) {
                return Err("missing from the log (the seqs have a gap)");
            }
            let stored = StoredEvent::decode(v).map_err(|_| "record is malformed")?;
            let doc = stored.doc().map_err(|_| "event does not parse")?;
            if doc.seq != seq {
                return Err("event's seq does not match its position");
            }
            match to_canonical_bytes(&doc) {
                Ok(bytes) if bytes == stored.bytes => {}
                _ => return Err("stored bytes are not the RFC 8785 form of the event"),
            }
            if leaf_hash(&stored.bytes) != stored.leaf_hash {
                return Err("leaf hash does not match the event bytes");
            }
            let key = keys.iter().find(|k| k.verifier.key_id() == stored.key_id).ok_or("signed by an unknown key")?;
            if !key.covers(seq) {
                return Err("signed by a key outside the period it signed");
            }
            let derived = derive(&doc)?;
            Ok((stored, derived))
        })();
        match checked {
            Ok((stored, derived)) => {
                out.push(Ok((stored.leaf_hash, derived)));
                stored_of.push(Some(stored));
            }
            Err(what) => {
                out.push(Err(what));
                stored_of.push(None);
            }
        }
    }
    // Every signature of the run at once; when the batch fails, find which.
    let mut msgs: Vec<&[u8]> = Vec::new();
    let mut sigs = Vec::new();
    let mut pks = Vec::new();
    let mut at = Vec::new();
    for (i, stored) in stored_of.iter().enumerate() {
        let Some(stored) = stored else { continue };
        let Some(key) = keys.iter().find(|k| k.verifier.key_id() == stored.key_id) else { continue };
        msgs.push(&stored.bytes);
        sigs.push(ed25519_dalek::Signature::from_bytes(&stored.signature));
        pks.push(*key.verifier.public_key());
        at.push(i);
    }
    for j in signing::failing_signatures(&msgs, &sigs, &pks) {
        out[at[j]] = Err("signature does not verify");
    }
    out
}

/// [`check_run`] over a block split across the cores, answers in seq order.
pub(super) fn check_block_with<T: Send>(
    block: &[store::Pair],
    first_seq: u64,
    keys: &[ValidKey],
    derive: &(impl Fn(&format::EventDoc) -> Result<T, &'static str> + Sync),
) -> Vec<CheckedWith<T>> {
    let threads = super::commit::cores().max(1);
    let per = block.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = block
            .chunks(per)
            .enumerate()
            .map(|(n, run)| s.spawn(move || check_run(run, first_seq + (n * per) as u64, keys, derive)))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}

/// [`check_block_with`] deriving each event's projection rows.
fn check_block(block: &[store::Pair], first_seq: u64, keys: &[ValidKey]) -> Vec<Checked> {
    check_block_with(block, first_seq, keys, &|doc| {
        projection::project(doc).map_err(|_| "its projection rows cannot be derived")
    })
}

/// What [`verify`] is doing when it reports a seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Checking every event and summing the projections (the one read a verify needs when
    /// all holds).
    Checking,
    /// The sums differed: reading the log again to compare the rows one by one and name the
    /// first wrong, in pass `pass` (from 1) of `passes`.
    Comparing { pass: u64, passes: u64 },
}

/// Verifies `store` against the given public keys. `progress` is told each verified seq,
/// with the stage it is in.
/// Events are checked a block at a time on every core (signatures batch-verified); the tree
/// and the sums of the projection rows are then built in seq order. A row-by-row comparison
/// (only when the sums differ) holds at most about [`VERIFY_MEMORY`] of expected rows
/// ([`verify_within`]).
pub fn verify(store: &Store, keys: &[ValidKey], progress: impl FnMut(Stage, u64)) -> Result<Report, StoreError> {
    verify_within(store, keys, VERIFY_MEMORY, progress)
}

/// Memory the row-by-row comparison of projection rows may take by default (`verify --memory-mb`).
pub const VERIFY_MEMORY: usize = 512 << 20;
/// What one expected row takes in the comparison, about (its map entry and the map's slack).
const BYTES_PER_ROW: u64 = 80;
/// Projection rows an event implies, about: the facts of its subject and of its contact
/// point, the feed, its id, and the tree's nodes (one an event on average, leaves not stored).
const ROWS_PER_EVENT: u64 = 5;

/// [`verify`] with the comparison's memory bounded by `memory` bytes, whatever the log's size.
/// Every event is checked and the projections compared in one read of the log and one of each
/// column family, by sums ([`row_sums`](super::row_sums)) in constant memory. Only when the
/// sums differ are the rows compared one by one ([`verify_row_by_row`] within `memory`), to
/// name the first wrong.
pub fn verify_within(
    store: &Store,
    keys: &[ValidKey],
    memory: usize,
    mut progress: impl FnMut(Stage, u64),
) -> Result<Report, StoreError> {
    match verify_by_sums(store, keys, &mut |seq| progress(Stage::Checking, seq))? {
        Summed::Equal(events) => Ok(Report { events, failure: None }),
        Summed::EventFailed(report) => Ok(report),
        // Which row is wrong is found row by row, the log read again.
        Summed::Differ => verify_row_by_row(store, keys, memory, progress),
    }
}

/// Checks every event and compares the projections with the log row by row, the rows the log
/// implies held as digests in at most about `memory` bytes: in as many passes as that takes,
/// each holding the rows whose key falls in its share (by the key's digest). The first pass
/// checks every event; the others only derive the rows again. Names the first row that differs.
pub fn verify_row_by_row(
    store: &Store,
    keys: &[ValidKey],
    memory: usize,
    mut progress: impl FnMut(Stage, u64),
) -> Result<Report, StoreError> {
    let size = super::log_size(store)?;
    let passes = size.saturating_mul(ROWS_PER_EVENT * BYTES_PER_ROW).div_ceil(memory.max(1) as u64).clamp(1, 4096);
    // Each pass's map is sized once for its share of the rows (at most what the memory
    // allows), so it is not rehashed (and its pages zeroed again) as it grows.
    let rows = (size.saturating_mul(ROWS_PER_EVENT) / passes).min(memory as u64 / BYTES_PER_ROW) as usize;
    let mut report = Report { events: 0, failure: None };
    for part in 0..passes {
        let stage = Stage::Comparing { pass: part + 1, passes };
        report = verify_pass(store, keys, Share { part, passes, rows }, &mut |seq| progress(stage, seq))?;
        if report.failure.is_some() {
            break;
        }
    }
    Ok(report)
}

/// The rows one pass compares: those whose key's digest is `part` modulo `passes`.
#[derive(Debug, Clone, Copy)]
struct Share {
    part: u64,
    passes: u64,
    /// About how many expected rows fall in it.
    rows: usize,
}

impl Share {
    fn holds(self, row: &RowId) -> bool {
        let mut head = [0u8; 8];
        head.copy_from_slice(&row.0[..8]);
        u64::from_le_bytes(head) % self.passes == self.part
    }

    fn first(self) -> bool {
        self.part == 0
    }
}

/// Each event of a block as the first pass checked it, for a later pass: its stored leaf
/// hash and its rows derived again, on every core.
fn derive_block(block: &[store::Pair]) -> Vec<Checked> {
    match super::rebuild::project_block(block) {
        Ok(projected) => projected.into_iter().map(Ok).collect(),
        Err(_) => vec![Err("does not parse (it changed during verification)"); block.len()],
    }
}

/// Reads the log in seq order, each block checked on every core (`check`: position, bytes,
/// hash, key and signature of every event) or only derived again, and calls `fold` with each
/// event's seq and the rows it implies, the tree's nodes included. A thread of its own reads and
/// checks the next block while this one folds the block before. Answers the events read, or
/// the report naming the first that fails.
fn walk_log(
    store: &Store,
    keys: &[ValidKey],
    check: bool,
    mut fold: impl FnMut(u64, Vec<projection::Row>),
) -> Result<Result<u64, Report>, StoreError> {
    let mut seq = 0u64;
    let mut tree = Frontier::default();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(usize, Vec<Checked>), StoreError>>(1);
        s.spawn(move || {
            let mut events = match store.iter_from(Cf::Events, &[]) {
                Ok(events) => events,
                Err(e) => return drop(tx.send(Err(e))),
            };
            let mut first = 1u64;
            loop {
                let block = match events.by_ref().take(BLOCK).collect::<Result<Vec<store::Pair>, _>>() {
                    Ok(block) if block.is_empty() => return,
                    Ok(block) => block,
                    Err(e) => return drop(tx.send(Err(e))),
                };
                let checked = if check { check_block(&block, first, keys) } else { derive_block(&block) };
                first += block.len() as u64;
                if tx.send(Ok((block.len(), checked))).is_err() {
                    return;
                }
            }
        });
        for message in rx {
            let (read, checked) = message?;
            if checked.len() != read {
                let failure = Failure::Event { seq: seq + 1, what: "could not be checked" };
                return Ok(Err(Report { events: seq, failure: Some(failure) }));
            }
            for c in checked {
                seq += 1;
                let (leaf, mut rows) = match c {
                    Ok(ok) => ok,
                    Err(what) => {
                        return Ok(Err(Report { events: seq - 1, failure: Some(Failure::Event { seq, what }) }))
                    }
                };
                rows.extend(super::tree_rows(leaf, &mut tree));
                fold(seq, rows);
            }
        }
        Ok(Ok(seq))
    })
}

/// What the comparison by sums found.
enum Summed {
    /// Every event checks and the projections are the log's: the events read.
    Equal(u64),
    /// An event fails.
    EventFailed(Report),
    /// The projections differ from what the log implies (somewhere).
    Differ,
}

/// Checks every event and compares the projections with the log by sums, in constant memory:
/// each column family's stored rows are summed on a thread of their own while the log is read.
fn verify_by_sums(store: &Store, keys: &[ValidKey], progress: &mut impl FnMut(u64)) -> Result<Summed, StoreError> {
    let hasher = ElementHasher::random();
    // Set when an event fails: the scans' sums are then not wanted, and stop.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let scans: Vec<_> = Cf::PROJECTIONS
            .into_iter()
            .map(|cf| {
                let (hasher, stop) = (hasher.clone(), &stop);
                s.spawn(move || hasher.stored(store, cf, stop))
            })
            .collect();
        let mut implied = Sums::default();
        let walked = walk_log(store, keys, true, |seq, rows| {
            for (cf, k, v) in rows {
                hasher.add_row(&mut implied, cf, &k, &v);
            }
            progress(seq);
        });
        if !matches!(walked, Ok(Ok(_))) {
            stop.store(true, Ordering::Relaxed);
        }
        let walked = walked?;
        let mut held = Some(Sums::default());
        for scan in scans {
            let sums = scan.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            held = held.zip(sums).map(|(mut all, cf)| {
                all.merge(&cf);
                all
            });
        }
        Ok(match walked {
            Err(report) => Summed::EventFailed(report),
            Ok(events) if held == Some(implied) => Summed::Equal(events),
            Ok(_) => Summed::Differ,
        })
    })
}

fn verify_pass(
    store: &Store,
    keys: &[ValidKey],
    share: Share,
    progress: &mut impl FnMut(u64),
) -> Result<Report, StoreError> {
    let mut expected: Expected = HashMap::with_capacity_and_hasher(share.rows, Default::default());
    // How many rows of each column family the log implies.
    let mut counts: HashMap<Cf, u64> = HashMap::new();
    let walked = walk_log(store, keys, share.first(), |seq, rows| {
        for (cf, k, v) in rows {
            let key = row_id(cf, &k);
            if !share.holds(&key) {
                continue;
            }
            let want = expected.entry(key).or_insert_with(|| {
                *counts.entry(cf).or_default() += 1;
                Want::new(cf)
            });
            want.digest = if cf.appends() { digest(&[&want.digest, &v]) } else { digest(&[&v]) };
            want.last_seq = seq;
        }
        if share.first() {
            progress(seq);
        }
    })?;
    let events = match walked {
        Ok(events) => events,
        Err(report) => return Ok(report),
    };
    // Each column family is compared on a thread of its own (the map is only read from now
    // on); of the failures found, the first column family's is reported.
    let found = std::thread::scope(|s| {
        let handles: Vec<_> = Cf::PROJECTIONS
            .into_iter()
            .map(|cf| {
                let (expected, count) = (&expected, counts.get(&cf).copied().unwrap_or(0));
                s.spawn(move || compare_rows(store, cf, share, expected, count))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect::<Vec<_>>()
    });
    for failure in found {
        if let Some(failure) = failure? {
            return Ok(Report { events, failure: Some(failure) });
        }
    }
    Ok(Report { events, failure: None })
}

/// Compares the stored rows of `cf` in this pass's share with the `count` rows the log
/// implies: the first row with no event, or that differs, or else the row missing whose
/// last event comes first.
fn compare_rows(
    store: &Store,
    cf: Cf,
    share: Share,
    expected: &Expected,
    count: u64,
) -> Result<Option<Failure>, StoreError> {
    let mut matched = 0u64;
    for item in store.iter_from(cf, &[])? {
        let (k, v) = item?;
        let key = row_id(cf, &k);
        if !share.holds(&key) {
            continue;
        }
        let Some(want) = expected.get(&key) else {
            let seq = row_seq(cf, &k, &v);
            return Ok(Some(Failure::Projection { cf: cf.name(), seq, what: "row has no event in the log" }));
        };
        let got = if cf.appends() {
            match projection::fact_records(&v) {
                Ok(records) => records.iter().fold(Digest::default(), |d, r| digest(&[&d, r])),
                // A row that does not split into records differs from any the log implies.
                Err(_) => digest(&[b"not records", &v]),
            }
        } else {
            digest(&[&v])
        };
        if got != want.digest {
            // Which event the row goes wrong at is worked out only for the row that does.
            let seq =
                if cf.appends() { first_difference(&expected_value(store, cf, &k)?, &v) } else { row_seq(cf, &k, &v) };
            return Ok(Some(Failure::Projection { cf: cf.name(), seq, what: "row differs from the log" }));
        }
        matched += 1;
    }
    if matched == count {
        return Ok(None);
    }
    // A row is missing (each stored row matched a different expected one): which, found by
    // reading the column family again.
    let mut seen = std::collections::HashSet::new();
    for item in store.iter_from(cf, &[])? {
        seen.insert(row_id(cf, &item?.0));
    }
    let seq = expected.iter().filter(|(id, w)| w.cf == cf && !seen.contains(*id)).map(|(_, w)| w.last_seq).min();
    Ok(Some(Failure::Projection { cf: cf.name(), seq, what: "row is missing" }))
}

/// A 128-bit digest (SHA-256, cut) of length-prefixed parts: what the comparison keeps of each
/// expected row's key and value, so its memory is a few dozen bytes a row, not the rows.
type Digest = [u8; 16];

fn digest(parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let mut out = Digest::default();
    out.copy_from_slice(&h.finalize()[..16]);
    out
}

/// A projection row by the digest of its column family and key. The digest is already
/// uniformly spread, so the map hashes it by taking eight of its bytes ([`RowHasher`]), not
/// by hashing it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RowId(Digest);

fn row_id(cf: Cf, key: &[u8]) -> RowId {
    RowId(digest(&[cf.name().as_bytes(), key]))
}

impl Hash for RowId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut tail = [0u8; 8];
        // Bytes 8..16: the first eight choose the pass ([`Share::holds`]).
        tail.copy_from_slice(&self.0[8..]);
        state.write_u64(u64::from_le_bytes(tail));
    }
}

/// The hasher of [`RowId`]s: the value written is the hash.
#[derive(Default)]
struct RowHasher(u64);

impl Hasher for RowHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called for a `RowId`; anything else is folded in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
}

/// The expected rows of one pass.
type Expected = HashMap<RowId, Want, BuildHasherDefault<RowHasher>>;

/// What the log implies for one projection row: its column family, the digest of its value
/// (for a row that grows, a chain over its records in order) and the last event that
/// touched it.
#[derive(Debug)]
struct Want {
    cf: Cf,
    digest: Digest,
    last_seq: u64,
}

impl Want {
    fn new(cf: Cf) -> Want {
        Want { cf, digest: Digest::default(), last_seq: 0 }
    }
}

/// The whole value the log implies for one row, derived again (only to name the first event
/// a rewritten row gets wrong).
fn expected_value(store: &Store, cf: Cf, key: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut value = Vec::new();
    for item in store.iter_from(Cf::Events, &[])? {
        let (_, v) = item?;
        let Some(doc) = StoredEvent::decode(&v).ok().and_then(|s| s.doc().ok()) else { continue };
        for (c, k, v) in projection::project(&doc).unwrap_or_default() {
            if c == cf && k == key {
                value.extend_from_slice(&v);
            }
        }
    }
    Ok(value)
}
