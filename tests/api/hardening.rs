//! An opt-out never silently stops working: a lost secret is refused by name rather than made
//! anew, an old unsubscribe link withdraws again after a re-grant, and YES never lifts a STOP.

use consent_ledger::service::access::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{bin, new_keys, spawn_app, staff, start_server};

/// A stopped ledger with events in it, as the real binary leaves it.
fn ledger_with_events() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let key = new_keys(dir.path(), "council", &[Role::Admin, Role::Record, Role::Check]);
    let mut server = start_server(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let r = client
            .put(format!("{}/v1/purposes/newsletter", server.address))
            .bearer_auth(&key)
            .json(&crate::helpers::newsletter())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let r = client
            .post(format!("{}/v1/events", server.address))
            .bearer_auth(&key)
            .json(&json!({"type": "objection.raised", "contact": {"channel": "email", "address": "jane@example.org"}, "actor": staff()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    });
    server.stop();
    dir
}

#[test]
fn a_lost_secret_is_refused_by_name_and_never_made_anew() {
    let dir = ledger_with_events();
    for file in ["blind-index.key", "signing-key.json", "keyring.json", "token.key"] {
        let path = dir.path().join(file);
        let saved = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let out = bin()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{file}: the server started without it");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(file) && stderr.contains("backup"), "{file}: {stderr}");
        assert!(!path.exists(), "{file} was created anew");
        std::fs::write(&path, saved).unwrap();
    }
    // With every file back, it starts and still knows the opt-out.
    let mut server = start_server(dir.path());
    server.stop();
}

#[test]
fn a_new_ledger_still_creates_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    server.stop();
    for file in ["blind-index.key", "signing-key.json", "keyring.json", "token.key"] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
}

#[tokio::test]
async fn an_old_unsubscribe_link_withdraws_again_after_a_re_grant() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let grant = json!({"type": "consent.granted", "contact": {"channel": "email", "address": "jane@example.org"}, "purpose": "newsletter", "actor": staff()});
    app.record(grant.clone()).await;
    let q = [("email", "jane@example.org"), ("purpose", "newsletter"), ("unsubscribe", "true")];
    let header = app.check(&q).await["list_unsubscribe"].as_str().unwrap().to_owned();
    let url = header.trim_start_matches('<').trim_end_matches('>').to_owned();
    let click = || async {
        let r = app.client.post(&url).body("List-Unsubscribe=One-Click").send().await.unwrap();
        assert_eq!(r.status(), 200);
    };
    click().await;
    assert_eq!(app.check(&q[..2]).await["permitted"], false);
    // A retry while withdrawn records nothing.
    let size = app.log_size().await;
    click().await;
    assert_eq!(app.log_size().await, size);
    // They opt back in; later the same old link is clicked again: withdrawn again.
    app.record(grant).await;
    assert_eq!(app.check(&q[..2]).await["permitted"], true);
    click().await;
    let after = app.check(&q[..2]).await;
    assert_eq!(after["permitted"], false, "{after}");
    assert_eq!(after["reason"], "consent_withdrawn");
    let size = app.log_size().await;
    click().await;
    assert_eq!(app.log_size().await, size);
}

#[tokio::test]
async fn yes_to_an_unrelated_text_never_lifts_a_stop() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "contact": {"channel": "sms", "address": "+447700900123"}, "purpose": "newsletter", "actor": staff()})).await;
    let webhook = new_keys(app.dir.path(), "council", &[Role::SmsWebhook]);
    let sms = [("phone", "+447700900123"), ("purpose", "newsletter"), ("channel", "sms")];
    let text = |body: &'static str, sid: &'static str| {
        app.client
            .post(app.url("/v1/inbound/sms"))
            .bearer_auth(&webhook)
            .json(&json!({"From": "+447700900123", "To": "+447700900999", "Body": body, "MessageSid": sid}))
            .send()
    };
    assert_eq!(text("STOP", "SM1").await.unwrap().status(), 200);
    assert_eq!(app.check(&sms).await["permitted"], false);
    let r = text("Yes", "SM2").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["action"], "ignored");
    assert_eq!(app.check(&sms).await["permitted"], false);
    assert_eq!(text("START", "SM3").await.unwrap().status(), 200);
    assert_eq!(app.check(&sms).await["permitted"], true);
}

