//! The group-commit writer: one thread takes every queued append, assigns seqs and
//! `recorded_at`, signs, and writes the events with every projection row they change in one
//! RocksDB write batch with the WAL synced. Only then is any client answered.
//!
//! Throughput therefore costs one fsync per group, not per event. The writer is the only
//! code that assigns seqs, so the log has no gaps and `recorded_at` never goes backwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::oneshot;

use super::db_conn::Remote;
use super::LedgerError;
use canonical::to_canonical_bytes;
use format::{leaf_hash, to_micros, EventDoc, Receipt, StoredEvent};
use log::merkle::Frontier;
use projection::{event_id_key, Caches};
use signing::Signer;
use store::{Batch, Store, StoreError};

/// Most events one group commit takes.
pub const MAX_GROUP_EVENTS: usize = 8192;

/// An event waiting for its seq and `recorded_at`.
#[derive(Debug, Clone)]
pub struct Draft {
    pub doc: EventDoc,
    /// `occurred_at` was not given: it becomes `recorded_at`.
    pub occurred_now: bool,
    /// The id was made for this draft just now (a new UUIDv7), so no stored event has it: a
    /// database ledger does not look it up (the database's unique key still holds).
    pub fresh_id: bool,
}

/// The receipt of one appended draft, and whether this append wrote it (`false`: the log
/// held an event with its id already, and this is that event's receipt).
pub type Appended = (Receipt, bool);

pub struct Job {
    pub drafts: Vec<Draft>,
    pub reply: oneshot::Sender<Result<Vec<Appended>, LedgerError>>,
}

impl Job {
    /// A job of no events: on a database ledger it makes the writer apply what other nodes
    /// committed; nobody waits for its answer.
    pub fn wake() -> Self {
        Self { drafts: Vec::new(), reply: oneshot::channel().0 }
    }
}

/// How often the writer of a database ledger looks for other nodes' commits when nothing
/// woke it sooner.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

pub struct Writer {
    pub store: Arc<Store>,
    pub signer: Arc<dyn Signer>,
    pub next_seq: u64,
    pub last_recorded: chrono::DateTime<Utc>,
    pub committed: Arc<AtomicU64>,
    /// Tells waiting readers (change-feed streams) the seq of the last durable event.
    pub notify: tokio::sync::watch::Sender<u64>,
    /// The right edge of the Merkle tree over every durable event.
    pub frontier: Frontier,
    /// What checks read from memory; a commit invalidates what it changed before it is
    /// published.
    pub caches: Arc<Caches>,
    pub clock: super::Clock,
    /// Set while the disk is full: writes are refused until the store recovers.
    pub storage_full: Arc<std::sync::atomic::AtomicBool>,
    /// When recovery was last tried.
    pub last_recovery: Option<std::time::Instant>,
    /// The database holding the log, on a database ledger (see `remote.rs`); `None` for the
    /// embedded store.
    pub remote: Option<Remote>,
    /// This process's name among a database ledger's nodes (its commits' wake-ups carry it,
    /// so they do not wake this node's own writer).
    pub node: String,
}

enum Slot {
    Existing(Box<Receipt>),
    New(usize),
}

