//! A FIFO of records (a key and a row) in one buffer of fixed size, the facts cache's memory:
//! a record goes in at the head, and the oldest go out at the tail to make room for it. A
//! record is found by its offset in the buffer, which stays its own until the tail passes
//! it, so a table of offsets finds records by key and eviction needs no list of its own.
//!
//! Positions count the bytes ever put in (`head`, `tail`); a position's offset is the
//! position modulo the buffer's `limit`, which changes only before the buffer first fills.
//! A record never wraps: when one does not fit before the end of the buffer, the rest of that
//! lap is a gap (marked by a record length of zero, or too short to hold a header) and the
//! record starts the next lap. Records are `[length: u32][key length: u16][key][row]`, all
//! big-endian, the length counting the header.

/// A record's header: its length and its key's length.
const HEADER: usize = 6;

pub(crate) struct Ring {
    buf: Vec<u8>,
    limit: usize,
    head: u64,
    tail: u64,
}

impl Ring {
    /// A ring of `limit` bytes (at most `u32::MAX`, so that an offset is four bytes). The
    /// memory is reserved, not touched, until records fill it.
    pub(crate) fn with_limit(limit: usize) -> Self {
        let limit = limit.min(u32::MAX as usize);
        Self { buf: Vec::with_capacity(limit), limit, head: 0, tail: 0 }
    }

    /// The bytes a record of `key` and `row` takes, if it can go in at all.
    pub(crate) fn record_len(&self, key: &[u8], row: &[u8]) -> Option<usize> {
        u16::try_from(key.len()).ok()?;
        let len = HEADER + key.len() + row.len();
        (len <= self.limit).then_some(len)
    }

    /// Bytes ever put in (records and gaps): the buffer has not yet been round once while this
    /// is below its limit.
    pub(crate) fn written(&self) -> u64 {
        self.head
    }

    /// The bytes the ring may hold.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes between the tail and the head: live records, removed ones not yet passed, gaps.
    pub(crate) fn held(&self) -> usize {
        (self.head - self.tail) as usize
    }

    /// Makes the ring `limit` bytes, before it has been round once and no smaller than what
    /// has been put in (a larger table of offsets takes the difference). Returns whether it did.
    pub(crate) fn set_limit(&mut self, limit: usize) -> bool {
        let limit = limit.min(self.buf.capacity()).min(u32::MAX as usize);
        if self.head > self.limit as u64 || self.head > limit as u64 {
            return false;
        }
        self.limit = limit;
        true
    }

    /// Whether a record of `len` bytes goes in without evicting any.
    pub(crate) fn fits(&self, len: usize) -> bool {
        let left = self.limit - self.offset(self.head);
        let needed = if len > left { left + len } else { len };
        self.head + needed as u64 - self.tail <= self.limit as u64
    }

    /// Puts a record of `key` and `row` in at the head, evicting the oldest to make room
    /// (`evicted` is called with each one's offset and key), and returns its offset; `None`,
    /// and nothing changed, if it can never go in (see [`Ring::record_len`]).
    pub(crate) fn push(&mut self, key: &[u8], row: &[u8], mut evicted: impl FnMut(u32, &[u8])) -> Option<u32> {
        let len = self.record_len(key, row)?;
        let left = self.limit - self.offset(self.head);
        if len > left {
            // The rest of this lap is a gap.
            self.make_room(left, &mut evicted);
            let at = self.offset(self.head);
            if left >= HEADER {
                self.write(at, &[&0u32.to_be_bytes()]);
            }
            self.head += left as u64;
        }
        self.make_room(len, &mut evicted);
        let at = self.offset(self.head);
        let header_len = (len as u32).to_be_bytes();
        let key_len = (key.len() as u16).to_be_bytes();
        self.write(at, &[&header_len, &key_len, key, row]);
        self.head += len as u64;
        Some(at as u32)
    }

    /// Evicts the oldest record (or passes a gap); false if the ring is empty.
    pub(crate) fn pop(&mut self, mut evicted: impl FnMut(u32, &[u8])) -> bool {
        if self.tail == self.head {
            return false;
        }
        let at = self.offset(self.tail);
        let len = self.len_at(at);
        if len > 0 {
            evicted(at as u32, self.key(at as u32));
        }
        self.tail += (if len == 0 { self.limit - at } else { len }) as u64;
        true
    }

    /// Forgets every record (when none is live, their bytes need not wait for the tail).
    pub(crate) fn clear(&mut self) {
        self.tail = self.head;
    }

    /// The key of the record at `at`.
    pub(crate) fn key(&self, at: u32) -> &[u8] {
        let at = at as usize;
        let key_len = usize::from(u16::from_be_bytes([self.buf[at + 4], self.buf[at + 5]]));
        &self.buf[at + HEADER..at + HEADER + key_len]
    }

    /// The row of the record at `at`.
    pub(crate) fn row(&self, at: u32) -> &[u8] {
        let key_end = at as usize + HEADER + self.key(at).len();
        &self.buf[key_end..at as usize + self.len_at(at as usize)]
    }

