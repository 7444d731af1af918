//! Integration tests: the real server over a real socket, on a temporary RocksDB store.

mod access;
mod contract;
mod crash;
mod events;
mod helpers;
mod log;
mod scenario;
mod tamper;
mod validation;
