//! Offline verification of an export (`consent-ledger verify --export`): every signature
//! (Ed25519, batch-verified), every leaf hash, the tree head against every signed checkpoint
//! in the export, and consistency with an older checkpoint the auditor kept. Reads only the
//! export file; trusts nothing from the server but the keys it is given.
//!
//! Leaves are read in blocks; each block is parsed, canonicalised, hashed and
//! signature-checked on every core, then folded into the tree in order on one thread, which
//! also follows key rotations.

pub mod access;

pub use access::{verify_access, AccessReport};

use std::collections::BTreeMap;
use std::io::BufRead;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};

use canonical::to_canonical_bytes;
use format::export::{ExportLine, EXPORT_FORMAT, EXPORT_VERSION};
use format::leaf_hash;
use log::checkpoint::{open_note, Checkpoint};
use log::merkle::{Frontier, Hash};
use log::LogError;
use signing::{Ed25519Verifier, Verifier};

/// Leaf lines handled per block.
const BLOCK_LINES: usize = 16_384;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub tree_size: u64,
    pub events: u64,
    pub checkpoints: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("leaf {index}: {what}")]
    Leaf { index: u64, what: &'static str },
    #[error("checkpoint at size {size}: {what}")]
    Checkpoint { size: u64, what: String },
    #[error("{0}")]
    Export(String),
}

/// A checkpoint's size and root, before its signature is checked.
fn parse_unverified(note: &str) -> Result<Checkpoint, LogError> {
    let (text, _) = note.split_once("\n\n").ok_or(LogError::Malformed("no signatures"))?;
    Checkpoint::parse_text(&format!("{text}\n"))
}

/// How a leaf's signature stands after the parallel pass.
enum Sig {
    /// Not an event, or verified.
    Ok,
    /// Signed by a key not known when the block started (one a rotation in this block
    /// introduces): checked again in order.
    Later { message: Vec<u8>, signature: [u8; 64] },
}

/// One leaf line after the parallel pass.
struct Leaf {
    index: u64,
    hash: Hash,
    /// For events: the signing key id, and the next key of a `key.rotated`.
    event: Option<(String, Option<String>)>,
    sig: Sig,
}

/// Parses, canonicalises, hashes and signature-checks one block of leaf lines.
fn check_block(lines: &[(usize, String)], controller: &str, keys: &[Ed25519Verifier]) -> Result<Vec<Leaf>, AuditError> {
    let mut out = Vec::with_capacity(lines.len());
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    let mut sigs: Vec<Signature> = Vec::new();
    let mut pks: Vec<VerifyingKey> = Vec::new();
    let mut at: Vec<usize> = Vec::new();
    for (line, text) in lines {
        let parsed: ExportLine =
            serde_json::from_str(text).map_err(|e| AuditError::Line { line: *line, what: e.to_string() })?;
        match parsed {
            ExportLine::Event { leaf_index, event, signature, key_id } => {
                let bad = |what| AuditError::Leaf { index: leaf_index, what };
                let bytes = to_canonical_bytes(&event).map_err(|_| bad("event is not JSON"))?;
                let rotation = event.get("type").and_then(|t| t.as_str()) == Some("key.rotated");
                let owner = event.get("controller").and_then(|c| c.as_str());
                if owner != Some(controller) && !(rotation && owner.is_none()) {
                    return Err(bad("event belongs to another controller"));
                }
                if event.get("seq").and_then(|s| s.as_u64()) != Some(leaf_index + 1) {
                    return Err(bad("event's seq does not match its leaf index"));
                }
                let signature: [u8; 64] = B64
                    .decode(&signature)
                    .ok()
                    .and_then(|s| s.try_into().ok())
                    .ok_or(bad("signature is not 64 base64 bytes"))?;
                let next = if rotation {
                    Some(
                        event
                            .get("next_key")
                            .and_then(|k| k.as_str())
                            .ok_or(bad("key.rotated names no next key"))?
                            .to_owned(),
                    )
                } else {
                    None
                };
                let hash = leaf_hash(&bytes);
                let sig = match keys.iter().find(|k| hex::encode(k.key_id()) == key_id) {
                    Some(k) => {
                        at.push(out.len());
                        msgs.push(bytes);
                        sigs.push(Signature::from_bytes(&signature));
                        pks.push(*k.public_key());
                        Sig::Ok
                    }
                    None => Sig::Later { message: bytes, signature },
                };
                out.push(Leaf { index: leaf_index, hash, event: Some((key_id, next)), sig });
            }
            ExportLine::Leaf { leaf_index, leaf_hash: h } => {
                let hash: Hash = hex::decode(&h)
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or(AuditError::Leaf { index: leaf_index, what: "leaf hash is not 32 hex bytes" })?;
                out.push(Leaf { index: leaf_index, hash, event: None, sig: Sig::Ok });
            }
            _ => {
                return Err(AuditError::Line {
                    line: *line,
                    what: "keys and checkpoints must come before leaves".into(),
                })
            }
        }
    }
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    if let Some(i) = signing::failing_signatures(&refs, &sigs, &pks).first() {
        return Err(AuditError::Leaf { index: out[at[*i]].index, what: "signature does not verify" });
    }
    Ok(out)
}

