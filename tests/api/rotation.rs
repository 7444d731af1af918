//! Key rotation: the old key signs a `key.rotated` event naming the new one; later events and
//! checkpoints use the new key; old events still verify; `/v1/keys` shows both with periods;
//! an export verifies from the old key alone by following the rotation.

use consent_ledger::service::access::Role;
use serde_json::{json, Value};

use crate::helpers::{bin, new_keys, newsletter, staff, start_server};

async fn post(client: &reqwest::Client, address: &str, key: &str, body: Value) -> Value {
    let r = client.post(format!("{address}/v1/events")).bearer_auth(key).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn rotation_keeps_old_events_verifiable_and_signs_new_ones_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_keys(dir.path(), "council", &[Role::Admin, Role::Record, Role::Audit]);
    let client = reqwest::Client::new();

    let mut server = start_server(dir.path());
    let r = client
        .put(format!("{}/v1/purposes/newsletter", server.address))
        .bearer_auth(&key)
        .json(&newsletter())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = post(
        &client,
        &server.address,
        &key,
        json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()}),
    )
    .await;
    let old_keys: Value = client.get(format!("{}/v1/keys", server.address)).send().await.unwrap().json().await.unwrap();
    let old_vkey = old_keys["keys"][0]["vkey"].as_str().unwrap().to_owned();
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let out = bin().args(["keys", "rotate", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut server = start_server(dir.path());
    let after = post(
        &client,
        &server.address,
        &key,
        json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()}),
    )
    .await;
    let keys: Value = client.get(format!("{}/v1/keys", server.address)).send().await.unwrap().json().await.unwrap();
    let keys = keys["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["current"], true);
    assert_eq!(keys[1]["vkey"], old_vkey.as_str());
    let rotation_seq = keys[1]["last_seq"].as_u64().unwrap();
    assert_eq!(keys[0]["first_seq"].as_u64(), Some(rotation_seq + 1));
    assert_eq!(before["key_id"], keys[1]["key_id"]);
    assert_eq!(after["key_id"], keys[0]["key_id"]);

    // The rotation event is in the log, signed by the old key, naming the new one.
    let out = bin().args(["keys", "list", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(keys[0]["vkey"].as_str().unwrap()));

    // Checkpoints after the rotation are signed by the new key.
    let new_id = keys[0]["key_id"].as_str().unwrap().to_owned();
    let note = loop {
        let note =
            client.get(format!("{}/v1/log/checkpoint", server.address)).send().await.unwrap().text().await.unwrap();
        if note.lines().nth(1).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) > rotation_seq {
            break note;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let sig_line = note.lines().last().unwrap();
    let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig_line.rsplit(' ').next().unwrap())
        .unwrap();
    assert_eq!(hex::encode(&sig[..4]), new_id);

    // The whole store verifies, and an export verifies from the old key alone.
    let export = dir.path().join("export.ndjson");
    let out = bin()
        .args(["export", "--controller", "council", "--data-dir"])
        .arg(dir.path())
        .arg("--out")
        .arg(&export)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin().args(["verify", "--key", &old_vkey, "--export"]).arg(&export).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let out = bin().args(["verify", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
