//! The committed OpenAPI document and JSON Schemas match the code, and real responses and the
//! example documents validate against the schemas.

use std::path::Path;

use consent_ledger::cli::generate::generated_files;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, staff};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_openapi_and_schemas_are_up_to_date() {
    for (path, want) in generated_files() {
        let have = std::fs::read_to_string(root().join(&path)).unwrap_or_default();
        assert!(have == want, "{path} is stale: run `cargo run --release -- generate` and commit the result");
    }
}

fn validator(file: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas").join(file)).expect("schema file");
    let schema: Value = serde_json::from_str(&text).expect("schema json");
    jsonschema::validator_for(&schema).expect("valid schema")
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:?} in {doc}");
}

#[tokio::test]
async fn real_receipts_and_events_validate_against_the_schemas() {
    let app = spawn_app().await;
    app.with_purposes().await;
    let notice = app.with_notice("v3").await;
    let receipts = vec![
        notice,
        app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "channel": "email",
                          "occurred_at": "2026-11-01T10:00:00Z", "expires_at": "2028-11-01T10:00:00Z",
                          "method": "paper_form", "actor": staff(), "notice_version": "v3",
                          "evidence": {"ref": "scan-1", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}))
            .await,
        app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": {"channel": "sms", "address": "+447700900123"}, "actor": staff()}))
            .await,
        app.record(json!({"type": "representative.authorised", "subject": "T-1", "actor": staff(),
                          "representative": {"id": "rep-1", "authority": "lasting-power-of-attorney"},
                          "occurred_at": "2026-10-01T10:00:00Z", "expires_at": "2036-10-01T10:00:00Z",
                          "evidence": {"ref": "lpa-scan-1"}}))
            .await,
        app.record(json!({"type": "preference.set", "subject": "T-1", "actor": {"kind": "representative", "id": "rep-1", "authority": "lasting-power-of-attorney"},
                          "preference": {"format": "large_print"}}))
            .await,
    ];
    let receipt_schema = validator("receipt.schema.json");
    let event_schema = validator("event.schema.json");
    for r in &receipts {
        assert_valid(&receipt_schema, r);
        assert_valid(&event_schema, &r["event"]);
    }
    // The purpose definitions are signed events too.
    let history: Value =
        app.get_event(&app.audit, receipts[1]["event"]["id"].as_str().expect("id")).await.json().await.expect("json");
    assert_valid(&receipt_schema, &history);

    // A document with an extra field or a missing signature is not a receipt.
    let mut extra = receipts[1].clone();
    extra["event"]["name"] = json!("Jane");
    assert!(!receipt_schema.is_valid(&extra));
    let mut missing = receipts[1].clone();
    missing.as_object_mut().expect("object").remove("signature");
    assert!(!receipt_schema.is_valid(&missing));
}

#[test]
fn example_documents_validate() {
    let dir = root().join("schemas/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("schemas/examples") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_owned();
        let schema = if name.starts_with("receipt") { "receipt.schema.json" } else { "event.schema.json" };
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_valid(&validator(schema), &doc);
        seen += 1;
    }
    assert!(seen >= 2, "expected example documents in schemas/examples");
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = spawn_app().await;
    let served = app.client.get(app.url("/openapi.json")).send().await.expect("send").text().await.expect("text");
    let committed = std::fs::read_to_string(root().join("openapi/openapi.json")).unwrap_or_default();
    assert_eq!(served, committed);
}

/// A validator for an operation's JSON response, from the committed OpenAPI document.
fn response_validator(path: &str, method: &str, status: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("openapi/openapi.json")).expect("openapi");
    let doc: Value = serde_json::from_str(&text).expect("openapi json");
    let schema = doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"].clone();
    assert!(!schema.is_null(), "{method} {path} documents no JSON {status} answer");
    jsonschema::validator_for(&json!({"allOf": [schema], "components": doc["components"]})).expect("valid schema")
}

#[tokio::test]
async fn real_answers_match_the_openapi_document() {
    let app = spawn_app().await;
    app.with_purposes().await;
    app.record(json!({"type": "contact.linked", "subject": "T-1", "contact": {"channel": "email", "address": "jane@example.org"}, "actor": staff()}))
        .await;
    app.record(json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": staff()})).await;
    let get = |path: &'static str, key: String| {
        let url = app.url(path);
        let client = app.client.clone();
        async move {
            let resp = client.get(url).bearer_auth(key).send().await.expect("send");
            assert_eq!(resp.status(), 200, "{path}");
            resp.json::<Value>().await.expect("json")
        }
    };
    for (template, path, key) in [
        ("/v1/purposes", "/v1/purposes", &app.admin),
        ("/v1/check", "/v1/check?email=jane@example.org&purpose=newsletter&signed=true&unsubscribe=true", &app.check),
        ("/v1/feed", "/v1/feed?after=0&limit=10", &app.check),
        ("/v1/subjects/{subject}/permissions", "/v1/subjects/T-1/permissions", &app.check),
        ("/v1/subjects/{subject}/history", "/v1/subjects/T-1/history", &app.audit),
        ("/v1/keys", "/v1/keys", &app.check),
    ] {
        let answer = get(path, key.clone()).await;
        assert_valid(&response_validator(template, "get", "200"), &answer);
    }
}

#[tokio::test]
async fn the_document_and_the_server_agree_on_each_event_types_shape() {
    let text = std::fs::read_to_string(root().join("openapi/openapi.json")).expect("openapi");
    let doc: Value = serde_json::from_str(&text).expect("openapi json");
    let schema = json!({"allOf": [{"$ref": "#/components/schemas/EventRequest"}], "components": doc["components"]});
    let v = jsonschema::validator_for(&schema).expect("valid schema");
    let app = spawn_app().await;
    app.with_purposes().await;
    let s = staff();
    let email = json!({"channel": "email", "address": "jane@example.org"});
    let cases = [
        json!({"type": "consent.granted", "subject": "T-1", "purpose": "newsletter", "actor": s}),
        json!({"type": "consent.granted", "contact": email, "purpose": "newsletter", "channel": "email", "actor": s}),
        json!({"type": "objection.raised", "subject": "T-1", "actor": s}),
        json!({"type": "contact.linked", "subject": "T-1", "contact": email, "actor": s}),
        json!({"type": "subject.erased", "subject": "T-2", "actor": s}),
        // Refused by both: the shapes.
        json!({"type": "consent.granted", "purpose": "newsletter", "actor": s}),
        json!({"type": "consent.granted", "subject": "T-1", "actor": s}),
        json!({"type": "consent.granted", "subject": "T-1", "purpose": null, "actor": s}),
        json!({"type": "purpose.defined", "subject": "T-1", "actor": s}),
        json!({"type": "key.rotated", "subject": "T-1", "actor": s}),
        json!({"type": "contact.linked", "subject": "T-1", "actor": s}),
        json!({"type": "subject.erased", "subject": "T-1", "purpose": "newsletter", "actor": s}),
        json!({"type": "subject.erased", "subject": "T-1", "contact": email, "actor": s}),
        json!({"type": "restriction.applied", "contact": email, "actor": s}),
        json!({"type": "consent.withdrawn", "subject": "T-1", "purpose": "newsletter", "expires_at": "2030-01-01T00:00:00Z", "actor": s}),
        json!({"type": "preference.set", "subject": "T-1", "actor": s}),
    ];
    for body in cases {
        let schema_valid = v.is_valid(&body);
        let status = app.post_event(&app.record, &body).await.status();
        assert_eq!(schema_valid, status.is_success(), "{body}: the document says {schema_valid}, the server {status}");
    }
}
