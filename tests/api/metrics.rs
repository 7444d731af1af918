//! `GET /metrics`: Prometheus text with the log size, commits, decisions and requests by
//! route name, public, and never a path, an identifier or an address.

use consent_ledger::service::access::Role;
use serde_json::json;

use crate::helpers::{new_keys, newsletter, spawn_app, staff, start_server, start_server_with, Server};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

/// The facts cache's hits and misses so far.
fn lookups(text: &str) -> (f64, f64) {
    (
        value(text, "consent_ledger_facts_cache_lookups_total{result=\"hit\"}"),
        value(text, "consent_ledger_facts_cache_lookups_total{result=\"miss\"}"),
    )
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
    // The store's block cache is shown beside it (its memtables are charged to it from the start).
    let (store, capacity) =
        (value(&text, "consent_ledger_store_cache_bytes"), value(&text, "consent_ledger_store_cache_capacity_bytes"));
    assert!(store > 0.0 && capacity >= 8.0 * 1024.0 * 1024.0, "{store} bytes of {capacity}");
    // The tenant opts out: the cached row is not what the next check reads.
    app.record(json!({"type": "consent.withdrawn", "subject": "T-90", "purpose": "newsletter", "actor": staff()}))
        .await;
    assert_eq!(ask().await["permitted"], false);
    assert!(lookups(&scrape().await).1 > misses + 2.0, "the changed row was read again");
    for secret in ["sam", "example.org", "T-90"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
}

/// Stops the real server as a service manager does (SIGTERM): it closes cleanly.
fn terminate(server: &mut Server) {
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(server.child.wait().unwrap().success(), "a clean stop");
}

#[tokio::test]
async fn a_restarted_server_holds_the_rows_its_cache_held_and_still_reads_an_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_keys(dir.path(), "council", &[Role::Admin, Role::Record, Role::Check]);
    let mut server = start_server(dir.path());
    let client = reqwest::Client::new();
    let base = server.address.clone();
    let put = client.put(format!("{base}/v1/purposes/newsletter")).bearer_auth(&key).json(&newsletter());
    assert!(put.send().await.unwrap().status().is_success());
    let record = |body: serde_json::Value| {
        let request = client.post(format!("{base}/v1/events")).bearer_auth(&key).json(&body);
        async move { assert!(request.send().await.unwrap().status().is_success()) }
    };
    let check = |base: &str, i: u32| {
        let request = client
            .get(format!("{base}/v1/check"))
            .bearer_auth(&key)
            .query(&[("purpose", "newsletter"), ("email", &format!("tenant{i}@example.org"))]);
        async move { request.send().await.unwrap().json::<serde_json::Value>().await.unwrap()["permitted"].clone() }
    };
    let scrape = |base: String| {
        let client = client.clone();
        async move { client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap() }
    };
    for i in 0..20 {
        let address = json!({"channel": "email", "address": format!("tenant{i}@example.org")});
        record(json!({"type": "contact.linked", "subject": format!("T-{i}"), "contact": address, "actor": staff()}))
            .await;
        record(
            json!({"type": "consent.granted", "subject": format!("T-{i}"), "purpose": "newsletter", "actor": staff()}),
        )
        .await;
        assert_eq!(check(&base, i).await, true);
    }
    let held = value(&scrape(base.clone()).await, "consent_ledger_facts_cache_entries");
    assert!(held >= 40.0, "{held} entries: each check reads an address's row and its tenant's");
    terminate(&mut server);
    assert!(dir.path().join("facts-cache.keys").exists(), "the cache's keys are saved on a clean stop");

    // The metrics once the cache holds `held` entries (or after five seconds).
    let once_held = |base: String| async move {
        let mut text = String::new();
        for _ in 0..200 {
            text = scrape(base.clone()).await;
            if value(&text, "consent_ledger_facts_cache_entries") >= held {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        text
    };

    // Started again, it reads those rows back before anyone checks.
    let mut server: Server = start_server(dir.path());
    let base = server.address.clone();
    let text = once_held(base.clone()).await;
    assert_eq!(value(&text, "consent_ledger_facts_cache_entries"), held, "the same rows again");
    assert_eq!(lookups(&text), (0.0, 0.0), "no check has been asked yet");
    assert_eq!(check(&base, 3).await, true);
    assert_eq!(lookups(&scrape(base.clone()).await), (2.0, 0.0), "answered from the rows read back");
    // An opt-out after the restart is what the next check reads, not the row read back.
    let withdrawn = json!({"type": "consent.withdrawn", "subject": "T-3", "purpose": "newsletter", "actor": staff()});
    let request = client.post(format!("{base}/v1/events")).bearer_auth(&key).json(&withdrawn);
    assert!(request.send().await.unwrap().status().is_success());
    assert_eq!(check(&base, 3).await, false);
    let keys = std::fs::read(dir.path().join("facts-cache.keys")).unwrap();
    for secret in [&b"tenant3"[..], b"example.org"] {
        assert!(!keys.windows(secret.len()).any(|w| w == secret), "an address in the saved keys");
    }
    terminate(&mut server);

    // With --no-warm-start the saved keys are not read (a check finds the cache empty) and no
    // keys are saved.
    let mut server: Server = start_server_with(dir.path(), &["--no-warm-start"]);
    let base = server.address.clone();
    assert_eq!(check(&base, 5).await, true);
    assert_eq!(lookups(&scrape(base.clone()).await), (0.0, 2.0), "nothing was read back");
    std::fs::remove_file(dir.path().join("facts-cache.keys")).unwrap();
    terminate(&mut server);
    assert!(!dir.path().join("facts-cache.keys").exists(), "nothing saved");

    // With no saved keys (a first start, a lost file) it reads the store's rows in until its
    // cache is full: here every row, before anyone checks.
    let mut server: Server = start_server(dir.path());
    let base = server.address.clone();
    let text = once_held(base.clone()).await;
    assert_eq!(value(&text, "consent_ledger_facts_cache_entries"), held, "every facts row");
    assert_eq!(lookups(&text), (0.0, 0.0), "no check has been asked yet");
    assert_eq!(check(&base, 3).await, false, "the opt-out, as the store holds it");
    assert_eq!(lookups(&scrape(base.clone()).await), (2.0, 0.0), "answered from the rows read in");
    terminate(&mut server);
}
