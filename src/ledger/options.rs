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
    /// Bytes of memory for caches ([`DEFAULT_CACHE_BYTES`]): half for decoded facts,
    /// the rest for the embedded store's block cache, memtables, index and filter blocks.
    pub cache_bytes: usize,
}

/// Memory for caches unless the server is told otherwise (`serve --cache-mb`).
pub const DEFAULT_CACHE_BYTES: usize = 512 << 20;

impl Options {
    /// Bytes of decoded facts the caches may hold.
    pub(crate) fn facts_cache_bytes(&self) -> usize {
        self.cache_bytes / 2
    }

    /// How the embedded store is opened: the rest of the cache memory.
    pub(crate) fn store_options(&self) -> StoreOptions {
        StoreOptions { cache_bytes: (self.cache_bytes - self.facts_cache_bytes()).max(8 << 20) }
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
