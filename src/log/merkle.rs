//! The RFC 6962 / RFC 9162 Merkle tree: leaf hash SHA-256(0x00 ‖ leaf), node hash
//! SHA-256(0x01 ‖ left ‖ right), the tree head of any size, inclusion proofs (RFC 6962
//! section 2.1.1, PATH) and consistency proofs (section 2.1.2, PROOF), and their
//! verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2).
//!
//! Hashes of complete, aligned subtrees are stored once (level, index) as leaves arrive
//! ([`Frontier`]); every head and proof of any tree size is then assembled from O(log² n)
//! stored nodes, never by rehashing the log.

use sha2::{Digest, Sha256};

use super::LogError;

pub type Hash = [u8; 32];

/// SHA-256 of the empty string: the head of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Where stored subtree hashes come from: the hash of leaves
/// `[index << level, (index + 1) << level)`, present once that subtree is complete.
pub trait NodeSource {
    fn node(&self, level: u8, index: u64) -> Option<Hash>;
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[start, end)`, from stored complete subtrees.
pub fn range_hash(src: &impl NodeSource, start: u64, end: u64) -> Result<Hash, LogError> {
    let n = end.checked_sub(start).filter(|n| *n > 0).ok_or(LogError::OutOfRange)?;
    if n.is_power_of_two() && start % n == 0 {
        let level = n.trailing_zeros() as u8;
        return src.node(level, start >> level).ok_or(LogError::MissingNode);
    }
    let k = split(n);
    Ok(node_hash(&range_hash(src, start, start + k)?, &range_hash(src, start + k, end)?))
}

/// The tree head of the first `size` leaves.
pub fn root(src: &impl NodeSource, size: u64) -> Result<Hash, LogError> {
    if size == 0 {
        Ok(empty_root())
    } else {
        range_hash(src, 0, size)
    }
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 6962 PATH).
pub fn inclusion_proof(src: &impl NodeSource, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
    if index >= size {
        return Err(LogError::OutOfRange);
    }
    let mut proof = Vec::new();
    path(src, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path(src: &impl NodeSource, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), LogError> {
    let n = end - start;
    if n == 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `old` and `new` leaves (RFC 6962 PROOF).
pub fn consistency_proof(src: &impl NodeSource, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
    if old == 0 || old > new {
        return Err(LogError::OutOfRange);
    }
    let mut proof = Vec::new();
    if old < new {
        subproof(src, old, 0, new, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof(
    src: &impl NodeSource,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), LogError> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(src, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(src, m, start, start + k, whole, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// Verifies a consistency proof (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old == 0 || old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, *old_root);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

/// The right edge of the tree: the hash of the last complete subtree at each level that is
/// still waiting for a right sibling. Appending a leaf yields the new complete nodes to store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    pending: Vec<Option<Hash>>,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes.
    pub fn load(src: &impl NodeSource, size: u64) -> Result<Self, LogError> {
        let mut pending = vec![None; 64];
        for (level, slot) in pending.iter_mut().enumerate() {
            if size >> level & 1 == 1 {
                let index = (size >> level) - 1;
                *slot = Some(src.node(level as u8, index).ok_or(LogError::MissingNode)?);
            }
        }
        Ok(Self { size, pending })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier as bytes: the size (u64 big-endian), then the hash of each pending level
    /// from the lowest (the levels are the size's set bits).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.size.to_be_bytes().to_vec();
        for h in self.pending.iter().flatten() {
            out.extend_from_slice(h);
        }
        out
    }

    /// The frontier of [`Frontier::to_bytes`]; `None` when the bytes do not fit its size.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (size, mut rest) = bytes.split_first_chunk::<8>()?;
        let size = u64::from_be_bytes(*size);
        let mut pending = vec![None; 64];
        for (level, slot) in pending.iter_mut().enumerate() {
            if size >> level & 1 == 1 {
                let (h, tail) = rest.split_first_chunk::<32>()?;
                *slot = Some(*h);
                rest = tail;
            }
        }
        rest.is_empty().then_some(Self { size, pending })
    }

    /// The tree head of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for p in self.pending.iter().flatten() {
            acc = Some(match acc {
                None => *p,
                Some(right) => node_hash(p, &right),
            });
        }
        acc.unwrap_or_else(empty_root)
    }

    /// Adds the next leaf and returns every subtree it completes as `(level, index, hash)`.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        if self.pending.len() < 64 {
            self.pending.resize(64, None);
        }
        let index = self.size;
        let mut out = vec![(0u8, index, leaf)];
        let mut hash = leaf;
        let mut level = 0usize;
        let mut i = index;
        while i & 1 == 1 {
            let Some(left) = self.pending[level].take() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            i >>= 1;
            out.push((level as u8, i, hash));
        }
        self.pending[level] = Some(hash);
        self.size += 1;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use format::leaf_hash;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A tree kept in memory the way the store keeps it.
    #[derive(Default)]
    struct Mem {
        nodes: HashMap<(u8, u64), Hash>,
        frontier: Frontier,
        leaves: Vec<Hash>,
    }

    impl NodeSource for Mem {
        fn node(&self, level: u8, index: u64) -> Option<Hash> {
            self.nodes.get(&(level, index)).copied()
        }
    }

    impl Mem {
        fn with(n: u64) -> Self {
            let mut m = Mem::default();
            for i in 0..n {
                let leaf = leaf_hash(format!("leaf {i}").as_bytes());
                m.leaves.push(leaf);
                for (l, idx, h) in m.frontier.push(leaf) {
                    m.nodes.insert((l, idx), h);
                }
            }
            m
        }
    }

    /// The definitions of RFC 6962 section 2.1, written directly over a slice of leaves.
    fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    fn naive_path(m: usize, d: &[Hash]) -> Vec<Hash> {
        if d.len() <= 1 {
            return vec![];
        }
        let k = split(d.len() as u64) as usize;
        if m < k {
            let mut p = naive_path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    fn naive_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = split(n as u64) as usize;
        if m <= k {
            let mut p = naive_subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = naive_subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }

    #[test]
    fn roots_and_proofs_match_the_definitions_for_every_size_to_300() {
        let tree = Mem::with(300);
        for n in 1..=300u64 {
            let d = &tree.leaves[..n as usize];
            let r = root(&tree, n).unwrap();
            assert_eq!(r, mth(d), "root of {n}");
            assert_eq!(Mem::with(n).frontier.root(), r, "frontier root of {n}");
            for m in 0..n {
                let p = inclusion_proof(&tree, m, n).unwrap();
                assert_eq!(p, naive_path(m as usize, d), "path {m} of {n}");
                assert!(verify_inclusion(&d[m as usize], m, n, &p, &r));
            }
            for m in 1..=n {
                let p = consistency_proof(&tree, m, n).unwrap();
                if m < n {
                    assert_eq!(p, naive_subproof(m as usize, d, true), "proof {m} -> {n}");
                }
                let old = root(&tree, m).unwrap();
                assert!(verify_consistency(m, n, &old, &r, &p), "verify {m} -> {n}");
            }
        }
    }

    #[test]
    fn frontier_reloads_from_stored_nodes() {
        for n in [0u64, 1, 2, 3, 7, 8, 100, 255, 256] {
            let tree = Mem::with(n);
            assert_eq!(
                Frontier::load(&tree, n).unwrap().pending.iter().flatten().count(),
                tree.frontier.pending.iter().flatten().count()
            );
            let mut a = Frontier::load(&tree, n).unwrap();
            let mut b = tree.frontier.clone();
            let leaf = leaf_hash(b"next");
            assert_eq!(a.push(leaf), b.push(leaf));
        }
    }

    #[test]
    fn frontier_bytes_round_trip_and_go_on_growing_the_same_tree() {
        for n in [0u64, 1, 2, 3, 7, 8, 100, 255, 256] {
            let tree = Mem::with(n);
            let bytes = tree.frontier.to_bytes();
            let mut back = Frontier::from_bytes(&bytes).unwrap();
            assert_eq!(back.root(), tree.frontier.root());
            let mut b = tree.frontier.clone();
            let leaf = leaf_hash(b"next");
            assert_eq!(back.push(leaf), b.push(leaf));
            // A cut or padded encoding is refused, never read as another tree.
            assert!(Frontier::from_bytes(&bytes[..bytes.len() - 1]).is_none());
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Frontier::from_bytes(&longer).is_none());
        }
    }

    #[test]
    fn empty_tree_head_is_sha256_of_nothing() {
        assert_eq!(hex::encode(empty_root()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    proptest! {
        /// Any changed proof element, leaf, index or root is rejected.
        #[test]
        fn tampered_proofs_are_rejected(n in 2..200u64, m_seed in any::<u64>(), which in any::<usize>(), bit in 0..256usize) {
            let tree = Mem::with(n);
            let m = m_seed % n;
            let r = root(&tree, n).unwrap();
            let mut p = inclusion_proof(&tree, m, n).unwrap();
            let leaf = tree.leaves[m as usize];
            if !p.is_empty() {
                let i = which % p.len();
                p[i][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(!verify_inclusion(&leaf, m, n, &p, &r));
            }
            let p = inclusion_proof(&tree, m, n).unwrap();
            let mut bad_leaf = leaf;
            bad_leaf[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!verify_inclusion(&bad_leaf, m, n, &p, &r));
            prop_assert!(!verify_inclusion(&leaf, (m + 1) % n, n, &p, &r) || tree.leaves[((m + 1) % n) as usize] == leaf);

            let old = 1 + m_seed % (n - 1);
            let old_root = root(&tree, old).unwrap();
            let mut c = consistency_proof(&tree, old, n).unwrap();
            prop_assert!(verify_consistency(old, n, &old_root, &r, &c));
            if !c.is_empty() {
                let i = which % c.len();
                c[i][bit / 8] ^= 1 << (bit % 8);
                prop_assert!(!verify_consistency(old, n, &old_root, &r, &c));
            }
        }
    }
}
