//! The group commit of a database ledger, and how its local replica follows the database.
//!
//! A node whose last commit came right after its own replica (no other node wrote between)
//! signs the next group after the replica and writes it in one statement that commits on
//! its own, on condition that the database's head has not moved: one round trip, the head
//! row held only while that statement commits. Otherwise, or when the head did move (another
//! node wrote first; the signatures are thrown away), the commit holds the head row for what
//! must be serial: reading the head (size, last `recorded_at`, the tree's right edge),
//! looking up the group's ids, signing the group at the next seqs, and the same statement,
//! then the commit. Applying events to the local replica (this node's and other nodes')
//! happens after, outside the lock; a group is answered once it is committed and, normally,
//! applied here, so a client reads its own write on the node it wrote to.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use tokio::sync::oneshot;

use format::{EventDoc, StoredEvent};
use log::merkle::Frontier;
use pglog::{LogRow, Node, PgLog};
use projection::event_id_key;
use store::Batch;

use super::commit::{same_event, take_queued, Appended, Draft, Job, Writer};
use super::db_conn::Remote;
use super::remote::{row_of, stored_of};
use super::LedgerError;

/// Most events applied from the database in one local write.
const FOLLOW_CHUNK: i64 = 5000;

type Reply = oneshot::Sender<Result<Vec<Appended>, LedgerError>>;
type Answers = Vec<(Reply, Result<Vec<Appended>, LedgerError>)>;
/// A group that failed: who to answer, and why.
type Failed = (Vec<Reply>, LedgerError);

/// What a group adds to the database while it holds the head.
struct Staged {
    next: u64,
    last: chrono::DateTime<chrono::Utc>,
    frontier: Frontier,
    rows: Vec<LogRow>,
    nodes: Vec<Node>,
    /// Events by id key: those the database held, and those of this group.
    known: HashMap<Vec<u8>, (StoredEvent, EventDoc)>,
}

impl Writer {
    /// A group commit on a database ledger (see the module). A group of no events (a
    /// wake-up, or `catch_up`) only applies what the database holds past the replica.
    pub fn commit_group_remote(&mut self, jobs: Vec<Job>, queue: &Receiver<Job>) {
        if jobs.iter().all(|j| j.drafts.is_empty()) {
            let followed = self.follow();
            if let Err(e) = &followed {
                tracing::debug!(error = %e, "following the database");
            }
            for job in jobs {
                let _ = job.reply.send(match &followed {
                    Ok(()) => Ok(Vec::new()),
                    Err(LedgerError::StorageFull) => Err(LedgerError::StorageFull),
                    Err(_) => Err(LedgerError::DatabaseUnavailable),
                });
            }
            return;
        }
        let Some(mut remote) = self.remote.take() else {
            for job in jobs {
                let _ = job.reply.send(Err(LedgerError::Closed));
            }
            return;
        };
        let started = std::time::Instant::now();
        let outcome = self.commit_with(&mut remote, jobs, queue);
        self.remote = Some(remote);
        match outcome {
            Ok((answers, new)) => {
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
                if new > 0 {
                    let m = &metrics::METRICS;
                    m.commits.fetch_add(1, Ordering::Relaxed);
                    m.events.fetch_add(new, Ordering::Relaxed);
                    m.commit_latency.observe(started.elapsed());
                }
            }
            Err((replies, e)) => {
                for reply in replies {
                    let _ = reply.send(Err(match &e {
                        LedgerError::IdConflict(id) => LedgerError::IdConflict(*id),
                        LedgerError::Corrupt => LedgerError::WriteFailed,
                        _ => LedgerError::DatabaseUnavailable,
                    }));
                }
            }
        }
    }

