//! Which methods each route takes, so a request with another method gets `405 Method Not
//! Allowed` and an `Allow` header (RFC 9110 §15.5.6) rather than a 404. The API's routes
//! come from the OpenAPI document, so the two cannot drift; the HTML pages are listed here.

use std::sync::LazyLock;

use actix_web::dev::ResourceDef;

use super::openapi::ApiDoc;
use utoipa::OpenApi;

/// The pages outside the API document: path and methods.
const PAGES: &[(&str, &[&str])] = &[
    ("/openapi.json", &["GET"]),
    ("/u/{token}", &["GET", "POST"]),
    ("/p/{token}", &["GET", "POST"]),
    ("/p/{token}/receipts/{event_id}", &["GET"]),
    ("/p/{token}/receipts/{event_id}/json", &["GET"]),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options", "trace"];

static ROUTES: LazyLock<Vec<(ResourceDef, String)>> = LazyLock::new(|| {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let mut routes: Vec<(ResourceDef, String)> = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
        for (path, item) in paths {
            let allowed: Vec<String> =
                METHODS.iter().filter(|m| item.get(**m).is_some()).map(|m| m.to_uppercase()).collect();
            routes.push((ResourceDef::new(path.as_str()), allowed.join(", ")));
        }
    }
    for (path, allowed) in PAGES {
        routes.push((ResourceDef::new(*path), allowed.join(", ")));
    }
    routes
});

/// The `Allow` value for `path` when it names a route, whatever the method.
pub fn allowed(path: &str) -> Option<&'static str> {
    ROUTES.iter().find(|(def, _)| def.is_match(path)).map(|(_, allow)| allow.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_know_their_methods() {
        assert_eq!(allowed("/v1/events"), Some("POST"));
        assert_eq!(allowed("/v1/events/0190-x"), Some("GET"));
        assert_eq!(allowed("/u/abc"), Some("GET, POST"));
        assert_eq!(allowed("/v1/nothing"), None);
    }
}