#[tokio::test]
async fn an_address_in_the_wrong_field_is_never_echoed() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let r = app
        .post_event(&app.record, &json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "channel": "jane@example.org", "actor": staff()}))
        .await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(body.contains("unknown variant") && !body.contains("jane"), "{body}");
    let r =
        app.post_event(&app.record, &json!({"type": "consent.granted", "jane@example.org": 1, "actor": staff()})).await;
    let body = r.text().await.unwrap();
    assert!(!body.contains("jane"), "{body}");
    let r = app
        .client
        .post(app.url("/v1/checks"))
        .bearer_auth(&app.check)
        .header("content-type", "application/x-ndjson")
        .body("{\"purpose\":\"newsletter\",\"email\":\"a@example.org\",\"channel\":\"jane@example.org\"}\n")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("\"error\"") && !body.contains("jane"), "{body}");
}

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = bin().args(args).arg("--data-dir").arg(dir).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_key_can_be_listed_and_revoked_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let key = cli(dir.path(), &["apikey", "create", "--controller", "council", "--role", "check"]).trim().to_owned();
    let id = key.split('_').nth(1).unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = |key: &str| {
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}/v1/feed", server.address))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    assert_eq!(status(&key), 200);
    let listed = cli(dir.path(), &["apikey", "list", "--json"]);
    let row: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(row["id"], id.as_str());
    assert_eq!(row["controller"], "council");
    assert!(!listed.contains(key.splitn(3, '_').nth(2).unwrap()), "the list shows a secret");
    let table = cli(dir.path(), &["apikey", "list"]);
    assert!(table.contains(&id) && table.contains("check"), "{table}");
    cli(dir.path(), &["apikey", "revoke", &id]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(status(&key), 401, "a revoked key still works after a second");
    assert!(cli(dir.path(), &["apikey", "list", "--json"]).contains("revoked_at"));
    server.stop();
}

