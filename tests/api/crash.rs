//! Crash safety: rounds of kill -9 of the real binary in the middle of concurrent writes;
//! after each restart every event whose receipt was returned, in any round, is there
//! unchanged, and `verify` passes. The test runs 3 rounds; `benches/crash-loop.sh` runs 50
//! (`CRASH_ROUNDS=50`) and prints each restart's time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consent_ledger::service::access::Role;
use serde_json::{json, Value};

use crate::helpers::{bin, new_keys, newsletter, staff, start_server as start};

/// Concurrent writers per round.
const WRITERS: usize = 16;
/// Acknowledged writes a round waits for before the kill.
const ACKED_PER_ROUND: usize = 150;

/// Every event of the controller, by id, read back through the paged feed.
async fn all_events(client: &reqwest::Client, address: &str, key: &str) -> HashMap<String, Value> {
    crate::helpers::feed(client, address, key)
        .await
        .into_iter()
        .map(|r| (r["event"]["id"].as_str().expect("id").to_owned(), r))
        .collect()
}

#[tokio::test]
async fn acknowledged_events_survive_rounds_of_kill_9() {
    let rounds: usize = std::env::var("CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = new_keys(dir.path(), "council", &[Role::Admin, Role::Record, Role::Audit, Role::Check]);
    let client = reqwest::Client::new();
    let acked: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let mut restarts = Vec::new();
    for round in 0..rounds {
        let started = Instant::now();
        let mut server = start(dir.path());
        restarts.push(started.elapsed());
        // Every event acknowledged so far, in any round, is there and unchanged.
        let stored = all_events(&client, &server.address, &admin).await;
        for r in acked.lock().expect("lock").iter() {
            let id = r["event"]["id"].as_str().expect("id");
            assert_eq!(stored.get(id), Some(r), "round {round}: acknowledged event {id} lost or changed");
        }
        if round == 0 {
            let r = client
                .put(format!("{}/v1/purposes/newsletter", server.address))
                .bearer_auth(&admin)
                .json(&newsletter())
                .send()
                .await
                .expect("put purpose");
            assert_eq!(r.status(), 200);
        }
        let before = acked.lock().expect("lock").len();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (client, address, key, acked) = (client.clone(), server.address.clone(), admin.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let kind = if i % 3 == 2 { "consent.withdrawn" } else { "consent.granted" };
                    let body = json!({"type": kind, "subject": format!("T-{round}-{w}-{}", i % 7), "purpose": "newsletter", "actor": staff()});
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
        // Kill once this round's writes are being acknowledged, with writers in flight.
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked.lock().expect("lock").len() < before + ACKED_PER_ROUND && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.stop();
        for t in tasks {
            let _ = t.await;
        }
        assert!(acked.lock().expect("lock").len() >= before + ACKED_PER_ROUND, "round {round}: too few writes");
        let out = bin().args(["verify", "--data-dir"]).arg(dir.path()).output().expect("verify");
        assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stdout));
    }
    // The last round's acknowledged events too.
    let mut server = start(dir.path());
    let stored = all_events(&client, &server.address, &admin).await;
    server.stop();
    for r in acked.lock().expect("lock").iter() {
        let id = r["event"]["id"].as_str().expect("id");
        assert_eq!(stored.get(id), Some(r), "acknowledged event {id} lost or changed");
    }
    let ms: Vec<u128> = restarts.iter().map(Duration::as_millis).collect();
    println!(
        "crash loop: {rounds} rounds of kill -9, {} acknowledged events all present, verify passed each round; restart to listening (ms): {ms:?}",
        acked.lock().expect("lock").len()
    );
}
