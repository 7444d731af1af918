//! The checkpointer thread: signs a checkpoint of the durable log at most once per interval,
//! proved consistent with the last signed one first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use log::checkpoint::Checkpoint;
use log::merkle;
use signing::Ed25519Signer;
use store::{Batch, Cf, Store, StoreError};

use super::tree::StoredTree;
use super::{db_conn, latest_checkpoint, remote, LedgerError};

/// Signs a checkpoint of the durable log, at most once per interval and only when it grew.
/// Tree heads come from the append-only stored tree and sizes only increase; before signing,
/// the new head is proved consistent with the last signed one from the stored nodes. If that
/// ever fails, nothing is signed again: the failure is logged, counted in the metrics, and
/// `/readyz` fails, because a signed inconsistent head would be proof of a rewritten history.
pub(super) struct Checkpointer {
    pub(super) store: Arc<Store>,
    pub(super) signer: Arc<Ed25519Signer>,
    pub(super) committed: Arc<AtomicU64>,
    /// Set once a new head was found inconsistent with the last signed one.
    pub(super) inconsistent: Arc<std::sync::atomic::AtomicBool>,
    /// On a database ledger: the database, this node's lease holder name and the lease's
    /// time to live. Only the lease's holder signs.
    pub(super) remote: Option<(db_conn::Remote, String, Duration)>,
}

impl Checkpointer {
    pub(super) fn run(mut self, stop: mpsc::Receiver<()>, interval: Duration) {
        // A database that stays unreachable, or a full disk, fails every tick (once a second by
        // default): an error every 10 s for as long as it lasts, not one a tick.
        let unsigned = metrics::Throttle::every_secs(10);
        loop {
            match stop.recv_timeout(interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    match self.sign_if_grown() {
                        Ok(()) | Err(LedgerError::CheckpointsStopped) => {}
                        // The outages that last: a database out of reach, a full disk.
                        Err(e @ (LedgerError::DatabaseUnavailable | LedgerError::Store(StoreError::NoSpace))) => {
                            if let Some(left_out) = unsigned.due() {
                                tracing::error!(error = %e, left_out, "could not sign a checkpoint (at most one such error in 10 s; left_out: since the last)");
                            }
                        }
                        // Anything else, an inconsistent head above all, is written every time.
                        Err(e) => tracing::error!(error = %e, "could not sign a checkpoint"),
                    }
                }
                _ => {
                    // Sign what the last commits added before stopping.
                    let _ = self.sign_if_grown();
                    return;
                }
            }
        }
    }

    pub(super) fn sign_if_grown(&mut self) -> Result<(), LedgerError> {
        if self.inconsistent.load(Ordering::Acquire) {
            return Err(LedgerError::CheckpointsStopped);
        }
        let size = self.committed.load(Ordering::Acquire);
        if let Some((remote, holder, ttl)) = self.remote.as_mut() {
            // The last signed checkpoint is the database's; sign only holding the lease.
            let conn = remote.conn()?;
            let mut outcome = Ok(None);
            let signed = conn.checkpoint_with_lease(holder, *ttl, |last| {
                if last.as_ref().is_some_and(|(s, _)| *s >= size) {
                    return None;
                }
                outcome = Checkpointer::signed_note(&self.store, &self.signer, &self.inconsistent, last, size);
                outcome.as_ref().ok().cloned().flatten()
            });
            if let Err(e) = signed {
                remote.failed(&e);
                return Err(LedgerError::DatabaseUnavailable);
            }
            // Every node, the signer too, keeps the database's checkpoints up to what its
            // replica holds, copied in order of size (so none is skipped).
            remote::copy_checkpoints(&self.store, remote, size)?;
            return outcome.map(|_| ());
        }
        let last = latest_checkpoint(&self.store)?;
        if last.as_ref().is_some_and(|(s, _)| *s >= size) {
            return Ok(());
        }
        let Some((size, note)) = Self::signed_note(&self.store, &self.signer, &self.inconsistent, last, size)? else {
            return Ok(());
        };
        let mut batch = Batch::default();
        batch.put(Cf::Checkpoints, size.to_be_bytes().to_vec(), note.into_bytes());
        Ok(self.store.write_synced(&batch)?)
    }

    /// The signed note of the tree at `size`, once its head is proved consistent with the last
    /// signed checkpoint.
    fn signed_note(
        store: &Store,
        signer: &Ed25519Signer,
        inconsistent: &std::sync::atomic::AtomicBool,
        last: Option<(u64, String)>,
        size: u64,
    ) -> Result<Option<(u64, String)>, LedgerError> {
        let tree = StoredTree(store);
        let root = merkle::root(&tree, size)?;
        if let Some((old, note)) = last.filter(|(s, _)| *s > 0) {
            let text = note.split_once("\n\n").map(|(t, _)| format!("{t}\n")).ok_or(LedgerError::LastNote)?;
            let signed = Checkpoint::parse_text(&text).map_err(|_| LedgerError::LastNote)?;
            let proof = merkle::consistency_proof(&tree, old, size)?;
            if signed.size != old || !merkle::verify_consistency(old, size, &signed.root, &root, &proof) {
                inconsistent.store(true, Ordering::Release);
                metrics::METRICS.checkpoints_refused.fetch_add(1, Ordering::Relaxed);
                let e = LedgerError::TreeInconsistent { old, new: size };
                tracing::error!(error = %e, "checkpoint signing stopped: the log's tree does not extend the signed one");
                return Err(e);
            }
        }
        let checkpoint = Checkpoint { origin: signer.name().to_owned(), size, root };
        Ok(Some((size, checkpoint.sign(signer.name(), signer))))
    }
}
