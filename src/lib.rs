//! consent-ledger: the system of record for consent and communication preferences.
//! See `ARCHITECTURE.md` for the map of modules and the rules between them.

pub mod audit;
pub mod canonical;
pub mod cli;
pub mod domain;
pub mod format;
pub mod http;
pub mod ledger;
pub mod log;
pub mod metrics;
pub mod projection;
pub mod secrets;
pub mod service;
pub mod signing;
pub mod store;
pub mod tokens;

#[cfg(test)]
mod layering;

/// mimalloc for every binary built on this crate (the server, tests, benches): checks and
/// bulk answers make many small, short-lived allocations across threads, where it is much
/// faster than the system allocator (docs/PERFORMANCE.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
