//! The subject access report: a plain-English HTML rendering of a signed subject access
//! bundle that prints well. What the person agreed to and when, what they withdrew,
//! objections and restrictions, the notices they were shown, who acted for them, their
//! addresses (by kind and dates, never the address), what is permitted now and why, and
//! every event in order, each with its receipt reference. Everything shown is escaped and
//! comes from the bundle alone.

use std::collections::HashMap;
use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::pages::escape;
use crate::preference_html::{actor_words, address_words, channel_words, day, describe, method_words, when};
use domain::{ActorKind, ContactKind, EventType, PurposeId, Reason};
use service::{short_ref, ProvenEvent, SignedAccessBundle};
use uuid::Uuid;

/// The report's own stylesheet: readable on screen, and on paper without links' colours,
/// with sections kept whole where they fit.
const CSS: &str = "\
body{font-family:Arial,Helvetica,sans-serif;font-size:1rem;line-height:1.45;color:#0b0c0c;margin:0}\
main{max-width:48rem;margin:0 auto;padding:1rem}\
h1{font-size:1.75rem;margin:0 0 1rem}h2{font-size:1.3rem;margin:2rem 0 .5rem;border-bottom:2px solid #0b0c0c}\
table{border-collapse:collapse;width:100%;margin:0 0 1rem}\
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem .35rem 0;border-bottom:1px solid #b1b4b6}\
.ref{font-family:monospace;white-space:nowrap}.hint{color:#484949}code{overflow-wrap:anywhere}\
@media print{body{font-size:10.5pt}main{max-width:none;padding:0}a{color:inherit;text-decoration:none}\
section{break-inside:avoid-page}h2{break-after:avoid}tr{break-inside:avoid}}\
";

/// The Content-Security-Policy the report is served with: its stylesheet only.
pub fn report_csp() -> String {
    let hash = B64.encode(Sha256::digest(CSS.as_bytes()));
    format!("default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; base-uri 'none'")
}

fn reason_words(r: Reason) -> &'static str {
    match r {
        Reason::SubjectErased => "your details were erased",
        Reason::ContactSuppressed => "the address may no longer be used",
        Reason::ChannelNotInPurpose => "we do not use this way of contacting you for it",
        Reason::RecipientNotListed => "not one of the organisations we share with for it",
        Reason::MarketingObjection => "you asked us to stop all marketing",
        Reason::Restricted => "the use of your details is restricted",
        Reason::Objection => "you objected to it",
        Reason::ConsentGranted => "you agreed to it",
        Reason::NoConsent => "you have not agreed to it",
        Reason::ConsentWithdrawn => "you withdrew your agreement",
        Reason::ConsentExpired => "your agreement has lapsed and needs renewing",
        Reason::OptedOut => "you opted out",
        Reason::LegitimateInterests => "our legitimate interests; you may object at any time",
        Reason::Contract => "needed for your tenancy or agreement with us",
        Reason::PublicTask => "part of our public duties",
        Reason::LegalObligation => "required by law",
        Reason::VitalInterests => "to protect someone's life",
    }
}

fn kind_words(k: ContactKind) -> &'static str {
    match k {
        ContactKind::Email => "Email address",
        ContactKind::Tel => "Phone number",
        ContactKind::Post => "Postal address",
    }
}

/// Which systems that hold the person's details were told of a stop, and which confirmed
/// applying it (with the time they said they did, and the confirmation's reference).
fn told_html(p: &ProvenEvent, applied: &HashMap<Uuid, String>) -> String {
    if p.told.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = p
        .told
        .iter()
        .map(|t| match t.acknowledgement {
            Some(id) => format!(
                "{} confirmed applying it{} (reference {})",
                escape(&t.name),
                applied.get(&id).map(|a| format!(" at {}", escape(a))).unwrap_or_default(),
                short_ref(&id)
            ),
            None => format!("{} has not yet confirmed applying it", escape(&t.name)),
        })
        .collect();
    format!("<br><span class=\"hint\">{}.</span>", parts.join("; "))
}

/// One row of an event table: when, what, how and by whom, and its receipt reference.
fn row(p: &ProvenEvent, titles: &HashMap<PurposeId, String>, applied: &HashMap<Uuid, String>) -> String {
    let e = &p.receipt.event;
    let mut at = p.via.map(|v| format!(" (at {})", address_words(v.contact_kind))).unwrap_or_default();
    if let Some(r) = &e.representative {
        at.push_str(&format!(" ({}, under {})", r.id.as_str(), r.authority.as_str()));
    }
    format!(
        "<tr><td>{}</td><td>{}{}{}</td><td>{}, {}</td><td class=\"ref\">{}</td></tr>",
        when(e.occurred_at),
        describe(e, titles),
        escape(&at),
        told_html(p, applied),
        method_words(e.method),
        actor_words(e.actor.kind),
        short_ref(&e.id)
    )
}

fn table(
    rows: &[&ProvenEvent],
    titles: &HashMap<PurposeId, String>,
    applied: &HashMap<Uuid, String>,
    empty: &str,
) -> String {
    if rows.is_empty() {
        return format!("<p>{}</p>", escape(empty));
    }
    let mut h =
        String::from("<table><thead><tr><th>When</th><th>What</th><th>How</th><th>Receipt</th></tr></thead><tbody>");
    for p in rows {
        h.push_str(&row(p, titles, applied));
    }
    h.push_str("</tbody></table>");
    h
}