/// Checks blocks on every core; the first error in line order wins.
fn check_parallel(
    lines: &[(usize, String)],
    controller: &str,
    keys: &[Ed25519Verifier],
) -> Result<Vec<Leaf>, AuditError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
    let per = lines.len().div_ceil(threads).max(1);
    let results: Vec<Result<Vec<Leaf>, AuditError>> = std::thread::scope(|s| {
        let handles: Vec<_> =
            lines.chunks(per).map(|chunk| s.spawn(move || check_block(chunk, controller, keys))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(AuditError::Export("a verifier thread failed".into()))))
            .collect()
    });
    let mut out = Vec::with_capacity(lines.len());
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// Verifies an export read from `input`. `trusted` are verifier keys obtained independently
/// (e.g. from `/v1/keys` or a published document); when empty, the export's own keys are used.
/// `kept` is an older signed checkpoint the auditor kept, to be proven consistent.
pub fn audit_export(
    input: impl BufRead,
    trusted: &[Ed25519Verifier],
    kept: Option<&str>,
    mut progress: impl FnMut(u64, u64),
) -> Result<AuditReport, AuditError> {
    let mut lines = input
        .lines()
        .enumerate()
        .map(|(n, l)| l.map(|l| (n + 1, l)).map_err(|e| AuditError::Line { line: n + 1, what: e.to_string() }));
    let parse = |n: usize, l: &str| -> Result<ExportLine, AuditError> {
        serde_json::from_str(l).map_err(|e| AuditError::Line { line: n, what: e.to_string() })
    };

    let (n, first) = lines.next().ok_or_else(|| AuditError::Export("the export is empty".into()))??;
    let ExportLine::Header { format, version, controller, tree_size, .. } = parse(n, &first)? else {
        return Err(AuditError::Line { line: 1, what: "the first line must be the header".into() });
    };
    if format != EXPORT_FORMAT || version != EXPORT_VERSION {
        return Err(AuditError::Line { line: 1, what: "not a consent-ledger export of version 1".into() });
    }

    let mut keys: Vec<Ed25519Verifier> = trusted.to_vec();
    let mut checkpoints: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    let kept_cp = match kept {
        Some(k) => Some(
            parse_unverified(k)
                .map_err(|e| AuditError::Checkpoint { size: 0, what: format!("the kept checkpoint: {e}") })?,
        ),
        None => None,
    };

    // Keys and checkpoints, up to the first leaf line.
    let mut block: Vec<(usize, String)> = Vec::with_capacity(BLOCK_LINES);
    for item in lines.by_ref() {
        let (n, l) = item?;
        match parse(n, &l)? {
            ExportLine::Event { .. } | ExportLine::Leaf { .. } => {
                block.push((n, l));
                break;
            }
            ExportLine::Key { vkey, .. } => {
                let k =
                    Ed25519Verifier::from_vkey(&vkey).map_err(|e| AuditError::Line { line: n, what: e.to_string() })?;
                if trusted.is_empty() {
                    keys.push(k);
                }
            }
            ExportLine::Checkpoint { note } => {
                // Signatures are checked at the end, once key rotations in the log are known;
                // the sizes are needed now, to keep the tree heads at those sizes.
                let cp = parse_unverified(&note)
                    .map_err(|e| AuditError::Line { line: n, what: format!("checkpoint: {e}") })?;
                checkpoints.insert(cp.size, (n, note));
            }
            _ => return Err(AuditError::Line { line: n, what: "a second header".into() }),
        }
    }

    // The key that must sign the next event: set by the first event, moved on by each
    // `key.rotated` (which the retiring key signs, so trust passes from key to key).
    let mut current_key: Option<String> = None;
    let mut frontier = Frontier::default();
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut events = 0u64;
    let wanted = |size: u64| checkpoints.contains_key(&size) || kept_cp.as_ref().is_some_and(|k| k.size == size);
    loop {
        for item in lines.by_ref() {
            block.push(item?);
            if block.len() >= BLOCK_LINES {
                break;
            }
        }
        if block.is_empty() {
            break;
        }
        for leaf in check_parallel(&block, &controller, &keys)? {
            if leaf.index != frontier.size() {
                return Err(AuditError::Leaf { index: frontier.size(), what: "is missing from the export" });
            }
            if let Some((key_id, next)) = leaf.event {
                if current_key.as_ref().is_some_and(|c| *c != key_id) {
                    return Err(AuditError::Leaf {
                        index: leaf.index,
                        what: "signed by a key that is not the current one",
                    });
                }
                if let Sig::Later { message, signature } = &leaf.sig {
                    let key = keys
                        .iter()
                        .find(|k| hex::encode(k.key_id()) == key_id)
                        .ok_or(AuditError::Leaf { index: leaf.index, what: "signed by an unknown key" })?;
                    if !key.verify(message, signature) {
                        return Err(AuditError::Leaf { index: leaf.index, what: "signature does not verify" });
                    }
                }
                current_key = Some(key_id);
                if let Some(next) = next {
                    let next = Ed25519Verifier::from_vkey(&next).map_err(|_| AuditError::Leaf {
                        index: leaf.index,
                        what: "key.rotated names no valid next key",
                    })?;
                    current_key = Some(hex::encode(next.key_id()));
                    if !keys.iter().any(|k| k.vkey() == next.vkey()) {
                        keys.push(next);
                    }
                }
                events += 1;
            }
            frontier.push(leaf.hash);
            if wanted(frontier.size()) {
                roots.insert(frontier.size(), frontier.root());
            }
        }
        progress(frontier.size(), tree_size);
        block.clear();
    }

    if frontier.size() != tree_size {
        return Err(AuditError::Leaf { index: frontier.size(), what: "is missing: the export ends early" });
    }
    if !checkpoints.contains_key(&tree_size) {
        return Err(AuditError::Checkpoint {
            size: tree_size,
            what: "the export has no signed checkpoint at its size".into(),
        });
    }
    let named: Vec<(&str, &dyn Verifier)> = keys.iter().map(|k| (k.name(), k as &dyn Verifier)).collect();
    for (size, (line, note)) in &checkpoints {
        let cp =
            open_note(note, &named).map_err(|e| AuditError::Line { line: *line, what: format!("checkpoint: {e}") })?;
        if *size == 0 || *size > tree_size {
            continue;
        }
        if roots.get(size) != Some(&cp.root) {
            return Err(AuditError::Checkpoint {
                size: *size,
                what: "the root recomputed from the leaves does not match the signed checkpoint".into(),
            });
        }
    }
    if let Some(note) = kept {
        let k = open_note(note, &named)
            .map_err(|e| AuditError::Checkpoint { size: 0, what: format!("the kept checkpoint: {e}") })?;
        if k.size > tree_size {
            return Err(AuditError::Checkpoint {
                size: k.size,
                what: "the kept checkpoint is newer than the export".into(),
            });
        }
        if k.size > 0 && roots.get(&k.size) != Some(&k.root) {
            return Err(AuditError::Checkpoint {
                size: k.size,
                what: "the kept checkpoint is not consistent with this log: history was rewritten".into(),
            });
        }
    }
    Ok(AuditReport { tree_size, events, checkpoints: checkpoints.len() })
}
