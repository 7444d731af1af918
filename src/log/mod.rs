//! The transparency log over the events: the RFC 6962 Merkle tree and C2SP checkpoints. Pure:
//! the tree reads its nodes through `merkle::NodeSource`, which the ledger implements over
//! its store.

pub mod merkle;

pub mod checkpoint;
