//! Mailing systems: RFC 8058 one-click unsubscribe, SMS STOP/START, the change feed (paged
//! and server-sent events), signed decisions and read-your-writes checks.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consent_ledger::service::access::Role;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, new_keys, spawn_app, staff, TestApp};

async fn linked_subscriber(app: &TestApp) {
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": {"channel": "email", "address": "jane@example.org"}, "actor": staff()})).await;
    app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": {"channel": "sms", "address": "+447700900123"}, "actor": staff()})).await;
}

fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn one_click_unsubscribe_withdraws_and_a_get_changes_nothing() {
    let app = spawn_app().await;
    linked_subscriber(&app).await;
    let q = [("email", "jane@example.org"), ("purpose", "newsletter"), ("unsubscribe", "true")];
    let a = app.check(&q).await;
    assert_eq!(a["permitted"], true);
    assert_eq!(a["list_unsubscribe_post"], "List-Unsubscribe=One-Click");
    let header = a["list_unsubscribe"].as_str().unwrap();
    let url = header.trim_start_matches('<').trim_end_matches('>').to_owned();
    assert!(url.starts_with(&format!("{}/u/", app.address)), "{url}");
    assert!(!url.to_lowercase().contains("jane"), "the link must not carry the address");

    // A mail scanner following the link changes nothing.
    let size = app.log_size().await;
    let client = no_redirect_client();
    let page = client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("The Voice newsletter") && html.contains("<form method=\"post\""));
    assert_eq!(app.log_size().await, size);
    assert_eq!(app.check(&q[..2]).await["permitted"], true);

    // The RFC 8058 POST unsubscribes, with 200 and no redirect.
    let post = || {
        client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("location").is_none());
    let after = app.check(&q[..2]).await;
    assert_eq!(after["permitted"], false);
    assert_eq!(after["reason"], "consent_withdrawn");
    let receipt: Value =
        app.get_event(&app.audit, after["decided_by"][0].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(receipt["event"]["method"], "email_link");
    assert_eq!(receipt["event"]["channel"], "email");
    assert_eq!(receipt["event"]["recorded_by"], "unsubscribe-link", "the signed event says what recorded it");
    // A second POST records nothing new.
    let size = app.log_size().await;
    assert_eq!(post().await.unwrap().status(), 200);
    assert_eq!(app.log_size().await, size);

    // A tampered link gets a clear page and changes nothing.
    let mut bad = url.clone();
    bad.insert(bad.len() - 3, 'x');
    let r = client.post(&bad).body("List-Unsubscribe=One-Click").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("This link is not valid"));
    let r = client.get(format!("{}/u/not-a-token", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // A POST without the one-click marker does nothing.
    let r = client.post(&url).body("something=else").send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(app.log_size().await, size);
    // Unsubscribe links are for email.
    assert_problem(
        app.check_raw(&app.check, &[("subject", "T-1"), ("purpose", "newsletter"), ("unsubscribe", "true")]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
}

#[tokio::test]
async fn sms_stop_and_start_follow_the_keywords() {
    let app = spawn_app().await;
    linked_subscriber(&app).await;
    let webhook = new_keys(app.dir.path(), "council", &[Role::SmsWebhook]);
    let sms = [("phone", "+447700900123"), ("purpose", "newsletter"), ("channel", "sms")];
    assert_eq!(app.check(&sms).await["permitted"], true);

    // A provider's form-encoded webhook, secret in the URL.
    let r = app
        .client
        .post(app.url(&format!("/v1/inbound/sms?key={webhook}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("From=%2B447700900123&To=%2B447700900999&Body=%20Stop%20&MessageSid=SM1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let twiml = r.text().await.unwrap();
    assert!(twiml.contains("<Response><Message>You will get no more marketing texts"), "{twiml}");
    let stopped = app.check(&sms).await;
    assert_eq!(stopped["permitted"], false);
    assert_eq!(stopped["reason"], "marketing_objection");
    let receipt: Value =
        app.get_event(&app.audit, stopped["decided_by"][0].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(receipt["event"]["recorded_by"], "sms-provider");
    // Service texts (contract) still go.
    assert_eq!(
        app.check(&[("phone", "+447700900123"), ("purpose", "repairs-updates"), ("channel", "sms")]).await["permitted"],
        true
    );
    // Email marketing is untouched by an SMS stop.
    assert_eq!(app.check(&[("email", "jane@example.org"), ("purpose", "newsletter")]).await["permitted"], true);
    // The provider retrying the same message records nothing new.
    let size = app.log_size().await;
    let r = app
        .client
        .post(app.url(&format!("/v1/inbound/sms?key={webhook}")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("From=%2B447700900123&Body=STOP&MessageSid=SM1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(app.log_size().await, size);

    // HELP answers and records nothing.
    let r: Value = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .json(&json!({"from": "+447700900123", "body": "help"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["action"], "help");
    assert!(r["reply"].as_str().unwrap().contains("STOP"));
    assert_eq!(app.log_size().await, size);

    // START lifts the stop.
    let r: Value = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .json(&json!({"from": "+447700900123", "body": "Start", "message_id": "M-2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["action"], "start");
    assert_eq!(app.check(&sms).await["permitted"], true);

    // Only the webhook secret is accepted.
    let body = json!({"from": "+447700900123", "body": "stop"});
    let r = app.client.post(app.url("/v1/inbound/sms")).bearer_auth(&app.record).json(&body).send().await.unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = app.client.post(app.url("/v1/inbound/sms")).json(&body).send().await.unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let r = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .json(&json!({"from": "0770", "body": "stop"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // A provider's form without the message text, or a JSON body with a wrong type.
    let size = app.log_size().await;
    let r = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .form(&[("From", "+447700900123"), ("AccountSid", "AC1")])
        .send()
        .await
        .unwrap();
    let problem = assert_problem(r, StatusCode::BAD_REQUEST).await;
    assert!(problem["detail"].as_str().unwrap().contains("body"), "{problem}");
    let r = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .json(&json!({"from": 447700900123u64, "body": "stop"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST).await;
    // Neither a form nor JSON.
    let r = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .header("content-type", "text/plain")
        .body("From=%2B447700900123&Body=STOP")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(app.log_size().await, size);
    assert_eq!(app.check(&sms).await["permitted"], true);
}

#[tokio::test]
async fn the_feed_pages_and_streams_only_this_controllers_events() {
    let app = spawn_app().await;
    linked_subscriber(&app).await;
    assert_eq!(app.put_purpose(&app.other, "newsletter", &crate::helpers::newsletter()).await.status(), 200);
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = app
            .client
            .get(app.url(&format!("/v1/feed?after={after}&limit=2")))
            .bearer_auth(&app.check)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in page["events"].as_array().unwrap() {
            assert_eq!(e["event"]["controller"], "council");
            seen.push(e["seq"].as_u64().unwrap());
        }
        after = page["next_after"].as_u64().unwrap();
        if page["has_more"] != true {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "2 purposes, a grant and two links: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert_problem(
        app.client.get(app.url("/v1/feed?limit=0")).bearer_auth(&app.check).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // The stream resumes after Last-Event-ID and then delivers new events as they commit.
    let mut stream = app
        .client
        .get(app.url("/v1/feed/stream"))
        .bearer_auth(&app.check)
        .header("last-event-id", seen[2].to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let read_until = |needle: String| needle;
    let want = read_until(format!("id: {}\n", seen[4]));
    while !text.contains(&want) {
        let chunk =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains(&format!("id: {}\n", seen[2])), "resumed after Last-Event-ID");
    assert!(text.contains(&format!("id: {}\n", seen[3])));
    let r = app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .await;
    let want = format!("id: {}\nevent: consent.withdrawn\n", r["seq"]);
    while !text.contains(&want) {
        let chunk =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_signed_decision_verifies_with_the_published_key() {
    let app = spawn_app().await;
    linked_subscriber(&app).await;
    let a = app.check(&[("email", "jane@example.org"), ("purpose", "newsletter"), ("signed", "true")]).await;
    let signed = &a["signed_decision"];
    let d = &signed["decision"];
    assert_eq!(d["type"], "check.decision");
    assert_eq!(d["permitted"], a["permitted"]);
    assert_eq!(d["contact"]["kind"], "email");
    assert!(d["log_size"].as_u64().unwrap() >= 5);
    assert!(!signed.to_string().contains("jane"));
    let keys: Value = app.client.get(app.url("/v1/keys")).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["keys"][0]["key_id"], signed["key_id"]);
    let pk: [u8; 32] = B64.decode(keys["keys"][0]["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let pk = VerifyingKey::from_bytes(&pk).unwrap();
    let sig: [u8; 64] = B64.decode(signed["signature"].as_str().unwrap()).unwrap().try_into().unwrap();
    let bytes = serde_json_canonicalizer::to_vec(d).unwrap();
    assert!(pk.verify(&bytes, &Signature::from_bytes(&sig)).is_ok());
    let mut forged = d.clone();
    forged["permitted"] = json!(!d["permitted"].as_bool().unwrap());
    assert!(pk.verify(&serde_json_canonicalizer::to_vec(&forged).unwrap(), &Signature::from_bytes(&sig)).is_err());
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/decision.schema.json")).unwrap(),
    )
    .unwrap();
    assert!(jsonschema::validator_for(&schema).unwrap().is_valid(signed));
}

#[tokio::test]
async fn min_seq_reads_your_writes_and_refuses_a_seq_beyond_the_log() {
    let app = spawn_app().await;
    linked_subscriber(&app).await;
    let r = app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .await;
    let seq = r["seq"].as_u64().unwrap().to_string();
    let a = app.check(&[("subject", "T-1"), ("purpose", "newsletter"), ("min_seq", &seq)]).await;
    assert_eq!(a["permitted"], false);
    assert!(a["log_size"].as_u64().unwrap() >= r["seq"].as_u64().unwrap());
    let resp = app.check_raw(&app.check, &[("subject", "T-1"), ("purpose", "newsletter"), ("min_seq", "999999")]).await;
    assert_problem(resp, StatusCode::UNPROCESSABLE_ENTITY).await;
}
