//! One row of an import file as the events it implies, or the reason it is refused (naming
//! the column, never the cell: a cell may be personal data).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::mapping::{read_answer, read_channel, read_date, read_method, ImportMode, Layout, Mapping};
use crate::record::{ContactInput, EventInput};
use crate::MAX_CLOCK_SKEW;
use domain::{Actor, ActorKind, Channel, ContactPoint, EventType, Evidence, Method, PurposeId, SubjectId, Token};

/// The namespace of imported events' ids (UUIDv5 of the source, the row and the event's role).
const IMPORT_IDS: Uuid = Uuid::from_u128(0x6c2d_54a1_0f3e_4b7a_9d15_3e8c_2a90_b4f1);

/// Why a row was refused: the column by its header ("" for the row as a whole) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Reject {
    /// The row's number as a spreadsheet shows it (the header is row 1).
    pub row: u64,
    pub column: String,
    pub reason: String,
}

/// What a row says, read and checked cell by cell.
pub struct Row {
    pub subject: Option<SubjectId>,
    pub contacts: Vec<(Option<usize>, ContactPoint)>,
    pub purpose: Option<PurposeId>,
    pub answer: Option<bool>,
    pub channel: Option<Channel>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub method: Method,
    pub evidence: Option<Evidence>,
    pub notice_version: Option<Token>,
}

/// Reads the row's cells (`cells[i]` is column `i`; blank cells and missing ones are absent).
pub fn read_row(
    number: u64,
    cells: &[&str],
    layout: &Layout,
    mapping: &Mapping,
    now: DateTime<Utc>,
) -> Result<Row, Reject> {
    let reject = |at: Option<usize>, reason: &str| Reject {
        row: number,
        column: layout.header(at).to_string(),
        reason: reason.to_string(),
    };
    let cell = |at: Option<usize>| at.and_then(|i| cells.get(i)).map(|c| c.trim()).filter(|c| !c.is_empty());
    let subject = cell(layout.subject)
        .map(|s| SubjectId::parse(s).map_err(|e| reject(layout.subject, &e.to_string())))
        .transpose()?;
    let mut contacts = Vec::new();
    for (at, channel) in [(layout.email, Channel::Email), (layout.phone, Channel::Sms), (layout.postal, Channel::Post)]
    {
        if let Some(address) = cell(at) {
            contacts.push((at, ContactPoint::parse(channel, address).map_err(|e| reject(at, &e.to_string()))?));
        }
    }
    let purpose =
        match cell(layout.purpose).or(mapping.fixed.purpose.as_deref()) {
            None => None,
            Some(word) => Some(PurposeId::parse(mapping.purpose_id(word)).map_err(|_| {
                reject(layout.purpose, "not a purpose id, and not one of the mapping's [purposes] words")
            })?),
        };
    let answer = cell(layout.answer)
        .map(|w| read_answer(w, &mapping.answers).ok_or_else(|| reject(layout.answer, "is neither yes nor no")))
        .transpose()?;
    let channel = cell(layout.channel)
        .or(mapping.fixed.channel.as_deref())
        .map(|w| read_channel(w).ok_or_else(|| reject(layout.channel, "is not a channel (email, sms, phone, post)")))
        .transpose()?;
    let occurred_at = cell(layout.date)
        .map(|d| {
            read_date(d)
                .ok_or_else(|| reject(layout.date, "is not a date (dd/mm/yyyy or yyyy-mm-dd, with or without a time)"))
        })
        .transpose()?;
    if occurred_at.is_some_and(|t| t > now + MAX_CLOCK_SKEW) {
        return Err(reject(layout.date, "is in the future"));
    }
    let method = cell(layout.method)
        .or(mapping.fixed.method.as_deref())
        .map(|m| {
            read_method(m)
                .ok_or_else(|| reject(layout.method, "is not a method (paper_form, web_form, phone_call, ...)"))
        })
        .transpose()?
        .unwrap_or(Method::Import);
    let evidence = cell(layout.evidence)
        .map(|r| {
            Token::parse(r)
                .map(|reference| Evidence { reference, sha256: None })
                .map_err(|_| reject(layout.evidence, "an evidence reference may hold only letters, digits and . _ : -"))
        })
        .transpose()?;
    let notice_version = cell(layout.notice_version)
        .or(mapping.fixed.notice_version.as_deref())
        .map(|v| {
            Token::parse(v).map_err(|_| {
                reject(layout.notice_version, "a notice version may hold only letters, digits and . _ : -")
            })
        })
        .transpose()?;
    if subject.is_none() && contacts.is_empty() {
        return Err(reject(None, "the row has no subject and no address"));
    }
    match (&purpose, answer) {
        (Some(_), None) => return Err(reject(layout.answer, "is blank: say yes or no")),
        (None, Some(_)) => return Err(reject(layout.purpose, "is blank: say what the answer is about")),
        _ => {}
    }
    Ok(Row { subject, contacts, purpose, answer, channel, occurred_at, method, evidence, notice_version })
}