    /// Calls `f` with the offset and key of at most `most` records, oldest first, from
    /// position `from` (or the tail, if it has passed `from`). Returns the position after the
    /// last one, to go on from, or `None` once the head is reached.
    pub(crate) fn walk(&self, from: u64, most: usize, mut f: impl FnMut(u32, &[u8])) -> Option<u64> {
        let mut at = from.max(self.tail);
        for _ in 0..most {
            // Gaps are passed without counting.
            loop {
                if at >= self.head {
                    return None;
                }
                let off = self.offset(at);
                let len = self.len_at(off);
                if len > 0 {
                    f(off as u32, self.key(off as u32));
                    at += len as u64;
                    break;
                }
                at += (self.limit - off) as u64;
            }
        }
        (at < self.head).then_some(at)
    }

    fn offset(&self, position: u64) -> usize {
        if self.limit == 0 {
            0
        } else {
            (position % self.limit as u64) as usize
        }
    }

    /// The length of the record at `at`, or 0 where a gap starts.
    fn len_at(&self, at: usize) -> usize {
        if self.limit - at < HEADER {
            return 0;
        }
        let b = &self.buf[at..at + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    fn make_room(&mut self, len: usize, evicted: &mut impl FnMut(u32, &[u8])) {
        while self.head + len as u64 - self.tail > self.limit as u64 {
            if !self.pop(&mut *evicted) {
                break;
            }
        }
    }

    fn write(&mut self, at: usize, parts: &[&[u8]]) {
        let end = at + parts.iter().map(|p| p.len()).sum::<usize>();
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let mut at = at;
        for p in parts {
            self.buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, usize),
        Pop,
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (any::<u8>(), 0usize..90).prop_map(|(k, n)| Op::Push(k, n)),
            2 => Just(Op::Pop),
            1 => Just(Op::Clear),
        ]
    }

    proptest! {
        /// Against a FIFO of whole records within a byte count: what goes in comes out in
        /// order, each record reads back as written while held, nothing is evicted while it
        /// fits, and the ring never holds more than its limit.
        #[test]
        fn the_ring_is_a_fifo_of_records_within_its_limit(limit in 0usize..400, ops in proptest::collection::vec(op(), 0..300)) {
            let mut ring = Ring::with_limit(limit);
            let mut model: VecDeque<(u32, Vec<u8>, Vec<u8>)> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(k, n) => {
                        let key = vec![k; usize::from(k % 7)];
                        let row: Vec<u8> = (0..n).map(|i| (i as u8).wrapping_mul(k)).collect();
                        let fits = ring.record_len(&key, &row).map(|len| ring.fits(len));
                        let mut gone = Vec::new();
                        let at = ring.push(&key, &row, |at, key| gone.push((at, key.to_vec())));
                        prop_assert_eq!(at.is_some(), HEADER + key.len() + row.len() <= limit);
                        if fits == Some(true) {
                            prop_assert!(gone.is_empty(), "evicted while it fitted");
                        }
                        for g in gone {
                            let (at, key, _) = model.pop_front().expect("evicted a record never put in");
                            prop_assert_eq!(g, (at, key));
                        }
                        if let Some(at) = at {
                            model.push_back((at, key, row));
                        }
                    }
                    Op::Pop => {
                        let mut gone = Vec::new();
                        while gone.is_empty() && ring.pop(|at, key| gone.push((at, key.to_vec()))) {}
                        let expected = model.pop_front().map(|(at, key, _)| (at, key));
                        prop_assert_eq!(gone.pop(), expected);
                    }
                    Op::Clear => {
                        ring.clear();
                        model.clear();
                    }
                }
                prop_assert!(ring.held() <= limit);
                for (at, key, row) in &model {
                    prop_assert_eq!(ring.key(*at), key.as_slice());
                    prop_assert_eq!(ring.row(*at), row.as_slice());
                }
                // A walk in slices lists the records held, oldest first.
                let mut walked = Vec::new();
                let mut from = Some(0);
                while let Some(at) = from {
                    from = ring.walk(at, 3, |at, key| walked.push((at, key.to_vec())));
                }
                let held: Vec<(u32, Vec<u8>)> = model.iter().map(|(at, key, _)| (*at, key.clone())).collect();
                prop_assert_eq!(walked, held);
            }
        }
    }

    #[test]
    fn a_smaller_limit_is_taken_only_before_the_ring_is_past_it() {
        let mut ring = Ring::with_limit(100);
        ring.push(b"k", &[1; 30], |_, _| panic!("nothing to evict")).unwrap();
        assert!(!ring.set_limit(20), "records are held past 20");
        assert!(ring.set_limit(60));
        assert!(ring.set_limit(200) && !ring.fits(64) && ring.fits(63), "never more than the buffer reserved");
        assert!(ring.set_limit(60));
        // The second record does not fit before the end: it starts the next lap, evicting the first.
        let mut gone = Vec::new();
        let at = ring.push(b"j", &[2; 30], |at, key| gone.push((at, key.to_vec()))).unwrap();
        assert_eq!((at, gone), (0, vec![(0, b"k".to_vec())]));
        assert!(!ring.set_limit(60), "once round, the limit stays");
    }
}
