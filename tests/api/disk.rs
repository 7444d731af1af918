//! A full disk: writes answer 503 `storage-full` with `Retry-After` and change nothing,
//! `/readyz` fails and `/metrics` shows it, reads go on, nothing acknowledged is lost, and once
//! space is freed the ledger takes writes again by itself, without a restart. The data
//! directory lives on a small tmpfs the test mounts (root only; skipped with a message
//! otherwise).

use std::process::Command;
use std::time::{Duration, Instant};

use consent_ledger::service::access::Role;
use serde_json::{json, Value};

use crate::helpers::{bin, new_keys, newsletter, staff, start_server};

/// A tmpfs of `mb` MiB mounted on a new temporary directory, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mb: u32) -> Option<Self> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_cleanly_and_recovers_by_itself() {
    let Some(disk) = SmallDisk::mount(32) else {
        eprintln!("skipped: mounting a tmpfs needs root (the full-disk test runs in CI as root)");
        return;
    };
    let data = disk.dir.path().join("data");
    let key = new_keys(&data, "council", &[Role::Admin, Role::Record, Role::Check]);
    let mut server = start_server(&data);
    let client = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.address);
    let r = client.put(url("/v1/purposes/newsletter")).bearer_auth(&key).json(&newsletter()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(url("/v1/events"))
        .bearer_auth(&key)
        .json(&json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Fill the disk, then write until the ledger says it is full.
    let filler = disk.dir.path().join("filler");
    let _ =
        Command::new("dd").args(["if=/dev/zero", "bs=1M", "count=64"]).arg(format!("of={}", filler.display())).output();
    let mut acked = Vec::new();
    let mut full = None;
    for c in 0..400 {
        let batch: Vec<Value> = (0..200)
            .map(|i| json!({"type": "objection.raised", "subject": format!("S-{c}-{i}"), "actor": staff()}))
            .collect();
        let r = client.post(url("/v1/events/batch")).bearer_auth(&key).json(&batch).send().await.unwrap();
        match r.status().as_u16() {
            201 => acked.extend(r.json::<Vec<Value>>().await.unwrap()),
            503 => {
                let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned());
                full = Some((retry, r.json::<Value>().await.unwrap()));
                break;
            }
            s => panic!("a write on a full disk answered {s}: {}", r.text().await.unwrap_or_default()),
        }
    }
    let (retry, problem) = full.expect("the disk never filled");
    assert_eq!(problem["type"], "/problems/storage-full", "{problem}");
    assert!(retry.is_some_and(|r| !r.is_empty()), "no Retry-After");
    assert_eq!(client.get(url("/readyz")).send().await.unwrap().status(), 503);
    let metrics = client.get(url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("consent_ledger_storage_full 1"), "{metrics}");
    // Reads go on.
    let check: Value = client
        .get(url("/v1/check?subject=T-1&purpose=newsletter"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["permitted"], true);

    // Space is freed: writes go on by themselves, no restart.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut status = 0;
    while Instant::now() < deadline {
        let r = client
            .post(url("/v1/events"))
            .bearer_auth(&key)
            .json(&json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
            .send()
            .await
            .unwrap();
        status = r.status().as_u16();
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "after space was freed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 201, "writes did not come back after space was freed");
    assert_eq!(client.get(url("/readyz")).send().await.unwrap().status(), 200);
    // Every acknowledged event is there.
    for r in acked.iter().step_by(97) {
        let id = r["event"]["id"].as_str().unwrap();
        let got = client.get(url(&format!("/v1/events/{id}"))).bearer_auth(&key).send().await.unwrap();
        assert_eq!(got.status(), 200, "acknowledged event {id} lost");
    }
    server.stop();
    let out = bin().args(["verify", "--data-dir"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
