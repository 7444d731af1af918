//! Downstream systems: each registered system reads only the events that concern it (paged
//! and as server-sent events), acknowledges what it applied with its own Ed25519 signature
//! (recorded in the log, verifiable offline from an export), and what it has not
//! acknowledged past its deadline is overdue (`GET /v1/downstream/overdue`, `/metrics`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consent_ledger::canonical::to_canonical_bytes;
use consent_ledger::domain::{ControllerId, Token};
use consent_ledger::signing::{Ed25519Signer, Signer, Verifier as _};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, staff, with_keys, TestApp};

/// A system's own signing key (what a mailing house keeps), and its C2SP verifier key.
fn system_key(seed: u8, name: &str) -> (Ed25519Signer, String) {
    let signer = Ed25519Signer::new(name.into(), SigningKey::from_bytes(&[seed; 32])).unwrap();
    let vkey = signer.verifier().vkey();
    (signer, vkey)
}

fn system_api_key(app: &TestApp, system: &str) -> String {
    let (controller, system) = (ControllerId::parse("council").unwrap(), Token::parse(system).unwrap());
    with_keys(app.dir.path(), move |ks| ks.create_for_system(&controller, &system).unwrap())
}

async fn register(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.client.put(app.url(&format!("/v1/downstream/{id}"))).bearer_auth(&app.admin).json(&body).send().await.unwrap()
}

async fn feed(app: &TestApp, key: &str) -> Vec<Value> {
    let page: Value = app.get_json(key, "/v1/downstream/feed").await;
    page["events"].as_array().unwrap().clone()
}

/// A statement signed by `signer`, as a system posts it.
fn ack(signer: &Ed25519Signer, statement: Value) -> Value {
    let sig = signer.sign(&to_canonical_bytes(&statement).unwrap());
    json!({"statement": statement, "signature": B64.encode(sig), "key_id": hex::encode(signer.verifier().key_id())})
}

async fn post_ack(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client.post(app.url("/v1/downstream/acknowledgements")).bearer_auth(key).json(body).send().await.unwrap()
}

