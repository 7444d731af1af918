//! An import's mapping (a TOML file): which of the file's columns holds what, values that
//! hold for every row, and the file's own words for purposes and answers. Also how a cell is
//! read: yes/no, channels, methods and UK dates.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use domain::{Channel, Method};

/// What an import's file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Consent records: each row links its addresses to its subject and records the answer.
    Records,
    /// A suppression list: each address must never receive marketing.
    Suppressions,
}

/// The mapping file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The name of the system the file comes from (e.g. `housing-system-2016`): with each
    /// row's source id it makes the events' ids, so two files whose rows are numbered alike
    /// do not collide. Defaults to the file's name.
    pub source: Option<String>,
    #[serde(default)]
    pub columns: Columns,
    #[serde(default)]
    pub fixed: Fixed,
    /// The file's words for purposes, e.g. `"The Voice" = "newsletter"`; a value not listed
    /// must be a purpose id of the catalogue.
    #[serde(default)]
    pub purposes: BTreeMap<String, String>,
    /// More words for yes and no, e.g. `"Happy to hear" = "yes"` (matched without regard to
    /// case or surrounding spaces).
    #[serde(default)]
    pub answers: BTreeMap<String, String>,
}

/// The columns, by their header names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub subject: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub postal: Option<String>,
    pub purpose: Option<String>,
    /// Yes or no (`Y`, `N`, `yes`, `no`, `true`, `false`, `1`, `0`, `granted`, `withdrawn`,
    /// `opted in`, `opted out`, `subscribed`, `unsubscribed`).
    pub answer: Option<String>,
    pub channel: Option<String>,
    /// When it happened: `dd/mm/yyyy` or ISO 8601, with or without a time (UK time when the
    /// value has no offset).
    pub date: Option<String>,
    pub method: Option<String>,
    pub evidence: Option<String>,
    pub notice_version: Option<String>,
    /// The row's own id in the source system; without one, a row is known by its content.
    pub source_id: Option<String>,
}

/// Values for every row, where the file has no such column.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixed {
    pub purpose: Option<String>,
    pub channel: Option<String>,
    pub method: Option<String>,
    pub notice_version: Option<String>,
}

/// The mapping's columns as positions in the file's header.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub subject: Option<usize>,
    pub email: Option<usize>,
    pub phone: Option<usize>,
    pub postal: Option<usize>,
    pub purpose: Option<usize>,
    pub answer: Option<usize>,
    pub channel: Option<usize>,
    pub date: Option<usize>,
    pub method: Option<usize>,
    pub evidence: Option<usize>,
    pub notice_version: Option<usize>,
    pub source_id: Option<usize>,
    /// Every header name, for naming a column in a reject.
    pub headers: Vec<String>,
}

impl Layout {
    pub fn header(&self, at: Option<usize>) -> &str {
        at.and_then(|i| self.headers.get(i)).map_or("", String::as_str)
    }
}