    fn commit_with(
        &mut self,
        remote: &mut Remote,
        jobs: Vec<Job>,
        queue: &Receiver<Job>,
    ) -> Result<(Answers, u64), Failed> {
        let after_replica = remote.alone && remote.state.size.load(Ordering::Acquire) == self.next_seq - 1;
        let conn = match remote.conn() {
            Ok(c) => c,
            Err(e) => return Err((jobs.into_iter().map(|j| j.reply).collect(), e)),
        };
        let m = &metrics::METRICS;
        // The way the group went, for `/metrics` once it is committed.
        let (committed, way) = if after_replica {
            match commit_after_replica(self, conn, jobs, queue) {
                Unlocked::Committed(answers, rows) => (Ok((answers, rows)), &m.database_commits_unlocked),
                Unlocked::Failed(replies, e) => (Err((replies, Some(e))), &m.database_commits_unlocked),
                Unlocked::HeadMoved(jobs) => {
                    m.database_head_moved.fetch_add(1, Ordering::Relaxed);
                    (commit_on(self, conn, jobs, queue), &m.database_commits_locked)
                }
            }
        } else {
            (commit_on(self, conn, jobs, queue), &m.database_commits_locked)
        };
        let (answers, rows) = match committed {
            Ok(done) => done,
            Err((replies, e)) => {
                // Not acknowledged: whether or not a commit reached the database, a retry
                // with the same ids answers the same receipts once it did.
                if let Some(e) = &e {
                    remote.failed(e);
                }
                return Err((replies, LedgerError::DatabaseUnavailable));
            }
        };
        remote.succeeded();
        if !rows.is_empty() {
            way.fetch_add(1, Ordering::Relaxed);
        }
        // Alone when the group came right after the replica: the next may go without the lock.
        remote.alone = rows.first().is_none_or(|r| r.seq == self.next_seq);
        let new = rows.len() as u64;
        if let Some(last) = rows.last() {
            remote.state.size.fetch_max(last.seq, Ordering::AcqRel);
        }
        // Durable now. The replica applies what other nodes committed before this group,
        // then the group; if that fails, the events are still in the log, acknowledged, and
        // the next look at the database applies them.
        if let Some(first) = rows.first().map(|r| r.seq) {
            if let Err(e) = self.follow_up_to(remote, first - 1).and_then(|()| self.apply(rows)) {
                tracing::error!(error = %e, "the local replica could not take a commit; it follows the database");
            }
        }
        Ok((answers, new))
    }

    /// Applies what the database holds past the local replica (a wake-up or a periodic look).
    pub fn follow(&mut self) -> Result<(), LedgerError> {
        let Some(mut remote) = self.remote.take() else { return Ok(()) };
        // Checkpoints are copied by the checkpointer, each interval.
        let result = self.follow_to_head(&mut remote);
        self.remote = Some(remote);
        result
    }

    /// Reads and applies the events past the replica, a chunk at a time. A chunk not full
    /// ends at the database's head (commits hold the head row, so they become visible in seq
    /// order): then the replica is the database's size, and a wake-up costs one read. After
    /// a full chunk (a backlog) the head's size is read, so `/readyz` and `/metrics` say how
    /// far behind the node is while it catches up.
    fn follow_to_head(&mut self, remote: &mut Remote) -> Result<(), LedgerError> {
        loop {
            let rows = self.next_chunk(remote, u64::MAX >> 1)?;
            let full = rows.len() as i64 >= FOLLOW_CHUNK;
            if !rows.is_empty() {
                self.apply(rows)?;
            }
            if !full {
                remote.state.size.fetch_max(self.next_seq - 1, Ordering::AcqRel);
                return Ok(());
            }
            look_at_head(remote)?;
        }
    }

    /// The catch-up of a node that starts behind, telling `progress` (applied, database size)
    /// after each chunk.
    pub fn catch_up_at_start(
        &mut self,
        progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
    ) -> Result<(), LedgerError> {
        let Some(mut remote) = self.remote.take() else { return Ok(()) };
        let result = (|| {
            look_at_head(&mut remote)?;
            let target = remote.state.size.load(Ordering::Acquire);
            while self.next_seq - 1 < target {
                let up_to = (self.next_seq - 1 + FOLLOW_CHUNK as u64).min(target);
                self.follow_up_to(&mut remote, up_to)?;
                if let Some(p) = progress {
                    p(self.next_seq - 1, target);
                }
            }
            self.follow_to_head(&mut remote)?;
            super::remote::copy_checkpoints(&self.store, &mut remote, self.next_seq - 1)
        })();
        self.remote = Some(remote);
        result
    }

    fn follow_up_to(&mut self, remote: &mut Remote, up_to: u64) -> Result<(), LedgerError> {
        while self.next_seq - 1 < up_to {
            let rows = self.next_chunk(remote, up_to)?;
            if rows.is_empty() {
                break;
            }
            self.apply(rows)?;
        }
        Ok(())
    }

    /// The next events past the replica, up to `up_to`, at most [`FOLLOW_CHUNK`].
    fn next_chunk(&self, remote: &mut Remote, up_to: u64) -> Result<Vec<LogRow>, LedgerError> {
        match remote.conn()?.events(self.next_seq - 1, up_to, FOLLOW_CHUNK) {
            Ok(rows) => {
                remote.succeeded();
                Ok(rows)
            }
            Err(e) => {
                remote.failed(&e);
                Err(LedgerError::DatabaseUnavailable)
            }
        }
    }

