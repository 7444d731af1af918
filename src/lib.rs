//! consent-ledger: the system of record for consent and communication preferences.
//! See `ARCHITECTURE.md` for the map of modules and the rules between them.

pub use ::audit;
pub use ::canonical;
pub mod cli;
pub use ::domain;
pub use ::format;
pub use ::http;
pub use ::ledger;
pub use ::log;
pub use ::metrics;
pub use ::pglog;
pub use ::projection;
pub use ::secrets;
pub use ::service;
pub use ::signing;
pub use ::store;
pub use ::tokens;

#[cfg(test)]
mod layering;

/// mimalloc for every binary built on this crate (the server, tests, benches): checks and
/// bulk answers make many small, short-lived allocations across threads, where it is much
/// faster than the system allocator (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
