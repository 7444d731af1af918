//! Crash safety: kill -9 the real binary in the middle of hundreds of concurrent writes;
//! after a restart every event whose receipt was returned is there, unchanged, and `verify`
//! passes.

use std::process::Command;
use std::sync::{Arc, Mutex};

use consent_ledger::service::access::Role;
use serde_json::{json, Value};

use crate::helpers::{new_keys, newsletter, staff, start_server as start};

#[tokio::test]
async fn acknowledged_events_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = new_keys(dir.path(), "council", &[Role::Admin, Role::Record, Role::Audit]);
    let mut server = start(dir.path());
    let client = reqwest::Client::new();
    let r = client
        .put(format!("{}/v1/purposes/newsletter", server.address))
        .bearer_auth(&admin)
        .json(&newsletter())
        .send()
        .await
        .expect("put purpose");
    assert_eq!(r.status(), 200);

    let acked: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (client, address, key, acked) = (client.clone(), server.address.clone(), admin.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let kind = if i % 3 == 2 { "consent.withdrawn" } else { "consent.granted" };
                let body = json!({"type": kind, "subject": format!("T-{w}-{}", i % 7), "purpose": "newsletter", "actor": staff()});
                let resp = client.post(format!("{address}/v1/events")).bearer_auth(&key).json(&body).send().await;
                match resp {
                    Ok(r) if r.status() == 201 => {
                        if let Ok(v) = r.json::<Value>().await {
                            acked.lock().expect("lock").push(v);
                        }
                    }
                    _ => break,
                }
            }
        }));
    }
    // Kill once a few hundred writes have been acknowledged, with writers still in flight.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        if acked.lock().expect("lock").len() >= 300 {
            break;
        }
    }
    server.child.kill().expect("kill -9");
    server.child.wait().expect("wait");
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= 300);

    let mut server = start(dir.path());
    for r in &acked {
        let id = r["event"]["id"].as_str().expect("id");
        let resp =
            client.get(format!("{}/v1/events/{id}", server.address)).bearer_auth(&admin).send().await.expect("get");
        assert_eq!(resp.status(), 200, "acknowledged event {id} was lost");
        let stored: Value = resp.json().await.expect("json");
        assert_eq!(&stored, r, "acknowledged event changed");
    }
    server.child.kill().expect("kill");
    server.child.wait().expect("wait");

    let out = Command::new(env!("CARGO_BIN_EXE_consent-ledger"))
        .args(["verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("verify");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
