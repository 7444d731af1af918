//! The walk-through a new user follows: purposes, a paper-form grant, a linked email, a
//! withdrawal by email, "as of" before it, and a contract purpose until an SMS opt-out.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, staff};

fn ids(v: &Value) -> Vec<String> {
    v["decided_by"].as_array().expect("decided_by").iter().map(|x| x.as_str().unwrap_or("").to_owned()).collect()
}

#[tokio::test]
async fn newsletter_by_email_then_withdrawal_then_as_of() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.with_notice("privacy-2026-04").await;

    let grant = app
        .record(json!({
            "type": "consent.granted", "subject": "T-1", "purpose": "newsletter",
            "occurred_at": "2026-11-01T10:00:00Z", "method": "paper_form", "actor": staff(),
            "evidence": {"ref": "scan-2026-0001", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
            "notice_version": "privacy-2026-04"
        }))
        .await;
    let grant_id = grant["event"]["id"].as_str().expect("id").to_owned();
    assert_eq!(grant["event"]["method"], "paper_form");
    assert_eq!(grant["event"]["basis"], "consent");
    let link = app
        .record(json!({"type": "contact.linked", "subject": "T-1",
                       "contact": {"channel": "email", "address": "Jane@Example.org"}, "actor": staff()}))
        .await;
    // The signed event holds a blind index, never the address.
    assert!(!link.to_string().to_lowercase().contains("jane"));

    let q = [("email", "jane@example.org"), ("purpose", "newsletter"), ("channel", "email")];
    let yes = app.check(&q).await;
    assert_eq!(yes["permitted"], true, "{yes}");
    assert_eq!(yes["reason"], "consent_granted");
    assert_eq!(ids(&yes), vec![grant_id.clone()]);

    let withdrawal = app
        .record(json!({"type": "consent.withdrawn", "contact": {"channel": "email", "address": "jane@example.org"},
                       "purpose": "newsletter", "method": "email_link", "actor": {"kind": "subject"}}))
        .await;
    let withdrawal_id = withdrawal["event"]["id"].as_str().expect("id").to_owned();

    let no = app.check(&q).await;
    assert_eq!(no["permitted"], false, "{no}");
    assert_eq!(no["reason"], "consent_withdrawn");
    assert_eq!(ids(&no), vec![withdrawal_id]);

    // As of the moment the link was recorded (after the grant, before the withdrawal).
    let at = link["event"]["recorded_at"].as_str().expect("recorded_at");
    let then = app.check(&[q[0], q[1], q[2], ("at", at)]).await;
    assert_eq!(then["permitted"], true, "{then}");
    assert_eq!(ids(&then), vec![grant_id]);

    // Asked by subject, only the subject's own events count: the address's unsubscribe
    // does not withdraw the subject's consent for post.
    let by_subject = app.check(&[("subject", "T-1"), ("purpose", "newsletter"), ("channel", "post")]).await;
    assert_eq!(by_subject["permitted"], true);
}

#[tokio::test]
async fn repairs_by_sms_stay_permitted_until_an_sms_opt_out() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "contact.linked", "subject": "T-1",
                      "contact": {"channel": "sms", "address": "+44 7700 900123"}, "actor": staff()}))
        .await;
    let q = [("phone", "+447700900123"), ("purpose", "repairs-updates"), ("channel", "sms")];
    let a = app.check(&q).await;
    assert_eq!(
        (a["permitted"].clone(), a["reason"].clone(), a["basis"].clone()),
        (json!(true), json!("contract"), json!("contract"))
    );

    let opt_out = app
        .record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "repairs-updates",
                       "channel": "sms", "method": "phone_call", "actor": staff()}))
        .await;
    let b = app.check(&q).await;
    assert_eq!(b["permitted"], false);
    assert_eq!(b["reason"], "opted_out");
    assert_eq!(b["decided_by"][0], opt_out["event"]["id"]);
    // Other channels of the same purpose are untouched.
    let c = app.check(&[("phone", "+447700900123"), ("purpose", "repairs-updates"), ("channel", "phone")]).await;
    assert_eq!(c["permitted"], true);
}

