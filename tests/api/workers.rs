//! A server with two HTTP workers: the caches and counters a check reads or writes are kept
//! per thread (so that workers on different cores share no line), and still what a request
//! to one worker changes, every worker answers, and `/metrics` counts every worker's requests.

use consent_ledger::http::HttpOptions;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::helpers::{spawn_app_with, TestApp};

/// Each on a connection of its own, `n` checks at once of a tenant nobody has recorded
/// anything about (the server hands new connections to its workers in turn): their answers.
async fn ask_on_new_connections(app: &TestApp, n: usize) -> Vec<Value> {
    let mut asked = JoinSet::new();
    for i in 0..n {
        let (url, key) = (app.url("/v1/check"), app.check.clone());
        asked.spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
            let subject = format!("T-{i}");
            let query = [("subject", subject.as_str()), ("purpose", "survey")];
            let resp = client.get(url).bearer_auth(key).query(&query).send().await.expect("send");
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("json")
        });
    }
    asked.join_all().await
}

fn survey(basis: &str) -> Value {
    json!({"title": "Tenant surveys", "basis": basis, "marketing": false, "channels": ["email"]})
}

#[tokio::test]
async fn a_purpose_redefined_through_one_worker_is_answered_by_every_worker() {
    let app = spawn_app_with(HttpOptions { workers: Some(2), ..Default::default() }).await;
    assert_eq!(app.put_purpose(&app.admin, "survey", &survey("consent")).await.status(), 200);
    for answer in ask_on_new_connections(&app, 16).await {
        assert_eq!((answer["basis"].as_str(), answer["permitted"].as_bool()), (Some("consent"), Some(false)));
    }
    // Now on legitimate interests: permitted without a consent, by every worker at once
    // (each had the consent version in its cache).
    assert_eq!(app.put_purpose(&app.admin, "survey", &survey("legitimate_interests")).await.status(), 200);
    for answer in ask_on_new_connections(&app, 16).await {
        assert_eq!(
            (answer["basis"].as_str(), answer["permitted"].as_bool()),
            (Some("legitimate_interests"), Some(true)),
            "a worker answered from the old version: {answer}"
        );
    }
}

/// The value of `series` in a scrape (0 when it has none yet).
fn value(text: &str, series: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn metrics_count_the_checks_of_every_worker_in_one_series() {
    let app = spawn_app_with(HttpOptions { workers: Some(2), ..Default::default() }).await;
    assert_eq!(app.put_purpose(&app.admin, "survey", &survey("consent")).await.status(), 200);
    let scrape =
        || async { app.client.get(app.url("/metrics")).send().await.expect("send").text().await.expect("text") };
    let requests = "consent_ledger_http_request_seconds_count{route=\"get_check\",method=\"GET\",status=\"2xx\"}";
    let denied = "consent_ledger_decisions_total{permitted=\"false\"}";
    // The request and decision counters are the process's, which other tests' servers in
    // this process add to as well: at least this test's checks are counted.
    let before = scrape().await;
    let (requests_before, denied_before) = (value(&before, requests), value(&before, denied));
    ask_on_new_connections(&app, 24).await;
    // A request is counted as its answer goes out, so the last may be counted just after the
    // client has read it.
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape().await;
        if value(&text, requests) >= requests_before + 24 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(text.matches(&format!("{requests} ")).count(), 1, "one series for every worker's requests: {text}");
    assert!(value(&text, requests) >= requests_before + 24, "{text}");
    assert!(value(&text, denied) >= denied_before + 24, "{text}");
    // This ledger's own cache: exactly one lookup a check, none found (nobody recorded).
    assert_eq!(value(&text, "consent_ledger_facts_cache_lookups_total{result=\"miss\"}"), 24, "{text}");
    assert_eq!(value(&text, "consent_ledger_facts_cache_lookups_total{result=\"hit\"}"), 0, "{text}");
}
