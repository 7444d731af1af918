//! Rebuilding the projections from the log (`consent-ledger rebuild`). Every projection row is
//! deleted, then re-derived from the stored events in seq order with the writer's own
//! `derived_rows`, so the rows come out as the writer wrote them (`verify`
//! confirms it). A marker in `meta` is written before the first row is deleted and removed
//! with the last row written: a store whose rebuild was cut off is refused by
//! `Ledger::open` until a rebuild completes, so no server ever answers from half a rebuild.

use format::StoredEvent;
use log::merkle::Frontier;
use store::{Batch, Cf, Store};

use super::LedgerError;

/// Key in `meta` present while a rebuild is under way.
pub const REBUILDING_KEY: &[u8] = b"rebuilding";

/// Rows written or deleted per synced batch.
const CHUNK: usize = 20_000;

/// Rebuilds every projection of `store` from its events; returns how many events it read.
/// `progress` is told each phase's count as it goes (deleted rows, then replayed events).
pub fn rebuild(store: &Store, mut progress: impl FnMut(Phase, u64)) -> Result<u64, LedgerError> {
    super::check_rebuildable_format(store)?;
    let mut batch = Batch::default();
    batch.put(Cf::Meta, REBUILDING_KEY.to_vec(), b"1".to_vec());
    store.write_synced(&batch)?;

    let mut deleted = 0u64;
    for cf in Cf::PROJECTIONS {
        let mut batch = Batch::default();
        let mut n = 0usize;
        for item in store.iter_from(cf, &[])? {
            let (k, _) = item?;
            batch.delete(cf, k.to_vec());
            n += 1;
            if n == CHUNK {
                store.write_synced(&std::mem::take(&mut batch))?;
                deleted += n as u64;
                n = 0;
                progress(Phase::Deleting, deleted);
            }
        }
        store.write_synced(&batch)?;
        deleted += n as u64;
        progress(Phase::Deleting, deleted);
    }

    let mut tree = Frontier::default();
    let mut batch = Batch::default();
    let mut events = 0u64;
    for item in store.iter_from(Cf::Events, &[])? {
        let (_, v) = item?;
        let stored = StoredEvent::decode(&v).map_err(|_| LedgerError::Corrupt)?;
        let doc = stored.doc().map_err(|_| LedgerError::Corrupt)?;
        for (cf, k, v) in super::derived_rows(&doc, stored.leaf_hash, &mut tree).map_err(|_| LedgerError::Corrupt)? {
            batch.row(cf, k, v);
        }
        events += 1;
        if events % CHUNK as u64 == 0 {
            store.write_synced(&std::mem::take(&mut batch))?;
            progress(Phase::Replaying, events);
        }
    }
    batch.delete(Cf::Meta, REBUILDING_KEY.to_vec());
    let (k, v) = super::format_row();
    batch.put(Cf::Meta, k, v);
    store.write_synced(&batch)?;
    progress(Phase::Replaying, events);
    Ok(events)
}

/// What a rebuild is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Deleting,
    Replaying,
}
