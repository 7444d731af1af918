//! Values kept once per thread slot, each on a cache line of its own, so that threads
//! answering requests on different cores never write the same line. A value every request
//! writes (a counter, a lock word, a reference count) and that one copy holds for the whole
//! process moves between the cores' caches on every write: with two HTTP workers that was a
//! quarter of a check's own work (docs/PERFORMANCE.md, "per-thread slots"). Readers of the
//! whole (a scrape, an invalidation) visit every slot.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crossbeam_utils::CachePadded;

/// Slots per value: a thread takes the next on its first use, round the ring; threads that
/// share a slot are still correct, only slower.
pub const SLOTS: usize = 16;

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
}

/// The calling thread's slot (0 while the thread is being torn down).
fn slot() -> usize {
    SLOT.try_with(|s| *s).unwrap_or(0)
}

/// One `T` per thread slot.
pub struct PerThread<T> {
    slots: Box<[CachePadded<T>]>,
}

impl<T> PerThread<T> {
    /// A value per slot, each made by `make`.
    pub fn new(mut make: impl FnMut() -> T) -> Self {
        Self { slots: (0..SLOTS).map(|_| CachePadded::new(make())).collect() }
    }

    /// The calling thread's value.
    pub fn mine(&self) -> &T {
        &self.slots[slot()]
    }

    /// Every slot's value.
    pub fn all(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|s| &**s)
    }
}

impl<T: Default> Default for PerThread<T> {
    fn default() -> Self {
        Self::new(T::default)
    }
}

/// A counter whose additions each thread makes to its own slot; read as their sum.
#[derive(Default)]
pub struct Counter(PerThread<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.mine().fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.all().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_counter_added_to_from_many_threads_reads_their_sum() {
        let c = Arc::new(Counter::default());
        let threads: Vec<_> = (0..(SLOTS as u64 + 3))
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.add(i + 1)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let n = SLOTS as u64 + 3;
        assert_eq!(c.get(), 1000 * n * (n + 1) / 2);
    }
}
