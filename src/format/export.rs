//! The audit export's lines (see `docs/FORMAT.md`): what `ledger::export` writes and `audit`
//! reads, so the offline verifier depends on the format, never on the ledger.
//!
//! Lines, in order: one `header`; every signing `key`; every signed `checkpoint` up to the
//! export's tree size; then one line per leaf `0..tree_size`: the controller's own events as
//! `event` lines (the signed document and its signature), every other controller's as `leaf`
//! lines carrying only the leaf hash, so the root can be recomputed without revealing them.

use serde::{Deserialize, Serialize};

/// The `format` value of an export header.
pub const EXPORT_FORMAT: &str = "consent-ledger-export";
pub const EXPORT_VERSION: u32 = 1;

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    Header {
        format: String,
        version: u32,
        controller: String,
        tree_size: u64,
        origin: String,
    },
    /// A signing key in C2SP verifier-key form, with the seqs it signed.
    Key {
        vkey: String,
        first_seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_seq: Option<u64>,
    },
    /// A C2SP signed checkpoint note.
    Checkpoint {
        note: String,
    },
    /// One of the controller's events: `event` is the signed document.
    Event {
        leaf_index: u64,
        event: serde_json::Value,
        signature: String,
        key_id: String,
    },
    /// Another controller's event, by leaf hash only.
    Leaf {
        leaf_index: u64,
        leaf_hash: String,
    },
}