/// Two systems: a mailing house for the newsletter by post and email, and an SMS contractor
/// for repair texts. Answers their API keys and signing keys.
async fn two_systems(app: &TestApp) -> ((String, Ed25519Signer), (String, Ed25519Signer)) {
    app.with_purposes().await;
    let (mail_signer, mail_vkey) = system_key(1, "acme-mailing");
    let (sms_signer, sms_vkey) = system_key(2, "text-co");
    let r = register(
        app,
        "acme-mailing",
        json!({"name": "Acme Mailing Ltd", "purposes": ["newsletter"],
        "channels": ["post", "email"], "vkey": mail_vkey}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["event"]["type"], "downstream.registered");
    assert_eq!(receipt["event"]["downstream"]["deadline_seconds"], 172800, "48 hours unless said");
    let r = register(
        app,
        "text-co",
        json!({"name": "Text Co", "purposes": ["repairs-updates"], "channels": ["sms"],
        "vkey": sms_vkey}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    ((system_api_key(app, "acme-mailing"), mail_signer), (system_api_key(app, "text-co"), sms_signer))
}

#[tokio::test]
async fn each_system_reads_only_the_events_that_concern_it() {
    let app = spawn_app().await;
    let ((mail, _), (sms, _)) = two_systems(&app).await;
    // Registration rules: an unknown purpose, a key that is not one, a reserved id, a repeat.
    let bad = json!({"name": "X", "purposes": ["nothing"], "vkey": system_key(3, "x").1});
    assert_problem(register(&app, "x", bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let bad = json!({"name": "X", "purposes": ["newsletter"], "vkey": "not-a-key"});
    assert_problem(register(&app, "x", bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let fine = json!({"name": "X", "purposes": ["newsletter"], "vkey": system_key(3, "x").1});
    assert_problem(register(&app, "feed", fine.clone()).await, StatusCode::BAD_REQUEST).await;

    let e = |v: Value| v["event"]["id"].as_str().unwrap().to_owned();
    let granted = e(app
        .record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .await);
    let _sms_no = app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter",
        "channel": "sms", "actor": staff()}))
        .await;
    let post_no = e(app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter",
        "channel": "post", "actor": staff()}))
        .await);
    let repairs_no = e(app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "repairs-updates",
        "channel": "sms", "actor": staff()}))
        .await);
    let stop_texts =
        e(app.record(json!({"type": "objection.raised", "subject": "T-3", "channel": "sms", "actor": staff()})).await);
    app.record(json!({"type": "contact.linked", "subject": "T-2", "contact": {"channel": "email", "address": "a@example.org"}, "actor": staff()})).await;
    let erased = e(app.record(json!({"type": "subject.erased", "subject": "T-2", "actor": staff()})).await);

    let ids = |events: Vec<Value>| -> Vec<String> {
        events.iter().map(|r| r["event"]["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(feed(&app, &mail).await), [granted.clone(), post_no.clone(), erased.clone()]);
    assert_eq!(ids(feed(&app, &sms).await), [repairs_no, stop_texts, erased]);

    // Pages: one at a time, resuming after next_after.
    let page: Value = app.get_json(&mail, "/v1/downstream/feed?limit=1").await;
    assert_eq!(page["events"][0]["event"]["id"], granted.as_str());
    assert_eq!(page["has_more"], true);
    let next = page["next_after"].as_u64().unwrap();
    let page: Value = app.get_json(&mail, &format!("/v1/downstream/feed?limit=1&after={next}")).await;
    assert_eq!(page["events"][0]["event"]["id"], post_no.as_str());

    // Server-sent events, the same events.
    let mut stream = app.get_as(&mail, "/v1/downstream/feed/stream").await;
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while text.matches("\n\n").count() < 3 {
        let chunk =
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&granted) && text.contains(&post_no), "{text}");
    assert!(!text.contains("repairs-updates"), "another system's events are not in the stream: {text}");

    // Keys: a system's key reads only its feed; other keys cannot read a system's feed.
    assert_problem(app.get_as(&mail, "/v1/feed").await, StatusCode::FORBIDDEN).await;
    assert_problem(app.get_as(&app.audit, "/v1/downstream/feed").await, StatusCode::FORBIDDEN).await;
    let list: Value = app.get_json(&app.audit, "/v1/downstream").await;
    assert_eq!(list["systems"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_signed_acknowledgement_is_checked_recorded_and_verifies_offline() {
    let app = spawn_app().await;
    let ((mail, mail_signer), (sms, sms_signer)) = two_systems(&app).await;
    let withdrawn = app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter",
        "channel": "email", "actor": staff()}))
        .await;
    let withdrawn_id = withdrawn["event"]["id"].as_str().unwrap().to_owned();
    let repairs = app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "repairs-updates",
        "channel": "sms", "actor": staff()}))
        .await;
    let statement =
        json!({"system": "acme-mailing", "event_ids": [withdrawn_id], "applied_at": "2026-11-30T10:00:00Z"});
    let size = app.log_size().await;

    // Refused: another system's signature, a statement for another system, another system's event.
    assert_problem(post_ack(&app, &mail, &ack(&sms_signer, statement.clone())).await, StatusCode::UNAUTHORIZED).await;
    let mut forged = ack(&mail_signer, statement.clone());
    forged["statement"]["applied_at"] = json!("2026-11-30T11:00:00Z");
    assert_problem(post_ack(&app, &mail, &forged).await, StatusCode::UNAUTHORIZED).await;
    let theirs = json!({"system": "text-co", "event_ids": [withdrawn_id], "applied_at": "2026-11-30T10:00:00Z"});
    assert_problem(post_ack(&app, &mail, &ack(&mail_signer, theirs)).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let not_mine =
        json!({"system": "acme-mailing", "event_ids": [repairs["event"]["id"]], "applied_at": "2026-11-30T10:00:00Z"});
    assert_problem(post_ack(&app, &mail, &ack(&mail_signer, not_mine)).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_problem(post_ack(&app, &app.record, &ack(&mail_signer, statement.clone())).await, StatusCode::FORBIDDEN)
        .await;
    assert_eq!(app.log_size().await, size, "nothing refused was recorded");
    let _ = sms;

    let body = ack(&mail_signer, statement.clone());
    let r = post_ack(&app, &mail, &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["event"]["type"], "downstream.acknowledged");
    assert_eq!(receipt["event"]["acknowledgement"]["statement"], statement);
    // Posted again: the same event, nothing new.
    let again: Value = post_ack(&app, &mail, &body).await.json().await.unwrap();
    assert_eq!(again["event"]["id"], receipt["event"]["id"]);
    assert_eq!(app.log_size().await, size + 1);

    // As many as the API promises: 1000 event ids in one signed acknowledgement.
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"type": "consent.withdrawn", "subject": format!("B-{i}"), "purpose": "newsletter", "actor": staff()}))
        .collect();
    let r = app.post_batch(&app.record, &json!(batch)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let ids: Vec<Value> = r.json::<Vec<Value>>().await.unwrap().iter().map(|r| r["event"]["id"].clone()).collect();
    let many = json!({"system": "acme-mailing", "event_ids": ids, "applied_at": "2026-11-30T10:00:00Z"});
    assert_eq!(post_ack(&app, &mail, &ack(&mail_signer, many)).await.status(), StatusCode::CREATED);

    // Offline, from an export: the acknowledgement is a signed event of the log, and the
    // statement inside it verifies with the mailing house's own public key.
    crate::audit::checkpoint_covering(&app, app.log_size().await).await;
    let export = app.get_as(&app.audit, "/v1/export").await.text().await.unwrap();
    let line: Value = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["kind"] == "event" && l["event"]["type"] == "downstream.acknowledged")
        .expect("the acknowledgement is in the export");
    let a = &line["event"]["acknowledgement"];
    let public = VerifyingKey::from_bytes(&SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes()).unwrap();
    let sig: [u8; 64] = B64.decode(a["signature"].as_str().unwrap()).unwrap().try_into().unwrap();
    assert!(public.verify_strict(&to_canonical_bytes(&a["statement"]).unwrap(), &Signature::from_bytes(&sig)).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.ndjson");
    std::fs::write(&file, &export).unwrap();
    let out = crate::helpers::bin().args(["verify", "--export"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // The person's subject access bundle says which systems confirmed applying the
    // withdrawal, with the acknowledgement itself, proven like every event.
    let bundle = app.get_as(&app.audit, "/v1/subjects/T-1/access-report").await.text().await.unwrap();
    let b: Value = serde_json::from_str(&bundle).unwrap();
    let entry = b["bundle"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["receipt"]["event"]["id"] == withdrawn_id.as_str())
        .unwrap();
    assert_eq!(
        entry["told"],
        json!([{"system": "acme-mailing", "name": "Acme Mailing Ltd", "acknowledgement": receipt["event"]["id"]}])
    );
    let repairs_entry = b["bundle"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["receipt"]["event"]["id"] == repairs["event"]["id"])
        .unwrap();
    assert_eq!(repairs_entry["told"], json!([{"system": "text-co", "name": "Text Co"}]), "told, not confirmed");
    assert_eq!(b["bundle"]["acknowledgements"][0]["receipt"]["event"]["id"], receipt["event"]["id"]);
    let file = dir.path().join("access.json");
    std::fs::write(&file, &bundle).unwrap();
    let (ok, said) = crate::subject_access::verify(&file, &[]);
    assert!(ok, "{said}");
    let html = app
        .client
        .get(app.url("/v1/subjects/T-1/access-report"))
        .bearer_auth(&app.audit)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Acme Mailing Ltd confirmed applying it at 2026-11-30T10:00:00Z"), "{html}");
    assert!(html.contains("Text Co has not yet confirmed applying it"));
}

#[tokio::test]
async fn unacknowledged_events_past_the_deadline_are_overdue_until_acknowledged() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let (signer, vkey) = system_key(1, "acme-mailing");
    let r = register(
        &app,
        "acme-mailing",
        json!({"name": "Acme Mailing Ltd", "purposes": ["newsletter"],
        "deadline_seconds": 1, "vkey": vkey}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let key = system_api_key(&app, "acme-mailing");
    let overdue = || async {
        let v: Value = app.get_json(&app.audit, "/v1/downstream/overdue").await;
        v["systems"][0]["overdue"].as_array().unwrap().clone()
    };
    let w = app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .await;
    assert!(overdue().await.is_empty(), "not due yet");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let late = overdue().await;
    assert_eq!(late.len(), 1);
    assert_eq!(late[0]["id"], w["event"]["id"]);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("consent_ledger_downstream_overdue{controller=\"council\",system=\"acme-mailing\"} 1"),
        "{metrics}"
    );
    assert_problem(app.get_as(&key, "/v1/downstream/overdue").await, StatusCode::FORBIDDEN).await;

    let seq = w["seq"].as_u64().unwrap();
    let statement = json!({"system": "acme-mailing", "up_to_seq": seq, "applied_at": chrono::Utc::now().to_rfc3339()});
    assert_eq!(post_ack(&app, &key, &ack(&signer, statement)).await.status(), StatusCode::CREATED);
    assert!(overdue().await.is_empty(), "acknowledged");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("system=\"acme-mailing\"} 0"), "{metrics}");
}

#[tokio::test]
async fn overdue_follows_new_events_acknowledgements_by_id_and_a_new_registration_between_looks() {
    // Each look goes on from where the last one got to (the events already due are not read
    // again): what it answers must still be every due, unacknowledged event, whatever
    // happened in between.
    let app = spawn_app().await;
    app.with_purposes().await;
    let (signer, vkey) = system_key(2, "acme-mailing");
    let body = |purposes: Value| json!({"name": "Acme Mailing Ltd", "purposes": purposes, "deadline_seconds": 1, "vkey": vkey});
    assert_eq!(register(&app, "acme-mailing", body(json!(["newsletter"]))).await.status(), StatusCode::CREATED);
    let key = system_api_key(&app, "acme-mailing");
    let overdue = || async {
        let v: Value = app.get_json(&app.audit, "/v1/downstream/overdue").await;
        let ids: Vec<Value> = v["systems"][0]["overdue"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
        ids
    };
    let withdraw = |subject: &'static str| json!({"type": "consent.withdrawn", "subject": subject, "purpose": "newsletter", "actor": staff()});
    let first = app.record(withdraw("T-1")).await["event"]["id"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(overdue().await, vec![first.clone()]);
    // A second event: the next look finds it after the first, which it does not read again.
    let second = app.record(withdraw("T-2")).await["event"]["id"].clone();
    assert_eq!(overdue().await, vec![first.clone()], "the second is not due yet");
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(overdue().await, vec![first.clone(), second.clone()]);
    // Acknowledged by id: the first leaves the list the look kept.
    let statement =
        json!({"system": "acme-mailing", "event_ids": [first], "applied_at": chrono::Utc::now().to_rfc3339()});
    assert_eq!(post_ack(&app, &key, &ack(&signer, statement)).await.status(), StatusCode::CREATED);
    assert_eq!(overdue().await, vec![second.clone()]);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("system=\"acme-mailing\"} 1"), "{metrics}");
    // Registered again for other purposes only: the newsletter withdrawals no longer concern
    // it, so nothing the earlier looks kept is answered.
    assert_eq!(register(&app, "acme-mailing", body(json!(["repairs-updates"]))).await.status(), StatusCode::CREATED);
    assert_eq!(overdue().await, Vec::<Value>::new());
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("system=\"acme-mailing\"} 0"), "{metrics}");
}

#[tokio::test]
async fn a_system_matches_its_addresses_by_blind_index_without_the_ledger_giving_any_out() {
    let app = spawn_app().await;
    let ((mail, _), _) = two_systems(&app).await;
    let linked = app
        .record(json!({"type": "contact.linked", "subject": "T-1",
        "contact": {"channel": "email", "address": "Jane@Example.org"}, "actor": staff()}))
        .await;
    let body = json!({"addresses": [{"channel": "email", "address": "jane@example.org"}, {"channel": "sms", "address": "07700 900123"}]});
    let r = app.client.post(app.url("/v1/downstream/lookup")).bearer_auth(&mail).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["contacts"][0], linked["event"]["contact"]);
    assert_eq!(answer["contacts"][1]["kind"], "tel");
    // As many as the API promises: 1000 addresses in one request.
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"channel": "email", "address": format!("tenant.number.{i}@example-housing.org.uk")}))
        .collect();
    let r = app
        .client
        .post(app.url("/v1/downstream/lookup"))
        .bearer_auth(&mail)
        .json(&json!({"addresses": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["contacts"].as_array().unwrap().len(), 1000);
    let bad = json!({"addresses": [{"channel": "email", "address": "not an address"}]});
    let r = app.client.post(app.url("/v1/downstream/lookup")).bearer_auth(&mail).json(&bad).send().await.unwrap();
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(!problem.to_string().contains("not an address"), "no address in an error");
    let r = app.client.post(app.url("/v1/downstream/lookup")).bearer_auth(&app.check).json(&body).send().await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn the_follow_client_applies_each_event_once_and_acknowledges_only_what_it_applied() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("system-key.json");
    let out = crate::helpers::bin()
        .args(["downstream", "keygen", "--name", "acme-mailing", "--out"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let vkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r =
        register(&app, "acme-mailing", json!({"name": "Acme Mailing Ltd", "purposes": ["newsletter"], "vkey": vkey}))
            .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let api_key = system_api_key(&app, "acme-mailing");
    let id = |v: Value| v["event"]["id"].as_str().unwrap().to_owned();
    let w1 = id(app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .await);
    app.record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "repairs-updates", "channel": "sms", "actor": staff()})).await;
    let w2 = id(app.record(json!({"type": "subject.erased", "subject": "T-2", "actor": staff()})).await);

    let applied = dir.path().join("applied.ndjson");
    let state = dir.path().join("state");
    let follow = |exec: String| {
        crate::helpers::bin()
            .args(["downstream", "follow", "--url", &app.address, "--key", &api_key, "--system", "acme-mailing"])
            .arg("--signing-key")
            .arg(&key_file)
            .args(["--exec", &exec, "--once", "--state"])
            .arg(&state)
            .output()
            .unwrap()
    };
    let append = format!("cat >> {}", applied.display());
    let out = follow(append.clone());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        std::fs::read_to_string(&applied).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<&str> = lines.iter().map(|l| l["event"]["id"].as_str().unwrap()).collect();
    assert_eq!(got, [w1.as_str(), w2.as_str()], "its two events, in order, each once");
    // The acknowledgement is in the log, naming exactly what was applied.
    let all: Value = app.get_json(&app.audit, "/v1/feed?limit=1000").await;
    let acks: Vec<&Value> =
        all["events"].as_array().unwrap().iter().filter(|r| r["event"]["type"] == "downstream.acknowledged").collect();
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0]["event"]["acknowledgement"]["statement"]["event_ids"], json!([w1, w2]));

    // Run again: nothing new to apply.
    let out = follow(append.clone());
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied 0 event(s)"));
    assert_eq!(std::fs::read_to_string(&applied).unwrap().lines().count(), 2);

    // A command that fails: the follower stops there and acknowledges nothing for it.
    let w3 = id(app
        .record(json!({"type": "consent.withdrawn", "subject": "T-3", "purpose": "newsletter", "actor": staff()}))
        .await);
    let out = follow("exit 3".into());
    assert!(!out.status.success());
    let size = app.log_size().await;
    let out = follow(append);
    assert!(out.status.success());
    let last: Value = serde_json::from_str(std::fs::read_to_string(&applied).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["event"]["id"], w3.as_str(), "applied on the next run");
    assert_eq!(app.log_size().await, size + 1, "and acknowledged then");
}

