//! Representatives act for a person only under a recorded authorisation, as of the event's
//! time; an authorisation names a known authority and its evidence, and may end at a date.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, staff, TestApp};

fn authorise(rep: &str, authority: &str, at: &str, until: Option<&str>) -> Value {
    let mut e = json!({"type": "representative.authorised", "subject": "T-1", "actor": staff(), "occurred_at": at,
                       "representative": {"id": rep, "authority": authority}, "evidence": {"ref": "order-1"}});
    if let Some(u) = until {
        e["expires_at"] = json!(u);
    }
    e
}

fn act(rep: &str, authority: &str, at: &str) -> Value {
    json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "occurred_at": at,
           "method": "paper_form", "actor": {"kind": "representative", "id": rep, "authority": authority}})
}

async fn refused(app: &TestApp, body: Value, words: &str) {
    let p = assert_problem(app.post_event(&app.record, &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains(words), "{p}");
}

#[tokio::test]
async fn a_representative_acts_only_while_authorised() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let before = app.log_size().await;
    // Nobody authorised rep-1 yet.
    refused(&app, act("rep-1", "lasting-power-of-attorney", "2026-01-10T10:00:00Z"), "no authorisation").await;
    // An authorisation needs its evidence and a known authority.
    let mut no_evidence = authorise("rep-1", "lasting-power-of-attorney", "2026-01-01T00:00:00Z", None);
    no_evidence.as_object_mut().unwrap().remove("evidence");
    refused(&app, no_evidence, "needs evidence").await;
    refused(&app, authorise("rep-1", "friend-of-the-family", "2026-01-01T00:00:00Z", None), "must be one of").await;
    // Acting for nobody in particular is refused.
    let mut no_subject = act("rep-1", "lasting-power-of-attorney", "2026-01-10T10:00:00Z");
    no_subject.as_object_mut().unwrap().remove("subject");
    no_subject["contact"] = json!({"channel": "email", "address": "t1@example.org"});
    refused(&app, no_subject, "name the subject").await;
    assert_eq!(app.log_size().await, before, "nothing refused was written");

    app.record(authorise("rep-1", "lasting-power-of-attorney", "2026-01-01T00:00:00Z", None)).await;
    app.record(act("rep-1", "lasting-power-of-attorney", "2026-01-10T10:00:00Z")).await;
    // Before the authorisation, or under another authority: refused.
    refused(&app, act("rep-1", "lasting-power-of-attorney", "2025-12-31T10:00:00Z"), "no authorisation").await;
    refused(&app, act("rep-1", "deputy", "2026-01-10T10:00:00Z"), "another authority").await;
    // Someone else is not authorised by rep-1's authorisation.
    refused(&app, act("rep-2", "lasting-power-of-attorney", "2026-01-10T10:00:00Z"), "no authorisation").await;

    // Revoked: acts after the revocation are refused; a form signed before it still counts.
    app.record(json!({"type": "representative.revoked", "subject": "T-1", "actor": staff(),
                      "occurred_at": "2026-02-01T00:00:00Z",
                      "representative": {"id": "rep-1", "authority": "lasting-power-of-attorney"}}))
        .await;
    refused(&app, act("rep-1", "lasting-power-of-attorney", "2026-02-02T10:00:00Z"), "no authorisation").await;
    app.record(act("rep-1", "lasting-power-of-attorney", "2026-01-20T10:00:00Z")).await;
    // With no time given, now counts: refused.
    let mut now = act("rep-1", "lasting-power-of-attorney", "2026-01-20T10:00:00Z");
    now.as_object_mut().unwrap().remove("occurred_at");
    refused(&app, now, "no authorisation").await;
}

#[tokio::test]
async fn a_guardians_authority_ends_at_its_date() {
    let app = spawn_app().await;
    app.with_purposes().await;
    // The child turns 18 on 1 March 2026: the recorder gives that date (the ledger holds no
    // date of birth).
    app.record(authorise("mum", "parent-or-guardian", "2020-05-01T00:00:00Z", Some("2026-03-01T00:00:00Z"))).await;
    app.record(act("mum", "parent-or-guardian", "2026-02-28T12:00:00Z")).await;
    refused(&app, act("mum", "parent-or-guardian", "2026-03-01T00:00:00Z"), "no authorisation").await;
    // Checks are unchanged: the withdrawal the guardian recorded counts like any other.
    let a = app.check(&[("subject", "T-1"), ("purpose", "newsletter"), ("channel", "email")]).await;
    assert_eq!((a["permitted"].as_bool(), a["reason"].as_str()), (Some(false), Some("consent_withdrawn")));
}
