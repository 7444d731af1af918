//! The tenant's preference page over HTTP (the browser test drives the same page in Chromium):
//! links, forms, cross-site and forged posts, one event per change, stop all marketing,
//! receipts people keep, and isolation between subjects and controllers.

use chrono::Utc;
use consent_ledger::domain::{ControllerId, SubjectId};
use consent_ledger::service::PreferenceToken;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, staff, TestApp};

/// Defines a consent newsletter (email, post, sms) described by a published notice, a
/// legitimate-interests survey, a
/// contract purpose and a consent-based share.
async fn catalogue(app: &TestApp) {
    app.with_purposes().await;
    app.with_notice("privacy-2026").await;
    let mut newsletter = crate::helpers::newsletter();
    newsletter["notice"] = json!("privacy-2026");
    assert_eq!(app.put_purpose(&app.admin, "newsletter", &newsletter).await.status(), StatusCode::OK);
    let surveys = json!({"title": "Satisfaction surveys", "description": "Short surveys about a repair.",
        "basis": "legitimate_interests", "marketing": false, "channels": ["email", "sms"]});
    let share = json!({"title": "Sharing your address with our mailing house", "basis": "consent",
        "marketing": true, "channels": [], "recipients": ["mailing-house"]});
    assert_eq!(app.put_purpose(&app.admin, "surveys", &surveys).await.status(), StatusCode::OK);
    assert_eq!(app.put_purpose(&app.admin, "share:mailing-house", &share).await.status(), StatusCode::OK);
}

pub(crate) fn guard_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form guard") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

pub(crate) async fn get_html(app: &TestApp, url: &str) -> (StatusCode, String) {
    let resp = app.client.get(url).send().await.unwrap();
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'") && !csp.contains("unsafe"), "{csp}");
    (status, resp.text().await.unwrap())
}

