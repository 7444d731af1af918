//! Access: roles and controller isolation. Every refusal is problem+json and writes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, staff};

#[tokio::test]
async fn a_check_key_cannot_record() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let size = app.log_size().await;
    let body = json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()});
    let p = assert_problem(app.post_event(&app.check, &body).await, StatusCode::FORBIDDEN).await;
    assert_eq!(p["type"], "/problems/forbidden");
    assert_problem(app.post_batch(&app.check, &json!([body])).await, StatusCode::FORBIDDEN).await;
    assert_problem(app.put_purpose(&app.record, "x", &crate::helpers::repairs()).await, StatusCode::FORBIDDEN).await;
    assert_eq!(app.log_size().await, size);
}

#[tokio::test]
async fn another_controller_cannot_read_or_see_this_controllers_data() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let r = app
        .record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()}))
        .await;
    app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": {"channel": "email", "address": "jane@example.org"}, "actor": staff()}))
        .await;
    let size = app.log_size().await;

    assert_problem(app.history(&app.other, "T-1").await, StatusCode::NOT_FOUND).await;
    let id = r["event"]["id"].as_str().expect("id");
    assert_problem(app.get_event(&app.other, id).await, StatusCode::NOT_FOUND).await;
    // The other controller has no such purpose, so its checks cannot reach ours.
    let q = [("email", "jane@example.org"), ("purpose", "newsletter")];
    assert_problem(app.check_raw(&app.other, &q).await, StatusCode::NOT_FOUND).await;
    // Even with a purpose of the same name, it sees only its own (empty) records.
    assert_eq!(app.put_purpose(&app.other, "newsletter", &crate::helpers::newsletter()).await.status(), 200);
    let resp = app.check_raw(&app.other, &q).await;
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(v["permitted"], false);
    assert_eq!(v["reason"], "no_consent");
    // And recording by the other controller against the same ids does not touch ours.
    let mine = app.check(&q).await;
    assert_eq!(mine["permitted"], true);
    assert_eq!(app.log_size().await, size + 1);
}

#[tokio::test]
async fn no_key_or_a_bad_key_is_refused() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/v1/purposes")).send().await.expect("send");
    assert_eq!(resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap_or("")), Some("Bearer"));
    assert_problem(resp, StatusCode::UNAUTHORIZED).await;
    assert_problem(app.list_purposes("clk_0000000000000000_nope").await, StatusCode::UNAUTHORIZED).await;
    let mut forged = app.admin.clone();
    forged.push('x');
    assert_problem(app.list_purposes(&forged).await, StatusCode::UNAUTHORIZED).await;
    // Public endpoints need no key.
    assert_eq!(app.client.get(app.url("/v1/keys")).send().await.expect("send").status(), 200);
    assert_eq!(app.client.get(app.url("/healthz")).send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn an_audit_key_reads_history_but_cannot_record_or_check() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    assert_eq!(app.history(&app.audit, "T-1").await.status(), 200);
    assert_problem(app.history(&app.check, "T-1").await, StatusCode::FORBIDDEN).await;
    let body = json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": staff()});
    assert_problem(app.post_event(&app.audit, &body).await, StatusCode::FORBIDDEN).await;
    assert_problem(
        app.check_raw(&app.audit, &[("subject", "T-1"), ("purpose", "newsletter")]).await,
        StatusCode::FORBIDDEN,
    )
    .await;
}
