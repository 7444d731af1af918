//! The Merkle tree's nodes as the store keeps them: from level 1 up in the `merkle` column
//! family; a leaf (level 0) is not stored twice, it is its event's leaf hash, kept in the
//! event's record (store format 5; before, every leaf was a row of `merkle` too).

use log::merkle::{Hash, NodeSource};
use store::{Cf, Store};

/// Key of a stored tree node: level (1 byte) ‖ index (u64 big-endian).
pub fn node_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The stored tree nodes of a store.
pub struct StoredTree<'a>(pub &'a Store);

impl NodeSource for StoredTree<'_> {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        if level == 0 {
            // Leaf `index` is the event of seq `index + 1`.
            return super::stored_event(self.0, index.checked_add(1)?).ok()?.map(|e| e.leaf_hash);
        }
        self.0.get(Cf::Merkle, &node_key(level, index)).ok().flatten().and_then(|v| v.try_into().ok())
    }
}