impl Mapping {
    /// Reads a mapping file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| format!("the mapping is not valid: {}", e.message()))
    }

    /// The purpose id a word of the file names: its entry in `[purposes]` (ignoring case), or
    /// the word itself.
    pub fn purpose_id<'a>(&'a self, word: &'a str) -> &'a str {
        self.purposes.iter().find(|(k, _)| k.trim().eq_ignore_ascii_case(word.trim())).map_or(word, |(_, v)| v)
    }

    /// Places the mapping's columns in the file's header, refusing a mapping that names a
    /// column the file lacks or does not say enough for `mode`.
    pub fn layout(&self, header: &[String], mode: ImportMode) -> Result<Layout, String> {
        let find = |key: &str, name: &Option<String>| -> Result<Option<usize>, String> {
            let Some(name) = name else { return Ok(None) };
            let wanted = name.trim();
            header
                .iter()
                .position(|h| h.trim() == wanted)
                .or_else(|| header.iter().position(|h| h.trim().eq_ignore_ascii_case(wanted)))
                .map(Some)
                .ok_or_else(|| format!("columns.{key}: the file has no column named \"{wanted}\""))
        };
        let c = &self.columns;
        let layout = Layout {
            subject: find("subject", &c.subject)?,
            email: find("email", &c.email)?,
            phone: find("phone", &c.phone)?,
            postal: find("postal", &c.postal)?,
            purpose: find("purpose", &c.purpose)?,
            answer: find("answer", &c.answer)?,
            channel: find("channel", &c.channel)?,
            date: find("date", &c.date)?,
            method: find("method", &c.method)?,
            evidence: find("evidence", &c.evidence)?,
            notice_version: find("notice_version", &c.notice_version)?,
            source_id: find("source_id", &c.source_id)?,
            headers: header.to_vec(),
        };
        let addresses = layout.email.is_some() || layout.phone.is_some() || layout.postal.is_some();
        match mode {
            ImportMode::Records => {
                if layout.subject.is_none() && !addresses {
                    return Err("the mapping needs a subject column or an address column (email, phone, postal)".into());
                }
                let purpose = layout.purpose.is_some() || self.fixed.purpose.is_some();
                if purpose != layout.answer.is_some() {
                    return Err("a purpose (column or fixed) and an answer column go together".into());
                }
            }
            ImportMode::Suppressions => {
                if !addresses {
                    return Err("a suppression list needs an address column (email, phone or postal)".into());
                }
                if layout.subject.is_some() || layout.purpose.is_some() || layout.answer.is_some() {
                    return Err("a suppression list has addresses only: no subject, purpose or answer".into());
                }
                if self.fixed.purpose.is_some() {
                    return Err("a suppression list objects to all marketing: it takes no purpose".into());
                }
            }
        }
        if let Some(k) = &self.fixed.channel {
            read_channel(k).ok_or_else(|| "fixed.channel is not a channel".to_string())?;
        }
        if let Some(m) = &self.fixed.method {
            read_method(m).ok_or_else(|| "fixed.method is not a method".to_string())?;
        }
        for (word, answer) in &self.answers {
            if read_answer(answer, &BTreeMap::new()).is_none() {
                return Err(format!("answers.\"{word}\" must be \"yes\" or \"no\""));
            }
        }
        Ok(layout)
    }
}

/// Reads yes or no; `None` when the word means neither.
pub fn read_answer(cell: &str, more: &BTreeMap<String, String>) -> Option<bool> {
    let w = cell.trim().to_ascii_lowercase();
    match w.as_str() {
        "y" | "yes" | "true" | "1" | "granted" | "given" | "opted in" | "opt in" | "opt-in" | "subscribed" => {
            Some(true)
        }
        "n" | "no" | "false" | "0" | "withdrawn" | "refused" | "opted out" | "opt out" | "opt-out" | "unsubscribed" => {
            Some(false)
        }
        _ => more
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(&w))
            .and_then(|(_, v)| read_answer(v, &BTreeMap::new())),
    }
}

/// Reads a channel by our name or a common one (`text`, `letter`, `mail`, `telephone`).
pub fn read_channel(cell: &str) -> Option<Channel> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "email" | "e-mail" => Some(Channel::Email),
        "sms" | "text" | "text message" => Some(Channel::Sms),
        "phone" | "telephone" | "call" => Some(Channel::Phone),
        "post" | "letter" | "mail" | "postal" => Some(Channel::Post),
        _ => None,
    }
}

/// Reads how the original record was captured, by our names (`paper_form`, `web_form`, ...).
pub fn read_method(cell: &str) -> Option<Method> {
    let w = cell.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    serde_json::from_value(serde_json::Value::String(w)).ok()
}

