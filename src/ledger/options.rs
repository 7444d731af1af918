//! How a ledger is opened ([`Options`]) and the clock its writer reads.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use store::StoreOptions;

use super::WRITER_QUEUE;

/// Default time between checkpoints.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// How a ledger is opened.
#[derive(Clone)]
pub struct Options {
    /// Name of the signing key created on first start; also the checkpoint origin.
    pub key_name: String,
    /// At most one checkpoint is signed per interval, and only when the log grew.
    pub checkpoint_interval: Duration,
    /// Where the writer reads the time it gives `recorded_at` (the system clock unless a test
    /// needs a repeatable one).
    pub clock: Clock,
    /// Most appends waiting for the writer ([`WRITER_QUEUE`]); past it an append is busy.
    pub writer_queue: usize,
    /// Keep the log in this PostgreSQL database (a `postgres://` URL) and the local store as
    /// its replica; `None` keeps the log in the local store alone.
    pub database: Option<String>,
    /// Told (events applied, the database's log size) as a database node catches up at start.
    pub catch_up_progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
    /// Bytes of memory for the embedded store's block cache, to which its memtables and its
    /// index and filter blocks are charged ([`DEFAULT_CACHE_BYTES`]).
    pub cache_bytes: usize,
    /// Bytes of facts rows kept for checks ([`DEFAULT_FACTS_CACHE_BYTES`]).
    pub facts_cache_bytes: usize,
    /// Read the rows whose keys were saved last back into the facts cache (in the background,
    /// from the start), and save them again every few minutes and on close: a server's
    /// (`serve`). Off for the other commands, which neither need the cache warm nor may
    /// replace the file.
    pub warm_start: bool,
}

/// The store's cache unless told otherwise. `serve --cache-mb` gives it three sixteenths of
/// its figure and the facts cache the rest; a command that writes much and checks little (import,
/// rebuild, migrate) keeps this and the smaller facts cache below, since its speed at scale
/// depends on the store's reads finding their blocks cached.
pub const DEFAULT_CACHE_BYTES: usize = 512 << 20;

/// Memory for a server's caches unless told otherwise (`serve --cache-mb`), split by
/// [`Options::with_cache_memory`]. A server holds more than this once both caches are full
/// (its own memory, the allocators' slack, glibc's arenas for the store's blocks): at 768 with
/// a quarter for the store, a server of 1 million tenants reached 1 029-1 036 MB once a
/// downstream system had read the whole feed through the store's cache, past the 1 GiB it is
/// meant to stay within; at 704 with three sixteenths, 878-892 MB (docs/PERFORMANCE.md,
/// 2026-12-07 "memory").
pub const DEFAULT_CACHE_MEMORY: usize = 704 << 20;

/// Facts rows kept unless told otherwise (the projection's own default).
pub const DEFAULT_FACTS_CACHE_BYTES: usize = projection::FACTS_CACHE_BYTES;

impl Options {
    /// Memory for caches split as `serve --cache-mb` does: thirteen sixteenths for the facts
    /// cache, three sixteenths for the store. A check finds a row in the facts cache at a tenth
    /// of the cost of the store's read, and the cache keeps only the rows checks read (the
    /// store's blocks hold every row near one that was read); the store's share still holds
    /// its memtables and its index and filter blocks, and what it misses comes from the
    /// operating system's page cache (docs/PERFORMANCE.md, 2026-12-06 "rows"; the store's
    /// share was a quarter until 2026-12-07 "memory").
    pub fn with_cache_memory(self, bytes: usize) -> Self {
        let store = bytes / 16 * 3;
        Self { cache_bytes: store, facts_cache_bytes: bytes - store, ..self }
    }

    pub(crate) fn store_options(&self) -> StoreOptions {
        StoreOptions { cache_bytes: self.cache_bytes.max(8 << 20), bulk: false }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("key_name", &self.key_name)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("clock", &self.clock)
            .field("writer_queue", &self.writer_queue)
            .field("cache_bytes", &self.cache_bytes)
            .field("facts_cache_bytes", &self.facts_cache_bytes)
            .field("warm_start", &self.warm_start)
            .field("database", &self.database.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

impl Options {
    pub fn new(key_name: &str) -> Self {
        Self {
            key_name: key_name.to_owned(),
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            clock: Clock::System,
            writer_queue: WRITER_QUEUE,
            database: None,
            catch_up_progress: None,
            cache_bytes: DEFAULT_CACHE_BYTES,
            facts_cache_bytes: DEFAULT_FACTS_CACHE_BYTES,
            warm_start: false,
        }
    }
}

/// The writer's clock.
#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// A clock a test drives: each read returns the function's answer.
    Fixed(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>),
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(f) => f(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::System => "Clock::System",
            Clock::Fixed(_) => "Clock::Fixed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_memory_is_split_without_going_over_it() {
        for mb in [16usize, 768, 1001, 4096] {
            let o = Options::new("test").with_cache_memory(mb << 20);
            assert_eq!(o.cache_bytes + o.facts_cache_bytes, mb << 20, "{mb} MB");
            assert!(
                13 * o.cache_bytes <= 3 * o.facts_cache_bytes,
                "the facts cache gets thirteen sixteenths of {mb} MB"
            );
            assert!(o.cache_bytes >= (mb << 20) / 16 * 3, "the store gets three sixteenths of {mb} MB");
        }
    }
}
