//! The words and HTML of the tenant's preference page, its confirmation and its receipts.
//! Everything shown is escaped; nothing here reads the store.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::pages::escape;
use domain::{ActorKind, Channel, ContactKind, EventType, Format, Method, PurposeId, Reason};
use service::{short_ref, AddressNote, EventDoc, HistoryEntry, NoticeVersion, Receipt, Via};
use service::{PreferenceState, PurposeSection};

/// Languages offered on the page (BCP 47 tag, name in that language): those most asked for
/// by UK housing organisations' tenants. A language set elsewhere is offered too.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("cy", "Cymraeg (Welsh)"),
    ("pl", "Polski (Polish)"),
    ("ro", "Română (Romanian)"),
    ("pa", "ਪੰਜਾਬੀ (Punjabi)"),
    ("ur", "اردو (Urdu)"),
    ("bn", "বাংলা (Bengali)"),
    ("gu", "ગુજરાતી (Gujarati)"),
    ("ar", "العربية (Arabic)"),
    ("so", "Soomaali (Somali)"),
    ("pt", "Português (Portuguese)"),
    ("es", "Español (Spanish)"),
    ("lt", "Lietuvių (Lithuanian)"),
    ("tr", "Türkçe (Turkish)"),
    ("zh", "中文 (Chinese)"),
    ("ta", "தமிழ் (Tamil)"),
    ("uk", "Українська (Ukrainian)"),
    ("bsl", "British Sign Language"),
];

pub const FORMATS: [Format; 5] =
    [Format::Standard, Format::LargePrint, Format::Braille, Format::Audio, Format::EasyRead];

pub fn channel_words(c: Channel) -> &'static str {
    match c {
        Channel::Email => "email",
        Channel::Sms => "text message",
        Channel::Phone => "phone call",
        Channel::Post => "post",
    }
}

fn channel_title(c: Channel) -> &'static str {
    match c {
        Channel::Email => "Email",
        Channel::Sms => "Text message",
        Channel::Phone => "Phone call",
        Channel::Post => "Post",
    }
}

pub fn format_words(f: Format) -> &'static str {
    match f {
        Format::Standard => "Standard print",
        Format::LargePrint => "Large print",
        Format::Braille => "Braille",
        Format::Audio => "Audio",
        Format::EasyRead => "Easy read",
    }
}

pub fn format_value(f: Format) -> &'static str {
    match f {
        Format::Standard => "standard",
        Format::LargePrint => "large_print",
        Format::Braille => "braille",
        Format::Audio => "audio",
        Format::EasyRead => "easy_read",
    }
}

fn language_words(tag: &str) -> String {
    LANGUAGES.iter().find(|(t, _)| *t == tag).map(|(_, n)| (*n).to_owned()).unwrap_or_else(|| tag.to_owned())
}

pub(crate) fn method_words(m: Method) -> &'static str {
    match m {
        Method::WebForm => "On the web page",
        Method::PaperForm => "On a paper form",
        Method::PhoneCall => "On the phone",
        Method::FaceToFace => "In person",
        Method::SmsKeyword => "By a text message reply",
        Method::EmailLink => "With an unsubscribe link",
        Method::Import => "Copied from an earlier system",
        Method::Api => "By our systems",
    }
}

pub(crate) fn actor_words(a: ActorKind) -> &'static str {
    match a {
        ActorKind::Subject => "by you",
        ActorKind::Staff => "by a member of staff",
        ActorKind::Representative => "by someone authorised to act for you",
        ActorKind::System => "automatically",
    }
}

/// A time as people read it.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y at %H:%M UTC").to_string()
}

pub(crate) fn day(t: DateTime<Utc>) -> String {
    t.format("%-d %B %Y").to_string()
}

