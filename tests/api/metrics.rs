//! `GET /metrics`: Prometheus text with the log size, commits, decisions and requests by
//! route name, public, and never a path, an identifier or an address.

use serde_json::json;

use crate::helpers::{spawn_app, staff};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[tokio::test]
async fn metrics_count_commits_decisions_and_requests_without_personal_data() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let scrape = || async {
        let resp = app.client.get(app.url("/metrics")).send().await.expect("send");
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap_or_default().to_owned();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        resp.text().await.expect("text")
    };
    let before = scrape().await;
    app.record(json!({"type": "contact.linked", "subject": "T-77", "contact": {"channel": "email", "address": "jane.doe@example.org"}, "actor": staff()}))
        .await;
    app.record(json!({"type": "consent.granted", "subject": "T-77", "purpose": "newsletter", "actor": staff()})).await;
    assert_eq!(app.check(&[("email", "jane.doe@example.org"), ("purpose", "newsletter")]).await["permitted"], true);
    assert_eq!(app.check(&[("subject", "T-78"), ("purpose", "newsletter")]).await["permitted"], false);
    let after = scrape().await;

    assert_eq!(value(&after, "consent_ledger_log_size"), app.log_size().await as f64);
    // The counters are the process's (other tests' servers share it): they only grow.
    for series in ["consent_ledger_commits_total", "consent_ledger_events_total", "consent_ledger_commit_seconds_count"]
    {
        assert!(value(&after, series) >= value(&before, series) + 2.0, "{series}");
    }
    assert!(
        value(&after, "consent_ledger_decisions_total{permitted=\"true\"}")
            > value(&before, "consent_ledger_decisions_total{permitted=\"true\"}")
    );
    assert!(
        value(&after, "consent_ledger_decisions_total{permitted=\"false\"}")
            > value(&before, "consent_ledger_decisions_total{permitted=\"false\"}")
    );
    assert!(
        value(&after, "consent_ledger_http_request_seconds_count{route=\"get_check\",method=\"GET\",status=\"2xx\"}")
            >= 2.0
    );
    for secret in ["jane", "example.org", "T-77", "T-78"] {
        assert!(!after.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test]
async fn made_up_methods_add_no_series() {
    let app = spawn_app().await;
    let count =
        |text: &str| text.lines().filter(|l| l.starts_with("consent_ledger_http_request_seconds_count")).count();
    let before = count(&app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap());
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let r = app.client.request(method, app.url("/v1/check")).send().await.unwrap();
        assert_eq!(r.status(), 405);
    }
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!text.contains("BREW"), "a made-up method became a label");
    assert!(text.contains("method=\"other\""), "{text}");
    // Every label value of method is one of the fixed set.
    for line in text.lines().filter(|l| l.contains("method=\"")) {
        let m = line.split("method=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
        assert!(["GET", "HEAD", "POST", "PUT", "other"].contains(&m), "{line}");
    }
    // The process's metrics are shared with other tests' servers: at most the one series of
    // these requests (and the scrape's own) can be new.
    assert!(count(&text) <= before + 2, "{} series after, {before} before", count(&text));
}

#[tokio::test]
async fn the_facts_cache_counts_what_it_answers_and_an_opt_out_is_read_past_it() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "contact.linked", "subject": "T-90", "contact": {"channel": "email", "address": "sam.lee@example.org"}, "actor": staff()}))
        .await;
    app.record(json!({"type": "consent.granted", "subject": "T-90", "purpose": "newsletter", "actor": staff()})).await;
    let scrape = || async { app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let lookups = |text: &str| {
        (
            value(text, "consent_ledger_facts_cache_lookups_total{result=\"hit\"}"),
            value(text, "consent_ledger_facts_cache_lookups_total{result=\"miss\"}"),
        )
    };
    let ask = || app.check(&[("email", "sam.lee@example.org"), ("purpose", "newsletter")]);
    let (hits, misses) = lookups(&scrape().await);
    // A check by email reads two rows: the address's, then its tenant's.
    assert_eq!(ask().await["permitted"], true);
    let first = scrape().await;
    assert_eq!(lookups(&first), (hits, misses + 2.0), "the first check reads both rows from the store");
    assert_eq!(ask().await["permitted"], true);
    assert_eq!(ask().await["permitted"], true);
    let text = scrape().await;
    assert_eq!(lookups(&text), (hits + 4.0, misses + 2.0), "repeated checks are answered from the cache");
    assert!(value(&text, "consent_ledger_facts_cache_entries") >= 2.0);
    let (bytes, budget) =
        (value(&text, "consent_ledger_facts_cache_bytes"), value(&text, "consent_ledger_facts_cache_budget_bytes"));
    assert!(bytes > 0.0 && bytes <= budget, "{bytes} bytes of {budget}");
    // The tenant opts out: the cached row is not what the next check reads.
    app.record(json!({"type": "consent.withdrawn", "subject": "T-90", "purpose": "newsletter", "actor": staff()}))
        .await;
    assert_eq!(ask().await["permitted"], false);
    assert!(lookups(&scrape().await).1 > misses + 2.0, "the changed row was read again");
    for secret in ["sam", "example.org", "T-90"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
}
