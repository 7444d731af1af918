//! Verifying the log a database holds, without a node (`consent-ledger verify
//! --database-url`): every event checked as `verify` checks a store's ([`super::verify`]:
//! position, record, canonical bytes, leaf hash, key and period, signature) and its id key
//! (the column the database's uniqueness of event ids rests on), the Merkle nodes of
//! `log_nodes` against the tree recomputed from the leaves, every signed checkpoint against
//! the tree at its size, and the head row (its size, its last `recorded_at`, the tree's edge).
//!
//! It reads the log up to the head it finds first, so it runs against a live database: what
//! nodes write meanwhile is past that head and left for the next run. Events are read and
//! checked a chunk at a time on every core by a thread with a connection of its own, while
//! this one folds the tree and reads the nodes and checkpoints on another: memory does not
//! grow with the log.

use log::checkpoint::open_note;
use log::merkle::{Frontier, Hash};
use pglog::{Head, PgLog};
use projection::{event_id_key, seq_key};
use signing::Verifier;

use super::keys::{KeyPeriod, Keyring, ValidKey};
use super::verify::{check_block_with, CheckedWith, Failure};
use super::LedgerError;

/// Events read and checked together.
const CHUNK: i64 = 8192;

/// Nodes of one level compared with the database's in one read.
const NODES: usize = 8192;

/// What [`verify_database`] found.
#[derive(Debug)]
pub struct DatabaseReport {
    /// Events checked (the head's size when nothing failed).
    pub events: u64,
    /// Merkle nodes compared with the database's.
    pub nodes: u64,
    /// Signed checkpoints opened and compared with the tree.
    pub checkpoints: u64,
    pub failure: Option<Failure>,
}

/// What each event's check keeps besides its leaf hash: its `recorded_at` (microseconds) and
/// the key of its id, as the database should hold it.
type Kept = (i64, Vec<u8>);

/// A chunk of events as the reading thread checked them: each one's seq, the id key the
/// database holds for it, and its check.
type Chunk = Vec<(u64, Vec<u8>, CheckedWith<Kept>)>;

