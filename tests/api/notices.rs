//! Notices: `PUT /v1/notices/{id}` signs a notice's wording (the SHA-256 of its exact text, and
//! the text when posted) into the log; a consent's `notice_version` must name one; purposes
//! name the notice that describes them, and the tenant page shows it, links it and records it.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{assert_problem, newsletter, spawn_app, staff};
use crate::preferences::{get_html, guard_of, post_form};

/// A real housing organisation's privacy notice (one of the seeds).
const TEXT: &str = include_str!("../fixtures/privacy-notice.txt");

fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn notice() -> Value {
    json!({"version": "2026.1", "title": "Customer services privacy notice",
           "url": "https://www.example.gov.uk/privacy", "text": TEXT})
}

#[tokio::test]
async fn a_notice_is_signed_once_with_the_hash_of_its_exact_text() {
    let app = spawn_app().await;
    let resp = app.put_notice(&app.admin, "privacy-2026", &notice()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let receipt: Value = resp.json().await.unwrap();
    assert_eq!(receipt["event"]["type"], "notice.published");
    assert_eq!(receipt["event"]["notice"]["sha256"], sha256(TEXT));
    assert_eq!(receipt["event"]["notice"]["text"], TEXT, "the exact text is in the signed log");
    assert_eq!(receipt["event"]["recorded_by"].as_str().unwrap().split(':').next(), Some("apikey"));
    let (sig, key) = (receipt["signature"].as_str().unwrap(), receipt["key_id"].as_str().unwrap());
    assert!(app.verifies(&receipt["event"], sig, key).await);
    let size = app.log_size().await;

    // The same notice again: 200, the first receipt, nothing recorded.
    let again = app.put_notice(&app.admin, "privacy-2026", &notice()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["event"]["id"], receipt["event"]["id"]);
    // Other wording under the same id: a conflict; a wording is never rewritten.
    let mut changed = notice();
    changed["text"] = json!(format!("{TEXT} And one more sentence."));
    assert_problem(app.put_notice(&app.admin, "privacy-2026", &changed).await, StatusCode::CONFLICT).await;
    // A hash that is not the text's, no text and no hash, a bad URL, a record key.
    let mut wrong = notice();
    wrong["sha256"] = json!("0".repeat(64));
    assert_problem(app.put_notice(&app.admin, "p2", &wrong).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let bare = json!({"version": "1", "title": "A notice"});
    assert_problem(app.put_notice(&app.admin, "p2", &bare).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut link = notice();
    link["url"] = json!("javascript:alert(1)");
    assert_problem(app.put_notice(&app.admin, "p2", &link).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_problem(app.put_notice(&app.record, "p2", &notice()).await, StatusCode::FORBIDDEN).await;
    let unknown = json!({"version": "1", "title": "A notice", "sha256": "a".repeat(64), "author": "x"});
    assert_problem(app.put_notice(&app.admin, "p2", &unknown).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.log_size().await, size, "nothing refused was recorded");
    // Only the notice route records notice.published.
    let posted =
        app.post_event(&app.record, &json!({"type": "notice.published", "subject": "T-1", "actor": staff()})).await;
    let problem = assert_problem(posted, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("PUT /v1/notices/{id}"), "{problem}");

    // A notice published by its hash alone keeps no text.
    let by_hash = json!({"version": "3", "title": "Tenancy privacy notice", "sha256": sha256("elsewhere")});
    assert_eq!(app.put_notice(&app.admin, "tenancy-3", &by_hash).await.status(), StatusCode::CREATED);

    let one: Value = app.get_json(&app.check, "/v1/notices/privacy-2026").await;
    assert_eq!(one["text"], TEXT);
    assert_eq!(one["event"], receipt["event"]["id"]);
    let list: Value = app.get_json(&app.audit, "/v1/notices").await;
    let ids: Vec<&str> = list["notices"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["privacy-2026", "tenancy-3"]);
    assert!(list["notices"][0].get("text").is_none(), "the list leaves texts out");
    let other = app.get_as(&app.other, "/v1/notices/privacy-2026").await;
    assert_problem(other, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_consent_must_name_a_published_notice_and_the_page_shows_and_records_it() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let size = app.log_size().await;
    let unknown = app
        .post_event(
            &app.record,
            &json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter",
            "actor": staff(), "notice_version": "privacy-2026"}),
        )
        .await;
    let problem = assert_problem(unknown, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("notice_version"), "{problem}");
    let mut described = newsletter();
    described["notice"] = json!("privacy-2026");
    assert_problem(app.put_purpose(&app.admin, "newsletter", &described).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(app.log_size().await, size);

    let published: Value = app.put_notice(&app.admin, "privacy-2026", &notice()).await.json().await.unwrap();
    assert_eq!(app.put_purpose(&app.admin, "newsletter", &described).await.status(), StatusCode::OK);
    let ok = app
        .post_event(
            &app.record,
            &json!({"type": "consent.granted", "subject": "T-2", "purpose": "newsletter",
            "actor": staff(), "notice_version": "privacy-2026"}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    // Another controller's notice of the same id is not this one's.
    let theirs = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&app.other)
        .json(&json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff(),
            "notice_version": "privacy-2026"}))
        .send()
        .await
        .unwrap();
    assert_ne!(theirs.status(), StatusCode::CREATED);

    // The page names the notice by its title, version and date, and links the ledger's copy.
    let url = app.preference_link("T-1").await;
    let (_, html) = get_html(&app, &url).await;
    assert!(html.contains("our notice <a href=\"/p/"), "{html}");
    assert!(html.contains("Customer services privacy notice</a>, version 2026.1, published"));
    let token = url.rsplit('/').next().unwrap();
    let (status, page) = get_html(&app, &app.url(&format!("/p/{token}/notices/privacy-2026"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<title>Customer services privacy notice"), "{page}");
    assert!(page.contains("Information that we hold") && page.contains(&sha256(TEXT)));
    let (status, _) = get_html(&app, &app.url(&format!("/p/{token}/notices/nothing-here"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Saying yes records the notice shown; its receipt page shows the notice and its hash.
    let (_, done) =
        post_form(&app, &url, &[("csrf", &guard_of(&html)), ("newsletter/email", "yes"), ("action", "save")]).await;
    let at = done.find("/receipts/").unwrap() + "/receipts/".len();
    let id = done[at..at + 36].to_owned();
    let receipt: Value = app.get_event(&app.audit, &id).await.json().await.unwrap();
    assert_eq!(receipt["event"]["notice_version"], "privacy-2026");
    let (_, page) = get_html(&app, &format!("{url}/receipts/{id}")).await;
    assert!(page.contains("The notice you were shown") && page.contains(&sha256(TEXT)), "{page}");
    assert!(page.contains(&published["event"]["notice"]["sha256"].as_str().unwrap().to_owned()));
}
