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