/// Reads a date as people write them in the UK: `31/01/2016` (`d/m/yyyy`), `2016-01-31`, each
/// with or without a time (`14:30` or `14:30:15`), or RFC 3339 with an offset. A time without
/// an offset is UK time (GMT or BST as it was that day); a date alone is the start of that day.
pub fn read_date(cell: &str) -> Option<DateTime<Utc>> {
    let s = cell.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let (day, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim())),
        None => (s, None),
    };
    let date = NaiveDate::parse_from_str(day, "%d/%m/%Y")
        .ok()
        .filter(|_| day.rsplit('/').next().is_some_and(|y| y.len() == 4))
        .or_else(|| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())?;
    let naive: NaiveDateTime = match time {
        None => date.and_hms_opt(0, 0, 0)?,
        Some(t) => {
            let t = chrono::NaiveTime::parse_from_str(t, "%H:%M:%S")
                .or_else(|_| chrono::NaiveTime::parse_from_str(t, "%H:%M"))
                .ok()?;
            date.and_time(t)
        }
    };
    // At the autumn change an hour happens twice: the earlier; in the spring gap, the hour after.
    let london = chrono_tz::Europe::London;
    london
        .from_local_datetime(&naive)
        .earliest()
        .or_else(|| london.from_local_datetime(&(naive + chrono::Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn uk_and_iso_dates_in_uk_time() {
        assert_eq!(read_date("31/01/2016"), Some(utc("2016-01-31T00:00:00Z")));
        assert_eq!(read_date("1/7/2016 14:30"), Some(utc("2016-07-01T13:30:00Z")), "BST");
        assert_eq!(read_date("2016-07-01"), Some(utc("2016-06-30T23:00:00Z")));
        assert_eq!(read_date("2016-07-01T14:30:15"), Some(utc("2016-07-01T13:30:15Z")));
        assert_eq!(read_date("2016-07-01T14:30:15+02:00"), Some(utc("2016-07-01T12:30:15Z")));
        assert_eq!(read_date(" 2016-01-31 09:05 "), Some(utc("2016-01-31T09:05:00Z")));
        for bad in ["", "31/13/2016", "01/02/16", "2016-02-30", "yesterday", "31/01/2016 25:00", "12/31/2016"] {
            assert_eq!(read_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn yes_and_no_in_the_words_people_use() {
        let more = BTreeMap::from([("Happy to hear".to_string(), "yes".to_string())]);
        for (w, a) in [
            ("Y", Some(true)),
            ("n", Some(false)),
            (" Yes ", Some(true)),
            ("NO", Some(false)),
            ("granted", Some(true)),
            ("Withdrawn", Some(false)),
            ("happy to hear", Some(true)),
            ("maybe", None),
            ("", None),
        ] {
            assert_eq!(read_answer(w, &more), a, "{w}");
        }
    }

    #[test]
    fn a_mapping_must_name_columns_the_file_has() {
        let m = Mapping::parse("[columns]\nsubject = \"Ref\"\nemail = \"E-mail\"\n").unwrap();
        let header = vec!["ref".to_string(), "E-mail".to_string()];
        assert!(m.layout(&header, ImportMode::Records).is_ok());
        let err = m.layout(&["Ref".to_string()], ImportMode::Records).unwrap_err();
        assert!(err.contains("columns.email"), "{err}");
        assert!(Mapping::parse("[columns]\nsubjekt = \"Ref\"\n").is_err());
        let half = Mapping::parse("[columns]\nsubject = \"Ref\"\n[fixed]\npurpose = \"newsletter\"\n").unwrap();
        assert!(half.layout(&header, ImportMode::Records).is_err(), "a purpose without an answer");
        assert!(m.layout(&header, ImportMode::Suppressions).is_err(), "a suppression list has no subject");
    }

    #[test]
    fn channels_and_methods_by_their_common_names() {
        assert_eq!(read_channel("Text"), Some(Channel::Sms));
        assert_eq!(read_channel("Letter"), Some(Channel::Post));
        assert_eq!(read_method("Paper form"), Some(Method::PaperForm));
        assert_eq!(read_method("carrier pigeon"), None);
    }
}
