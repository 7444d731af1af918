//! Recording: receipts verify with the public key alone, retries are idempotent, a batch is
//! all or nothing.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, spawn_app, staff};

#[tokio::test]
async fn a_receipt_verifies_with_the_published_key_and_standard_libraries() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let r = app
        .record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .await;
    let keys: Value = app.client.get(app.url("/v1/keys")).send().await.expect("send").json().await.expect("json");
    let key = &keys["keys"][0];
    assert_eq!(key["key_id"], r["key_id"]);
    assert!(key["vkey"].as_str().expect("vkey").starts_with("test.example/consent-ledger+"));
    let pk: [u8; 32] = B64.decode(key["public_key"].as_str().expect("pk")).expect("b64").try_into().expect("32");
    let pk = VerifyingKey::from_bytes(&pk).expect("key");

    let bytes = serde_json_canonicalizer::to_vec(&r["event"]).expect("jcs");
    let sig: [u8; 64] = B64.decode(r["signature"].as_str().expect("sig")).expect("b64").try_into().expect("64");
    assert!(pk.verify(&bytes, &Signature::from_bytes(&sig)).is_ok());
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(&bytes);
    assert_eq!(hex::encode(h.finalize()), r["leaf_hash"]);
    assert_eq!(r["leaf_index"].as_u64(), r["seq"].as_u64().map(|s| s - 1));
    assert_eq!(r["event"]["seq"], r["seq"]);
    // The signed event names the API key that recorded it (by id, never its secret).
    // A key is `clk_<id>_<secret>`; the secret (base64url) may itself hold `_`.
    let (key_id, secret) = app.record.strip_prefix("clk_").unwrap().split_once('_').unwrap();
    assert_eq!(r["event"]["recorded_by"], format!("apikey:{key_id}"));
    assert!(secret.len() >= 32 && !r.to_string().contains(secret));

    // Any change to the event breaks the signature.
    let mut forged = r["event"].clone();
    forged["purpose"] = json!("events");
    let forged = serde_json_canonicalizer::to_vec(&forged).expect("jcs");
    assert!(pk.verify(&forged, &Signature::from_bytes(&sig)).is_err());
}

#[tokio::test]
async fn a_retry_with_the_same_id_returns_the_original_receipt_and_writes_nothing() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let body = json!({"id": "01937c5e-8b1a-7c3d-9e4f-a1b2c3d4e5f6", "type": "consent.granted", "subject": "T-1",
                      "purpose": "newsletter", "actor": staff()});
    let first = app.record(body.clone()).await;
    let size = app.log_size().await;
    let resp = app.post_event(&app.record, &body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let again: Value = resp.json().await.expect("json");
    assert_eq!(again, first);
    assert_eq!(app.log_size().await, size);

    // The same id for a different event is a conflict.
    let mut other = body.clone();
    other["purpose"] = json!("repairs-updates");
    assert_problem(app.post_event(&app.record, &other).await, StatusCode::CONFLICT).await;
    assert_eq!(app.log_size().await, size);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let size = app.log_size().await;
    let bad = json!([
        {"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()},
        {"type": "consent.granted", "subject": "T-2", "purpose": "no-such-purpose", "actor": staff()},
    ]);
    let p = assert_problem(app.post_batch(&app.record, &bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().expect("detail").starts_with("event 1:"), "{p}");
    assert_eq!(app.log_size().await, size);

    let good = json!([
        {"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()},
        {"type": "consent.granted", "subject": "T-2", "purpose": "newsletter", "actor": staff()},
    ]);
    let resp = app.post_batch(&app.record, &good).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let receipts: Vec<Value> = resp.json().await.expect("json");
    assert_eq!(receipts.len(), 2);
    assert_eq!(receipts[1]["seq"].as_u64(), receipts[0]["seq"].as_u64().map(|s| s + 1));
    assert_eq!(app.log_size().await, size + 2);
}

#[tokio::test]
async fn a_receipt_can_be_fetched_again_by_id() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let r = app
        .record(json!({"type": "preference.set", "subject": "T-1", "actor": {"kind": "subject"},
                              "preference": {"preferred_channel": "post", "format": "large_print", "language": "cy"}}))
        .await;
    let id = r["event"]["id"].as_str().expect("id");
    let resp = app.get_event(&app.audit, id).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.expect("json"), r);
}

#[tokio::test]
async fn purposes_are_listed_and_an_unchanged_put_records_nothing() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let size = app.log_size().await;
    assert_eq!(app.put_purpose(&app.admin, "newsletter", &crate::helpers::newsletter()).await.status(), StatusCode::OK);
    assert_eq!(app.log_size().await, size);
    let list: Value = app.list_purposes(&app.check).await.json().await.expect("json");
    let ids: Vec<&str> = list["purposes"].as_array().expect("list").iter().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(ids, vec!["newsletter", "repairs-updates"]);
    assert_eq!(list["purposes"][0]["basis"], "consent");
}