/// What an event means, in words (escaped HTML).
pub fn describe(e: &EventDoc, titles: &HashMap<PurposeId, String>) -> String {
    let title = |p: &Option<PurposeId>| {
        p.as_ref()
            .map(|p| format!("“{}”", escape(titles.get(p).map(String::as_str).unwrap_or(p.as_str()))))
            .unwrap_or_default()
    };
    let by = e.channel.map(|c| format!(" by {}", channel_words(c))).unwrap_or_default();
    let t = title(&e.purpose);
    match e.kind {
        EventType::ConsentGranted => format!("Yes to {t}{by}"),
        EventType::ConsentWithdrawn => format!("No to {t}{by}"),
        EventType::ObjectionRaised if e.purpose.is_none() => format!("Stop all marketing{by}"),
        EventType::ObjectionRaised => format!("Objection to {t}{by}"),
        EventType::ObjectionLifted if e.purpose.is_none() => format!("Marketing allowed again{by}"),
        EventType::ObjectionLifted => format!("Objection to {t} ended{by}"),
        EventType::RestrictionApplied if e.purpose.is_none() => "Use of your details restricted".into(),
        EventType::RestrictionApplied => format!("Use of your details for {t} restricted"),
        EventType::RestrictionLifted => "Restriction on the use of your details ended".into(),
        EventType::PreferenceSet => {
            let Some(p) = &e.preference else { return "Contact preferences".into() };
            let mut parts = Vec::new();
            if let Some(c) = p.preferred_channel {
                parts.push(format!("Preferred way to contact you: {}", channel_title(c)));
            }
            if let Some(f) = p.format {
                parts.push(format!("Format: {}", format_words(f)));
            }
            if let Some(l) = &p.language {
                parts.push(format!("Language: {}", escape(&language_words(l.as_str()))));
            }
            parts.join("; ")
        }
        EventType::ContactLinked => "A contact detail was added to your record".into(),
        EventType::ContactUnlinked => "A contact detail was removed from your record".into(),
        EventType::RepresentativeAuthorised => "Someone was authorised to act for you".into(),
        EventType::RepresentativeRevoked => "Someone's authority to act for you ended".into(),
        EventType::SubjectErased => "Your details were erased".into(),
        EventType::RelationshipStarted => "Your tenancy or membership began again".into(),
        EventType::RelationshipEnded => "Your tenancy or membership ended".into(),
        EventType::PurposeDefined => format!("{t} described"),
        EventType::DownstreamRegistered => match &e.downstream {
            Some(d) => format!("{} was registered as a system that receives your details", escape(&d.name)),
            None => "A system that receives your details was registered".into(),
        },
        EventType::DownstreamAcknowledged => "A system that receives your details confirmed it applied changes".into(),
        EventType::NoticePublished => match &e.notice {
            Some(n) => format!("Notice “{}” (version {}) published", escape(&n.title), escape(&n.version)),
            None => "A notice was published".into(),
        },
        EventType::KeyRotated => "The ledger's signing key changed".into(),
    }
}

fn receipt_link(token: &str, r: &Receipt) -> String {
    format!(
        "<a href=\"/p/{token}/receipts/{id}\">receipt {short}</a>",
        token = escape(token),
        id = r.event.id,
        short = short_ref(&r.event.id)
    )
}

pub(crate) fn address_words(kind: ContactKind) -> &'static str {
    match kind {
        ContactKind::Email => "your email address",
        ContactKind::Tel => "your phone number",
        ContactKind::Post => "your postal address",
    }
}

/// How an event at one of the person's addresses came about, in words.
fn via_words(v: &Via, e: &EventDoc) -> String {
    let how = match (e.method, e.kind) {
        (Method::EmailLink, _) => "by the unsubscribe link in an email".to_owned(),
        (Method::SmsKeyword, EventType::ObjectionRaised) => "by a text message STOP".to_owned(),
        (Method::SmsKeyword, _) => "by a text message reply".to_owned(),
        _ => format!("at {}", address_words(v.kind)),
    };
    if v.shared {
        format!("{how} (an address you share with someone else)")
    } else {
        how
    }
}

/// Why one of the person's addresses answers "no", and whether the page can change it.
fn address_note_words(n: &AddressNote) -> String {
    let what = address_words(n.kind);
    match (n.stopped_at_address(), n.shared) {
        (Some(EventType::ConsentWithdrawn), false) => {
            format!("Off for {what}: the unsubscribe link in an email was used. Choose Yes to hear from us again.")
        }
        (Some(EventType::ObjectionRaised), false) if n.kind == ContactKind::Tel => {
            format!("Off for {what}: STOP was texted from it. Choose Yes to receive these again.")
        }
        (Some(EventType::ObjectionRaised), false) => {
            format!("Off for {what}: we were asked to stop using it for this. Choose Yes to receive these again.")
        }
        (Some(_), true) => format!(
            "Off for {what}, which you share with someone else: we were asked to stop at that address. \
Contact us to change this."
        ),
        _ => format!("Off for {what}: someone else who uses that address asked us to stop. Contact us to change this."),
    }
}

fn guard_field(guard: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(guard))
}

