//! The public log: checkpoints, inclusion and consistency proofs, and the receipt bundle,
//! checked here with a verifier written from RFC 9162 and C2SP alone (SHA-256, Ed25519,
//! base64), not with this project's Merkle code.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, spawn_app, staff, TestApp};

type H = [u8; 32];

fn node(l: &H, r: &H) -> H {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

fn unhex(v: &Value) -> H {
    hex::decode(v.as_str().expect("hex")).expect("hex").try_into().expect("32 bytes")
}

/// RFC 9162 section 2.1.3.2.
fn root_from_inclusion(leaf: H, index: u64, size: u64, proof: &[H]) -> Option<H> {
    if index >= size {
        return None;
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in proof {
        if s == 0 {
            return None;
        }
        if f % 2 == 1 || f == s {
            r = node(p, &r);
            while f % 2 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// RFC 9162 section 2.1.4.2: returns (old root, new root) the proof implies.
fn roots_from_consistency(old: u64, new: u64, old_root: H, proof: &[H]) -> Option<(H, H)> {
    let mut path = proof.to_vec();
    if old.is_power_of_two() {
        path.insert(0, old_root);
    }
    let (mut f, mut s) = (old - 1, new - 1);
    while f % 2 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return None;
        }
        if f % 2 == 1 || f == s {
            fr = node(c, &fr);
            sr = node(c, &sr);
            while f % 2 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some((fr, sr))
}

/// Parses and verifies a C2SP signed checkpoint with the vkey; returns (origin, size, root).
fn open_checkpoint(note: &str, vkey: &str) -> (String, u64, H) {
    let mut parts = vkey.splitn(3, '+');
    let (name, id, key) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let key = B64.decode(key).unwrap();
    assert_eq!(key[0], 1);
    let pk = VerifyingKey::from_bytes(&key[1..].try_into().unwrap()).unwrap();
    let (text, sigs) = note.split_once("\n\n").expect("blank line");
    let text = format!("{text}\n");
    let line = sigs.lines().next().expect("signature line");
    let rest = line.strip_prefix("\u{2014} ").expect("em dash");
    let (signer, sig) = rest.split_once(' ').unwrap();
    assert_eq!(signer, name);
    let sig = B64.decode(sig).unwrap();
    assert_eq!(hex::encode(&sig[..4]), id);
    let sig = Signature::from_bytes(&sig[4..].try_into().unwrap());
    pk.verify(text.as_bytes(), &sig).expect("checkpoint signature");
    let lines: Vec<&str> = text.lines().collect();
    (lines[0].to_owned(), lines[1].parse().unwrap(), B64.decode(lines[2]).unwrap().try_into().unwrap())
}

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.expect("send")
}

async fn vkey(app: &TestApp) -> String {
    let keys: Value = get(app, "/v1/keys").await.json().await.unwrap();
    keys["keys"][0]["vkey"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_receipt_bundle_proves_inclusion_under_a_signed_checkpoint() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let mut last = Value::Null;
    for i in 0..7 {
        last = app.record(json!({"type": "consent.granted", "subject": format!("T-{i}"), "purpose": "newsletter", "actor": staff()})).await;
    }
    let id = last["event"]["id"].as_str().unwrap();
    let resp =
        app.client.get(app.url(&format!("/v1/events/{id}/receipt"))).bearer_auth(&app.audit).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let bundle: Value = resp.json().await.unwrap();
    let vk = vkey(&app).await;
    assert_eq!(bundle["vkey"], vk.as_str());
    let (origin, size, root) = open_checkpoint(bundle["checkpoint"].as_str().unwrap(), &vk);
    assert_eq!(origin, "test.example/consent-ledger");
    assert_eq!(size, bundle["tree_size"].as_u64().unwrap());
    assert!(size >= 9);

    // Recompute the leaf from the signed event alone and walk the audit path to the root.
    let bytes = serde_json_canonicalizer::to_vec(&bundle["receipt"]["event"]).unwrap();
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(&bytes);
    let leaf: H = h.finalize().into();
    let proof: Vec<H> = bundle["inclusion_proof"].as_array().unwrap().iter().map(unhex).collect();
    let index = bundle["receipt"]["leaf_index"].as_u64().unwrap();
    assert_eq!(root_from_inclusion(leaf, index, size, &proof), Some(root));
    // A different leaf does not reach the root.
    let mut other = leaf;
    other[0] ^= 1;
    assert_ne!(root_from_inclusion(other, index, size, &proof), Some(root));
}

#[tokio::test]
async fn consistency_between_two_checkpoints_verifies() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let vk = vkey(&app).await;
    for i in 0..3 {
        app.record(
            json!({"type": "consent.granted", "subject": format!("A-{i}"), "purpose": "newsletter", "actor": staff()}),
        )
        .await;
    }
    // Wait for a checkpoint that covers them.
    let first = loop {
        let note = get(&app, "/v1/log/checkpoint").await.text().await.unwrap();
        let cp = open_checkpoint(&note, &vk);
        if cp.1 >= 5 {
            break cp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for i in 0..6 {
        app.record(
            json!({"type": "consent.granted", "subject": format!("B-{i}"), "purpose": "newsletter", "actor": staff()}),
        )
        .await;
    }
    let second = loop {
        let note = get(&app, "/v1/log/checkpoint").await.text().await.unwrap();
        let cp = open_checkpoint(&note, &vk);
        if cp.1 >= first.1 + 6 {
            break cp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let p: Value =
        get(&app, &format!("/v1/log/proof/consistency?from={}&to={}", first.1, second.1)).await.json().await.unwrap();
    let proof: Vec<H> = p["hashes"].as_array().unwrap().iter().map(unhex).collect();
    assert_eq!(roots_from_consistency(first.1, second.1, first.2, &proof), Some((first.2, second.2)));

    // The inclusion proof endpoint agrees, by index and by id.
    let by_index: Value =
        get(&app, &format!("/v1/log/proof/inclusion?leaf_index=2&tree_size={}", second.1)).await.json().await.unwrap();
    let proof: Vec<H> = by_index["hashes"].as_array().unwrap().iter().map(unhex).collect();
    assert_eq!(root_from_inclusion(unhex(&by_index["leaf_hash"]), 2, second.1, &proof), Some(second.2));

    assert_problem(get(&app, "/v1/log/proof/consistency?from=0&to=3").await, reqwest::StatusCode::BAD_REQUEST).await;
    assert_problem(
        get(&app, "/v1/log/proof/inclusion?leaf_index=99999&tree_size=3").await,
        reqwest::StatusCode::BAD_REQUEST,
    )
    .await;
    assert_problem(get(&app, "/v1/log/proof/consistency?from=1&to=99999").await, reqwest::StatusCode::BAD_REQUEST)
        .await;
    assert_problem(
        get(&app, "/v1/log/proof/inclusion?leaf_index=1&id=01937c5e-8b1a-7c3d-9e4f-a1b2c3d4e5f6").await,
        reqwest::StatusCode::BAD_REQUEST,
    )
    .await;
}
