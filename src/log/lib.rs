//! The transparency log over the events: the RFC 6962 Merkle tree and C2SP checkpoints. Pure:
//! the tree reads its nodes through `merkle::NodeSource`, which the ledger implements over
//! its store.

pub mod merkle;

pub mod checkpoint;

/// The log's one error type: a proof outside the tree or missing a node, a signed note that
/// is malformed or that no known key signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("the range is outside the tree")]
    OutOfRange,
    #[error("a stored tree node is missing")]
    MissingNode,
    #[error("the note is malformed: {0}")]
    Malformed(&'static str),
    #[error("no signature of a known key verifies")]
    Unverified,
}