    /// Writes events the database holds (the replica's next seqs, in order) to the local
    /// replica with every row they imply, as the embedded writer would have. Unsynced: the
    /// database holds them, and a replica that lost its last writes to a power cut applies
    /// them again when it starts.
    fn apply(&mut self, rows: Vec<LogRow>) -> Result<(), LedgerError> {
        let start = (self.next_seq, self.last_recorded, self.frontier.clone());
        let mut batch = Batch::default();
        let mut docs = Vec::with_capacity(rows.len());
        let result = (|| {
            for row in rows {
                if row.seq != self.next_seq {
                    return Err(LedgerError::CorruptEvent(row.seq));
                }
                let seq = row.seq;
                let stored = stored_of(row)?;
                let doc = stored.doc().map_err(|_| LedgerError::CorruptEvent(seq))?;
                if doc.seq != seq {
                    return Err(LedgerError::CorruptEvent(seq));
                }
                super::stage_event(&mut batch, &doc, &stored, &mut self.frontier)?;
                self.next_seq += 1;
                self.last_recorded = self.last_recorded.max(doc.recorded_at);
                docs.push(doc);
            }
            self.store.write_unsynced(&batch)?;
            Ok(())
        })();
        if let Err(e) = result {
            (self.next_seq, self.last_recorded, self.frontier) = start;
            if matches!(e, LedgerError::Store(store::StoreError::NoSpace)) {
                self.storage_full.store(true, Ordering::Release);
                self.last_recovery = Some(std::time::Instant::now());
                return Err(LedgerError::StorageFull);
            }
            return Err(e);
        }
        self.caches.invalidate(docs.iter());
        self.committed.store(self.next_seq - 1, Ordering::Release);
        self.notify.send_replace(self.next_seq - 1);
        Ok(())
    }
}

/// Reads the database's log size for `/readyz` and `/metrics`.
fn look_at_head(remote: &mut Remote) -> Result<(), LedgerError> {
    let size = remote.conn()?.size();
    match size {
        Ok(size) => {
            remote.state.size.store(size, Ordering::Release);
            remote.succeeded();
            Ok(())
        }
        Err(e) => {
            remote.failed(&e);
            Err(LedgerError::DatabaseUnavailable)
        }
    }
}

/// How a group written without the head's lock ended.
enum Unlocked {
    Committed(Answers, Vec<LogRow>),
    /// Another node's commit came first (or an id is in the log already): nothing was
    /// written; the group goes again under the lock.
    HeadMoved(Vec<Job>),
    Failed(Vec<Reply>, pglog::PgError),
}

/// The group (with what queued) signed after the local replica, which holds the whole log as
/// far as this node knows, and written in one statement on condition that the database's head
/// is still the replica's ([`PgLog::append_after`]): one round trip, and the head row is held
/// only while that statement commits. A node that writes alone commits every group this way;
/// when nodes write at once, the one whose head moved signs again under the lock.
fn commit_after_replica(w: &Writer, conn: &mut PgLog, mut jobs: Vec<Job>, queue: &Receiver<Job>) -> Unlocked {
    take_queued(&mut jobs, queue);
    let mut staged = Staged {
        next: w.next_seq,
        last: w.last_recorded,
        frontier: w.frontier.clone(),
        rows: Vec::new(),
        nodes: Vec::new(),
        known: HashMap::new(),
    };
    let results: Vec<_> = jobs.iter().map(|job| stage(w, &job.drafts, &mut staged)).collect();
    if !staged.rows.is_empty() {
        let edge = w.frontier.to_bytes();
        let after = pglog::Expected {
            size: w.next_seq - 1,
            last_recorded_micros: w.last_recorded.timestamp_micros(),
            frontier: &edge,
        };
        let frontier = staged.frontier.to_bytes();
        let last = staged.last.timestamp_micros();
        match conn.append_after(after, &staged.rows, &staged.nodes, last, &frontier, &w.node) {
            Ok(true) => {}
            Ok(false) => return Unlocked::HeadMoved(jobs),
            Err(e) if e.is_duplicate() => return Unlocked::HeadMoved(jobs),
            Err(e) => return Unlocked::Failed(jobs.into_iter().map(|j| j.reply).collect(), e),
        }
    }
    Unlocked::Committed(jobs.into_iter().map(|j| j.reply).zip(results).collect(), staged.rows)
}