#[test]
fn a_tree_that_does_not_extend_the_signed_checkpoint_is_never_signed() {
    use consent_ledger::ledger::DataDir;
    use consent_ledger::store::{Batch, Cf, Store};
    let dir = ledger_with_events();
    let key = new_keys(dir.path(), "council", &[Role::Record]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = reqwest::Client::new();
    // Let the server sign a checkpoint of the whole log, then stop it.
    let mut server = start_server(dir.path());
    let signed = rt.block_on(async {
        for _ in 0..100 {
            let note =
                client.get(format!("{}/v1/log/checkpoint", server.address)).send().await.unwrap().text().await.unwrap();
            let size: u64 = note.lines().nth(1).unwrap_or("0").parse().unwrap_or(0);
            if size >= 2 {
                return note;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no checkpoint");
    });
    server.stop();
    // Someone with the disk rewrites the stored tree.
    {
        let store = Store::open(&DataDir::new(dir.path()).db()).unwrap();
        let mut b = Batch::default();
        for item in store.iter_from(Cf::Merkle, &[]).unwrap() {
            let (k, _) = item.unwrap();
            b.put(Cf::Merkle, k.to_vec(), vec![7u8; 32]);
        }
        store.write_synced(&b).unwrap();
    }
    let mut server = start_server(dir.path());
    rt.block_on(async {
        let r = client
            .post(format!("{}/v1/events", server.address))
            .bearer_auth(&key)
            .json(&json!({"type": "objection.raised", "subject": "T-5", "actor": staff()}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let mut ready = 200;
        for _ in 0..100 {
            ready = client.get(format!("{}/readyz", server.address)).send().await.unwrap().status().as_u16();
            if ready == 503 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(ready, 503, "/readyz still passes");
        let metrics = client.get(format!("{}/metrics", server.address)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("consent_ledger_checkpoints_refused_total 1"), "{metrics}");
        let note =
            client.get(format!("{}/v1/log/checkpoint", server.address)).send().await.unwrap().text().await.unwrap();
        assert_eq!(note, signed, "a checkpoint was signed over the rewritten tree");
    });
    server.stop();
}

#[tokio::test]
async fn gov_uk_notify_and_twilio_deliver_stops_in_their_own_formats() {
    use consent_ledger::ledger::DataDir;
    use consent_ledger::service::sms::{set_twilio_token, twilio_signature};
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "contact": {"channel": "sms", "address": "+447700900123"}, "purpose": "newsletter", "actor": staff()})).await;
    let webhook = new_keys(app.dir.path(), "council", &[Role::SmsWebhook]);
    let sms = [("phone", "+447700900123"), ("purpose", "newsletter"), ("channel", "sms")];

    // GOV.UK Notify's received-text callback: its own field names, no plus on the number,
    // the token it was configured with as a Bearer token.
    let notify = json!({"id": "5c0a8e8a-3f68-4f3a-9d57-2b1f1b7b2a11", "source_number": "447700900123",
                        "destination_number": "07700900000", "message": "STOP",
                        "date_received": "2026-11-30T10:00:00.000000Z"});
    let send = || app.client.post(app.url("/v1/inbound/sms")).bearer_auth(&webhook).json(&notify).send();
    let r = send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["action"], "stop");
    assert_eq!(app.check(&sms).await["permitted"], false);
    let size = app.log_size().await;
    assert_eq!(send().await.unwrap().status(), 200, "Notify's retry");
    assert_eq!(app.log_size().await, size, "a retried callback recorded again");

    // A keyword without the provider's message id is refused: its retries could record twice.
    let r = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .json(&json!({"from": "+447700900123", "body": "START"}))
        .send()
        .await
        .unwrap();
    let p = crate::helpers::assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert!(p["detail"].as_str().unwrap().contains("message id"), "{p}");
    assert_eq!(app.log_size().await, size);

    // A key in the URL must be a webhook secret and nothing else.
    let r = app
        .client
        .post(app.url(&format!("/v1/inbound/sms?key={}", app.admin)))
        .form(&[("From", "+447700900123"), ("Body", "START"), ("MessageSid", "SM9")])
        .send()
        .await
        .unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());

    // With the controller's Twilio auth token set (in the data directory, or in the database
    // of a ledger kept in PostgreSQL), a form needs Twilio's signature.
    match app.database.clone() {
        Some(url) => std::thread::spawn(move || {
            // The database driver runs a runtime of its own: outside this test's.
            consent_ledger::ledger::shared_keys::SharedKeys::open(&url)
                .and_then(|db| db.set_provider_token("council", "twilio", Some(b"twilio-auth-token")))
                .expect("the database's provider token")
        })
        .join()
        .expect("set the token"),
        None => set_twilio_token(
            &DataDir::new(app.dir.path()),
            &consent_ledger::domain::ControllerId::parse("council").unwrap(),
            Some("twilio-auth-token"),
        )
        .unwrap(),
    }
    let path = format!("/v1/inbound/sms?key={webhook}");
    let params: Vec<(String, String)> =
        [("From", "+447700900123"), ("To", "+447700900999"), ("Body", "START"), ("MessageSid", "SM10")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let post = |signature: Option<String>| {
        let mut req = app.client.post(app.url(&path)).form(&params);
        if let Some(s) = signature {
            req = req.header("X-Twilio-Signature", s);
        }
        req.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401, "a form without the signature");
    assert_eq!(post(Some("AAAA".into())).await.unwrap().status(), 401, "a wrong signature");
    assert_eq!(app.check(&sms).await["permitted"], false, "an unsigned form lifted the stop");
    let good = twilio_signature(b"twilio-auth-token", &app.url(&path), &params);
    let r = post(Some(good)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.check(&sms).await["permitted"], true);
}

#[tokio::test]
async fn event_ids_are_each_controllers_own() {
    let app = spawn_app().await;
    app.with_purposes().await;
    assert_eq!(app.put_purpose(&app.other, "newsletter", &crate::helpers::newsletter()).await.status(), 200);
    let id = "01937c5e-8b1a-7c3d-9e4f-a1b2c3d4e5f6";
    let event =
        json!({"id": id, "type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()});
    // The same client-chosen id in two controllers: both recorded, neither blocks the other.
    let mine = app.post_event(&app.record, &event).await;
    assert_eq!(mine.status(), StatusCode::CREATED);
    let mine: serde_json::Value = mine.json().await.unwrap();
    let theirs = app.post_event(&app.other, &event).await;
    assert_eq!(theirs.status(), StatusCode::CREATED, "another controller's id blocked this one");
    let theirs: serde_json::Value = theirs.json().await.unwrap();
    assert_ne!(mine["seq"], theirs["seq"]);
    // Each reads its own event by the id.
    let got: serde_json::Value = app.get_event(&app.audit, id).await.json().await.unwrap();
    assert_eq!(got["seq"], mine["seq"]);
    let got: serde_json::Value = app.get_event(&app.other, id).await.json().await.unwrap();
    assert_eq!(got["seq"], theirs["seq"]);
    // A retry is still idempotent within the controller.
    assert_eq!(app.post_event(&app.record, &event).await.status(), StatusCode::OK);
    // The proof by id needs the controller's key, and answers with its own event.
    let size = app.log_size().await;
    let proof = |key: Option<String>| {
        let mut req = app.client.get(app.url(&format!("/v1/log/proof/inclusion?id={id}&tree_size={size}")));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    assert_eq!(proof(None).await.unwrap().status(), StatusCode::UNAUTHORIZED, "anyone can learn that an id exists");
    let p: serde_json::Value = proof(Some(app.audit.clone())).await.unwrap().json().await.unwrap();
    assert_eq!(p["leaf_index"].as_u64().unwrap() + 1, mine["seq"].as_u64().unwrap());
    let p: serde_json::Value = proof(Some(app.other.clone())).await.unwrap().json().await.unwrap();
    assert_eq!(p["leaf_index"].as_u64().unwrap() + 1, theirs["seq"].as_u64().unwrap());
    let unknown = app
        .client
        .get(app.url(&format!("/v1/log/proof/inclusion?id=01937c5e-0000-7c3d-9e4f-a1b2c3d4e5f6&tree_size={size}")))
        .bearer_auth(&app.audit)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[test]
fn a_store_of_the_previous_format_is_refused_by_name_and_brought_up_by_rebuild() {
    use consent_ledger::ledger::DataDir;
    use consent_ledger::store::{Batch, Cf, Store};
    let dir = ledger_with_events();
    // Make it a format-2 store: event ids keyed by id alone, the format row saying 2.
    {
        let store = Store::open(&DataDir::new(dir.path()).db()).unwrap();
        let mut b = Batch::default();
        for item in store.iter_from(Cf::EventIds, &[]).unwrap() {
            let (k, v) = item.unwrap();
            b.delete(Cf::EventIds, k.to_vec());
            b.put(Cf::EventIds, k[k.len() - 16..].to_vec(), v.to_vec());
        }
        b.put(Cf::Meta, b"format".to_vec(), b"2".to_vec());
        store.write_synced(&b).unwrap();
    }
    refused_by_name_then_rebuilt(dir.path(), 2);
}

/// A store of an older `format`: `serve` refuses it naming the format and `rebuild`; after
/// `rebuild` it verifies and serves.
fn refused_by_name_then_rebuilt(dir: &std::path::Path, format: u32) {
    let serve = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!serve.status.success());
    let stderr = String::from_utf8_lossy(&serve.stderr);
    assert!(
        stderr.contains(&format!("holds format {format}")) && stderr.contains("run `consent-ledger rebuild` once"),
        "{stderr}"
    );
    let out = bin().args(["rebuild", "--data-dir"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let verify = bin().args(["verify", "--data-dir"]).arg(dir).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    let mut server = start_server(dir);
    server.stop();
}

#[test]
fn a_store_of_format_3_with_facts_as_json_lines_is_brought_up_by_rebuild() {
    use consent_ledger::ledger::DataDir;
    use consent_ledger::store::{Batch, Cf, Store};
    let dir = ledger_with_events();
    // Make it a format-3 store: each facts row one JSON object a line, the format row 3.
    {
        let store = Store::open(&DataDir::new(dir.path()).db()).unwrap();
        let mut b = Batch::default();
        let mut rows = 0;
        for item in store.iter_from(Cf::Facts, &[]).unwrap() {
            let (k, v) = item.unwrap();
            let mut lines = Vec::new();
            for fact in consent_ledger::projection::decode_facts(&v).unwrap() {
                lines.extend(serde_json::to_vec(&fact).unwrap());
                lines.push(b'\n');
            }
            b.put(Cf::Facts, k.to_vec(), lines);
            rows += 1;
        }
        assert!(rows > 0);
        b.put(Cf::Meta, b"format".to_vec(), b"3".to_vec());
        store.write_synced(&b).unwrap();
    }
    // The rebuilt rows are records again: the store verifies.
    refused_by_name_then_rebuilt(dir.path(), 3);
}

#[test]
fn a_store_of_format_4_with_leaves_as_tree_nodes_is_brought_up_by_rebuild() {
    use consent_ledger::format::StoredEvent;
    use consent_ledger::ledger::DataDir;
    use consent_ledger::store::{Batch, Cf, Store};
    let dir = ledger_with_events();
    let leaf_rows = |store: &Store| {
        store.iter_from(Cf::Merkle, &[]).unwrap().filter(|item| item.as_ref().unwrap().0[0] == 0).count()
    };
    // Make it a format-4 store: every leaf a row of the tree too (level 0), the format row 4.
    {
        let store = Store::open(&DataDir::new(dir.path()).db()).unwrap();
        assert_eq!(leaf_rows(&store), 0, "a format-5 store keeps no leaf as a tree node");
        let mut b = Batch::default();
        for item in store.iter_from(Cf::Events, &[]).unwrap() {
            let (k, v) = item.unwrap();
            let index = u64::from_be_bytes(k.as_ref().try_into().unwrap()) - 1;
            let mut key = vec![0u8];
            key.extend(index.to_be_bytes());
            b.put(Cf::Merkle, key, StoredEvent::decode(&v).unwrap().leaf_hash.to_vec());
        }
        b.put(Cf::Meta, b"format".to_vec(), b"4".to_vec());
        store.write_synced(&b).unwrap();
        assert!(leaf_rows(&store) > 0);
    }
    // The rebuilt tree has no leaf rows (`verify` would name one as a row with no event).
    refused_by_name_then_rebuilt(dir.path(), 4);
    assert_eq!(leaf_rows(&Store::open_read_only(&DataDir::new(dir.path()).db()).unwrap()), 0);
}

#[tokio::test]
async fn a_long_history_comes_in_pages() {
    let app = spawn_app().await;
    app.with_purposes().await;
    for i in 0..5 {
        let kind = if i % 2 == 0 { "consent.granted" } else { "consent.withdrawn" };
        app.record(json!({"type": kind, "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    }
    let page = |after: u64| {
        let url = app.url(&format!("/v1/subjects/T-1/history?limit=2&after={after}"));
        let client = app.client.clone();
        let key = app.audit.clone();
        async move { client.get(url).bearer_auth(key).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let p = page(after).await;
        let events = p["events"].as_array().unwrap();
        assert!(events.len() <= 2, "{p}");
        seen.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
        after = p["next_after"].as_u64().unwrap();
        if p["has_more"] != true {
            break;
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    // Without paging parameters a short history is whole, as before.
    let whole: serde_json::Value = app.history(&app.audit, "T-1").await.json().await.unwrap();
    assert_eq!(whole["events"].as_array().unwrap().len(), 5);
    assert_eq!(whole["has_more"], false);
    let r =
        app.client.get(app.url("/v1/subjects/T-1/history?limit=1001")).bearer_auth(&app.audit).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_batch_over_the_limit_is_refused_without_reading_the_rest() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let before = app.log_size().await;
    let one =
        json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()}).to_string();
    // 1001 events, then bytes that are not JSON at all: the parse stops at the limit, so the
    // answer is the limit (422), not a syntax error at the end (400).
    let body = format!("[{}, this is not json", vec![one; 1001].join(","));
    let r = app
        .client
        .post(app.url("/v1/events/batch"))
        .bearer_auth(&app.record)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let p = crate::helpers::assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("at most 1000"), "{p}");
    assert_eq!(app.log_size().await, before);
}

/// The writer's queue is bounded: with room for one waiting append, a burst of appends gets
/// "busy" for some (503 with Retry-After over HTTP), and every append that was answered with
/// a receipt is in the log.
#[test]
fn a_full_writer_queue_answers_busy_and_loses_nothing() {
    use consent_ledger::ledger::{DataDir, Ledger, Options};
    use consent_ledger::service::{EventInput, Service, ServiceError};
    let dir = tempfile::tempdir().unwrap();
    let options = Options { writer_queue: 1, ..Options::new("test.example/consent-ledger") };
    let service = Service::new(Ledger::open_with(&DataDir::new(dir.path()), options).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let c = consent_ledger::domain::ControllerId::parse("council").unwrap();
    let (ok, busy) = rt.block_on(async {
        let service = std::sync::Arc::new(service);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (service, c) = (service.clone(), c.clone());
            tasks.push(tokio::spawn(async move {
                let mut e = EventInput::by_person(
                    consent_ledger::domain::EventType::ObjectionRaised,
                    consent_ledger::domain::Method::Api,
                );
                e.subject = Some(consent_ledger::domain::SubjectId::parse(format!("T-{i}")).unwrap());
                service.record(&c, vec![e], consent_ledger::service::now()).await
            }));
        }
        let (mut ok, mut busy) = (Vec::new(), 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(mut r) => ok.push(r.pop().unwrap()),
                Err(ServiceError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        for r in &ok {
            assert_eq!(service.receipt(&c, r.event.id).unwrap().seq, r.seq, "an acknowledged append is missing");
        }
        (ok.len(), busy)
    });
    assert!(busy > 0, "200 appends at once never found the queue of one full");
    assert_eq!(ok + busy, 200);
}
