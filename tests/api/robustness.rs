//! Parser robustness: arbitrary bytes fed to every parser that takes outside input never
//! panic, and over HTTP every rejection is a 4xx answer (a problem document on the API, a
//! page on the people's pages), never a 5xx.

use consent_ledger::domain::{Channel, ContactPoint, ControllerId, PurposeId, RecipientId, SubjectId, Token};
use consent_ledger::format::StoredEvent;
use consent_ledger::log::checkpoint::{open_note, Checkpoint};
use consent_ledger::service::access::Role;
use consent_ledger::signing::{Ed25519Signer, Verifier};
use proptest::prelude::*;
use serde_json::json;

use crate::helpers::{new_keys, spawn_app, staff};

/// Text that looks a little like what each parser expects, and sometimes is garbage.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9@.+:_ -]{0,40}",
        "[\\x00-\\x7f]{0,64}",
        Just("+447700900123".to_owned()),
        Just("jane@example.org".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_domains_parsers_never_panic(s in texty()) {
        for c in [Channel::Email, Channel::Sms, Channel::Post] {
            let _ = ContactPoint::parse(c, &s);
        }
        let _ = SubjectId::parse(s.clone());
        let _ = ControllerId::parse(s.clone());
        let _ = PurposeId::parse(s.clone());
        let _ = RecipientId::parse(s.clone());
        let _ = Token::parse(s.clone());
        let _ = Checkpoint::parse_text(&s);
    }

    #[test]
    fn stored_records_and_signed_notes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), note in texty()) {
        if let Ok(stored) = StoredEvent::decode(&bytes) {
            let _ = stored.doc();
        }
        let signer = Ed25519Signer::generate("example.org/log".into()).expect("key");
        let v = signer.verifier();
        let keys: [(&str, &dyn Verifier); 1] = [("example.org/log", &v)];
        let _ = open_note(&note, &keys);
        let _ = open_note(&String::from_utf8_lossy(&bytes), &keys);
    }
}

/// Arbitrary bodies at the HTTP parsers: events, NDJSON check lines, SMS webhooks (form and
/// JSON), the preference form and link tokens. Every answer is below 500; the API's refusals
/// are problem documents.
#[test]
fn arbitrary_bodies_get_4xx_never_5xx() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let app = rt.block_on(async {
        let app = spawn_app().await;
        app.with_purposes().await;
        app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
            .await;
        app
    });
    let webhook = new_keys(app.dir.path(), "council", &[Role::SmsWebhook]);
    let link = rt.block_on(app.preference_link("T-1"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 64, ..ProptestConfig::default() });
    let bodies = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        texty().prop_map(String::into_bytes),
        (texty(), texty()).prop_map(|(a, b)| format!("{{\"type\":\"consent.granted\",\"subject\":{a:?},\"purpose\":{b:?},\"actor\":{{\"kind\":\"system\"}}}}").into_bytes()),
        (texty(), texty()).prop_map(|(a, b)| format!("From={a}&Body={b}&MessageSid=SM1").into_bytes()),
    ];
    runner
        .run(&bodies, |body| {
            rt.block_on(async {
                let post = |path: String, key: Option<&str>, ct: &'static str| {
                    let mut req = app.client.post(app.url(&path)).header("content-type", ct).body(body.clone());
                    if let Some(k) = key {
                        req = req.bearer_auth(k);
                    }
                    req.send()
                };
                let api = [
                    ("/v1/events".to_owned(), Some(app.record.as_str()), "application/json"),
                    ("/v1/events/batch".to_owned(), Some(app.record.as_str()), "application/json"),
                    ("/v1/checks".to_owned(), Some(app.check.as_str()), "application/json"),
                    ("/v1/checks".to_owned(), Some(app.check.as_str()), "application/x-ndjson"),
                    ("/v1/inbound/sms".to_owned(), Some(webhook.as_str()), "application/x-www-form-urlencoded"),
                    ("/v1/inbound/sms".to_owned(), Some(webhook.as_str()), "application/json"),
                ];
                for (path, key, ct) in api {
                    let r = post(path.clone(), key, ct).await.expect("send");
                    let status = r.status();
                    let problem = r
                        .headers()
                        .get("content-type")
                        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
                    let text = r.text().await.unwrap_or_default();
                    prop_assert!(status.as_u16() < 500, "{path} {ct}: {status} {text}");
                    if status.is_client_error() {
                        prop_assert!(problem, "{path}: a {status} that is not a problem document");
                    } else if ct == "application/x-ndjson" {
                        // Bad lines are answered line for line with a problem inside.
                        for line in text.lines() {
                            let v: serde_json::Value = serde_json::from_str(line).expect("an NDJSON answer");
                            prop_assert!(
                                v.get("permitted").is_some()
                                    || v["error"]["status"].as_u64().is_some_and(|s| (400..500).contains(&s)),
                                "{line}"
                            );
                        }
                    }
                }
                // The people's pages: the preference form and arbitrary link tokens.
                let page = app
                    .client
                    .post(&link)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("origin", app.address.clone())
                    .body(body.clone())
                    .send()
                    .await
                    .expect("send");
                prop_assert!(page.status().is_client_error(), "preference form: {}", page.status());
                let token: String = String::from_utf8_lossy(&body)
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                    .take(200)
                    .collect();
                if !token.is_empty() {
                    for path in [format!("/p/{token}"), format!("/u/{token}")] {
                        let r = app.client.get(app.url(&path)).send().await.expect("send");
                        prop_assert!(r.status().is_client_error(), "{path}: {}", r.status());
                    }
                }
                Ok(())
            })
        })
        .expect("no 5xx");
}
