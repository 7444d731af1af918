//! Bad input: every malformed, unknown-field, wrong-type, out-of-range or oversized request
//! gets a problem+json answer and changes nothing. Data-driven through one `check` helper.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, staff, TestApp};

async fn check_event_refused(app: &TestApp, body: Value, status: StatusCode, detail_has: &str) {
    let size = app.log_size().await;
    let p = assert_problem(app.post_event(&app.record, &body).await, status).await;
    let detail = p["detail"].as_str().unwrap_or("");
    assert!(detail.contains(detail_has), "detail {detail:?} lacks {detail_has:?} for {body}");
    assert_eq!(app.log_size().await, size, "a refused request wrote to the log: {body}");
}

#[tokio::test]
async fn malformed_events_are_refused_with_a_clear_problem() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let s = staff();
    let v = StatusCode::UNPROCESSABLE_ENTITY;
    let b = StatusCode::BAD_REQUEST;
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({"type": "consent.granted", "purpose": "newsletter", "actor": s}), v, "needs a subject, a contact"),
        (json!({"type": "consent.granted", "subject": "T-1", "purpose": "nope", "actor": s}), v, "unknown purpose"),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "channel": "phone", "actor": s}),
            v,
            "does not use channel phone",
        ),
        (json!({"type": "consent.granted", "subject": "T-1", "actor": s}), v, "needs a purpose"),
        (
            json!({"type": "consent.granted", "contact": {"channel": "email", "address": "not-an-email"}, "purpose": "newsletter", "actor": s}),
            v,
            "email address is not valid",
        ),
        (
            json!({"type": "consent.granted", "contact": {"channel": "sms", "address": "07700 9001"}, "purpose": "newsletter", "actor": s}),
            v,
            "E.164",
        ),
        (
            json!({"type": "consent.granted", "contact": {"channel": "email", "address": "a@example.org"}, "channel": "sms", "purpose": "newsletter", "actor": s}),
            v,
            "does not reach",
        ),
        (
            json!({"type": "consent.granted", "subject": "Jane Smith", "purpose": "newsletter", "actor": s}),
            b,
            "subject may contain only",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": s, "name": "Jane"}),
            b,
            "unknown field",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": {"kind": "staff"}}),
            v,
            "staff actor needs an id",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": {"kind": "representative", "id": "r-1"}}),
            v,
            "authority",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": s, "occurred_at": "2999-01-01T00:00:00Z"}),
            v,
            "future",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": s, "occurred_at": "yesterday"}),
            b,
            "RFC 3339",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": s, "occurred_at": "2026-01-02T00:00:00Z", "expires_at": "2026-01-01T00:00:00Z"}),
            v,
            "expires_at must be after",
        ),
        (
            json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "actor": s, "expires_at": "2027-01-01T00:00:00Z"}),
            v,
            "only consent.granted",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": s, "evidence": {"ref": "scan-1", "sha256": "XYZ"}}),
            v,
            "sha256",
        ),
        (json!({"type": "consent.exploded", "subject": "T-1", "actor": s}), b, "unknown variant"),
        (json!({"type": "purpose.defined", "subject": "T-1", "actor": s}), v, "PUT /v1/purposes"),
        (json!({"type": "contact.linked", "subject": "T-1", "actor": s}), v, "needs a contact"),
        (
            json!({"type": "restriction.applied", "contact": {"channel": "email", "address": "a@example.org"}, "actor": s}),
            v,
            "needs a subject",
        ),
        (json!({"type": "preference.set", "subject": "T-1", "actor": s}), v, "needs a preference"),
        (
            json!({"type": "subject.erased", "subject": "T-1", "purpose": "newsletter", "actor": s}),
            v,
            "takes no purpose",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "recipient": "police", "actor": s}),
            v,
            "does not list recipient",
        ),
        (
            json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "seq": "jane@example.org", "actor": s}),
            b,
            "unknown field",
        ),
        (json!({"type": "consent.granted", "subject": 42, "purpose": "newsletter", "actor": s}), b, "invalid type"),
        (json!([]), b, "expected struct EventRequest"),
    ];
    for (body, status, detail) in cases {
        check_event_refused(&app, body, status, detail).await;
    }
}

#[tokio::test]
async fn problem_details_never_echo_personal_data() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let body = json!({"type": "consent.granted", "subject": ["jane.smith@example.org"], "purpose": "newsletter", "actor": staff()});
    let resp = app.post_event(&app.record, &body).await;
    let text = resp.text().await.expect("text");
    assert!(!text.contains("jane"), "{text}");
    let resp = app.check_raw(&app.check, &[("email", "jane smith@example"), ("purpose", "newsletter")]).await;
    let text = resp.text().await.expect("text");
    assert!(!text.contains("jane"), "{text}");
}

