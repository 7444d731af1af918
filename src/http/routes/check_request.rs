//! A check as a client asks it (`CheckRequest`, in a query string, a JSON array or an NDJSON
//! line) and the answer as it gets it (`CheckResponse`): shared by the single, array and bulk
//! check routes, so that none of them imports another.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, Kind};
use crate::AppState;
use domain::{Channel, ContactPoint, LawfulBasis, PurposeId, Reason, RecipientId, SubjectId};
use service::{CheckAnswer, CheckInput, CheckQuery, CheckTarget, SignedDecision};

/// One permission question. Give exactly one of `subject`, `email`, `phone` or `post`.
/// Not `Debug`: it holds addresses, which must never reach a log.
#[derive(Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckRequest {
    /// Purpose id.
    #[param(value_type = PurposeId)]
    #[schema(value_type = PurposeId)]
    pub purpose: String,
    /// Channel to use; by contact point it defaults to the address's own channel (`sms` for
    /// a phone number). Without it, a check by subject asks about the purpose as a whole.
    pub channel: Option<Channel>,
    /// Subject id (only the subject's own events count).
    #[param(value_type = Option<SubjectId>)]
    #[schema(value_type = Option<SubjectId>)]
    pub subject: Option<String>,
    /// Email address about to be used (its own events and those of subjects linked to it).
    pub email: Option<String>,
    /// Phone number in E.164 about to be used.
    pub phone: Option<String>,
    /// Postal address about to be used.
    pub post: Option<String>,
    /// Recipient, for sharing purposes.
    #[param(value_type = Option<RecipientId>)]
    #[schema(value_type = Option<RecipientId>)]
    pub recipient: Option<String>,
    /// RFC 3339 time to answer "as of" (default: now). In a query string, encode `+` as `%2B`.
    #[param(value_type = Option<String>, format = DateTime)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
    /// Answer only from a state that includes the event with this seq (read your writes).
    pub min_seq: Option<u64>,
    /// Also return the decision signed with the ledger key.
    pub signed: Option<bool>,
    /// Also return RFC 8058 one-click unsubscribe header values (checks by email only).
    pub unsubscribe: Option<bool>,
}

/// The answer to a check.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckResponse {
    pub permitted: bool,
    pub reason: Reason,
    pub basis: LawfulBasis,
    /// Ids of the events that decided the answer.
    pub decided_by: Vec<Uuid>,
    /// The moment the answer is for.
    pub as_of: DateTime<Utc>,
    pub purpose: PurposeId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientId>,
    /// The log held at least this many events when the answer was decided.
    pub log_size: u64,
    /// The decision signed with the ledger key (when `signed=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_decision: Option<SignedDecision>,
    /// Value for the `List-Unsubscribe` header (when `unsubscribe=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe: Option<String>,
    /// Value for the `List-Unsubscribe-Post` header (when `unsubscribe=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list_unsubscribe_post: Option<String>,
}

impl CheckResponse {
    /// The JSON body, byte for byte what serde_json writes (a property test holds them
    /// equal), written directly for an answer without a signed decision: the time by hand,
    /// the rest without serde's per-field machinery.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        // Writing into a Vec cannot fail.
        let _ = self.write_json(&mut out);
        out
    }

    /// [`CheckResponse::to_json`], appended to `out` (a line of a bulk answer).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        if self.signed_decision.is_some() {
            return serde_json::to_writer(out, self);
        }
        let string = |out: &mut Vec<u8>, s: &str| {
            // serde_json's escaping; writing into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, s);
        };
        out.extend_from_slice(if self.permitted { b"{\"permitted\":true" } else { b"{\"permitted\":false" });
        out.extend_from_slice(b",\"reason\":");
        let _ = serde_json::to_writer(&mut *out, &self.reason);
        out.extend_from_slice(b",\"basis\":\"");
        out.extend_from_slice(self.basis.as_str().as_bytes());
        out.extend_from_slice(b"\",\"decided_by\":[");
        for (i, id) in self.decided_by.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"],\"as_of\":");
        write_time(out, &self.as_of);
        out.extend_from_slice(b",\"purpose\":");
        string(out, self.purpose.as_str());
        if let Some(channel) = self.channel {
            out.extend_from_slice(b",\"channel\":\"");
            out.extend_from_slice(channel.as_str().as_bytes());
            out.push(b'"');
        }
        if let Some(recipient) = &self.recipient {
            out.extend_from_slice(b",\"recipient\":");
            string(out, recipient.as_str());
        }
        out.extend_from_slice(b",\"log_size\":");
        let _ = serde_json::to_writer(&mut *out, &self.log_size);
        if let Some(v) = &self.list_unsubscribe {
            out.extend_from_slice(b",\"list_unsubscribe\":");
            string(out, v);
        }
        if let Some(v) = &self.list_unsubscribe_post {
            out.extend_from_slice(b",\"list_unsubscribe_post\":");
            string(out, v);
        }
        out.push(b'}');
        Ok(())
    }
}

