//! The Merkle tree's nodes as the store keeps them.

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
        self.0.get(Cf::Merkle, &node_key(level, index)).ok().flatten().and_then(|v| v.try_into().ok())
    }
}
