//! A person's addresses: a STOP texted from their phone and an unsubscribe link clicked in an
//! email show on their page and in their history (marked as such), and a "yes" on the page
//! records what the rules need to permit that address again; an address shared with someone
//! else is shown as shared and not switched back on from one person's page.

use consent_ledger::service::access::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{new_keys, spawn_app, staff, TestApp};
use crate::preferences::{get_html, guard_of, post_form};

const PHONE: &str = "+447700900123";

async fn link(app: &TestApp, subject: &str, channel: &str, address: &str) {
    app.record(json!({"type": "contact.linked", "subject": subject,
        "contact": {"channel": channel, "address": address}, "actor": staff()}))
        .await;
}

/// Texts STOP from `PHONE` through the provider's webhook.
pub(crate) async fn text_stop(app: &TestApp) {
    let webhook = new_keys(app.dir.path(), "council", &[Role::SmsWebhook]);
    let r = app
        .client
        .post(app.url("/v1/inbound/sms"))
        .bearer_auth(&webhook)
        .json(&json!({"from": PHONE, "body": "STOP", "message_id": "SM-stop-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Clicks the one-click unsubscribe link a mailing system got for `email` and `purpose`.
async fn unsubscribe(app: &TestApp, email: &str, purpose: &str) {
    let answer = app.check(&[("email", email), ("purpose", purpose), ("unsubscribe", "true")]).await;
    let url = answer["list_unsubscribe"].as_str().expect("a link").trim_matches(|c| c == '<' || c == '>').to_owned();
    let r = app
        .client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn by_address(app: &TestApp, kind: &str, address: &str, purpose: &str, channel: &str) -> Value {
    app.check(&[(kind, address), ("purpose", purpose), ("channel", channel)]).await
}

fn checked(html: &str, field: &str, value: &str) -> bool {
    html.contains(&format!("name=\"{field}\" value=\"{value}\" checked"))
}

fn disabled(html: &str, field: &str) -> bool {
    html.split("<input").filter(|i| i.contains(&format!("name=\"{field}\""))).all(|i| i.contains(" disabled"))
}

#[tokio::test]
async fn a_stop_by_text_and_an_unsubscribe_show_on_the_page_and_a_yes_restores_them() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    link(&app, "T-1", "email", "jane@example.org").await;
    link(&app, "T-1", "sms", PHONE).await;
    let url = app.preference_link("T-1").await;
    let (_, before) = get_html(&app, &url).await;
    assert!(checked(&before, "newsletter/sms", "yes") && checked(&before, "newsletter/email", "yes"));

    text_stop(&app).await;
    unsubscribe(&app, "jane@example.org", "newsletter").await;
    // Asked by subject, only the subject's own events count (rule 6): still yes.
    assert_eq!(
        app.check(&[("subject", "T-1"), ("purpose", "newsletter"), ("channel", "sms")]).await["permitted"],
        true
    );

    // The page answers for the person's own addresses: both off, each saying why, and both
    // still changeable here.
    let (status, html) = get_html(&app, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(checked(&html, "newsletter/sms", "no"), "a STOP by text shows as no");
    assert!(checked(&html, "newsletter/email", "no"), "an unsubscribe shows as no");
    assert!(checked(&html, "newsletter/post", "yes"), "post is untouched");
    assert!(!disabled(&html, "newsletter/sms") && !disabled(&html, "newsletter/email"));
    assert!(html.contains("Off for your phone number: STOP was texted from it."), "{html}");
    assert!(html.contains("Off for your email address: the unsubscribe link in an email was used."));
    assert!(html.contains("by a text message STOP") && html.contains("by the unsubscribe link in an email"));
    assert!(html.contains("An email address, added") && html.contains("A phone number, added"));
    assert!(!html.contains("jane@") && !html.contains("7700900123"), "the page never shows an address");
    // Short references, not UUIDs, in what people read.
    let stop_id =
        by_address(&app, "phone", PHONE, "newsletter", "sms").await["decided_by"][0].as_str().unwrap().to_owned();
    assert!(html.contains(&format!("/receipts/{stop_id}\">receipt ")), "the link still names the event");
    assert!(!html.contains(&format!(">receipt {stop_id}")));
    // The STOP's receipt opens from the person's page, though it was recorded against the number.
    let (status, receipt) = get_html(&app, &format!("{url}/receipts/{stop_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(receipt.contains("By a text message reply"), "{receipt}");

    // The API history has them too, marked with the kind of address, never the address.
    let history: Value = app.history(&app.audit, "T-1").await.json().await.unwrap();
    let via: Vec<&Value> = history["events"].as_array().unwrap().iter().filter(|e| e.get("via").is_some()).collect();
    assert_eq!(via.len(), 2, "{history}");
    assert_eq!(via[0]["via"], json!({"contact_kind": "tel", "shared": false}));
    assert_eq!(via[0]["event"]["type"], "objection.raised");
    assert_eq!(via[1]["via"], json!({"contact_kind": "email", "shared": false}));
    assert!(via[1]["event"].get("subject").is_none());

    // Yes again, on the page: what the rules need, against each address itself.
    let size = app.log_size().await;
    let fields = [
        ("csrf", guard_of(&html)),
        ("newsletter/email", "yes".into()),
        ("newsletter/post", "yes".into()),
        ("newsletter/sms", "yes".into()),
        ("action", "save".into()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, done) = post_form(&app, &url, &fields).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(app.log_size().await, size + 2, "one event per address");
    assert!(done.contains("Marketing allowed again by text message"), "{done}");
    assert!(done.contains("Yes to “The Voice newsletter” by email"));
    assert_eq!(by_address(&app, "phone", PHONE, "newsletter", "sms").await["permitted"], true);
    assert_eq!(by_address(&app, "email", "jane@example.org", "newsletter", "email").await["permitted"], true);
    let (_, after) = get_html(&app, &url).await;
    assert!(checked(&after, "newsletter/sms", "yes") && checked(&after, "newsletter/email", "yes"));
    // The same submission again records nothing.
    let (_, again) = post_form(&app, &url, &fields).await;
    assert!(again.contains("Nothing changed"), "{again}");
    assert_eq!(app.log_size().await, size + 2);

    // And "no" by text on the page stops the number again, for this purpose.
    let fields = [("csrf", guard_of(&after)), ("newsletter/sms", "no".into()), ("action", "save".into())];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_form(&app, &url, &fields).await;
    assert_eq!(by_address(&app, "phone", PHONE, "newsletter", "sms").await["permitted"], false);
}

#[tokio::test]
async fn a_stop_lifted_on_the_page_does_not_switch_on_what_the_person_left_off() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let events = json!({"title": "Events near you", "basis": "consent", "marketing": true, "channels": ["sms"]});
    assert_eq!(app.put_purpose(&app.admin, "events", &events).await.status(), 200);
    for purpose in ["newsletter", "events"] {
        app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": purpose, "actor": staff()})).await;
    }
    link(&app, "T-1", "sms", PHONE).await;
    text_stop(&app).await;
    let url = app.preference_link("T-1").await;
    let (_, html) = get_html(&app, &url).await;
    assert!(checked(&html, "newsletter/sms", "no") && checked(&html, "events/sms", "no"));
    // Yes to the newsletter by text; events by text left as shown (no).
    let fields = [
        ("csrf", guard_of(&html)),
        ("newsletter/sms", "yes".into()),
        ("events/sms", "no".into()),
        ("action", "save".into()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, done) = post_form(&app, &url, &fields).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(by_address(&app, "phone", PHONE, "newsletter", "sms").await["permitted"], true);
    assert_eq!(by_address(&app, "phone", PHONE, "events", "sms").await["permitted"], false, "{done}");
    let (_, after) = get_html(&app, &url).await;
    assert!(checked(&after, "newsletter/sms", "yes") && checked(&after, "events/sms", "no"));
}

#[tokio::test]
async fn a_shared_address_is_shown_as_shared_and_one_persons_page_cannot_undo_its_stop() {
    let app = spawn_app().await;
    app.with_purposes().await;
    for s in ["T-1", "T-2"] {
        app.record(json!({"type": "consent.granted", "subject": s, "purpose": "newsletter", "actor": staff()})).await;
        link(&app, s, "email", "family@example.org").await;
    }
    unsubscribe(&app, "family@example.org", "newsletter").await;
    let url = app.preference_link("T-1").await;
    let (_, html) = get_html(&app, &url).await;
    assert!(html.contains("An email address, added") && html.contains("shared with someone else"), "{html}");
    assert!(checked(&html, "newsletter/email", "no") && disabled(&html, "newsletter/email"));
    assert!(html.contains("which you share with someone else"));
    assert!(html.contains("(an address you share with someone else)"));
    // A hand-made post asking for yes changes nothing.
    let size = app.log_size().await;
    let guard = guard_of(&html);
    post_form(&app, &url, &[("csrf", &guard), ("newsletter/email", "yes"), ("action", "save")]).await;
    assert_eq!(app.log_size().await, size);
    assert_eq!(by_address(&app, "email", "family@example.org", "newsletter", "email").await["permitted"], false);
    let history: Value = app.history(&app.audit, "T-2").await.json().await.unwrap();
    let shared = history["events"].as_array().unwrap().iter().find(|e| e.get("via").is_some()).unwrap();
    assert_eq!(shared["via"]["shared"], true);
}
