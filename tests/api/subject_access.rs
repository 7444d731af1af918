//! Subject access: `GET /v1/subjects/{s}/access-report` and `consent-ledger subject-access`
//! give one person's whole record as a signed bundle (every event with its receipt and an
//! inclusion proof to one signed checkpoint, the notices they were shown, the keys) and a
//! plain-English report; the bundle verifies offline with `consent-ledger verify --access`,
//! and a change to one byte of it is caught. No address appears, only its kind and dates.

use consent_ledger::service::access::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::addresses::text_stop;
use crate::helpers::{assert_problem, bin, new_keys, newsletter, spawn_app, staff, start_server, TestApp};

/// A person with a consent given under a notice, a representative, a STOP texted from their
/// phone, a withdrawal and an objection.
async fn record_of_a_person(app: &TestApp) {
    app.with_purposes().await;
    app.with_notice("privacy-2026").await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff(),
        "method": "paper_form", "notice_version": "privacy-2026"}))
        .await;
    app.record(json!({"type": "representative.authorised", "subject": "T-1", "actor": staff(),
        "representative": {"id": "rep-1", "authority": "lasting-power-of-attorney"}, "evidence": {"ref": "lpa-1"}}))
        .await;
    app.record(json!({"type": "preference.set", "subject": "T-1", "preference": {"format": "large_print"},
        "actor": {"kind": "representative", "id": "rep-1", "authority": "lasting-power-of-attorney"}}))
        .await;
    app.record(json!({"type": "contact.linked", "subject": "T-1",
        "contact": {"channel": "sms", "address": "+447700900123"}, "actor": staff()}))
        .await;
    text_stop(app).await;
    app.record(json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "channel": "post",
        "actor": staff()}))
        .await;
    app.record(json!({"type": "restriction.applied", "subject": "T-1", "actor": staff()})).await;
    // Someone else's events are not in it.
    app.record(json!({"type": "consent.granted", "subject": "T-2", "purpose": "newsletter", "actor": staff()})).await;
}

async fn report(app: &TestApp, key: &str, subject: &str, html: bool) -> reqwest::Response {
    let mut req = app.client.get(app.url(&format!("/v1/subjects/{subject}/access-report"))).bearer_auth(key);
    if html {
        req = req.header("accept", "text/html");
    }
    req.send().await.unwrap()
}

pub(crate) fn verify(path: &std::path::Path, keys: &[&str]) -> (bool, String) {
    let mut cmd = bin();
    cmd.args(["verify", "--access"]).arg(path);
    for k in keys {
        cmd.args(["--key", k]);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn a_subject_access_bundle_verifies_offline_and_a_one_byte_change_is_caught() {
    let app = spawn_app().await;
    record_of_a_person(&app).await;
    assert_problem(report(&app, &app.check, "T-1", false).await, StatusCode::FORBIDDEN).await;
    assert_problem(report(&app, &app.audit, "T-9", false).await, StatusCode::NOT_FOUND).await;

    let resp = report(&app, &app.audit, "T-1", false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("7700900123"), "no address, ever");
    let signed: Value = serde_json::from_str(&text).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/access.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&signed).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "the bundle validates against schemas/access.schema.json: {errors:?}");
    let b = &signed["bundle"];
    assert_eq!(b["type"], "consent-ledger/subject-access");
    let types: Vec<&str> =
        b["events"].as_array().unwrap().iter().map(|e| e["receipt"]["event"]["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "consent.granted",
            "representative.authorised",
            "preference.set",
            "contact.linked",
            "objection.raised",
            "consent.withdrawn",
            "restriction.applied"
        ]
    );
    let stop = &b["events"][4];
    assert_eq!(stop["via"], json!({"contact_kind": "tel", "shared": false}));
    assert_eq!(b["notices"][0]["receipt"]["event"]["notice"]["title"], "How we use your information");
    assert_eq!(
        b["addresses"],
        json!([{"kind": "tel", "linked_at": b["events"][3]["receipt"]["event"]["recorded_at"], "shared": false}])
    );
    let newsletter_email = b["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "newsletter" && p["channel"] == "email")
        .unwrap();
    assert_eq!(newsletter_email["permitted"], false);
    assert_eq!(newsletter_email["reason"], "restricted");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.json");
    std::fs::write(&file, &text).unwrap();
    let (ok, out) = verify(&file, &[]);
    assert!(ok && out.contains("7 event(s) and 1 notice(s) verify"), "{out}");
    let keys: Value = app.client.get(app.url("/v1/keys")).send().await.unwrap().json().await.unwrap();
    let vkey = keys["keys"][0]["vkey"].as_str().unwrap().to_owned();
    assert!(verify(&file, &[&vkey]).0, "with the published key pinned");

    // One byte changed, in an event, in a proof, in the bundle's own lines: each is caught.
    let proof_hash = b["events"][0]["inclusion_proof"][0].as_str().unwrap().to_owned();
    let mut flipped = proof_hash.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let changes = [
        ("\"purpose\":\"newsletter\"", "\"purpose\":\"newsletteR\""),
        (proof_hash.as_str(), flipped.as_str()),
        ("\"permitted\":false", "\"permitted\":falsE"),
        ("\"shared\":false", "\"shared\":true"),
        ("\"lpa-1\"", "\"lpa-2\""),
    ];
    for (from, to) in changes {
        assert!(text.contains(from), "{from}");
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
        let (ok, out) = verify(&file, &[]);
        assert!(!ok && out.contains("FAILED"), "changing {from} to {to} was not caught: {out}");
    }
}

#[tokio::test]
async fn the_report_is_plain_english_and_names_no_address() {
    let app = spawn_app().await;
    record_of_a_person(&app).await;
    let resp = report(&app, &app.audit, "T-1", true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.starts_with("default-src 'none'") && !csp.contains("unsafe"), "{csp}");
    let html = resp.text().await.unwrap();
    for heading in [
        "What we may do now, and why",
        "What you agreed to, and when",
        "What you withdrew",
        "Objections and restrictions",
        "Who acted for you",
        "The notices you were shown",
        "Your contact details",
        "Everything, in order",
    ] {
        assert!(html.contains(heading), "{heading}");
    }
    assert!(html.contains("Yes to “The Voice newsletter”") && html.contains("On a paper form"));
    assert!(html.contains("rep-1, under lasting-power-of-attorney"));
    assert!(html.contains("How we use your information") && html.contains("@media print"));
    assert!(html.contains("Stop all marketing by text message (at your phone number)"), "{html}");
    assert!(html.contains("the use of your details is restricted"));
    assert!(!html.contains("7700900123") && !html.contains("<script"));
}

#[tokio::test]
async fn the_subject_access_command_writes_the_bundle_and_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(dir.path());
    let key = new_keys(dir.path(), "council", &[Role::Admin, Role::Record]);
    let client = reqwest::Client::new();
    let put = client.put(format!("{}/v1/purposes/newsletter", server.address)).bearer_auth(&key).json(&newsletter());
    assert_eq!(put.send().await.unwrap().status(), StatusCode::OK);
    let grant = json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()});
    let r = client.post(format!("{}/v1/events", server.address)).bearer_auth(&key).json(&grant).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    server.stop();

    let out_dir = dir.path().join("sar");
    let out = bin()
        .args(["subject-access", "--controller", "council", "--subject", "T-1", "--out"])
        .arg(&out_dir)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 event(s), 0 notice(s)"));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("Yes to “The Voice newsletter”"));
    let (ok, said) = verify(&out_dir.join("access.json"), &[]);
    assert!(ok, "{said}");
}