#[tokio::test]
async fn transport_level_problems_are_problem_json_too() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let size = app.log_size().await;
    // Not JSON.
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.record)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_problem(resp, StatusCode::BAD_REQUEST).await;
    // Wrong content type.
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.record)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_problem(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // Too large.
    let huge = json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff(),
                      "notice_version": "x".repeat(20_000)});
    assert_problem(app.post_event(&app.record, &huge).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    // A batch over the event limit.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"type": "consent.granted", "subject": format!("T-{i}"), "purpose": "newsletter", "actor": staff()}))
        .collect();
    let p = assert_problem(app.post_batch(&app.record, &json!(many)).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap_or("").contains("1000"));
    // Unknown route.
    assert_problem(app.client.get(app.url("/v1/nothing")).send().await.expect("send"), StatusCode::NOT_FOUND).await;
    // A method the route does not take is a 405 problem naming the methods it does take, and
    // a raw body over actix's own limit is a problem too, not actix's plain-text body.
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/v1/check", "GET"),
        (reqwest::Method::GET, "/v1/checks", "POST"),
        (reqwest::Method::GET, "/v1/events/batch", "POST"),
        (reqwest::Method::DELETE, "/v1/events/0195d4c8-7a6e-7b1c-9e4f-3a2b1c0d9e8f", "GET"),
        (reqwest::Method::DELETE, "/u/some-token", "GET, POST"),
    ] {
        let resp = app.client.request(method, app.url(path)).bearer_auth(&app.check).send().await.expect("send");
        let allowed = resp.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(allowed, allow, "{path}");
        assert_problem(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    }
    // HEAD is GET without the body.
    let resp = app.client.head(app.url("/v1/purposes")).bearer_auth(&app.check).send().await.expect("send");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.expect("body").is_empty());
    let resp = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&app.record)
        .header("content-type", "application/json")
        .body("a".repeat(300_000))
        .send()
        .await
        .expect("send");
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(app.log_size().await, size);
}

#[tokio::test]
async fn malformed_checks_are_refused() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let b = StatusCode::BAD_REQUEST;
    let cases: Vec<(Vec<(&str, &str)>, StatusCode)> = vec![
        (vec![("purpose", "newsletter")], b),
        (vec![("purpose", "newsletter"), ("subject", "T-1"), ("email", "a@example.org")], b),
        (vec![("purpose", "newsletter"), ("email", "nope")], b),
        (vec![("purpose", "newsletter"), ("subject", "T-1"), ("at", "last tuesday")], b),
        (vec![("purpose", "newsletter"), ("subject", "T-1"), ("colour", "red")], b),
        (vec![("purpose", "newsletter"), ("subject", "T-1"), ("channel", "pigeon")], b),
        (vec![("purpose", "nope"), ("subject", "T-1")], StatusCode::NOT_FOUND),
        (
            vec![("purpose", "newsletter"), ("subject", "T-1"), ("at", "2999-01-01T00:00:00Z")],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            vec![("purpose", "newsletter"), ("email", "a@example.org"), ("channel", "sms")],
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (q, status) in cases {
        assert_problem(app.check_raw(&app.check, &q).await, status).await;
    }
    // A value that does not read as its parameter's type is refused naming the parameter.
    let refused = [
        (vec![("purpose", "newsletter"), ("email", "a@example.org"), ("min_seq", "-1")], "`min_seq`:"),
        (vec![("purpose", "newsletter"), ("subject", "T-1"), ("signed", "maybe")], "`signed`:"),
        (vec![("channel", "pigeon"), ("purpose", "newsletter"), ("subject", "T-1")], "`channel`:"),
    ];
    for (q, named) in refused {
        let p = assert_problem(app.check_raw(&app.check, &q).await, b).await;
        assert!(p["detail"].as_str().unwrap_or("").starts_with(named), "{p}");
        assert!(!p.to_string().contains("pigeon"), "the value sent is not repeated: {p}");
    }
    let p = assert_problem(app.get_as(&app.check, "/v1/feed?after=x&limit=10").await, b).await;
    assert_eq!(p["detail"], "`after`: invalid digit found in string");
    // An id that is not a UUID: the character it refused is not repeated either.
    let p = assert_problem(
        app.get_as(&app.admin, "/v1/log/proof/inclusion?id=01937c5e-0000-7c3d-9e4f-a1b2c3d4eQf6").await,
        b,
    )
    .await;
    let detail = p["detail"].as_str().unwrap_or("");
    assert!(detail.starts_with("`id`: ") && detail.contains("invalid character") && !detail.contains('Q'), "{p}");
    let p = assert_problem(
        app.post_checks(&app.check, &json!([{"subject": "T-1", "purpose": "newsletter"}, {"purpose": "newsletter"}]))
            .await,
        b,
    )
    .await;
    assert!(p["detail"].as_str().unwrap_or("").starts_with("check 1:"));
}

#[tokio::test]
async fn malformed_purposes_are_refused() {
    let app = spawn_app().await;
    let size = app.log_size().await;
    let cases = vec![
        (
            "newsletter",
            json!({"title": "", "basis": "consent", "marketing": true, "channels": ["email"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("newsletter", json!({"title": "t", "basis": "whim", "marketing": true}), StatusCode::BAD_REQUEST),
        (
            "newsletter",
            json!({"title": "t", "basis": "consent", "marketing": true, "channels": ["email", "email"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "newsletter",
            json!({"title": "t", "basis": "consent", "marketing": true, "consent_valid_days": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("news letter", json!({"title": "t", "basis": "consent", "marketing": true}), StatusCode::BAD_REQUEST),
        (
            "newsletter",
            json!({"title": "t", "basis": "consent", "marketing": true, "colour": "red"}),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (id, body, status) in cases {
        assert_problem(app.put_purpose(&app.admin, id, &body).await, status).await;
    }
    assert_eq!(app.log_size().await, size);
}
