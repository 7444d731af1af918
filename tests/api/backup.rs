//! Backups: `POST /v1/backups` while serving and `consent-ledger backup` when stopped write a
//! complete data directory holding every acknowledged event; it verifies, and a server started
//! on it answers as the ledger did when the backup was taken.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{bin, spawn_app, staff};

fn operator_key(dir: &std::path::Path) -> String {
    let out = bin().args(["apikey", "create", "--operator", "--data-dir"]).arg(dir).output().expect("apikey");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

#[tokio::test]
async fn backups_beyond_the_kept_number_are_removed_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let operator = operator_key(dir.path());
    let mut server = crate::helpers::start_server_with(dir.path(), &["--backup-keep", "2"]);
    let base = server.address.clone();
    let client = reqwest::Client::new();
    let mut names = Vec::new();
    for _ in 0..3 {
        let r = client.post(format!("{base}/v1/backups")).bearer_auth(&operator).send().await.expect("send");
        assert_eq!(r.status(), StatusCode::CREATED);
        names.push(r.json::<Value>().await.expect("json")["name"].as_str().expect("name").to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.stop();
    let mut kept: Vec<String> = std::fs::read_dir(dir.path().join("backups"))
        .expect("backups")
        .map(|e| e.expect("entry").file_name().into_string().expect("name"))
        .collect();
    kept.sort();
    assert_eq!(kept, names[1..].to_vec());
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_the_ledger_as_it_was() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": {"channel": "email", "address": "jane@example.org"}, "actor": staff()}))
        .await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;

    let post = |key: String| app.client.post(app.url("/v1/backups")).bearer_auth(key).send();
    // A backup holds every controller's data: no controller's key, not even an admin's.
    assert_eq!(post(app.check.clone()).await.expect("send").status(), StatusCode::FORBIDDEN);
    assert_eq!(post(app.admin.clone()).await.expect("send").status(), StatusCode::FORBIDDEN);
    let operator = operator_key(app.dir.path());
    consent_ledger::service::sms::set_twilio_token(
        &consent_ledger::ledger::DataDir::new(app.dir.path()),
        &consent_ledger::domain::ControllerId::parse("council").expect("controller"),
        Some("twilio-auth-token"),
    )
    .expect("token");
    // Where the webhooks to a downstream system got to (as the deliverer keeps it).
    let webhooks = app.dir.path().join("webhooks");
    std::fs::create_dir_all(&webhooks).expect("webhooks dir");
    std::fs::write(webhooks.join("council.acme-mailing.position"), "2").expect("position");
    // And the operator's key reaches no controller's data.
    let r = app.client.get(app.url("/v1/feed")).bearer_auth(&operator).send().await.expect("send");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let resp = post(operator.clone()).await.expect("send");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let backup: Value = resp.json().await.expect("json");
    let name = backup["name"].as_str().expect("name").to_owned();
    assert!(backup.get("path").is_none(), "the answer names a server path: {backup}");
    let path = app.dir.path().join("backups").join(&name).to_str().expect("utf-8").to_owned();
    assert_eq!(backup["log_size"].as_u64(), Some(app.log_size().await));
    // The SMS provider's token comes along, private.
    let token = std::path::Path::new(&path).join("providers/council.twilio-token");
    assert_eq!(std::fs::read_to_string(&token).expect("the Twilio token was not backed up"), "twilio-auth-token");
    // So does the webhook position: a restored ledger goes on delivering from there instead of
    // sending every event again.
    let position = std::path::Path::new(&path).join("webhooks/council.acme-mailing.position");
    assert_eq!(std::fs::read_to_string(&position).expect("the webhook position was not backed up"), "2");

    // The live ledger moves on: the tenant withdraws.
    app.record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    let q = [("email", "jane@example.org"), ("purpose", "newsletter")];
    assert_eq!(app.check(&q).await["permitted"], false);

    // The backup verifies on its own.
    let out = bin().args(["verify", "--data-dir", &path]).output().expect("verify");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("{} events", backup["log_size"])), "{text}");

    // A server on the backup answers as the ledger did then, with the same keys and secrets
    // (the API key works, the address's blind index is the same).
    let mut child = bin()
        .args(["serve", "--data-dir", &path, "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
    let base = line.trim().trim_start_matches("listening on ").to_owned();
    let restored: Value = app
        .client
        .get(format!("{base}/v1/check?email=jane@example.org&purpose=newsletter"))
        .bearer_auth(&app.check)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(restored["permitted"], true, "{restored}");
    assert_eq!(restored["log_size"], backup["log_size"]);

    // With the server stopped, the command line backs up; it never writes over a directory.
    let copy = tempfile::tempdir().expect("tempdir");
    let to = copy.path().join("again");
    let out = bin().args(["backup", "--data-dir", &path, "--to"]).arg(&to).output().expect("backup");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("ok: {} events", backup["log_size"])));
    let out = bin().args(["backup", "--data-dir", &path, "--to"]).arg(&to).output().expect("backup");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}