/// What the test's webhook receiver saw: the secret to verify with, how many requests to
/// refuse first, and the ids of the deliveries it took (each verified).
#[derive(Default)]
struct Receiver {
    secret: std::sync::Mutex<Option<String>>,
    refuse: std::sync::atomic::AtomicUsize,
    refused: std::sync::atomic::AtomicUsize,
    taken: std::sync::Mutex<Vec<(String, Value)>>,
    bad: std::sync::Mutex<Vec<String>>,
}

async fn receive(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    seen: actix_web::web::Data<Receiver>,
) -> actix_web::HttpResponse {
    use std::sync::atomic::Ordering;
    if seen.refuse.load(Ordering::SeqCst) > 0 {
        seen.refuse.fetch_sub(1, Ordering::SeqCst);
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return actix_web::HttpResponse::InternalServerError().finish();
    }
    // The off-the-shelf Standard Webhooks verifier, over the exact body and headers.
    let mut headers = http_types_1::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if let Some(v) = req.headers().get(name) {
            headers.insert(name, http_types_1::HeaderValue::from_bytes(v.as_bytes()).unwrap());
        }
    }
    let secret = seen.secret.lock().unwrap().clone().unwrap_or_default();
    let id = req.headers().get("webhook-id").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    match standardwebhooks::Webhook::new(&secret).and_then(|wh| wh.verify(&body, &headers)) {
        Ok(()) => seen.taken.lock().unwrap().push((id, serde_json::from_slice(&body).unwrap())),
        Err(e) => seen.bad.lock().unwrap().push(format!("{id}: {e:?}")),
    }
    actix_web::HttpResponse::NoContent().finish()
}