fn radio(id: &str, name: &str, value: &str, label: &str, checked: bool, disabled: bool) -> String {
    format!(
        "<div class=\"choice\"><input type=\"radio\" id=\"{id}\" name=\"{name}\" value=\"{value}\"{c}{d}>\
<label for=\"{id}\">{label}</label></div>",
        id = escape(id),
        name = escape(name),
        value = escape(value),
        c = if checked { " checked" } else { "" },
        d = if disabled { " disabled" } else { "" },
    )
}

fn locked_words(r: Reason) -> &'static str {
    match r {
        Reason::MarketingObjection => "Paused: you asked us to stop all marketing.",
        Reason::Restricted => "Paused: the use of your details is restricted. Contact us to change this.",
        Reason::Objection => "Off: you objected to this. Contact us to change this.",
        _ => "This cannot be changed here.",
    }
}

/// The form field name of a choice: `{purpose}/{channel}`, or `{purpose}/all` for a purpose
/// without channels (purpose ids never hold a `/`).
pub fn field_name(purpose: &PurposeId, channel: Option<Channel>) -> String {
    format!("{}/{}", purpose.as_str(), channel.map(Channel::as_str).unwrap_or("all"))
}

/// What the person was told about a purpose: the notice it names (linked: the ledger's copy
/// when it holds the text, else where the notice is published), or its description above.
fn told_html(s: &PurposeSection, token: &str) -> String {
    let Some(nv) = &s.notice else {
        return format!(
            "<p class=\"hint\">What we told you about this: the description above, of {} (reference {}).</p>",
            day(s.described_at),
            short_ref(&s.described)
        );
    };
    let n = &nv.notice;
    let href = match (&n.text, &n.url) {
        (Some(_), _) => Some(format!("/p/{}/notices/{}", escape(token), escape(n.id.as_str()))),
        (None, Some(url)) => Some(escape(url)),
        (None, None) => None,
    };
    let title = match href {
        Some(href) => format!("<a href=\"{href}\">{}</a>", escape(&n.title)),
        None => escape(&n.title),
    };
    format!(
        "<p class=\"hint\">What we told you about this: our notice {title}, version {}, published {}.</p>",
        escape(&n.version),
        day(nv.recorded_at)
    )
}

fn section_html(i: usize, s: &PurposeSection, token: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<section aria-labelledby=\"purpose-{i}\"><h2 id=\"purpose-{i}\">{}</h2>",
        escape(&s.definition.title)
    );
    if let Some(d) = &s.definition.description {
        let _ = write!(h, "<p>{}</p>", escape(d));
    }
    h.push_str(&told_html(s, token));
    for (j, c) in s.choices.iter().enumerate() {
        let name = field_name(&s.id, c.channel);
        let legend = match c.channel {
            Some(k) => format!("By {}", channel_words(k)),
            None => "Do you agree?".into(),
        };
        let locked = c.locked();
        let on = c.decision.permitted;
        let note = match &c.address {
            Some(n) => Some(address_note_words(n)),
            None if locked => Some(locked_words(c.decision.reason).to_owned()),
            None => None,
        };
        let _ = write!(
            h,
            "<fieldset{cls}{described}><legend>{legend}</legend>",
            cls = if locked { " class=\"locked\"" } else { "" },
            described = if note.is_some() { format!(" aria-describedby=\"lock-{i}-{j}\"") } else { String::new() }
        );
        if let Some(words) = note {
            let _ = write!(h, "<p class=\"hint\" id=\"lock-{i}-{j}\">{}</p>", escape(&words));
        }
        let _ = write!(
            h,
            "<div class=\"choices\">{}{}</div></fieldset>",
            radio(&format!("c-{i}-{j}-yes"), &name, "yes", "Yes", on, locked),
            radio(&format!("c-{i}-{j}-no"), &name, "no", "No", !on, locked),
        );
    }
    h.push_str("</section>");
    h
}