/// A time as chrono's serde writes it (RFC 3339, UTC as `Z`, the fraction in 0, 3, 6 or 9
/// digits as it needs), by hand; chrono itself for what it writes otherwise (a leap second, a
/// year outside 0-9999).
fn write_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 || !(0..=9999).contains(&t.year()) {
        let _ = serde_json::to_writer(&mut *out, t);
        return;
    }
    let two = |out: &mut Vec<u8>, n: u32| out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
    let year = t.year() as u32;
    out.push(b'"');
    two(out, year / 100);
    two(out, year % 100);
    out.push(b'-');
    two(out, t.month());
    out.push(b'-');
    two(out, t.day());
    out.push(b'T');
    two(out, t.hour());
    out.push(b':');
    two(out, t.minute());
    out.push(b':');
    two(out, t.second());
    let (value, digits) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    if digits > 0 {
        out.push(b'.');
        let (mut rest, mut text) = (value, [b'0'; 9]);
        for d in text[..digits].iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend_from_slice(&text[..digits]);
    }
    out.extend_from_slice(b"Z\"");
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::new(Kind::InvalidQuery, msg)
}

/// Parses an RFC 3339 time, accepting a space for the `+` a query string decoded.
pub fn parse_at(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad("at must be an RFC 3339 time such as 2026-01-31T12:00:00Z"))
}

/// A name or value of a query string decoded as `form_urlencoded` decodes it (`+` a space,
/// `%` and two hex digits a byte), borrowed when there is nothing to decode; `None` for what
/// it would read otherwise than exactly (a `%` without two hex digits after it, bytes that are
/// not UTF-8), which is then read as every route's query is (`crate::query::read`).
fn unescape(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let (high, low) = (hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?);
                out.push(high << 4 | low);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

impl CheckRequest {
    /// The request in a query string (`GET /v1/check`), as every route's query is read
    /// ([`crate::query::read`]). The usual question (known parameters, each at most once,
    /// values that read as their types) is read in one pass over the pairs, the one route
    /// every send asks; anything else goes through that reading, so every refusal is worded
    /// as any route's (a property test holds the two readings equal).
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        match Self::read_plain(query) {
            Some(request) => Ok(request),
            None => crate::query::read(query),
        }
    }

    /// [`CheckRequest::from_query`]'s one pass: `None` for anything it does not read exactly as
    /// serde would (an unknown or repeated name, a value that does not parse, no purpose).
    fn read_plain(query: &str) -> Option<Self> {
        let mut r = CheckRequest {
            purpose: String::new(),
            channel: None,
            subject: None,
            email: None,
            phone: None,
            post: None,
            recipient: None,
            at: None,
            min_seq: None,
            signed: None,
            unsubscribe: None,
        };
        let mut purpose = None;
        fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
            if slot.is_some() {
                return None;
            }
            *slot = Some(value?);
            Some(())
        }
        let flag = |v: &str| match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        for pair in query.split('&') {
            // As `form_urlencoded` reads a query: empty pieces skipped, a name without `=`
            // has the empty value.
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (unescape(name)?, unescape(value)?);
            match name.as_ref() {
                "purpose" => once(&mut purpose, Some(value.into_owned()))?,
                "channel" => once(&mut r.channel, Channel::ALL.into_iter().find(|c| c.as_str() == value))?,
                "subject" => once(&mut r.subject, Some(value.into_owned()))?,
                "email" => once(&mut r.email, Some(value.into_owned()))?,
                "phone" => once(&mut r.phone, Some(value.into_owned()))?,
                "post" => once(&mut r.post, Some(value.into_owned()))?,
                "recipient" => once(&mut r.recipient, Some(value.into_owned()))?,
                "at" => once(&mut r.at, Some(value.into_owned()))?,
                "min_seq" => once(&mut r.min_seq, value.parse().ok())?,
                "signed" => once(&mut r.signed, flag(&value))?,
                "unsubscribe" => once(&mut r.unsubscribe, flag(&value))?,
                _ => return None,
            }
        }
        r.purpose = purpose?;
        Some(r)
    }

    /// The question this request asks, with the extras it wants.
    pub fn parse(&self) -> Result<CheckQuery, ApiError> {
        let purpose = PurposeId::parse(self.purpose.as_str()).map_err(|e| bad(e.to_string()))?;
        let contact = |channel: Channel, raw: &str| {
            ContactPoint::parse(channel, raw).map(CheckTarget::Contact).map_err(|e| bad(e.to_string()))
        };
        let target = match (&self.subject, &self.email, &self.phone, &self.post) {
            (Some(s), None, None, None) => {
                CheckTarget::Subject(SubjectId::parse(s.as_str()).map_err(|e| bad(e.to_string()))?)
            }
            (None, Some(e), None, None) => contact(Channel::Email, e)?,
            (None, None, Some(p), None) => contact(Channel::Sms, p)?,
            (None, None, None, Some(p)) => contact(Channel::Post, p)?,
            _ => return Err(bad("give exactly one of subject, email, phone or post")),
        };
        let recipient =
            self.recipient.as_deref().map(RecipientId::parse).transpose().map_err(|e| bad(e.to_string()))?;
        let at = self.at.as_deref().map(parse_at).transpose()?;
        Ok(CheckQuery {
            input: CheckInput { target, purpose, channel: self.channel, recipient, at },
            min_seq: self.min_seq,
            signed: self.signed == Some(true),
            unsubscribe: self.unsubscribe == Some(true),
        })
    }
}

