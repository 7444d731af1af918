//! The facts cache's index: an open-addressing table of eight-byte slots, each the low 32 bits
//! of an entry's hash and the entry's offset in its ring, probed linearly and kept at most
//! half full. A lookup reads one slot's cache line and then the entry itself: a table whose
//! control bytes and offsets lie apart (`hashbrown`'s) costs a third miss in memory a lookup,
//! and at 1 million tenants each miss is most of a lookup's time. An entry's home slot is
//! its stored hash bits under the mask, so the table grows and a removal closes its gap
//! (backward shift, no tombstones) without reading any key.

pub(crate) struct Slots {
    /// `hash bits << 32 | (offset + 1)`; 0 is empty.
    slots: Vec<u64>,
    len: usize,
}

/// The slots of a table that holds `entries`: twice as many, a power of two (none for none).
fn slots_for(entries: usize) -> usize {
    if entries == 0 {
        0
    } else {
        (entries * 2).next_power_of_two().max(8)
    }
}

impl Slots {
    /// A table for at most `entries` (more make it grow).
    pub(crate) fn with_capacity(entries: usize) -> Self {
        Self { slots: vec![0; slots_for(entries)], len: 0 }
    }

    /// What a table for `entries` allocates.
    pub(crate) fn bytes_for(entries: usize) -> usize {
        slots_for(entries) * std::mem::size_of::<u64>()
    }

    /// The entries it holds without growing: half its slots.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len() / 2
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn allocation_size(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u64>()
    }

    /// The offset of the entry of `hash` that `is` takes (asked only of entries whose hash
    /// bits are the same).
    pub(crate) fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(hash, &mut is).map(|i| offset(self.slots[i]))
    }

    /// Takes out the entry of `hash` that `is` takes; its offset, if there was one.
    pub(crate) fn remove(&mut self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut hole = self.position(hash, &mut is)?;
        let at = offset(self.slots[hole]);
        let mask = self.slots.len() - 1;
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let slot = self.slots[next];
            if slot == 0 {
                break;
            }
            // The entry moves back into the hole unless its home lies after the hole.
            let home = home(slot, mask);
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                hole = next;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
        Some(at)
    }

    /// Puts in the entry of `hash` at `at` (not held already), growing the table first if it
    /// is at its capacity.
    pub(crate) fn insert(&mut self, hash: u64, at: u32) {
        if self.len >= self.capacity() {
            self.grow_to((self.capacity() * 2).max(4));
        }
        let slot = (hash << 32) | (u64::from(at) + 1);
        place(&mut self.slots, slot);
        self.len += 1;
    }

    /// Makes the table room for `entries`, if it has less (every entry placed again).
    pub(crate) fn grow_to(&mut self, entries: usize) {
        if entries <= self.capacity() {
            return;
        }
        let mut slots = vec![0; slots_for(entries)];
        for &slot in self.slots.iter().filter(|s| **s != 0) {
            place(&mut slots, slot);
        }
        self.slots = slots;
    }

    fn position(&self, hash: u64, is: &mut impl FnMut(u32) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let bits = hash as u32;
        let mut i = bits as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return None;
            }
            if (slot >> 32) as u32 == bits && is(offset(slot)) {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }
}

fn offset(slot: u64) -> u32 {
    (slot as u32).wrapping_sub(1)
}

fn home(slot: u64, mask: usize) -> usize {
    (slot >> 32) as usize & mask
}

/// Puts `slot` in the first empty slot from its home (there is one: at most half are full).
fn place(slots: &mut [u64], slot: u64) {
    let mask = slots.len() - 1;
    let mut i = home(slot, mask);
    while slots[i] != 0 {
        i = (i + 1) & mask;
    }
    slots[i] = slot;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Against a map: entries found by hash and offset, whatever collides, after any mix of
        /// insertions, removals and growth; never more than half full.
        #[test]
        fn slots_find_what_a_map_holds(ops in proptest::collection::vec((0u8..3, 0u64..64), 0..400)) {
            let mut slots = Slots::with_capacity(4);
            let mut model: HashMap<u32, u64> = HashMap::new();
            let mut next = 0u32;
            for (op, h) in ops {
                // Few hash values (and the same low bits), so runs collide and wrap.
                let hash = (h % 13) | (h << 40);
                match op {
                    0 | 1 => {
                        let at = next;
                        next += 1;
                        slots.insert(hash, at);
                        model.insert(at, hash);
                    }
                    _ => {
                        let victim = model.iter().find(|(_, hh)| **hh == hash).map(|(at, _)| *at);
                        prop_assert_eq!(slots.remove(hash, |at| Some(at) == victim), victim);
                        if let Some(at) = victim {
                            model.remove(&at);
                        }
                    }
                }
                prop_assert_eq!(slots.len(), model.len());
                prop_assert!(slots.len() <= slots.capacity());
                for (at, hash) in &model {
                    prop_assert_eq!(slots.find(*hash, |held| held == *at), Some(*at));
                }
                prop_assert_eq!(slots.find(hash, |held| held == next), None);
            }
        }
    }

    #[test]
    fn a_table_allocates_what_it_says_and_grows_only_when_asked_or_full() {
        for entries in [0, 1, 3, 4, 100, 4096] {
            let slots = Slots::with_capacity(entries);
            assert_eq!(Slots::bytes_for(entries), slots.allocation_size());
            assert!(slots.capacity() >= entries);
        }
        let mut slots = Slots::with_capacity(4);
        let made = slots.capacity();
        for at in 0..made as u32 {
            slots.insert(u64::from(at) * 7, at);
        }
        assert_eq!(slots.capacity(), made, "full, not grown");
        slots.insert(99, 99);
        assert!(slots.capacity() > made);
        assert_eq!(slots.find(99, |at| at == 99), Some(99));
        assert_eq!(slots.find(14, |at| at == 2), Some(2));
    }
}