pub(crate) async fn post_form(app: &TestApp, url: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
    let resp = app.client.post(url).form(fields).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

async fn subject_check(app: &TestApp, purpose: &str, channel: &str) -> Value {
    app.check(&[("subject", "T-1"), ("purpose", purpose), ("channel", channel)]).await
}

#[tokio::test]
async fn a_link_needs_the_record_role_and_a_sane_lifetime() {
    let app = spawn_app().await;
    let url = app.url("/v1/subjects/T-1/preference-links");
    assert_problem(app.client.post(&url).send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
    assert_problem(app.client.post(&url).bearer_auth(&app.check).send().await.unwrap(), StatusCode::FORBIDDEN).await;
    let bad = app.client.post(&url).bearer_auth(&app.record).json(&json!({"valid_for_days": 0})).send().await.unwrap();
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let long =
        app.client.post(&url).bearer_auth(&app.record).json(&json!({"valid_for_days": 91})).send().await.unwrap();
    assert_problem(long, StatusCode::UNPROCESSABLE_ENTITY).await;
    let unknown = app.client.post(&url).bearer_auth(&app.record).json(&json!({"days": 3})).send().await.unwrap();
    assert_problem(unknown, StatusCode::BAD_REQUEST).await;
    let bad_subject = app.url("/v1/subjects/%3Cx%3E/preference-links");
    assert_problem(
        app.client.post(bad_subject).bearer_auth(&app.record).send().await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;

    let resp = app.client.post(&url).bearer_auth(&app.record).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let link: Value = resp.json().await.unwrap();
    let expires: chrono::DateTime<Utc> = link["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!((13.9..=14.0).contains(&days), "default lifetime is 14 days, got {days}");
    assert!(link["url"].as_str().unwrap().starts_with(&format!("{}/p/", app.address)));
    let short =
        app.client.post(&url).bearer_auth(&app.record).json(&json!({"valid_for_days": 2})).send().await.unwrap();
    let short: Value = short.json().await.unwrap();
    let expires: chrono::DateTime<Utc> = short["expires_at"].as_str().unwrap().parse().unwrap();
    assert!((expires - Utc::now()).num_hours() <= 48);
}

#[tokio::test]
async fn the_page_shows_current_state_and_saving_records_one_event_per_change() {
    let app = spawn_app().await;
    catalogue(&app).await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "channel": "post",
        "method": "paper_form", "actor": staff()}))
        .await;
    let url = app.preference_link("T-1").await;
    let (status, html) = get_html(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    // Consent and legitimate-interests purposes are offered; contract ones are not.
    assert!(html.contains("The Voice newsletter") && html.contains("Satisfaction surveys"));
    assert!(html.contains("Sharing your address with our mailing house"));
    assert!(!html.contains("Repair and appointment messages"));
    assert!(html.contains("name=\"newsletter/post\" value=\"yes\" checked"), "post consent shows as yes");
    assert!(html.contains("name=\"newsletter/email\" value=\"no\" checked"));
    assert!(html.contains("name=\"surveys/sms\" value=\"yes\" checked"), "legitimate interests: yes until opted out");
    assert!(html.contains("name=\"share:mailing-house/all\" value=\"no\" checked"));
    assert!(!html.contains("<script"));
    // Every input has its label.
    for id in html.split("<input type=\"radio\" id=\"").skip(1).map(|s| s.split('"').next().unwrap()) {
        assert!(html.contains(&format!("<label for=\"{id}\">")), "input {id} has no label");
    }

    let guard = guard_of(&html);
    let size = app.log_size().await;
    let fields = [
        ("csrf", guard.as_str()),
        ("newsletter/email", "yes"),
        ("newsletter/post", "yes"),
        ("newsletter/sms", "no"),
        ("surveys/sms", "no"),
        ("share:mailing-house/all", "yes"),
        ("format", "large_print"),
        ("language", "cy"),
        ("action", "save"),
    ];
    let (status, done) = post_form(&app, &url, &fields).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(done.contains("Your choices are saved"));
    // Changed: newsletter email, surveys sms, the share, format, language. Unchanged: post, sms.
    assert_eq!(app.log_size().await, size + 5);
    assert_eq!(done.matches("/receipts/").count(), 5, "{done}");
    assert!(done.contains("Yes to “The Voice newsletter” by email"));
    assert!(done.contains("No to “Satisfaction surveys” by text message"));
    assert!(done.contains("Format: Large print") && done.contains("Language: Cymraeg"));

    assert_eq!(subject_check(&app, "newsletter", "email").await["permitted"], true);
    assert_eq!(subject_check(&app, "newsletter", "sms").await["permitted"], false);
    let decided = subject_check(&app, "newsletter", "email").await;
    let receipt: Value =
        app.get_event(&app.audit, decided["decided_by"][0].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(receipt["event"]["recorded_by"], "tenant-page");
    assert_eq!(subject_check(&app, "surveys", "sms").await["permitted"], false);
    assert_eq!(subject_check(&app, "surveys", "email").await["permitted"], true);
    let share =
        app.check(&[("subject", "T-1"), ("purpose", "share:mailing-house"), ("recipient", "mailing-house")]).await;
    assert_eq!(share["permitted"], true);

    // Each event says how and who: the web form, the subject, and the notice they were shown.
    let history: Value = app.history(&app.audit, "T-1").await.json().await.unwrap();
    let web: Vec<&Value> =
        history["events"].as_array().unwrap().iter().filter(|r| r["event"]["method"] == "web_form").collect();
    assert_eq!(web.len(), 5);
    for r in &web {
        assert_eq!(r["event"]["actor"], json!({"kind": "subject"}));
    }
    // The newsletter names a published notice: the grant records it. Surveys name none.
    let grant = web.iter().find(|r| r["event"]["purpose"] == "newsletter").unwrap();
    assert_eq!(grant["event"]["notice_version"], "privacy-2026");
    let survey = web.iter().find(|r| r["event"]["purpose"] == "surveys").unwrap();
    assert!(survey["event"].get("notice_version").is_none());

    // The same submission again changes nothing.
    let (status, again) = post_form(&app, &url, &fields).await;
    assert_eq!(status, StatusCode::OK);
    assert!(again.contains("Nothing changed"));
    assert_eq!(app.log_size().await, size + 5);
    let (_, html) = get_html(&app, &url).await;
    assert!(html.contains("value=\"large_print\" checked"));
    assert!(html.contains("<option value=\"cy\" selected>"));
    assert!(html.contains("Your record"));
}

#[tokio::test]
async fn stop_all_marketing_is_one_step_and_can_be_undone_on_the_page() {
    let app = spawn_app().await;
    catalogue(&app).await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    let url = app.preference_link("T-1").await;
    let (_, html) = get_html(&app, &url).await;
    let guard = guard_of(&html);
    let (status, done) = post_form(&app, &url, &[("csrf", &guard), ("action", "stop-marketing")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(done.contains("Stop all marketing"));
    for channel in ["email", "post", "sms"] {
        let a = subject_check(&app, "newsletter", channel).await;
        assert_eq!(a["permitted"], false);
        assert_eq!(a["reason"], "marketing_objection");
    }
    // Service messages still go, and surveys (not marketing) are untouched.
    assert_eq!(subject_check(&app, "repairs-updates", "sms").await["permitted"], true);
    assert_eq!(subject_check(&app, "surveys", "email").await["permitted"], true);
    // The objection is one event, without purpose or channel (Art. 21(3)).
    let history: Value = app.history(&app.audit, "T-1").await.json().await.unwrap();
    let last = history["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event"]["type"], "objection.raised");
    assert!(last["event"].get("purpose").is_none() && last["event"].get("channel").is_none());

    // The page now says so, pauses the marketing choices, and a "yes" posted anyway changes nothing.
    let (_, html) = get_html(&app, &url).await;
    assert!(html.contains("You asked us to stop all marketing"));
    assert!(html.contains("name=\"newsletter/email\" value=\"yes\" disabled"));
    let size = app.log_size().await;
    let (_, _) = post_form(&app, &url, &[("csrf", &guard), ("newsletter/email", "yes"), ("action", "save")]).await;
    assert_eq!(app.log_size().await, size);
    let (_, again) = post_form(&app, &url, &[("csrf", &guard), ("action", "stop-marketing")]).await;
    assert!(again.contains("Nothing changed"));
    assert_eq!(app.log_size().await, size);

    let (status, _) = post_form(&app, &url, &[("csrf", &guard), ("action", "resume-marketing")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(subject_check(&app, "newsletter", "email").await["permitted"], true, "the earlier consent stands again");
}

#[tokio::test]
async fn forged_cross_site_and_malformed_posts_change_nothing() {
    let app = spawn_app().await;
    catalogue(&app).await;
    let url = app.preference_link("T-1").await;
    let (_, html) = get_html(&app, &url).await;
    let guard = guard_of(&html);
    let size = app.log_size().await;

    let (status, body) = post_form(&app, &url, &[("newsletter/email", "yes")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no guard");
    assert!(body.contains("not saved"));
    let (status, _) = post_form(&app, &url, &[("csrf", "AAAA"), ("newsletter/email", "yes")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "wrong guard");
    let other_link = app.preference_link("T-2").await;
    let (_, other_html) = get_html(&app, &other_link).await;
    let (status, _) = post_form(&app, &url, &[("csrf", &guard_of(&other_html)), ("newsletter/email", "yes")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another link's guard");
    let fields = [("csrf", guard.as_str()), ("newsletter/email", "yes")];
    for (name, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
        let resp = app.client.post(&url).header(name, value).form(&fields).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    for bad in [
        vec![("csrf", guard.as_str()), ("newsletter/email", "maybe")],
        vec![("csrf", guard.as_str()), ("repairs-updates/sms", "no")],
        vec![("csrf", guard.as_str()), ("newsletter/fax", "yes")],
        vec![("csrf", guard.as_str()), ("format", "huge")],
        vec![("csrf", guard.as_str()), ("language", "<script>")],
        vec![("csrf", guard.as_str()), ("action", "delete-everything")],
    ] {
        let (status, body) = post_form(&app, &url, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(!body.contains("<script>"));
    }
    assert_eq!(app.log_size().await, size);

    // Same-origin posts as browsers send them are accepted.
    let resp = app
        .client
        .post(&url)
        .header("origin", app.address.as_str())
        .header("sec-fetch-site", "same-origin")
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(app.log_size().await, size + 1);
}

#[tokio::test]
async fn tampered_foreign_and_expired_links_get_a_clear_page() {
    let app = spawn_app().await;
    catalogue(&app).await;
    let url = app.preference_link("T-1").await;
    let token = url.rsplit('/').next().unwrap().to_owned();
    let (payload, tag) = token.split_once('.').unwrap();

    // Another subject's payload under this tag.
    let forged_payload = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut v: Value = serde_json::from_slice(&b64.decode(payload).unwrap()).unwrap();
        v["s"] = json!("T-2");
        b64.encode(serde_json::to_vec(&v).unwrap())
    };
    let other = spawn_app().await;
    let foreign = other.preference_link("T-1").await;
    let foreign_token = foreign.rsplit('/').next().unwrap();
    for bad in
        [format!("{forged_payload}.{tag}"), format!("{payload}.{}", &tag[1..]), "nonsense".into(), foreign_token.into()]
    {
        let (status, html) = get_html(&app, &app.url(&format!("/p/{bad}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("This link is not valid"));
        let (status, _) = post_form(&app, &app.url(&format!("/p/{bad}")), &[("action", "stop-marketing")]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    let past = Utc::now().timestamp() - 60;
    let expired = app.preference_token(&PreferenceToken {
        c: ControllerId::parse("council").unwrap(),
        s: SubjectId::parse("T-1").unwrap(),
        x: past,
        t: past - 86_400,
    });
    let size = app.log_size().await;
    let (status, html) = get_html(&app, &app.url(&format!("/p/{expired}"))).await;
    assert_eq!(status, StatusCode::GONE);
    assert!(html.contains("This link has expired"));
    let (status, _) = post_form(&app, &app.url(&format!("/p/{expired}")), &[("action", "stop-marketing")]).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(app.log_size().await, size);
}

#[tokio::test]
async fn people_see_and_download_their_own_receipts_only() {
    let app = spawn_app().await;
    catalogue(&app).await;
    let theirs = app
        .record(json!({"type": "consent.granted", "subject": "T-2", "purpose": "newsletter", "actor": staff()}))
        .await;
    let theirs_id = theirs["event"]["id"].as_str().unwrap();
    let url = app.preference_link("T-1").await;
    let (_, html) = get_html(&app, &url).await;
    assert!(!html.contains(theirs_id), "never another subject's data");
    let (_, done) =
        post_form(&app, &url, &[("csrf", &guard_of(&html)), ("newsletter/email", "yes"), ("action", "save")]).await;
    let at = done.find("/receipts/").unwrap() + "/receipts/".len();
    let id = done[at..at + 36].to_owned();

    let (status, receipt) = get_html(&app, &format!("{url}/receipts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(receipt.contains("Yes to “The Voice newsletter” by email"));
    assert!(receipt.contains("On the web page, by you"));
    assert!(receipt.contains(&id));

    let resp = app.client.get(format!("{url}/receipts/{id}/json")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let signed: Value = resp.json().await.unwrap();
    assert_eq!(signed["event"]["id"], id.as_str());
    let (sig, key) = (signed["signature"].as_str().unwrap(), signed["key_id"].as_str().unwrap());
    assert!(app.verifies(&signed["event"], sig, key).await, "the receipt verifies with the public key");
    let mut forged = signed["event"].clone();
    forged["type"] = json!("consent.withdrawn");
    assert!(!app.verifies(&forged, sig, key).await);

    for bad in [theirs_id, "not-a-uuid", "01900000-0000-7000-8000-000000000000"] {
        let (status, page) = get_html(&app, &format!("{url}/receipts/{bad}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}");
        assert!(page.contains("Receipt not found"));
        assert_eq!(
            app.client.get(format!("{url}/receipts/{bad}/json")).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn an_erased_subject_gets_no_form() {
    let app = spawn_app().await;
    catalogue(&app).await;
    app.record(json!({"type": "subject.erased", "subject": "T-1", "actor": staff()})).await;
    let url = app.preference_link("T-1").await;
    let (status, html) = get_html(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("We no longer hold your details"));
    assert!(!html.contains("<form"));
    let size = app.log_size().await;
    let (_, _) = post_form(&app, &url, &[("action", "stop-marketing")]).await;
    assert_eq!(app.log_size().await, size);
}