/// One event a row implies, with the column a refusal of it is about.
pub struct Planned {
    pub input: EventInput,
    pub column: Option<usize>,
    pub role: Role,
}

/// What a planned event does for its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Links an address to the subject: a file links a subject to an address once.
    Link,
    /// Records the row's answer.
    Answer,
    /// Suppresses an address: once per list, whichever row says so first; its id comes from
    /// the source and the address's blind index.
    Suppress,
}

/// The events of a row: in records mode each address linked to the subject, then the answer
/// (against the subject, or against each address when there is no subject); in suppressions
/// mode an objection to all marketing against each address.
pub fn plan(
    row: Row,
    number: u64,
    source: &str,
    source_id: &str,
    mode: ImportMode,
    layout: &Layout,
) -> Result<Vec<Planned>, Reject> {
    let id = |role: &str| Uuid::new_v5(&IMPORT_IDS, format!("{source}\u{1f}{source_id}\u{1f}{role}").as_bytes());
    let base = |kind: EventType, actor: Actor| EventInput {
        occurred_at: row.occurred_at,
        evidence: row.evidence.clone(),
        actor,
        ..EventInput::by_person(kind, row.method)
    };
    let mut out = Vec::new();
    if mode == ImportMode::Suppressions {
        let actor = Actor { kind: ActorKind::System, id: Token::parse("suppression-list").ok(), authority: None };
        for (at, c) in &row.contacts {
            let mut e = base(EventType::ObjectionRaised, actor.clone());
            e.contact = Some(ContactInput::Address(c.clone()));
            out.push(Planned { input: e, column: *at, role: Role::Suppress });
        }
        return Ok(out);
    }
    let person = Actor { kind: ActorKind::Subject, id: None, authority: None };
    if let Some(s) = &row.subject {
        for (at, c) in &row.contacts {
            let mut e = base(EventType::ContactLinked, person.clone());
            e.id = Some(id(&format!("link:{}", c.kind().as_str())));
            e.subject = Some(s.clone());
            e.contact = Some(ContactInput::Address(c.clone()));
            out.push(Planned { input: e, column: *at, role: Role::Link });
        }
    }
    let (Some(purpose), Some(yes)) = (&row.purpose, row.answer) else {
        if out.is_empty() {
            let reason = "the row has nothing to record: no address to link and no answer".into();
            return Err(Reject { row: number, column: String::new(), reason });
        }
        return Ok(out);
    };
    let kind = if yes { EventType::ConsentGranted } else { EventType::ConsentWithdrawn };
    let answer = |role: &str| {
        let mut e = base(kind, person.clone());
        e.id = Some(id(role));
        e.purpose = Some(purpose.clone());
        e.channel = row.channel;
        e.notice_version = row.notice_version.clone();
        e
    };
    match &row.subject {
        Some(s) => {
            let mut e = answer("answer");
            e.subject = Some(s.clone());
            out.push(Planned { input: e, column: layout.purpose, role: Role::Answer });
        }
        None => {
            let mut any = false;
            for (at, c) in &row.contacts {
                if row.channel.is_some_and(|k| !c.kind().reaches(k)) {
                    continue;
                }
                let mut e = answer(&format!("answer:{}", c.kind().as_str()));
                e.contact = Some(ContactInput::Address(c.clone()));
                out.push(Planned { input: e, column: *at, role: Role::Answer });
                any = true;
            }
            if !any {
                return Err(Reject {
                    row: number,
                    column: layout.header(layout.channel).to_string(),
                    reason: "the row has no address this channel reaches".into(),
                });
            }
        }
    }
    Ok(out)
}

/// The row's cells that the mapping reads, joined, for knowing a row by its content.
pub fn mapped_cells(cells: &[&str], layout: &Layout) -> String {
    let l = layout;
    let mut key = String::new();
    for at in [
        l.subject,
        l.email,
        l.phone,
        l.postal,
        l.purpose,
        l.answer,
        l.channel,
        l.date,
        l.method,
        l.evidence,
        l.notice_version,
        l.source_id,
    ] {
        key.push_str(at.and_then(|i| cells.get(i)).map_or("", |c| c.trim()));
        key.push('\u{1f}');
    }
    key
}

/// The id of an address's suppression by a list.
pub fn suppression_id(source: &str, index: &str) -> Uuid {
    Uuid::new_v5(&IMPORT_IDS, format!("{source}\u{1f}suppress\u{1f}{index}").as_bytes())
}
