//! The HTML pages people see (unsubscribe links, the preference page): one plain GOV.UK-like
//! shell, no scripts, no outside resources, and a strict Content-Security-Policy that allows
//! only the page's own stylesheet (by its hash) and forms posted back to this service.

use std::sync::LazyLock;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The one stylesheet. Sizes are in rem so the page follows the reader's text size and zoom;
/// nothing has a fixed width, so it fits a 360 px screen.
const CSS: &str = "\
*,*::before,*::after{box-sizing:border-box}\
body{font-family:Arial,Helvetica,sans-serif;font-size:1.1875rem;line-height:1.5;color:#0b0c0c;background:#fff;margin:0}\
.skip{position:absolute;left:-9999rem}.skip:focus{position:static;display:block;padding:.5rem 1rem}\
header{background:#0b0c0c;color:#fff;padding:.75rem 1rem;font-weight:700}\
main{display:block;max-width:40rem;margin:0 auto;padding:1rem 1rem 3rem}\
h1{font-size:2rem;line-height:1.2;margin:1rem 0 1.5rem}\
h2{font-size:1.5rem;line-height:1.25;margin:2.5rem 0 .75rem}\
p{margin:0 0 1rem}\
.hint{color:#484949}\
fieldset{border:0;margin:0 0 1.25rem;padding:0;min-width:0}\
legend{font-weight:700;padding:0;margin:0 0 .5rem}\
.choices{display:flex;flex-wrap:wrap;gap:0 2rem}\
.choice{display:flex;align-items:center;min-height:2.75rem;margin:0 0 .5rem}\
.choice input{width:2.25rem;height:2.25rem;margin:0 .75rem 0 0;flex:none;accent-color:#0b0c0c}\
.choice label{cursor:pointer;padding:.25rem 0}\
label.block{display:block;font-weight:700;margin:0 0 .5rem}\
select{font:inherit;min-height:2.75rem;padding:.25rem;border:2px solid #0b0c0c;max-width:100%;background:#fff}\
button{font:inherit;padding:.5rem 1rem;margin:0 1rem 1rem 0;background:#00703c;color:#fff;border:0;\
border-bottom:2px solid #002d18;cursor:pointer}\
button.warning{background:#d4351c;border-bottom-color:#55150b}\
button.secondary{background:#f3f2f1;color:#0b0c0c;border-bottom-color:#929191}\
a{color:#1d70b8;text-decoration:underline}\
:focus-visible{outline:3px solid #fd0;outline-offset:0;box-shadow:0 0 0 6px #0b0c0c}\
a:focus-visible{background:#fd0;color:#0b0c0c;box-shadow:0 4px #0b0c0c}\
.panel{border:5px solid #00703c;padding:1rem;margin:0 0 1.5rem}\
.panel h1{margin:0}\
.notice{border-left:10px solid #1d70b8;padding:.5rem 1rem;margin:0 0 1.5rem;background:#f3f2f1}\
.locked{border-left:5px solid #b1b4b6;padding:0 0 0 .75rem}\
dl{margin:0 0 1.5rem}dt{font-weight:700}dd{margin:0 0 .75rem;overflow-wrap:anywhere}\
code{overflow-wrap:anywhere}\
ul.changes{padding-left:1.25rem}ul.changes li{margin:0 0 .75rem}\
";

static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = B64.encode(Sha256::digest(CSS.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'"
    )
});

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The headers every page carries: the policy, no sniffing, no caching of personal pages,
/// and referrers only to this service (links hold tokens; browsers then still send `Origin`
/// on posts, which the forms rely on).
fn with_headers(mut b: HttpResponseBuilder) -> HttpResponseBuilder {
    b.insert_header(("content-security-policy", CSP.as_str()))
        .insert_header(("referrer-policy", "same-origin"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("cache-control", "no-store"));
    b
}

/// A page: `title` is both the document title and the main heading unless `body_html`
/// brings its own `<h1>` (then `heading` is false).
pub fn page_with(status: StatusCode, title: &str, heading: bool, body_html: &str) -> HttpResponse {
    let t = escape(title);
    let h1 = if heading { format!("<h1>{t}</h1>") } else { String::new() };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{t}</title>\
<style>{CSS}</style></head>\
<body><a class=\"skip\" href=\"#main\">Skip to main content</a><header>Your contact preferences</header>\
<main id=\"main\">{h1}{body_html}</main></body></html>\n"
    );
    with_headers(HttpResponse::build(status)).content_type("text/html; charset=utf-8").body(html)
}

/// A page whose main heading is its title.
pub fn page(status: StatusCode, title: &str, body_html: &str) -> HttpResponse {
    page_with(status, title, true, body_html)
}

/// A JSON download (a signed receipt) with the same headers.
pub fn download(json: String, filename: &str) -> HttpResponse {
    with_headers(HttpResponse::Ok())
        .content_type("application/json")
        .insert_header(("content-disposition", format!("attachment; filename=\"{filename}\"")))
        .body(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn the_policy_allows_exactly_the_stylesheet_served() {
        let expected = B64.encode(Sha256::digest(CSS.as_bytes()));
        assert!(CSP.contains(&format!("'sha256-{expected}'")));
        assert!(CSP.starts_with("default-src 'none'"));
        assert!(!CSP.contains("unsafe"));
    }
}
