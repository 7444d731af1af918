//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes. The
//! committed copy in `openapi/openapi.json` is compared with this in a test.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes;

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some("An API key from `consent-ledger apikey create`"))
                        .build(),
                ),
            );
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "consent-ledger",
        description = "An append-only, Ed25519-signed ledger of consent and communication preferences. \
Errors are RFC 9457 application/problem+json with a stable `type` per kind.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::purposes::put_purpose,
        routes::purposes::list_purposes,
        routes::notices::put_notice,
        routes::notices::get_notice,
        routes::notices::list_notices,
        routes::downstream::put_downstream,
        routes::downstream::list_downstream,
        routes::downstream::get_downstream_feed,
        routes::downstream::get_downstream_feed_stream,
        routes::downstream::create_downstream_acknowledgement,
        routes::downstream::get_downstream_overdue,
        routes::downstream::create_downstream_lookup,
        routes::downstream::get_downstream_webhook_secret,
        routes::events::create_event,
        routes::events::create_events_batch,
        routes::events::get_event,
        routes::events::get_event_receipt,
        routes::checks::get_check,
        routes::checks::create_checks,
        routes::subjects::get_subject_permissions,
        routes::subjects::get_subject_history,
        routes::subjects::create_preference_link,
        routes::subjects::get_subject_access_report,
        routes::keys::list_keys,
        routes::log::get_checkpoint,
        routes::log::get_inclusion_proof,
        routes::log::get_consistency_proof,
        routes::export::get_export,
        routes::feed::get_feed,
        routes::feed::get_feed_stream,
        routes::inbound::create_inbound_sms,
        routes::health::get_healthz,
        routes::health::get_readyz,
        routes::health::get_metrics,
        routes::backups::create_backup,
        routes::imports::create_import,
        routes::imports::get_import,
        routes::imports::create_suppressions,
        routes::retention::get_retention_due,
    ),
    components(schemas(service::EventDoc, service::Receipt, service::SignedDecision, crate::error::Problem)),
    modifiers(&ApiKeyAuth),
    tags(
        (name = "purposes", description = "The controller's purpose catalogue"),
        (name = "notices", description = "The privacy notices people are shown, by the hash of their exact text"),
        (name = "downstream", description = "Systems that receive the controller's data: their feeds, signed acknowledgements and what is overdue"),
        (name = "events", description = "Recording consents, withdrawals, objections, restrictions and more"),
        (name = "checks", description = "Is this contact or share permitted?"),
        (name = "subjects", description = "A subject's permissions, history and preference links"),
        (name = "log", description = "Public keys and proofs"),
        (name = "feed", description = "The change feed"),
        (name = "inbound", description = "Webhooks from SMS providers"),
        (name = "imports", description = "Records from before: CSV imports and suppression lists"),
        (name = "operations", description = "Health"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline, as committed: the handlers' paths and
/// schemas, with each event type's shape added to the event request as a `oneOf` (see
/// [`event_shapes`]). The alternatives are written into utoipa's own text, so the rest of the
/// document keeps its order.
pub fn openapi_json() -> String {
    let mut s = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    let marker = "\n      \"EventRequest\": {\n";
    if let Some(at) = s.find(marker) {
        let shapes = serde_json::to_string_pretty(&event_shapes()).unwrap_or_default();
        let indented = shapes.lines().collect::<Vec<_>>().join("\n        ");
        s.insert_str(at + marker.len(), &format!("        \"oneOf\": {indented},\n"));
    }
    s.push('\n');
    s
}

/// The document as JSON.
pub fn document() -> serde_json::Value {
    serde_json::from_str(&openapi_json()).unwrap_or_default()
}

/// One alternative per event type a client may record, from the domain's shape table: its
/// `type`, the members it needs (present and not null), the members it takes no part of
/// (absent or null), and "a subject, a contact, or both". Types only the ledger records
/// (`purpose.defined`, `key.rotated`) have no alternative, so the document refuses them as
/// the server does.
fn event_shapes() -> serde_json::Value {
    use domain::{EventType, Need, RecordedBy};
    use serde_json::json;
    let alternatives: Vec<serde_json::Value> = EventType::ALL
        .into_iter()
        .filter(|k| k.shape().recorded_by == RecordedBy::Client)
        .map(|k| {
            let shape = k.shape();
            let members = [
                ("subject", shape.subject),
                ("contact", shape.contact),
                ("purpose", shape.purpose),
                ("channel", shape.channel),
                ("preference", shape.preference),
                ("representative", shape.representative),
                ("expires_at", shape.expires_at),
            ];
            let mut required = vec![json!("type")];
            let mut properties = serde_json::Map::new();
            properties.insert("type".into(), json!({ "const": k.as_str() }));
            for (name, need) in members {
                match need {
                    Need::Required => {
                        required.push(json!(name));
                        properties.insert(name.into(), json!({ "not": { "type": "null" } }));
                    }
                    Need::Forbidden => {
                        properties.insert(name.into(), json!({ "type": "null" }));
                    }
                    Need::Allowed => {}
                }
            }
            let mut alt = json!({ "title": k.as_str(), "required": required, "properties": properties });
            if shape.subject != Need::Required && shape.contact != Need::Required {
                alt["anyOf"] = json!([
                    { "required": ["subject"], "properties": { "subject": { "not": { "type": "null" } } } },
                    { "required": ["contact"], "properties": { "contact": { "not": { "type": "null" } } } },
                ]);
            }
            alt
        })
        .collect();
    serde_json::Value::Array(alternatives)
}

/// The JSON Schema (2020-12) documents committed under `schemas/`: file name and content.
/// Each is cut from the OpenAPI components (OpenAPI 3.1 schemas are JSON Schema 2020-12),
/// keeping the referenced definitions under `$defs`.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    let doc = document();
    let all = doc.pointer("/components/schemas").cloned().unwrap_or_default();
    [
        ("event.schema.json", "EventDoc", "A signed consent-ledger event (format v1)"),
        ("receipt.schema.json", "Receipt", "A consent-ledger receipt"),
        ("decision.schema.json", "SignedDecision", "A signed consent-ledger check decision"),
        ("access.schema.json", "SignedAccessBundle", "A signed consent-ledger subject access bundle"),
    ]
    .into_iter()
    .map(|(file, root, title)| {
        let mut defs = serde_json::Map::new();
        collect_defs(&all, root, &mut defs);
        let schema = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": format!("urn:consent-ledger:schema:{}", file.trim_end_matches(".schema.json")),
            "title": title,
            "$ref": format!("#/$defs/{root}"),
            "$defs": defs,
        });
        let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
        text.push('\n');
        (file, text)
    })
    .collect()
}

fn collect_defs(all: &serde_json::Value, name: &str, out: &mut serde_json::Map<String, serde_json::Value>) {
    if out.contains_key(name) {
        return;
    }
    let Some(schema) = all.get(name) else { return };
    let mut schema = schema.clone();
    let mut refs = Vec::new();
    rewrite_refs(&mut schema, &mut refs);
    out.insert(name.to_owned(), schema);
    for r in refs {
        collect_defs(all, &r, out);
    }
}

fn rewrite_refs(v: &mut serde_json::Value, refs: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/components/schemas/") {
                    refs.push(name.to_owned());
                    *r = format!("#/$defs/{name}");
                }
            }
            for (_, child) in map.iter_mut() {
                rewrite_refs(child, refs);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|c| rewrite_refs(c, refs)),
        _ => {}
    }
}
