//! Rebuilding the projections from the log (`consent-ledger rebuild`). Every projection row is
//! deleted, then re-derived from the stored events in seq order with the writer's own
//! `derived_rows` (its halves: the rows of a block of events on every core, the tree's in
//! order), so the rows come out as the writer wrote them (`verify` confirms it). A marker in `meta` is written before the first row is deleted and removed
//! with the last row written: a store whose rebuild was cut off is refused by
//! `Ledger::open` until a rebuild completes, so no server ever answers from half a rebuild.

use format::StoredEvent;
use log::merkle::Frontier;
use store::{Batch, Cf, Store};

use super::LedgerError;

/// Key in `meta` present while a rebuild is under way.
pub const REBUILDING_KEY: &[u8] = b"rebuilding";

/// Events whose rows go in one synced batch, put in key order first ([`Batch::sort_by_row`]:
/// facts rows come in the order of the tenants' events, scattered over the keys, and a
/// RocksDB memtable takes ordered keys much faster; a tenant's records in one chunk become
/// one append).
const CHUNK: usize = 20_000;

/// Rebuilds every projection of `store` from its events; returns how many events it read.
/// `progress` is told each phase's count as it goes (cleared column families, then replayed events).
pub fn rebuild(store: &Store, mut progress: impl FnMut(Phase, u64)) -> Result<u64, LedgerError> {
    super::check_rebuildable_format(store)?;
    let mut batch = Batch::default();
    batch.put(Cf::Meta, REBUILDING_KEY.to_vec(), b"1".to_vec());
    store.write_synced(&batch)?;

    // Each projection's files dropped and the rest in one range tombstone, not a tombstone a
    // row ([`Store::clear`]): the old rows need not be compacted away under the new ones.
    for (deleted, cf) in (1u64..).zip(Cf::PROJECTIONS) {
        store.clear(cf)?;
        progress(Phase::Deleting, deleted);
    }

    // Events are parsed and projected a block at a time on every core, by a thread of their
    // own, while this one folds the tree and writes the block before (the writes are the
    // part that runs on one thread).
    let mut tree = Frontier::default();
    let mut batch = Batch::default();
    let mut events = 0u64;
    std::thread::scope(|s| -> Result<(), LedgerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Projected>, LedgerError>>(1);
        s.spawn(move || {
            let mut log = match store.iter_from(Cf::Events, &[]) {
                Ok(log) => log,
                Err(e) => return drop(tx.send(Err(e.into()))),
            };
            loop {
                let block: Result<Vec<store::Pair>, _> = log.by_ref().take(BLOCK).collect();
                let projected = match block {
                    Ok(block) if block.is_empty() => return,
                    Ok(block) => project_block(&block),
                    Err(e) => Err(e.into()),
                };
                let failed = projected.is_err();
                if tx.send(projected).is_err() || failed {
                    return;
                }
            }
        });
        for projected in rx {
            for (leaf, rows) in projected? {
                for (cf, k, v) in rows.into_iter().chain(super::tree_rows(leaf, &mut tree)) {
                    batch.row(cf, k, v);
                }
                events += 1;
                if events % CHUNK as u64 == 0 {
                    batch.sort_by_row();
                    store.write_synced(&std::mem::take(&mut batch))?;
                    progress(Phase::Replaying, events);
                }
            }
        }
        Ok(())
    })?;
    batch.sort_by_row();
    batch.delete(Cf::Meta, REBUILDING_KEY.to_vec());
    let (k, v) = super::format_row();
    batch.put(Cf::Meta, k, v);
    store.write_synced(&batch)?;
    progress(Phase::Replaying, events);
    Ok(events)
}

/// An event's leaf hash and the projection rows it implies but the Merkle nodes.
type Projected = ([u8; 32], Vec<projection::Row>);

/// Events parsed and projected together.
const BLOCK: usize = 8192;

/// Each event of a block (in order): its leaf hash and the projection rows it implies but the
/// Merkle nodes ([`super::derived_rows`]' first half), derived on every core.
pub(super) fn project_block(block: &[store::Pair]) -> Result<Vec<Projected>, LedgerError> {
    let one = |v: &[u8]| -> Result<Projected, LedgerError> {
        let stored = StoredEvent::decode(v).map_err(|_| LedgerError::Corrupt)?;
        let doc = stored.doc().map_err(|_| LedgerError::Corrupt)?;
        Ok((stored.leaf_hash, projection::project(&doc).map_err(|_| LedgerError::Corrupt)?))
    };
    let per = block.len().div_ceil(super::commit::cores().max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = block
            .chunks(per)
            .map(|run| s.spawn(move || run.iter().map(|(_, v)| one(v)).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut out = Vec::with_capacity(block.len());
        for h in handles {
            out.extend(h.join().map_err(|_| LedgerError::Corrupt)??);
        }
        Ok(out)
    })
}

/// What a rebuild is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Deleting,
    Replaying,
}
