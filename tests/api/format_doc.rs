//! `docs/FORMAT.md` carries a worked example (a real event, its canonical bytes, leaf hash,
//! signature, key id, a tree head and a checkpoint, all from a fixed test key). This test
//! recomputes every value with the project's code and fails if the document disagrees.

use consent_ledger::canonical::to_canonical_bytes;
use consent_ledger::format::{leaf_hash, EventDoc};
use consent_ledger::log::checkpoint::Checkpoint;
use consent_ledger::log::merkle::{node_hash, Frontier};
use consent_ledger::signing::{Ed25519Signer, Signer};
use ed25519_dalek::SigningKey;
use serde_json::json;

pub struct Example {
    pub values: Vec<(&'static str, String)>,
}

pub fn example() -> Example {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let signer = Ed25519Signer::new("example.org/consent-ledger".into(), SigningKey::from_bytes(&seed)).unwrap();
    let event: EventDoc = serde_json::from_value(json!({
        "v": 1,
        "id": "0192f3a4-5b6c-7d8e-9f01-23456789abcd",
        "seq": 1,
        "controller": "council",
        "type": "consent.granted",
        "subject": "T-1",
        "purpose": "newsletter",
        "channel": "email",
        "basis": "consent",
        "occurred_at": "2026-11-01T10:00:00.000000Z",
        "recorded_at": "2026-11-01T10:00:05.123456Z",
        "method": "paper_form",
        "actor": {"kind": "staff", "id": "staff-42"},
        "evidence": {"ref": "scan-2026-0001", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
        "notice_version": "privacy-2026-04"
    }))
    .unwrap();
    let bytes = to_canonical_bytes(&event).unwrap();
    let leaf = leaf_hash(&bytes);
    let sig = signer.sign(&bytes);
    let v = signer.verifier();
    // A tree of three leaves: this event and two others given by their leaf hashes.
    let l1 = leaf_hash(b"second");
    let l2 = leaf_hash(b"third");
    let mut f = Frontier::default();
    for l in [leaf, l1, l2] {
        f.push(l);
    }
    let root = f.root();
    assert_eq!(root, node_hash(&node_hash(&leaf, &l1), &l2));
    let cp = Checkpoint { origin: "example.org/consent-ledger".into(), size: 3, root };
    let note = cp.sign(v.name(), &signer);
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Example {
        values: vec![
            ("canonical", String::from_utf8(bytes).unwrap()),
            ("public key", b64(v.public_key().as_bytes())),
            ("key id", hex::encode(Signer::key_id(&signer))),
            ("vkey", v.vkey()),
            ("leaf hash", hex::encode(leaf)),
            ("signature", b64(&sig)),
            ("leaf 1", hex::encode(l1)),
            ("leaf 2", hex::encode(l2)),
            ("node 0-1", hex::encode(node_hash(&leaf, &l1))),
            ("root", hex::encode(root)),
            ("checkpoint", note),
            ("audit path of leaf 0", format!("{} {}", hex::encode(l1), hex::encode(l2))),
        ],
    }
}

#[test]
fn the_worked_example_in_format_md_is_correct() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let values = example().values;
    if std::env::var("PRINT_FORMAT_EXAMPLE").is_ok() {
        for (name, value) in &values {
            println!("== {name}\n{value}");
        }
    }
    for (name, value) in values {
        for part in value.split(' ').filter(|p| p.len() > 8) {
            assert!(doc.contains(part), "docs/FORMAT.md lacks the {name} value {part}");
        }
        for line in value.lines() {
            assert!(doc.contains(line), "docs/FORMAT.md lacks the {name} line {line}");
        }
    }
}