/// The preference page.
pub fn preference_page(state: &PreferenceState, token: &str, guard: &str, expires: DateTime<Utc>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<p>Choose what we may contact you about, and how. You can change your mind at any time. \
This page works until {}.</p>",
        when(expires)
    );
    if state.marketing_objection.is_some() {
        let _ = write!(
            h,
            "<div class=\"notice\"><h2>You asked us to stop all marketing</h2>\
<p>We will not send you newsletters, offers or other marketing. Your marketing choices below are paused.</p>\
<form method=\"post\">{}<button type=\"submit\" class=\"secondary\" name=\"action\" value=\"resume-marketing\">\
Allow marketing again</button></form></div>",
            guard_field(guard)
        );
    }
    let _ = write!(h, "<form method=\"post\" novalidate>{}", guard_field(guard));
    if state.sections.is_empty() {
        h.push_str("<p>There is nothing for you to choose at the moment.</p>");
    }
    for (i, s) in state.sections.iter().enumerate() {
        h.push_str(&section_html(i, s, token));
    }
    h.push_str("<h2>How we contact you</h2>");
    let p = &state.preference;
    h.push_str("<fieldset><legend>Your preferred way for us to contact you</legend><div class=\"choices\">");
    for c in Channel::ALL {
        h.push_str(&radio(
            &format!("preferred-{}", c.as_str()),
            "preferred_channel",
            c.as_str(),
            channel_title(c),
            p.preferred_channel == Some(c),
            false,
        ));
    }
    h.push_str("</div></fieldset>");
    h.push_str("<fieldset><legend>Letters and documents in</legend><div class=\"choices\">");
    let format = p.format.unwrap_or(Format::Standard);
    for f in FORMATS {
        h.push_str(&radio(
            &format!("format-{}", format_value(f)),
            "format",
            format_value(f),
            format_words(f),
            format == f,
            false,
        ));
    }
    h.push_str("</div></fieldset>");
    let lang = p.language.as_ref().map(|l| l.as_str().to_owned());
    h.push_str(
        "<div><label class=\"block\" for=\"language\">Language</label><select id=\"language\" name=\"language\">",
    );
    if lang.is_none() {
        h.push_str("<option value=\"\" selected>Not chosen</option>");
    }
    let mut offered: Vec<(String, String)> =
        LANGUAGES.iter().map(|(t, n)| ((*t).to_owned(), (*n).to_owned())).collect();
    if let Some(l) = &lang {
        if !offered.iter().any(|(t, _)| t == l) {
            offered.push((l.clone(), l.clone()));
        }
    }
    for (t, n) in &offered {
        let sel = if lang.as_deref() == Some(t.as_str()) { " selected" } else { "" };
        let _ = write!(h, "<option value=\"{}\"{sel}>{}</option>", escape(t), escape(n));
    }
    h.push_str("</select></div><p></p>");
    h.push_str("<button type=\"submit\" name=\"action\" value=\"save\">Save my choices</button></form>");
    if state.marketing_objection.is_none() {
        let _ = write!(
            h,
            "<h2>Stop all marketing</h2><p>One step to stop every newsletter, offer and other marketing message \
from us, by every channel. Messages about your tenancy, rent and repairs still reach you.</p>\
<form method=\"post\">{}<button type=\"submit\" class=\"warning\" name=\"action\" value=\"stop-marketing\">\
Stop all marketing</button></form>",
            guard_field(guard)
        );
    }
    let current: Vec<_> = state.addresses().iter().filter(|a| a.current()).collect();
    if !current.is_empty() {
        h.push_str(
            "<h2>Your contact details</h2><p>The ways we have to reach you. We keep only a coded form of each \
address, never the address itself.</p><ul>",
        );
        for a in current {
            let kind = match a.contact.kind {
                ContactKind::Email => "An email address",
                ContactKind::Tel => "A phone number",
                ContactKind::Post => "A postal address",
            };
            let shared = if a.shared { "; shared with someone else in your household" } else { "" };
            let _ = write!(h, "<li>{kind}, added {}{shared}</li>", day(a.linked_at));
        }
        h.push_str("</ul>");
    }
    if !state.history.is_empty() {
        h.push_str(
            "<h2>Your record</h2><p>Every change to your choices, newest first, with a receipt you can keep.</p>\
<ul class=\"changes\">",
        );
        let titles: HashMap<PurposeId, String> =
            state.sections.iter().map(|s| (s.id.clone(), s.definition.title.clone())).collect();
        for HistoryEntry { receipt: r, via } in state.history.iter().take(50) {
            let how = via.as_ref().map(|v| format!(", {}", escape(&via_words(v, &r.event)))).unwrap_or_default();
            let _ = write!(
                h,
                "<li>{}: {}{how} ({})</li>",
                when(r.event.recorded_at),
                describe(&r.event, &titles),
                receipt_link(token, r)
            );
        }
        h.push_str("</ul>");
    }
    h
}