#[tokio::test]
async fn webhooks_are_signed_as_standard_webhooks_and_retried_until_each_event_arrives_once_in_order() {
    let seen = actix_web::web::Data::new(Receiver::default());
    seen.refuse.store(3, std::sync::atomic::Ordering::SeqCst);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hooks/consent", listener.local_addr().unwrap());
    let for_server = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .app_data(for_server.clone())
                    .route("/hooks/consent", actix_web::web::post().to(receive))
            })
            .workers(1)
            .listen(listener)
            .unwrap()
            .run()
            .await
        })
    });

    let app = spawn_app().await;
    app.with_purposes().await;
    let (_, vkey) = system_key(1, "acme-mailing");
    let r = register(
        &app,
        "acme-mailing",
        json!({"name": "Acme Mailing Ltd", "purposes": ["newsletter"],
        "vkey": vkey, "webhook_url": hook}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let s: Value = app.get_json(&app.admin, "/v1/downstream/acme-mailing/webhook-secret").await;
    let secret = s["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    *seen.secret.lock().unwrap() = Some(secret);
    let other = app.client.get(app.url("/v1/downstream/acme-mailing/webhook-secret")).bearer_auth(&app.audit).send();
    assert_problem(other.await.unwrap(), StatusCode::FORBIDDEN).await;

    let id = |v: Value| v["event"]["id"].as_str().unwrap().to_owned();
    let mut want = Vec::new();
    for s in ["T-1", "T-2", "T-3"] {
        want.push(id(app
            .record(json!({"type": "consent.withdrawn", "subject": s, "purpose": "newsletter", "actor": staff()}))
            .await));
        // Not this system's: never pushed to it.
        app.record(json!({"type": "consent.withdrawn", "subject": s, "purpose": "repairs-updates", "channel": "sms", "actor": staff()})).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen.taken.lock().unwrap().len() < want.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(seen.bad.lock().unwrap().is_empty(), "every delivery verifies: {:?}", seen.bad.lock().unwrap());
    assert_eq!(seen.refused.load(std::sync::atomic::Ordering::SeqCst), 3, "the receiver failed three times");
    let taken = seen.taken.lock().unwrap().clone();
    let ids: Vec<&str> = taken.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, want.iter().map(String::as_str).collect::<Vec<_>>(), "each event once, in order");
    for (id, body) in &taken {
        assert_eq!(body["type"], "consent.withdrawn");
        assert_eq!(body["data"]["event"]["id"], id.as_str(), "the body is the event's receipt");
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("consent_ledger_webhook_deliveries_total{delivered=\"true\"} 3"), "{metrics}");
}
