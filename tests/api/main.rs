//! Integration tests: the real server over a real socket, on a temporary RocksDB store.
#![allow(clippy::unwrap_used)]

mod access;
mod addresses;
mod audit;
mod backup;
mod browser;
mod bulk;
mod contract;
mod crash;
mod disk;
mod downstream;
mod events;
mod format_doc;
mod hardening;
mod helpers;
mod imports;
mod log;
mod mailing;
mod metrics;
mod model;
mod notices;
mod postgres;
mod preferences;
mod representatives;
mod robustness;
mod rotation;
mod scenario;
mod schemathesis;
mod subject_access;
mod tamper;
mod validation;
mod workers;