/// The confirmation after a submission: what changed, with a receipt for each.
pub fn confirmation(changes: &[Receipt], titles: &HashMap<PurposeId, String>, token: &str) -> String {
    let mut h = String::new();
    if changes.is_empty() {
        h.push_str("<div class=\"panel\"><h1>Nothing changed</h1></div><p>Your choices were already as you asked.</p>");
    } else {
        h.push_str(
            "<div class=\"panel\"><h1>Your choices are saved</h1></div><h2>What changed</h2><ul class=\"changes\">",
        );
        for r in changes {
            let _ = write!(h, "<li>{} ({})</li>", describe(&r.event, titles), receipt_link(token, r));
        }
        h.push_str(
            "</ul><p>Each receipt is signed by us, so you can keep it as proof of what you told us and when.</p>",
        );
    }
    let _ = write!(h, "<p><a href=\"/p/{}\">Back to your choices</a></p>", escape(token));
    h
}

/// A published notice for people: its title, version, date and hash, and its text (when the
/// ledger holds it) or where it is published.
pub fn notice_page(nv: &NoticeVersion, token: &str) -> String {
    let n = &nv.notice;
    let mut h = String::new();
    let _ = write!(h, "<p>Version {}, published {}.</p>", escape(&n.version), day(nv.recorded_at));
    match &n.text {
        Some(text) => {
            h.push_str("<article class=\"notice-text\">");
            for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
                let lines: Vec<String> = para.lines().map(escape).collect();
                let _ = write!(h, "<p>{}</p>", lines.join("<br>"));
            }
            h.push_str("</article>");
        }
        None => {
            if let Some(url) = &n.url {
                let _ = write!(h, "<p><a href=\"{u}\">Read the notice</a> where it is published.</p>", u = escape(url));
            }
        }
    }
    let _ = write!(
        h,
        "<p class=\"hint\">The SHA-256 of this notice's exact text is <code class=\"hash\">{}</code>. It is signed \
into our ledger (reference {}), so anyone can check that this is the wording you were shown.</p>\
<p><a href=\"/p/{t}\">Back to your choices</a></p>",
        escape(&n.sha256),
        short_ref(&nv.event),
        t = escape(token)
    );
    h
}

/// A receipt for people: what, when, how, the notice they were shown, and the signed
/// document to download.
pub fn receipt_page(
    r: &Receipt,
    titles: &HashMap<PurposeId, String>,
    token: &str,
    notice: Option<&NoticeVersion>,
) -> String {
    let e = &r.event;
    let mut h = String::new();
    let _ = write!(
        h,
        "<dl><dt>What</dt><dd>{what}</dd>\
<dt>When</dt><dd>{occurred}</dd>\
<dt>Recorded in the ledger</dt><dd>{recorded} (entry {seq})</dd>\
<dt>How</dt><dd>{how}, {who}</dd>\
<dt>Reference</dt><dd>{short}</dd>\
<dt>Signed with key</dt><dd><code>{key}</code></dd>{notice}</dl>",
        what = describe(e, titles),
        occurred = when(e.occurred_at),
        recorded = when(e.recorded_at),
        seq = r.seq,
        how = method_words(e.method),
        who = actor_words(e.actor.kind),
        short = short_ref(&e.id),
        key = escape(&r.key_id),
        notice = notice
            .map(|nv| format!(
                "<dt>The notice you were shown</dt><dd>“{}”, version {} (SHA-256 <code class=\"hash\">{}</code>)</dd>",
                escape(&nv.notice.title),
                escape(&nv.notice.version),
                escape(&nv.notice.sha256)
            ))
            .unwrap_or_default(),
    );
    let _ = write!(
        h,
        "<p><a href=\"/p/{t}/receipts/{id}/json\" download=\"receipt-{id}.json\">Download the signed receipt (JSON)</a></p>\
<p class=\"hint\">The receipt is the record exactly as the ledger signed it (Ed25519 over its RFC 8785 form). \
Anyone can check it with our public key, published at <code>/v1/keys</code>, without asking us.</p>\
<p><a href=\"/p/{t}\">Back to your choices</a></p>",
        t = escape(token),
        id = e.id
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_round_trip_through_the_last_slash() {
        let p = PurposeId::parse("share:mailing-house").unwrap();
        assert_eq!(field_name(&p, None), "share:mailing-house/all");
        assert_eq!(field_name(&p, Some(Channel::Sms)), "share:mailing-house/sms");
    }

    #[test]
    fn every_language_offered_is_a_valid_token() {
        for (t, _) in LANGUAGES {
            assert!(domain::Token::parse(*t).is_ok(), "{t}");
        }
    }
}