/// Under the head's lock: the group (with what queued while waiting for the lock), signed
/// at the next seqs and committed. Answers per job, and the rows committed.
#[allow(clippy::type_complexity)]
fn commit_on(
    w: &Writer,
    conn: &mut PgLog,
    mut jobs: Vec<Job>,
    queue: &Receiver<Job>,
) -> Result<(Answers, Vec<LogRow>), (Vec<Reply>, Option<pglog::PgError>)> {
    fn fail<T>(jobs: Vec<Job>, e: Option<pglog::PgError>) -> Result<T, (Vec<Reply>, Option<pglog::PgError>)> {
        Err((jobs.into_iter().map(|j| j.reply).collect(), e))
    }
    let asked = std::time::Instant::now();
    let mut append = match conn.begin_append() {
        Ok(a) => a,
        Err(e) => return fail(jobs, Some(e)),
    };
    let locked = std::time::Instant::now();
    metrics::METRICS.database_lock_wait.observe(locked - asked);
    // What queued while this node waited for the head joins the group: with several nodes,
    // the wait for the lock grows each node's group instead of its queue.
    take_queued(&mut jobs, queue);
    let head = append.head.clone();
    let Some(frontier) = Frontier::from_bytes(&head.frontier).filter(|f| f.size() == head.size) else {
        tracing::error!("the database's tree edge does not match its head");
        return fail(jobs, None);
    };
    let keys: Vec<Vec<u8>> = jobs
        .iter()
        .flat_map(|j| {
            j.drafts.iter().filter(|d| !d.fresh_id).map(|d| event_id_key(d.doc.controller.as_ref(), &d.doc.id))
        })
        .collect();
    let existing = match append.existing(&keys.iter().map(Vec::as_slice).collect::<Vec<_>>()) {
        Ok(rows) => rows,
        Err(e) => return fail(jobs, Some(e)),
    };
    let mut known = HashMap::new();
    for row in existing {
        let (key, seq) = (row.id_key.clone(), row.seq);
        let Some(pair) = stored_of(row).ok().and_then(|s| s.doc().ok().map(|d| (s, d))) else {
            tracing::error!(seq, "a stored event does not decode");
            return fail(jobs, None);
        };
        known.insert(key, pair);
    }
    let last = chrono::DateTime::from_timestamp_micros(head.last_recorded_micros).unwrap_or_default();
    let mut staged = Staged { next: head.size + 1, last, frontier, rows: Vec::new(), nodes: Vec::new(), known };
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = stage(w, &job.drafts, &mut staged);
        answers.push((job.reply, result));
    }
    if staged.rows.is_empty() {
        drop(append);
        return Ok((answers, Vec::new()));
    }
    let frontier = staged.frontier.to_bytes();
    let committed = append.commit(&staged.rows, &staged.nodes, staged.last.timestamp_micros(), &frontier, &w.node);
    metrics::METRICS.database_lock_held.observe(locked.elapsed());
    if let Err(e) = committed {
        return Err((answers.into_iter().map(|(r, _)| r).collect(), Some(e)));
    }
    Ok((answers, staged.rows))
}

/// Stages one job all or nothing: an id the database (or this group) holds answers its
/// receipt, or a conflict when the event differs; the rest are signed at the next seqs.
fn stage(w: &Writer, drafts: &[Draft], s: &mut Staged) -> Result<Vec<Appended>, LedgerError> {
    let mut new = Vec::new();
    let mut ids = std::collections::HashSet::with_capacity(drafts.len());
    for (i, d) in drafts.iter().enumerate() {
        // One job names an id once (two events under one id would both be written).
        if !ids.insert((d.doc.controller.as_ref(), d.doc.id)) {
            return Err(LedgerError::IdConflict(d.doc.id));
        }
        if let Some((_, doc)) = s.known.get(&event_id_key(d.doc.controller.as_ref(), &d.doc.id)) {
            if !same_event(d, doc) {
                return Err(LedgerError::IdConflict(d.doc.id));
            }
        } else {
            new.push(i);
        }
    }
    let mut is_new = vec![false; drafts.len()];
    for &i in &new {
        is_new[i] = true;
    }
    let fresh: Vec<&Draft> = new.iter().map(|&i| &drafts[i]).collect();
    for (stored, doc) in w.seal_many(&fresh, s.next, s.last)? {
        for (level, index, hash) in s.frontier.push(stored.leaf_hash) {
            s.nodes.push(Node { level, index, hash: hash.to_vec() });
        }
        let key = event_id_key(doc.controller.as_ref(), &doc.id);
        s.rows.push(row_of(doc.seq, key.clone(), &stored));
        s.next += 1;
        s.last = doc.recorded_at;
        s.known.insert(key, (stored, doc));
    }
    drafts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let key = event_id_key(d.doc.controller.as_ref(), &d.doc.id);
            let receipt = s.known.get(&key).map(|(stored, doc)| stored.receipt(doc.clone()));
            receipt.map(|r| (r, is_new[i])).ok_or(LedgerError::WriteFailed)
        })
        .collect()
}
