//! Offline verification of a subject access bundle (`consent-ledger verify --access`): the
//! bundle's own signature over the RFC 8785 bytes of its `bundle` member, the checkpoint's
//! signature, and for every event and notice its signature, its leaf hash and its inclusion
//! proof to the checkpoint's root; each event belongs to the bundle's controller and is the
//! person's (their subject's, or one recorded against an address with no subject named).
//! Works on the JSON as given, so it depends on the published format alone.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

use super::AuditError;
use canonical::to_canonical_bytes;
use format::access::ACCESS_TYPE;
use format::leaf_hash;
use log::checkpoint::open_note;
use log::merkle::{verify_inclusion, Hash};
use signing::{Ed25519Verifier, Verifier};

/// What a verified bundle holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReport {
    pub tree_size: u64,
    pub events: usize,
    pub notices: usize,
    pub acknowledgements: usize,
}

fn bad(what: impl Into<String>) -> AuditError {
    AuditError::Export(what.into())
}

fn signature(v: &Value, what: &str) -> Result<[u8; 64], AuditError> {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad(format!("{what}: the signature is not 64 base64 bytes")))
}

fn key<'k>(keys: &'k [Ed25519Verifier], id: &Value, what: &str) -> Result<&'k Ed25519Verifier, AuditError> {
    let id = id.as_str().unwrap_or_default();
    keys.iter().find(|k| hex::encode(k.key_id()) == id).ok_or_else(|| bad(format!("{what}: signed by an unknown key")))
}

/// Verifies a signed subject access bundle (the JSON text of `access.json`) with `trusted`
/// keys, or with the keys the bundle lists when none are given.
pub fn verify_access(json: &str, trusted: &[Ed25519Verifier]) -> Result<AccessReport, AuditError> {
    let doc: Value = serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let bundle = doc.get("bundle").ok_or_else(|| bad("no bundle"))?;
    if bundle.get("type").and_then(Value::as_str) != Some(ACCESS_TYPE) || bundle.get("v") != Some(&Value::from(1)) {
        return Err(bad("not a subject access bundle of version 1"));
    }
    let listed: Vec<Ed25519Verifier> = bundle
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no keys"))?
        .iter()
        .map(|k| k.as_str().and_then(|k| Ed25519Verifier::from_vkey(k).ok()).ok_or_else(|| bad("a key is malformed")))
        .collect::<Result<_, _>>()?;
    let keys = if trusted.is_empty() { listed.as_slice() } else { trusted };

    // The bundle's own signature covers every byte of its content.
    let bytes = to_canonical_bytes(bundle).map_err(|_| bad("the bundle is not canonical JSON"))?;
    let k = key(keys, doc.get("key_id").unwrap_or(&Value::Null), "the bundle")?;
    if !k.verify(&bytes, &signature(doc.get("signature").unwrap_or(&Value::Null), "the bundle")?) {
        return Err(bad("the bundle's signature does not verify"));
    }

    let note = bundle.get("checkpoint").and_then(Value::as_str).ok_or_else(|| bad("no checkpoint"))?;
    let named: Vec<(&str, &dyn Verifier)> = keys.iter().map(|k| (k.name(), k as &dyn Verifier)).collect();
    let checkpoint = open_note(note, &named).map_err(|e| bad(format!("checkpoint: {e}")))?;

    let controller = bundle.get("controller").and_then(Value::as_str).ok_or_else(|| bad("no controller"))?;
    let subject = bundle.get("subject").and_then(Value::as_str).ok_or_else(|| bad("no subject"))?;
    let mut counts = [0usize; 3];
    let none = Vec::new();
    for (n, list) in ["events", "notices", "acknowledgements"].into_iter().enumerate() {
        let items = match bundle.get(list) {
            None if list == "acknowledgements" => &none,
            found => found.and_then(Value::as_array).ok_or_else(|| bad(format!("no {list}")))?,
        };
        for (i, item) in items.iter().enumerate() {
            let what = format!("{list}[{i}]");
            let receipt = item.get("receipt").ok_or_else(|| bad(format!("{what}: no receipt")))?;
            let event = receipt.get("event").ok_or_else(|| bad(format!("{what}: no event")))?;
            let bytes = to_canonical_bytes(event).map_err(|_| bad(format!("{what}: the event is not JSON")))?;
            let k = key(keys, receipt.get("key_id").unwrap_or(&Value::Null), &what)?;
            if !k.verify(&bytes, &signature(receipt.get("signature").unwrap_or(&Value::Null), &what)?) {
                return Err(bad(format!("{what}: the event's signature does not verify")));
            }
            let leaf = leaf_hash(&bytes);
            if receipt.get("leaf_hash").and_then(Value::as_str) != Some(hex::encode(leaf).as_str()) {
                return Err(bad(format!("{what}: the leaf hash is not the event's")));
            }
            let index = receipt
                .get("leaf_index")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad(format!("{what}: no leaf index")))?;
            if event.get("seq").and_then(Value::as_u64) != Some(index + 1) {
                return Err(bad(format!("{what}: the seq is not the leaf's")));
            }
            let proof: Vec<Hash> = item
                .get("inclusion_proof")
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("{what}: no inclusion proof")))?
                .iter()
                .map(|h| h.as_str().and_then(|h| hex::decode(h).ok()).and_then(|h| h.try_into().ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(format!("{what}: a proof hash is not 32 hex bytes")))?;
            if !verify_inclusion(&leaf, index, checkpoint.size, &proof, &checkpoint.root) {
                return Err(bad(format!("{what}: not in the log at the checkpoint")));
            }
            if event.get("controller").and_then(Value::as_str) != Some(controller) {
                return Err(bad(format!("{what}: another controller's event")));
            }
            let theirs = match (list, event.get("subject").and_then(Value::as_str)) {
                ("notices", _) => event.get("type").and_then(Value::as_str) == Some("notice.published"),
                ("acknowledgements", _) => event.get("type").and_then(Value::as_str) == Some("downstream.acknowledged"),
                (_, Some(s)) => s == subject,
                (_, None) => item.get("via").is_some() && event.get("contact").is_some(),
            };
            if !theirs {
                return Err(bad(format!("{what}: not this person's")));
            }
            counts[n] += 1;
        }
    }
    Ok(AccessReport { tree_size: checkpoint.size, events: counts[0], notices: counts[1], acknowledgements: counts[2] })
}