/// How often a writer whose disk is full tries to take writes again.
const RECOVERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Adds what queued to the group, up to [`MAX_GROUP_EVENTS`].
pub(super) fn take_queued(jobs: &mut Vec<Job>, queue: &Receiver<Job>) {
    let mut count: usize = jobs.iter().map(|j| j.drafts.len()).sum();
    while count < MAX_GROUP_EVENTS {
        match queue.try_recv() {
            Ok(job) => {
                count += job.drafts.len();
                jobs.push(job);
            }
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
}

impl Writer {
    pub fn run(mut self, rx: Receiver<Job>) {
        loop {
            let first = if self.storage_full.load(Ordering::Acquire) {
                // While the disk is full, try to recover every interval, writes or not, so
                // readiness comes back by itself once space is freed.
                match rx.recv_timeout(RECOVERY_INTERVAL) {
                    Ok(job) => job,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        self.try_recover();
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else if self.remote.is_some() {
                match rx.recv_timeout(FOLLOW_INTERVAL) {
                    Ok(job) => job,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Job::wake(),
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            };
            let mut jobs = vec![first];
            take_queued(&mut jobs, &rx);
            if self.remote.is_some() {
                self.commit_group_remote(jobs, &rx);
            } else {
                self.commit_group(jobs);
            }
        }
    }

    /// Reopens the store if the disk has room again; true when writes may go on.
    fn try_recover(&mut self) -> bool {
        if self.last_recovery.is_some_and(|t| t.elapsed() < RECOVERY_INTERVAL) {
            return false;
        }
        self.last_recovery = Some(std::time::Instant::now());
        match self.store.recover() {
            Ok(()) => {
                self.storage_full.store(false, Ordering::Release);
                tracing::info!("the disk has room again; writes go on");
                true
            }
            Err(StoreError::NoSpace) => false,
            Err(e) => {
                tracing::error!(error = %e, "reopening the store after a full disk failed");
                false
            }
        }
    }

    fn commit_group(&mut self, jobs: Vec<Job>) {
        if self.storage_full.load(Ordering::Acquire) && !self.try_recover() {
            for job in jobs {
                let _ = job.reply.send(Err(LedgerError::StorageFull));
            }
            return;
        }
        let started = std::time::Instant::now();
        let start_seq = self.next_seq;
        let start_recorded = self.last_recorded;
        let start_frontier = self.frontier.clone();
        let mut batch = Batch::default();
        // Events of this group by id, so a retry inside one group is idempotent too.
        let mut pending: HashMap<Vec<u8>, (StoredEvent, EventDoc)> = HashMap::new();
        let mut answers: Vec<(oneshot::Sender<_>, Result<Vec<Appended>, LedgerError>)> = Vec::new();

        for job in jobs {
            let result = self.stage(&job.drafts, &mut batch, &mut pending);
            answers.push((job.reply, result));
        }

        if !batch.is_empty() {
            if let Err(e) = self.store.write_synced(&batch) {
                tracing::error!(error = %e, "group commit failed; no event of the group was acknowledged");
                self.next_seq = start_seq;
                self.last_recorded = start_recorded;
                self.frontier = start_frontier;
                let full = matches!(e, StoreError::NoSpace);
                if full {
                    self.storage_full.store(true, Ordering::Release);
                    self.last_recovery = Some(std::time::Instant::now());
                }
                for (reply, _) in answers {
                    let _ = reply.send(Err(if full { LedgerError::StorageFull } else { LedgerError::WriteFailed }));
                }
                return;
            }
            self.caches.invalidate(pending.values().map(|(_, doc)| doc));
            self.committed.store(self.next_seq - 1, Ordering::Release);
            self.notify.send_replace(self.next_seq - 1);
            let m = &metrics::METRICS;
            m.commits.fetch_add(1, Ordering::Relaxed);
            m.events.fetch_add(self.next_seq - start_seq, Ordering::Relaxed);
            m.commit_latency.observe(started.elapsed());
        }
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
    }

    /// Stages one job (all or nothing) into `batch`.
    fn stage(
        &mut self,
        drafts: &[Draft],
        batch: &mut Batch,
        pending: &mut HashMap<Vec<u8>, (StoredEvent, EventDoc)>,
    ) -> Result<Vec<Appended>, LedgerError> {
        let mut slots = Vec::with_capacity(drafts.len());
        let mut ids = std::collections::HashSet::with_capacity(drafts.len());
        for (i, d) in drafts.iter().enumerate() {
            // One job names an id once (two events under one id would both be written).
            if !ids.insert((d.doc.controller.as_ref(), d.doc.id)) {
                return Err(LedgerError::IdConflict(d.doc.id));
            }
            match self.existing(&event_id_key(d.doc.controller.as_ref(), &d.doc.id), pending)? {
                Some((stored, doc)) => {
                    if !same_event(d, &doc) {
                        return Err(LedgerError::IdConflict(d.doc.id));
                    }
                    slots.push(Slot::Existing(Box::new(stored.receipt(doc))));
                }
                None => slots.push(Slot::New(i)),
            }
        }
        let fresh: Vec<&Draft> =
            slots.iter().filter_map(|s| if let Slot::New(i) = s { Some(&drafts[*i]) } else { None }).collect();
        let mut sealed = self.seal(&fresh)?.into_iter();
        let mut receipts = Vec::with_capacity(drafts.len());
        for slot in slots {
            match slot {
                Slot::Existing(r) => receipts.push((*r, false)),
                Slot::New(_) => {
                    let (stored, doc) = sealed.next().ok_or(LedgerError::WriteFailed)?;
                    super::stage_event(batch, &doc, &stored, &mut self.frontier)?;
                    receipts.push((stored.receipt(doc.clone()), true));
                    pending.insert(event_id_key(doc.controller.as_ref(), &doc.id), (stored, doc));
                }
            }
        }
        Ok(receipts)
    }

    /// The event already stored (or staged in this group) under an id key.
    fn existing(
        &self,
        key: &[u8],
        pending: &HashMap<Vec<u8>, (StoredEvent, EventDoc)>,
    ) -> Result<Option<(StoredEvent, EventDoc)>, LedgerError> {
        if let Some(p) = pending.get(key) {
            return Ok(Some(p.clone()));
        }
        let Some(seq) = super::seq_of_id(&self.store, key).map_err(|_| LedgerError::WriteFailed)? else {
            return Ok(None);
        };
        let stored = super::stored_event(&self.store, seq)
            .map_err(|_| LedgerError::WriteFailed)?
            .ok_or(LedgerError::WriteFailed)?;
        let doc = stored.doc().map_err(|_| LedgerError::WriteFailed)?;
        Ok(Some((stored, doc)))
    }

    /// Gives a draft its seq and time, and signs it.
    /// Signs drafts as the next events, in order.
    fn seal(&mut self, drafts: &[&Draft]) -> Result<Vec<(StoredEvent, EventDoc)>, LedgerError> {
        let sealed = self.seal_many(drafts, self.next_seq, self.last_recorded)?;
        if let Some((_, last)) = sealed.last() {
            self.next_seq = last.seq + 1;
            self.last_recorded = last.recorded_at;
        }
        Ok(sealed)
    }

    /// Signs drafts as events `seq`, `seq + 1`, ..., each recorded now or at the previous
    /// one's time if the clock reads earlier. Times and seqs are given in order; the
    /// canonical bytes, signatures and leaf hashes of a large group are made on every core.
    pub(super) fn seal_many(
        &self,
        drafts: &[&Draft],
        seq: u64,
        after: chrono::DateTime<Utc>,
    ) -> Result<Vec<(StoredEvent, EventDoc)>, LedgerError> {
        let mut last = after;
        let docs: Vec<EventDoc> = drafts
            .iter()
            .zip(seq..)
            .map(|(draft, seq)| {
                let now = to_micros(self.clock.now()).max(last);
                last = now;
                let mut doc = draft.doc.clone();
                doc.seq = seq;
                doc.recorded_at = now;
                if draft.occurred_now {
                    doc.occurred_at = now;
                }
                doc
            })
            .collect();
        let signer = &*self.signer;
        let sign = |doc: &EventDoc| -> Result<StoredEvent, LedgerError> {
            let bytes = to_canonical_bytes(doc).map_err(|_| LedgerError::WriteFailed)?;
            Ok(StoredEvent {
                key_id: signer.key_id(),
                signature: signer.sign(&bytes),
                leaf_hash: leaf_hash(&bytes),
                bytes,
            })
        };
        let stored: Vec<StoredEvent> = if docs.len() < PARALLEL_SEAL_AT || cores() < 2 {
            docs.iter().map(sign).collect::<Result<_, _>>()?
        } else {
            let per = docs.len().div_ceil(cores());
            std::thread::scope(|s| {
                let sign = &sign;
                let parts: Vec<_> = docs
                    .chunks(per)
                    .map(|c| s.spawn(move || c.iter().map(sign).collect::<Result<Vec<_>, _>>()))
                    .collect();
                let mut out = Vec::with_capacity(docs.len());
                for p in parts {
                    out.extend(p.join().map_err(|_| LedgerError::WriteFailed)??);
                }
                Ok::<_, LedgerError>(out)
            })?
        };
        Ok(stored.into_iter().zip(docs).collect())
    }
}

/// Groups of at least this many new events are signed on every core (below it, starting the
/// threads costs more than it saves).
const PARALLEL_SEAL_AT: usize = 64;

/// The cores to sign on (at most 8), asked once: `available_parallelism` reads the cgroup's
/// files and costs more than a signature.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()).min(8))
}

/// Whether a retried draft describes the event already stored under its id.
pub(super) fn same_event(draft: &Draft, stored: &EventDoc) -> bool {
    let mut d = draft.doc.clone();
    d.seq = stored.seq;
    d.recorded_at = stored.recorded_at;
    if draft.occurred_now {
        d.occurred_at = stored.occurred_at;
    }
    if stored.recorded_by.is_none() {
        // Recorded before events named their recorder: a retry is the same event.
        d.recorded_by = None;
    }
    d == *stored
}
