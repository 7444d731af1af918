//! The audit export: NDJSON that lets anyone check a controller's events against the signed
//! tree heads with a JCS library, an Ed25519 library and SHA-256 (see `docs/FORMAT.md`).
//!
//! Lines, in order: one `header`; every signing `key`; every signed `checkpoint` up to the
//! export's tree size; then one line per leaf `0..tree_size`: the controller's own events as
//! `event` lines (the signed document and its signature), every other controller's as `leaf`
//! lines carrying only the leaf hash, so the root can be recomputed without revealing them.

use super::keys::ValidKey;
use format::export::{ExportLine, EXPORT_FORMAT, EXPORT_VERSION};
use format::{EventDoc, StoredEvent};
use store::{Cf, Store, StoreError};

use super::{checkpoints, decode_event, latest_checkpoint, LedgerError};

/// Writes the export of `controller`'s events, up to the latest checkpoint, line by line to
/// `out`. `progress` is told each leaf written. Returns the tree size exported.
pub fn export(
    store: &Store,
    keys: &[ValidKey],
    controller: &str,
    mut out: impl FnMut(&ExportLine) -> std::io::Result<()>,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, LedgerError> {
    let io = |e: std::io::Error| LedgerError::Store(StoreError::Io(e.to_string()));
    let (tree_size, _) = latest_checkpoint(store)?.ok_or(LedgerError::NoCheckpoint)?;
    let origin = keys.last().map(|k| k.verifier.name().to_owned()).unwrap_or_default();
    let header = ExportLine::Header {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        controller: controller.to_owned(),
        tree_size,
        origin,
    };
    out(&header).map_err(io)?;
    for k in keys {
        out(&ExportLine::Key { vkey: k.verifier.vkey(), first_seq: k.first_seq, last_seq: k.last_seq }).map_err(io)?;
    }
    for (size, note) in checkpoints(store)? {
        if size <= tree_size {
            out(&ExportLine::Checkpoint { note }).map_err(io)?;
        }
    }
    // One pass over the events in seq order, read once: an export of a large log neither
    // looks each event up nor pushes out of the block cache what checks read.
    let mut events = store.scan_once_from(Cf::Events, &projection::seq_key(1))?;
    for seq in 1..=tree_size {
        let stored: StoredEvent = match events.next().transpose()? {
            Some((key, raw)) if *key == projection::seq_key(seq) => decode_event(seq, &raw)?,
            _ => return Err(LedgerError::CorruptEvent(seq)),
        };
        let doc: EventDoc = stored.doc().map_err(|_| LedgerError::CorruptEvent(seq))?;
        // The ledger's own events (key rotations) are public and go to every export.
        let line = if doc.controller.as_ref().is_none_or(|c| c.as_str() == controller) {
            let event = serde_json::from_slice(&stored.bytes).map_err(|_| LedgerError::CorruptEvent(seq))?;
            let receipt = stored.receipt(doc);
            ExportLine::Event { leaf_index: seq - 1, event, signature: receipt.signature, key_id: receipt.key_id }
        } else {
            ExportLine::Leaf { leaf_index: seq - 1, leaf_hash: hex::encode(stored.leaf_hash) }
        };
        out(&line).map_err(io)?;
        progress(seq, tree_size);
    }
    Ok(tree_size)
}