/// The response to a query from the service's answer: the decision, with a signed decision
/// and unsubscribe headers when asked for.
pub fn respond(state: &AppState, q: &CheckQuery, answer: CheckAnswer) -> CheckResponse {
    let (list_unsubscribe, list_unsubscribe_post) = match answer.unsubscribe_token {
        Some(token) => {
            (Some(format!("<{}/u/{token}>", state.public_url)), Some("List-Unsubscribe=One-Click".to_owned()))
        }
        None => (None, None),
    };
    let out = answer.outcome;
    CheckResponse {
        permitted: out.decision.permitted,
        reason: out.decision.reason,
        basis: out.decision.basis,
        decided_by: out.decision.decided_by,
        as_of: out.as_of,
        purpose: q.input.purpose.clone(),
        channel: out.channel,
        recipient: q.input.recipient.clone(),
        log_size: out.log_size,
        signed_decision: answer.signed,
        list_unsubscribe,
        list_unsubscribe_post,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// What a request holds, to compare two readings (it is not `Debug`: it holds addresses).
    type Fields = (String, Option<Channel>, [Option<String>; 6], Option<u64>, Option<bool>, Option<bool>);

    fn fields(r: CheckRequest) -> Fields {
        (
            r.purpose,
            r.channel,
            [r.subject, r.email, r.phone, r.post, r.recipient, r.at],
            r.min_seq,
            r.signed,
            r.unsubscribe,
        )
    }

    /// The reading every other route's query has (serde's, through `crate::query`): the
    /// request, or the problem's words.
    fn read_as_every_route(query: &str) -> Result<Fields, String> {
        crate::query::read::<CheckRequest>(query).map(fields).map_err(|e| e.detail.unwrap_or_default())
    }

    /// A query string of `pairs`: a name (or none) and a value (or none, and no `=`).
    fn query_of(pairs: &[(Option<&str>, Option<&str>)]) -> String {
        let parts: Vec<String> = pairs
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{}={v}", n.unwrap_or("")),
                None => n.unwrap_or("").to_owned(),
            })
            .collect();
        parts.join("&")
    }

    const NAMES: &[&str] = &[
        "purpose",
        "channel",
        "subject",
        "email",
        "phone",
        "post",
        "recipient",
        "at",
        "min_seq",
        "signed",
        "unsubscribe",
        "Purpose",
        "bogus",
        "email%20",
        "pur%70ose",
        "%70urpose",
        "purpose+",
        "",
    ];
    const VALUES: &[&str] = &[
        "newsletter",
        "email",
        "sms",
        "phone",
        "post",
        "Email",
        "true",
        "false",
        "TRUE",
        "1",
        "0",
        "12",
        "+7",
        "-3",
        "18446744073709551615",
        "18446744073709551616",
        "",
        "jane%40example.org",
        "jane+doe@example.org",
        "%2B447700900123",
        "%ZZ",
        "%C3%A9",
        "%FF",
        "2026-01-31T12:00:00Z",
        "a=b",
        "T-1",
        "%4",
        "news%6",
        "%%41",
        "50%25",
        "x+y%2B",
        "%e2%82%ac",
        "%E2%82",
    ];

    proptest! {
        /// A check's query string reads as every route's query is read: the same request, or
        /// the same refusal in the same words.
        #[test]
        fn a_query_string_reads_as_read_as_every_route_query_is_read(
            pairs in proptest::collection::vec(
                (proptest::option::weighted(0.95, 0..NAMES.len()), proptest::option::weighted(0.9, 0..VALUES.len())),
                0..8,
            ),
            usual in any::<bool>(),
        ) {
            let mut pairs: Vec<(Option<&str>, Option<&str>)> =
                pairs.into_iter().map(|(n, v)| (n.map(|n| NAMES[n]), v.map(|v| VALUES[v]))).collect();
            if usual {
                // Often the question every send asks, with what the generator added.
                pairs.insert(0, (Some("purpose"), Some("newsletter")));
                pairs.insert(1, (Some("email"), Some("jane%40example.org")));
            }
            let query = query_of(&pairs);
            let read = CheckRequest::from_query(&query).map(fields).map_err(|e| e.detail.unwrap_or_default());
            prop_assert_eq!(read, read_as_every_route(&query), "{}", query);
        }
    }

    #[test]
    fn the_usual_question_is_read_in_one_pass_and_the_rest_as_before() {
        let usual = "purpose=newsletter&channel=email&email=tenant7%40example.org&min_seq=12&signed=true";
        let read = CheckRequest::read_plain(usual).map(fields).expect("read in one pass");
        assert_eq!(Ok(read), read_as_every_route(usual));
        for other in [
            "purpose=a&purpose=b",
            "purpose=a&colour=red",
            "channel=email",
            "purpose=a&min_seq=x",
            "purpose=a&signed=yes",
        ] {
            assert!(CheckRequest::read_plain(other).is_none(), "{other}");
            let refused = CheckRequest::from_query(other).map(fields).map_err(|e| e.detail.unwrap_or_default());
            assert!(refused.is_err());
            assert_eq!(refused, read_as_every_route(other), "{other}");
        }
    }

    proptest! {
        /// The answer's JSON is byte for byte serde_json's.
        #[test]
        fn an_answer_is_written_as_serde_json_writes_it(
            permitted: bool,
            reason in 0usize..4,
            basis in 0usize..6,
            ids in 0usize..3,
            secs in -62_135_596_800i64..253_402_300_799,
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000), (0u32..1_000_000).prop_map(|u| u * 1000), 0u32..1_000_000_000],
            channel in proptest::option::of(0usize..4),
            recipient: bool,
            log_size: u64,
            unsubscribe in proptest::option::of("[a-z<>\"\\/\u{7f}\u{1}é]{0,12}"),
        ) {
            let reasons = ["consent_granted", "no_consent", "opted_out", "legitimate_interests"];
            let bases = ["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"];
            let response = CheckResponse {
                permitted,
                reason: serde_json::from_str(&format!("\"{}\"", reasons[reason])).expect("reason"),
                basis: serde_json::from_str(&format!("\"{}\"", bases[basis])).expect("basis"),
                decided_by: (0..ids).map(|i| Uuid::from_u128(i as u128 * 0x1234_5678_9abc_def0)).collect(),
                as_of: Utc.timestamp_opt(secs, nanos).single().expect("a time"),
                purpose: PurposeId::parse("newsletter").expect("purpose"),
                channel: channel.map(|c| Channel::ALL[c]),
                recipient: recipient.then(|| RecipientId::parse("acme-mailing").expect("recipient")),
                log_size,
                signed_decision: None,
                list_unsubscribe_post: unsubscribe.as_ref().map(|_| "List-Unsubscribe=One-Click".to_owned()),
                list_unsubscribe: unsubscribe,
            };
            let theirs = serde_json::to_vec(&response).expect("serde");
            let ours = response.to_json();
            prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        }
    }

    #[test]
    fn a_leap_second_is_written_as_chrono_writes_it() {
        let t = Utc.timestamp_opt(1_483_228_799, 1_500_000_000).single().expect("a leap second");
        let mut ours = Vec::new();
        write_time(&mut ours, &t);
        assert_eq!(ours, serde_json::to_vec(&t).expect("serde"));
    }
}