/// The whole report, as one HTML document.
pub fn access_report_html(signed: &SignedAccessBundle) -> String {
    let b = &signed.bundle;
    let titles: HashMap<PurposeId, String> =
        b.permissions.iter().map(|p| (p.purpose.clone(), p.title.clone())).collect();
    // When each system said it applied what it acknowledged (its own signed statement).
    let applied: HashMap<Uuid, String> = b
        .acknowledgements
        .iter()
        .filter_map(|a| {
            let s = a.receipt.event.acknowledgement.as_ref()?.statement.get("applied_at")?.as_str()?.to_owned();
            Some((a.receipt.event.id, s))
        })
        .collect();
    let of = |f: &dyn Fn(&ProvenEvent) -> bool| -> Vec<&ProvenEvent> { b.events.iter().filter(|p| f(p)).collect() };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Your contact choices: the record we hold</title><style>{CSS}</style></head><body><main>\
<h1>Your contact choices: the record we hold</h1>\
<p>This is everything our consent ledger holds about how we may contact you and share your details, \
for your reference <strong>{subject}</strong> with <strong>{controller}</strong>, made on {made}.</p>\
<p class=\"hint\">Each entry has a receipt reference. The file <code>access.json</code> that comes with this \
report holds every entry exactly as our ledger signed it, with the proof that it is in our log, so anyone can \
check it without asking us.</p>",
        subject = escape(b.subject.as_str()),
        controller = escape(b.controller.as_str()),
        made = when(b.generated_at),
    );

    h.push_str("<section><h2>What we may do now, and why</h2>");
    if b.permissions.is_empty() {
        h.push_str("<p>We have no purposes to list.</p>");
    } else {
        h.push_str("<table><thead><tr><th>What for</th><th>How</th><th>Allowed?</th><th>Why</th></tr></thead><tbody>");
        for p in &b.permissions {
            let how = match (&p.channel, &p.recipient) {
                (Some(c), _) => format!("By {}", channel_words(*c)),
                (None, Some(r)) => format!("Shared with {}", r.as_str()),
                (None, None) => "Any way".into(),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.title),
                escape(&how),
                if p.permitted { "Yes" } else { "No" },
                reason_words(p.reason)
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");

    let sections: [(&str, Vec<&ProvenEvent>, &str); 4] = [
        (
            "What you agreed to, and when",
            of(&|p| p.receipt.event.kind == EventType::ConsentGranted),
            "Nothing recorded.",
        ),
        ("What you withdrew", of(&|p| p.receipt.event.kind == EventType::ConsentWithdrawn), "Nothing recorded."),
        (
            "Objections and restrictions",
            of(&|p| {
                matches!(
                    p.receipt.event.kind,
                    EventType::ObjectionRaised
                        | EventType::ObjectionLifted
                        | EventType::RestrictionApplied
                        | EventType::RestrictionLifted
                )
            }),
            "None recorded.",
        ),
        (
            "Who acted for you",
            of(&|p| {
                matches!(p.receipt.event.kind, EventType::RepresentativeAuthorised | EventType::RepresentativeRevoked)
                    || p.receipt.event.actor.kind == ActorKind::Representative
            }),
            "Nobody has acted for you.",
        ),
    ];
    for (title, rows, empty) in &sections {
        let _ = write!(h, "<section><h2>{title}</h2>{}</section>", table(rows, &titles, &applied, empty));
    }

    h.push_str("<section><h2>The notices you were shown</h2>");
    if b.notices.is_empty() {
        h.push_str("<p>None of these entries names a published notice.</p>");
    } else {
        h.push_str("<table><thead><tr><th>Notice</th><th>Version</th><th>Published</th><th>SHA-256 of its text</th></tr></thead><tbody>");
        for p in &b.notices {
            if let Some(n) = &p.receipt.event.notice {
                let title = match &n.url {
                    Some(u) => format!("<a href=\"{}\">{}</a>", escape(u), escape(&n.title)),
                    None => escape(&n.title),
                };
                let _ = write!(
                    h,
                    "<tr><td>{title}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    escape(&n.version),
                    day(p.receipt.event.recorded_at),
                    escape(&n.sha256)
                );
            }
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section><section><h2>Your contact details</h2>");
    if b.addresses.is_empty() {
        h.push_str("<p>We hold no contact details for you in the ledger.</p>");
    } else {
        h.push_str(
            "<p class=\"hint\">The ledger keeps only a coded form of each address, never the address itself.</p>\
<table><thead><tr><th>Kind</th><th>Added</th><th>Removed</th><th>Shared with someone else</th></tr></thead><tbody>",
        );
        for a in &b.addresses {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                kind_words(a.kind),
                day(a.linked_at),
                a.unlinked_at.map(day).unwrap_or_else(|| "Still in use".into()),
                if a.shared { "Yes" } else { "No" }
            );
        }
        h.push_str("</tbody></table>");
    }
    let all: Vec<&ProvenEvent> = b.events.iter().collect();
    let _ = write!(
        h,
        "</section><section><h2>Everything, in order</h2>{}</section>\
<section><h2>How to check this record</h2><p>Every entry is signed by our ledger's key and proven to be in its \
log at size {size}. Run <code>consent-ledger verify --access access.json</code>, or follow the steps in our \
published format, with our public key (<code>/v1/keys</code>). The whole file is signed too \
(key <code>{key}</code>), so any change to it is found.</p></section></main></body></html>",
        table(&all, &titles, &applied, "No entries."),
        size = checkpoint_size(&b.checkpoint),
        key = escape(&signed.key_id),
    );
    h
}

/// The tree size a checkpoint's second line states.
fn checkpoint_size(note: &str) -> String {
    note.lines().nth(1).map(escape).unwrap_or_default()
}