#[tokio::test]
async fn bulk_checks_answer_in_order_like_single_checks() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    app.record(json!({"type": "contact.linked", "subject": "T-1",
                      "contact": {"channel": "email", "address": "a@example.org"}, "actor": staff()}))
        .await;
    let items = json!([
        {"email": "a@example.org", "purpose": "newsletter"},
        {"email": "b@example.org", "purpose": "newsletter"},
        {"subject": "T-1", "purpose": "repairs-updates", "channel": "sms"},
    ]);
    let resp = app.post_checks(&app.check, &items).await;
    assert_eq!(resp.status(), 200);
    let answers: Vec<Value> = resp.json().await.expect("json");
    assert_eq!(answers.len(), 3);
    for (item, answer) in items.as_array().expect("array").iter().zip(&answers) {
        let mut q: Vec<(&str, &str)> = Vec::new();
        for (k, v) in item.as_object().expect("object") {
            q.push((k.as_str(), v.as_str().expect("str")));
        }
        let single = app.check(&q).await;
        assert_eq!(single["permitted"], answer["permitted"]);
        assert_eq!(single["reason"], answer["reason"]);
    }
    assert_eq!(answers[0]["permitted"], true);
    assert_eq!(answers[1]["reason"], "no_consent");
}

#[tokio::test]
async fn objection_to_marketing_restriction_and_erasure() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let contact = json!({"channel": "email", "address": "x@example.org"});
    app.record(json!({"type": "contact.linked", "subject": "T-9", "contact": contact, "actor": staff()})).await;
    app.record(json!({"type": "consent.granted", "subject": "T-9", "purpose": "newsletter", "actor": staff()})).await;
    app.record(json!({"type": "objection.raised", "subject": "T-9", "actor": {"kind": "subject"}})).await;
    let q = [("subject", "T-9"), ("purpose", "newsletter"), ("channel", "email")];
    assert_eq!(app.check(&q).await["reason"], "marketing_objection");
    // Not marketing: still permitted.
    let r = [("subject", "T-9"), ("purpose", "repairs-updates"), ("channel", "email")];
    assert_eq!(app.check(&r).await["permitted"], true);
    app.record(json!({"type": "restriction.applied", "subject": "T-9", "actor": staff()})).await;
    assert_eq!(app.check(&r).await["reason"], "restricted");
    app.record(json!({"type": "subject.erased", "subject": "T-9", "actor": staff()})).await;
    assert_eq!(app.check(&r).await["reason"], "subject_erased");
    let by_address = app.check(&[("email", "x@example.org"), ("purpose", "repairs-updates")]).await;
    assert_eq!(by_address["reason"], "contact_suppressed");
}

#[tokio::test]
async fn permissions_and_history_of_a_subject() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "channel": "email", "actor": staff()}))
        .await;
    let resp = app.permissions(&app.audit, "T-1").await;
    assert_eq!(resp.status(), 200);
    let p: Value = resp.json().await.expect("json");
    let rows = p["permissions"].as_array().expect("rows");
    let find = |purpose: &str, channel: &str| {
        rows.iter().find(|r| r["purpose"] == purpose && r["channel"] == channel).expect("row").clone()
    };
    assert_eq!(find("newsletter", "email")["permitted"], true);
    assert_eq!(find("newsletter", "post")["permitted"], false);
    assert_eq!(find("repairs-updates", "sms")["permitted"], true);

    let resp = app.history(&app.audit, "T-1").await;
    assert_eq!(resp.status(), 200);
    let h: Value = resp.json().await.expect("json");
    assert_eq!(h["events"].as_array().expect("events").len(), 1);
    assert_eq!(h["events"][0]["event"]["type"], "consent.granted");
}
