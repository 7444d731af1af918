//! Warnings that a failing dependency would otherwise repeat on every request or every tick (a
//! database that is unreachable while thousands of checks a second ask for their API keys, or
//! while the checkpointer tries each second), written at most once a period, each with how many
//! were left out since the one before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// At most one warning every `every_ms`.
pub struct Throttle {
    every_ms: u64,
    /// When the next warning may be written, in milliseconds of the process's clock ([`now_ms`]).
    next_ms: AtomicU64,
    /// Warnings left out since the last one written.
    left_out: AtomicU64,
}

impl Throttle {
    pub const fn every_secs(secs: u64) -> Self {
        Self { every_ms: secs * 1000, next_ms: AtomicU64::new(0), left_out: AtomicU64::new(0) }
    }

    /// `Some(n)` when a warning is due now (`n`: how many were left out since the last), `None`
    /// when this one is to be left out.
    pub fn due(&self) -> Option<u64> {
        self.due_at(now_ms())
    }

    fn due_at(&self, now: u64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        // One caller of many at the same moment wins the exchange and writes the warning.
        if now >= next
            && self.next_ms.compare_exchange(next, now + self.every_ms, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::Relaxed));
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Milliseconds since this process first asked.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_a_period_each_saying_how_many_were_left_out() {
        let t = Throttle::every_secs(10);
        assert_eq!(t.due_at(5), Some(0), "the first is written");
        for at in [6, 500, 10_004] {
            assert_eq!(t.due_at(at), None, "left out within 10 s of the last ({at} ms)");
        }
        assert_eq!(t.due_at(10_005), Some(3), "the next, with the three left out");
        assert_eq!(t.due_at(10_006), None);
        assert_eq!(t.due_at(60_000), Some(1));
    }

    #[test]
    fn many_threads_at_once_write_one_warning() {
        let t = Throttle::every_secs(3600);
        let written: usize = std::thread::scope(|s| {
            let asked: Vec<_> = (0..8).map(|_| s.spawn(|| (0..1000).filter(|_| t.due().is_some()).count())).collect();
            asked.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(written, 1);
        assert_eq!(t.left_out.load(Ordering::Relaxed), 7999);
    }
}
