//! Offline verification of an export (`consent-ledger verify --export`): every signature
//! (Ed25519, batch-verified on every core), every leaf hash, the tree head against every signed
//! checkpoint in the export, and consistency with an older checkpoint the auditor kept. Reads
//! only the export file; trusts nothing from the server but the keys it is given.

use std::collections::BTreeMap;
use std::io::BufRead;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::canonical::to_canonical_bytes;
use crate::format::leaf_hash;
use crate::ledger::export::{ExportLine, EXPORT_FORMAT, EXPORT_VERSION};
use crate::log::checkpoint::{open_note, Checkpoint};
use crate::log::merkle::{Frontier, Hash};
use crate::signing::{Ed25519Verifier, Verifier};

/// Events whose signatures are checked together.
const SIGNATURE_CHUNK: usize = 4096;

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
fn parse_unverified(note: &str) -> Result<Checkpoint, crate::log::checkpoint::NoteError> {
    let (text, _) = note.split_once("\n\n").ok_or(crate::log::checkpoint::NoteError::Malformed("no signatures"))?;
    Checkpoint::parse_text(&format!("{text}\n"))
}

struct Pending {
    index: u64,
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
}

/// Verifies the signatures of `batch` using every core; names the first bad leaf.
fn verify_signatures(batch: &mut Vec<Pending>) -> Result<(), AuditError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
    let per = batch.len().div_ceil(threads).max(1);
    let bad: Option<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = batch
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    let msgs: Vec<&[u8]> = chunk.iter().map(|p| p.message.as_slice()).collect();
                    let sigs: Vec<Signature> = chunk.iter().map(|p| p.signature).collect();
                    let keys: Vec<VerifyingKey> = chunk.iter().map(|p| p.key).collect();
                    if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
                        return None;
                    }
                    // Find which one: batch verification only says that one failed.
                    chunk.iter().find(|p| p.key.verify_strict(&p.message, &p.signature).is_err()).map(|p| p.index)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok().flatten()).min()
    });
    batch.clear();
    match bad {
        Some(index) => Err(AuditError::Leaf { index, what: "signature does not verify" }),
        None => Ok(()),
    }
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
    let mut lines = input.lines().enumerate();
    let mut next_line = |what: &str| -> Result<(usize, ExportLine), AuditError> {
        let (n, l) = lines.next().ok_or_else(|| AuditError::Export(format!("the export ends before {what}")))?;
        let l = l.map_err(|e| AuditError::Line { line: n + 1, what: e.to_string() })?;
        let parsed = serde_json::from_str(&l).map_err(|e| AuditError::Line { line: n + 1, what: e.to_string() })?;
        Ok((n + 1, parsed))
    };

    let (_, header) = next_line("the header")?;
    let ExportLine::Header { format, version, controller, tree_size, .. } = header else {
        return Err(AuditError::Line { line: 1, what: "the first line must be the header".into() });
    };
    if format != EXPORT_FORMAT || version != EXPORT_VERSION {
        return Err(AuditError::Line { line: 1, what: "not a consent-ledger export of version 1".into() });
    }

    let mut keys: Vec<Ed25519Verifier> = trusted.to_vec();
    let mut checkpoints: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    let mut expected_index = 0u64;
    let mut frontier = Frontier::default();
    let mut roots: BTreeMap<u64, Hash> = BTreeMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut events = 0u64;
    let kept_cp: Option<Checkpoint> = match kept {
        Some(k) => Some(
            parse_unverified(k)
                .map_err(|e| AuditError::Checkpoint { size: 0, what: format!("the kept checkpoint: {e}") })?,
        ),
        None => None,
    };
    // The key that must sign the next event: set by the first event, moved on by each
    // `key.rotated` (which the retiring key signs, so trust passes from key to key).
    let mut current_key: Option<String> = None;

    loop {
        let item = next_line("its leaves");
        let (n, line) = match item {
            Ok(x) => x,
            Err(AuditError::Export(_)) => break,
            Err(e) => return Err(e),
        };
        match line {
            ExportLine::Header { .. } => return Err(AuditError::Line { line: n, what: "a second header".into() }),
            ExportLine::Key { vkey, .. } => {
                if expected_index > 0 {
                    return Err(AuditError::Line { line: n, what: "keys must come before leaves".into() });
                }
                let k =
                    Ed25519Verifier::from_vkey(&vkey).map_err(|e| AuditError::Line { line: n, what: e.to_string() })?;
                if trusted.is_empty() {
                    keys.push(k);
                }
            }
            ExportLine::Checkpoint { note } => {
                if expected_index > 0 {
                    return Err(AuditError::Line { line: n, what: "checkpoints must come before leaves".into() });
                }
                // Signatures are checked at the end, once key rotations in the log are known;
                // the sizes are needed now, to keep the tree heads at those sizes.
                let cp = parse_unverified(&note)
                    .map_err(|e| AuditError::Line { line: n, what: format!("checkpoint: {e}") })?;
                checkpoints.insert(cp.size, (n, note));
            }
            ExportLine::Event { leaf_index, event, signature, key_id } => {
                if leaf_index != expected_index {
                    return Err(AuditError::Leaf { index: expected_index, what: "is missing from the export" });
                }
                let bytes = to_canonical_bytes(&event)
                    .map_err(|_| AuditError::Leaf { index: leaf_index, what: "event is not JSON" })?;
                let rotation = event.get("type").and_then(|t| t.as_str()) == Some("key.rotated");
                let owner = event.get("controller").and_then(|c| c.as_str());
                if owner != Some(controller.as_str()) && !(rotation && owner.is_none()) {
                    return Err(AuditError::Leaf { index: leaf_index, what: "event belongs to another controller" });
                }
                if event.get("seq").and_then(|s| s.as_u64()) != Some(leaf_index + 1) {
                    return Err(AuditError::Leaf {
                        index: leaf_index,
                        what: "event's seq does not match its leaf index",
                    });
                }
                let sig: [u8; 64] = B64
                    .decode(&signature)
                    .ok()
                    .and_then(|s| s.try_into().ok())
                    .ok_or(AuditError::Leaf { index: leaf_index, what: "signature is not 64 base64 bytes" })?;
                let key = keys
                    .iter()
                    .find(|k| hex::encode(k.key_id()) == key_id)
                    .ok_or(AuditError::Leaf { index: leaf_index, what: "signed by an unknown key" })?
                    .clone();
                if current_key.as_ref().is_some_and(|c| *c != key_id) {
                    return Err(AuditError::Leaf {
                        index: leaf_index,
                        what: "signed by a key that is not the current one",
                    });
                }
                current_key = Some(key_id);
                if rotation {
                    let next = event
                        .get("next_key")
                        .and_then(|k| k.as_str())
                        .and_then(|k| Ed25519Verifier::from_vkey(k).ok())
                        .ok_or(AuditError::Leaf { index: leaf_index, what: "key.rotated names no valid next key" })?;
                    current_key = Some(hex::encode(next.key_id()));
                    if !keys.iter().any(|k| k.vkey() == next.vkey()) {
                        keys.push(next);
                    }
                }
                frontier.push(leaf_hash(&bytes));
                pending.push(Pending {
                    index: leaf_index,
                    message: bytes,
                    signature: Signature::from_bytes(&sig),
                    key: *key.public_key(),
                });
                events += 1;
                if pending.len() >= SIGNATURE_CHUNK {
                    verify_signatures(&mut pending)?;
                }
                expected_index += 1;
            }
            ExportLine::Leaf { leaf_index, leaf_hash: h } => {
                if leaf_index != expected_index {
                    return Err(AuditError::Leaf { index: expected_index, what: "is missing from the export" });
                }
                let h: Hash = hex::decode(&h)
                    .ok()
                    .and_then(|h| h.try_into().ok())
                    .ok_or(AuditError::Leaf { index: leaf_index, what: "leaf hash is not 32 hex bytes" })?;
                frontier.push(h);
                expected_index += 1;
            }
        }
        if expected_index > 0
            && (checkpoints.contains_key(&frontier.size())
                || kept_cp.as_ref().is_some_and(|k| k.size == frontier.size()))
        {
            roots.insert(frontier.size(), frontier.root());
        }
        if expected_index > 0 {
            progress(expected_index, tree_size);
        }
    }
    verify_signatures(&mut pending)?;

    if expected_index != tree_size {
        return Err(AuditError::Leaf { index: expected_index, what: "is missing: the export ends early" });
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
