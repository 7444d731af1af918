//! Export and offline verification: an export verifies with the published key, and is
//! rejected after any single byte of a signed event, a leaf hash or a checkpoint is changed,
//! or after an event is removed; an older kept checkpoint is proven consistent.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{bin, spawn_app, staff, TestApp};

fn verify_export(file: &Path, vkey: &str, kept: Option<&Path>) -> (bool, String) {
    let mut cmd = bin();
    cmd.args(["verify", "--key", vkey, "--export"]).arg(file);
    if let Some(k) = kept {
        cmd.arg("--checkpoint").arg(k);
    }
    let out = cmd.output().expect("run verify");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) async fn checkpoint_covering(app: &TestApp, size: u64) -> String {
    loop {
        let note = app.client.get(app.url("/v1/log/checkpoint")).send().await.unwrap().text().await.unwrap();
        let n: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        if n >= size {
            return note;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A ledger with events of two controllers; returns the app, the vkey and an early checkpoint.
async fn two_controllers() -> (TestApp, String, String) {
    let app = spawn_app().await;
    app.with_purposes().await;
    assert_eq!(app.put_purpose(&app.other, "newsletter", &crate::helpers::newsletter()).await.status(), 200);
    for i in 0..4 {
        app.record(
            json!({"type": "consent.granted", "subject": format!("T-{i}"), "purpose": "newsletter", "actor": staff()}),
        )
        .await;
    }
    let kept = checkpoint_covering(&app, app.log_size().await).await;
    for i in 0..5 {
        let body =
            json!({"type": "consent.granted", "subject": format!("O-{i}"), "purpose": "newsletter", "actor": staff()});
        assert_eq!(app.post_event(&app.other, &body).await.status(), StatusCode::CREATED);
        app.record(json!({"type": "consent.withdrawn", "subject": format!("T-{i}"), "purpose": "newsletter", "actor": staff()})).await;
    }
    checkpoint_covering(&app, app.log_size().await).await;
    let keys: Value = app.client.get(app.url("/v1/keys")).send().await.unwrap().json().await.unwrap();
    let vkey = keys["keys"][0]["vkey"].as_str().unwrap().to_owned();
    (app, vkey, kept)
}

fn export_file(app: &TestApp, dir: &Path) -> std::path::PathBuf {
    let file = dir.join("export.ndjson");
    let out = bin()
        .args(["export", "--controller", "council", "--data-dir"])
        .arg(app.dir.path())
        .arg("--out")
        .arg(&file)
        .output()
        .expect("run export");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    file
}

#[tokio::test]
async fn an_export_verifies_offline_and_reveals_no_other_controller() {
    let (app, vkey, kept) = two_controllers().await;
    let work = tempfile::tempdir().unwrap();
    let file = export_file(&app, work.path());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("other-council"), "another controller's events leaked into the export");
    assert!(text.lines().any(|l| l.contains("\"kind\":\"leaf\"")));
    let kept_path = work.path().join("kept.note");
    std::fs::write(&kept_path, &kept).unwrap();
    let (ok, out) = verify_export(&file, &vkey, Some(&kept_path));
    assert!(ok, "{out}");
    assert!(out.contains("consistent with the kept checkpoint"), "{out}");

    // The HTTP export is the same document.
    let resp = app.client.get(app.url("/v1/export")).bearer_auth(&app.audit).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let http = resp.text().await.unwrap();
    let header = |t: &str| t.lines().next().map(str::to_owned);
    assert_eq!(header(&http), header(&text));
    let forbidden = app.client.get(app.url("/v1/export")).bearer_auth(&app.check).send().await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // A key the auditor did not expect is not trusted.
    let other = consent_ledger::signing::Ed25519Signer::generate("test.example/consent-ledger".into()).unwrap();
    let (ok, out) = verify_export(&file, &other.verifier().vkey(), None);
    assert!(!ok, "{out}");
}

/// Rewrites line `n` (0-based) of `file` with `f` into a new file and verifies it.
fn verify_altered(file: &Path, vkey: &str, f: impl Fn(&mut Vec<String>)) -> (bool, String) {
    let mut lines: Vec<String> = std::fs::read_to_string(file).unwrap().lines().map(str::to_owned).collect();
    f(&mut lines);
    let altered = file.with_extension("altered");
    std::fs::write(&altered, lines.join("\n") + "\n").unwrap();
    verify_export(&altered, vkey, None)
}

#[tokio::test]
async fn any_changed_byte_or_removed_event_is_rejected_and_named() {
    let (app, vkey, _) = two_controllers().await;
    let work = tempfile::tempdir().unwrap();
    let file = export_file(&app, work.path());
    let text = std::fs::read_to_string(&file).unwrap();
    let find = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap();

    // A byte of a signed event.
    let ev = find("\"subject\":\"T-2\"");
    let (ok, out) =
        verify_altered(&file, &vkey, |l| l[ev] = l[ev].replace("\"subject\":\"T-2\"", "\"subject\":\"T-3\""));
    assert!(!ok && out.contains("signature does not verify"), "{out}");

    // A byte of another controller's leaf hash.
    let leaf = find("\"kind\":\"leaf\"");
    let (ok, out) = verify_altered(&file, &vkey, |l| {
        let v: Value = serde_json::from_str(&l[leaf]).unwrap();
        let h = v["leaf_hash"].as_str().unwrap();
        let flipped = format!("{}{}", if h.starts_with('0') { "1" } else { "0" }, &h[1..]);
        l[leaf] = l[leaf].replace(h, &flipped);
    });
    assert!(!ok && out.contains("does not match the signed checkpoint"), "{out}");

    // A byte of a checkpoint.
    let cp = find("\"kind\":\"checkpoint\"");
    let (ok, out) = verify_altered(&file, &vkey, |l| {
        let v: Value = serde_json::from_str(&l[cp]).unwrap();
        let note = v["note"].as_str().unwrap();
        let mut lines: Vec<&str> = note.split('\n').collect();
        let size: u64 = lines[1].parse().unwrap();
        let bumped = (size + 1).to_string();
        lines[1] = &bumped;
        l[cp] = json!({"kind": "checkpoint", "note": lines.join("\n")}).to_string();
    });
    assert!(!ok && out.contains("checkpoint"), "{out}");

    // An event removed.
    let (ok, out) = verify_altered(&file, &vkey, |l| {
        l.remove(ev);
    });
    assert!(!ok && out.contains("missing"), "{out}");
}