/// Verifies the log in the database at `url`; `progress` is told the events checked and the
/// head's size. An error is a database that could not be read; what is wrong with the log is
/// the report's `failure`.
pub fn verify_database(url: &str, mut progress: impl FnMut(u64, u64)) -> Result<DatabaseReport, LedgerError> {
    let mut db = PgLog::connect(url)?;
    let head = db.existing_head()?;
    let periods = db.keyring()?.into_iter();
    let keys = Keyring {
        keys: periods.map(|k| KeyPeriod { vkey: k.vkey, first_seq: k.first_seq, last_seq: k.last_seq }).collect(),
    }
    .valid_keys()?;
    let mut walk = Walk::new(db, keys);
    let failure = std::thread::scope(|s| -> Result<Option<Failure>, LedgerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk, LedgerError>>(1);
        let (keys, size) = (walk.keys.clone(), head.size);
        s.spawn(move || {
            let mut conn = match PgLog::connect(url) {
                Ok(conn) => conn,
                Err(e) => return drop(tx.send(Err(e.into()))),
            };
            let mut after = 0;
            while after < size {
                let chunk =
                    conn.events(after, size, CHUNK).map_err(LedgerError::from).map(|rows| check(rows, after, &keys));
                let failed = match &chunk {
                    Ok(c) => c.is_empty(),
                    Err(_) => true,
                };
                after = chunk.as_ref().ok().and_then(|c| c.last()).map_or(after, |(seq, _, _)| *seq);
                if tx.send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        if let Some(f) = walk.checkpoints_up_to(0)? {
            return Ok(Some(f));
        }
        for chunk in rx {
            let chunk = chunk?;
            if let Some(f) = walk.fold(chunk)? {
                return Ok(Some(f));
            }
            progress(walk.tree.size(), head.size);
        }
        walk.finish(&head)
    })?;
    Ok(DatabaseReport { events: walk.tree.size(), nodes: walk.nodes, checkpoints: walk.checkpoints, failure })
}

/// Checks the events read past `after` (on every core), deriving what [`Walk::fold`] needs.
fn check(rows: Vec<pglog::LogRow>, after: u64, keys: &[ValidKey]) -> Chunk {
    let mut seqs = Vec::with_capacity(rows.len());
    let mut pairs = Vec::with_capacity(rows.len());
    for mut r in rows {
        let (seq, id_key) = (r.seq, std::mem::take(&mut r.id_key));
        // A row whose fields have the wrong lengths is a record that does not decode.
        let record = super::remote::record_of(r).map(|stored| stored.encode()).unwrap_or_default();
        seqs.push((seq, id_key));
        pairs.push((Box::from(seq_key(seq)), record.into_boxed_slice()));
    }
    let checked = check_block_with(&pairs, after + 1, keys, &|doc: &format::EventDoc| -> Result<Kept, &'static str> {
        Ok((doc.recorded_at.timestamp_micros(), event_id_key(doc.controller.as_ref(), &doc.id)))
    });
    seqs.into_iter().zip(checked).map(|((seq, id_key), c)| (seq, id_key, c)).collect()
}

/// The tree and what has been compared so far.
struct Walk {
    db: PgLog,
    keys: Vec<ValidKey>,
    tree: Frontier,
    /// Nodes the tree completed and not yet compared, by level.
    levels: Vec<Vec<(u64, Hash)>>,
    nodes: u64,
    checkpoints: u64,
    /// Checkpoints read up to this size.
    read_to: u64,
    /// Checkpoints read and not yet reached by the tree, smallest first.
    waiting: std::collections::VecDeque<(u64, String)>,
    last_recorded: i64,
}

impl Walk {
    fn new(db: PgLog, keys: Vec<ValidKey>) -> Self {
        Self {
            db,
            keys,
            tree: Frontier::default(),
            levels: vec![Vec::new(); 64],
            nodes: 0,
            checkpoints: 0,
            read_to: 0,
            waiting: Default::default(),
            last_recorded: i64::MIN,
        }
    }

    /// Folds a chunk's events into the tree, comparing nodes and checkpoints as it goes.
    fn fold(&mut self, chunk: Chunk) -> Result<Option<Failure>, LedgerError> {
        let last = chunk.last().map_or(0, |(seq, _, _)| *seq);
        if last > self.read_to {
            let read = self.db.checkpoints(Some(self.read_to), last)?;
            self.waiting.extend(read);
            self.read_to = last;
        }
        for (seq, id_key, checked) in chunk {
            let (leaf, (recorded, want_key)) = match checked {
                Ok(ok) => ok,
                Err(what) => return Ok(Some(Failure::Event { seq, what })),
            };
            if id_key != want_key {
                return Ok(Some(Failure::Event { seq, what: "its id key is not the key of its controller and id" }));
            }
            self.last_recorded = self.last_recorded.max(recorded);
            for (level, index, hash) in self.tree.push(leaf) {
                let pending = &mut self.levels[usize::from(level)];
                pending.push((index, hash));
                if pending.len() >= NODES {
                    if let Some(f) = self.compare_level(level)? {
                        return Ok(Some(f));
                    }
                }
            }
            if let Some(f) = self.reached()? {
                return Ok(Some(f));
            }
        }
        Ok(None)
    }

    /// Reads the checkpoints of sizes up to `size` (before any event: those of the empty log)
    /// and checks those the tree has reached.
    fn checkpoints_up_to(&mut self, size: u64) -> Result<Option<Failure>, LedgerError> {
        let read = self.db.checkpoints(None, size)?;
        self.waiting.extend(read);
        self.read_to = size;
        self.reached()
    }

    /// Opens every waiting checkpoint of the tree's size and compares its root.
    fn reached(&mut self) -> Result<Option<Failure>, LedgerError> {
        while self.waiting.front().is_some_and(|(size, _)| *size <= self.tree.size()) {
            let Some((size, note)) = self.waiting.pop_front() else { break };
            let named: Vec<(&str, &dyn Verifier)> =
                self.keys.iter().map(|k| (k.verifier.name(), &k.verifier as &dyn Verifier)).collect();
            let what = match open_note(&note, &named) {
                Err(e) => Some(format!("its signed note does not open with the keyring: {e}")),
                Ok(cp) if cp.size != size => Some("its note is of another size than its row".into()),
                Ok(_) if size != self.tree.size() => Some("was passed over (the log has no event at its size)".into()),
                Ok(cp) if cp.root != self.tree.root() => {
                    Some("its root is not the tree recomputed from the events: history was rewritten".into())
                }
                Ok(_) => None,
            };
            if let Some(what) = what {
                return Ok(Some(Failure::Checkpoint { size, what }));
            }
            self.checkpoints += 1;
        }
        Ok(None)
    }

    /// Compares the nodes of `level` the tree completed since the last comparison with the
    /// database's of the same indexes.
    fn compare_level(&mut self, level: u8) -> Result<Option<Failure>, LedgerError> {
        let want = std::mem::take(&mut self.levels[usize::from(level)]);
        let (Some(first), Some(last)) = (want.first(), want.last()) else { return Ok(None) };
        let got = self.db.nodes(level, first.0, last.0 + 1)?;
        let mut got = got.iter().peekable();
        for (index, hash) in &want {
            let what = match got.peek() {
                Some(n) if n.index == *index => {
                    let same = n.hash == hash[..];
                    got.next();
                    if same {
                        continue;
                    }
                    "differs from the tree recomputed from the events"
                }
                _ => "is missing from log_nodes",
            };
            return Ok(Some(Failure::Node { level, index: *index, what }));
        }
        self.nodes += want.len() as u64;
        Ok(None)
    }

    /// After the last event: the nodes left to compare, no node outside the tree, every
    /// checkpoint reached, and the head row.
    fn finish(&mut self, head: &Head) -> Result<Option<Failure>, LedgerError> {
        if self.tree.size() < head.size {
            let what = "missing from the log (the head counts more events)";
            return Ok(Some(Failure::Event { seq: self.tree.size() + 1, what }));
        }
        for level in 0..64u8 {
            if let Some(f) = self.compare_level(level)? {
                return Ok(Some(f));
            }
        }
        // Nodes written since the head was read belong to a larger tree: only those outside
        // the tree the database holds now are wrong.
        let now = self.db.size()?;
        if let Some((level, index)) = self.db.node_outside(now)? {
            let (level, index) = (u8::try_from(level).unwrap_or(u8::MAX), u64::try_from(index).unwrap_or(u64::MAX));
            return Ok(Some(Failure::Node { level, index, what: "is in log_nodes but no subtree of the log" }));
        }
        if let Some((size, _)) = self.waiting.front() {
            return Ok(Some(Failure::Checkpoint { size: *size, what: "was not reached by the log".into() }));
        }
        if head.frontier != self.tree.to_bytes() {
            return Ok(Some(Failure::Head { what: "the tree's edge is not the tree of the events" }));
        }
        if head.size > 0 && head.last_recorded_micros < self.last_recorded {
            return Ok(Some(Failure::Head { what: "its last recorded_at is earlier than an event's" }));
        }
        Ok(None)
    }
}
