//! Bringing records in: a CSV file of consent records or a suppression list, read row by row
//! through a mapping; each row is checked and turned into the events it implies, and written
//! in groups of up to 1000 events while the next group is prepared. Event ids derive from the
//! source's name and each row's source id, so importing the same file again records nothing
//! new; a row that breaks a rule is refused on its own (row, column, reason) and the rest go in.

mod jobs;
mod mapping;
mod rows;

pub use jobs::{ImportJob, JobState, Jobs, MAX_JOB_REJECTS};
pub use mapping::{read_date, ImportMode, Mapping};
pub use rows::{suppression_id, Reject};

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::Read;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{invalid, Service, ServiceError};
use domain::ControllerId;
use ledger::commit::{Appended, Draft};
use ledger::{LedgerError, MAX_APPEND_EVENTS};
use mapping::Layout;
use rows::{Planned, Role};

/// How an import runs.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub mode: ImportMode,
    /// The source's name (the mapping's `source`, else the file's name): ids derive from it.
    pub source: String,
    /// Check every row and count what would be recorded; write nothing.
    pub dry_run: bool,
    /// Who records the events (`recorded_by`).
    pub recorded_by: Option<domain::Token>,
}

/// How far an import has gone, and in the end what it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ImportCounts {
    /// Rows read, not counting the header or blank rows.
    pub rows: u64,
    /// Rows whose events are all in the log (recorded now or by an earlier import).
    pub imported: u64,
    /// Rows that repeat an earlier row of the file exactly (nothing more to record).
    pub duplicates: u64,
    /// Rows refused, each with a reason.
    pub rejected: u64,
    /// Events recorded by this import (in a dry run: that it would record).
    pub events_new: u64,
    /// Events the log held already (the same rows imported before).
    pub events_existing: u64,
    /// Bytes of the file read so far.
    pub bytes: u64,
}

/// A group of rows' events, written all or nothing.
#[derive(Default)]
struct Chunk {
    rows: Vec<(u64, Vec<Draft>)>,
    events: usize,
}

type Pending = Pin<Box<dyn Future<Output = Result<Vec<Appended>, LedgerError>> + Send>>;

/// A group handed to the writer: its rows (number, how many events), its events (kept for
/// writing row by row should the group be refused) and the writer's answer to come.
struct Written {
    spans: Vec<(u64, usize)>,
    drafts: Vec<Draft>,
    pending: Pending,
}

/// Groups written at once: one being written, the next waiting, while a third is prepared.
const IN_FLIGHT: usize = 2;

/// What an import run keeps between rows.
struct Run<'a> {
    service: &'a Service,
    controller: &'a ControllerId,
    options: &'a ImportOptions,
    layout: Layout,
    counts: ImportCounts,
    /// Source id (its SHA-256, first 16 bytes) -> (the row's content hash, its row number).
    seen: HashMap<u128, (u128, u64)>,
    /// Links (subject, blind index) and suppressed blind indexes this file recorded already.
    done: HashSet<u128>,
    chunk: Chunk,
    in_flight: VecDeque<Written>,
    on_reject: &'a mut dyn FnMut(Reject),
}

fn digest(parts: &[&str]) -> u128 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    let d = h.finalize();
    u128::from_be_bytes(d[..16].try_into().unwrap_or_default())
}

impl Service {
    /// Imports a CSV file (`input`) through `mapping`, calling `on_progress` as groups are
    /// written and `on_reject` for each refused row. Answers with the counts once every
    /// recorded event is durable; on an error (the ledger unavailable, the disk full) what
    /// was acknowledged stays, and running the import again records the rest.
    #[allow(clippy::too_many_arguments)]
    pub async fn import(
        &self,
        controller: &ControllerId,
        input: impl Read,
        mapping: &Mapping,
        options: &ImportOptions,
        now: DateTime<Utc>,
        on_progress: &mut dyn FnMut(&ImportCounts),
        on_reject: &mut dyn FnMut(Reject),
    ) -> Result<ImportCounts, ServiceError> {
        // On a database ledger the catalogue may have changed on another node.
        self.ledger.catch_up().await?;
        let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
        let header = read_header(&mut csv)?;
        let layout = mapping.layout(&header, options.mode).map_err(invalid)?;
        self.check_fixed(controller, mapping)?;
        let mut run = Run {
            service: self,
            controller,
            options,
            layout,
            counts: ImportCounts::default(),
            seen: HashMap::new(),
            done: HashSet::new(),
            chunk: Chunk::default(),
            in_flight: VecDeque::new(),
            on_reject,
        };
        let mut record = csv::ByteRecord::new();
        let mut number = 1u64;
        while csv.read_byte_record(&mut record).map_err(csv_error)? {
            number += 1;
            run.counts.bytes = csv.position().byte();
            let Ok(cells) = record.iter().map(std::str::from_utf8).collect::<Result<Vec<&str>, _>>() else {
                run.counts.rows += 1;
                run.reject(Reject {
                    row: number,
                    column: String::new(),
                    reason: "the row is not UTF-8 text (save the file as CSV UTF-8)".into(),
                });
                continue;
            };
            if cells.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            run.counts.rows += 1;
            run.row(number, &cells, mapping, now);
            if run.chunk.events + 8 > MAX_APPEND_EVENTS {
                run.flush().await?;
                on_progress(&run.counts);
            }
        }
        run.counts.bytes = csv.position().byte();
        run.flush().await?;
        while let Some(w) = run.in_flight.pop_front() {
            run.settle(w).await?;
        }
        on_progress(&run.counts);
        Ok(run.counts)
    }
}

/// The file's header row (a UTF-8 byte order mark before it is dropped).
fn read_header<R: Read>(csv: &mut csv::Reader<R>) -> Result<Vec<String>, ServiceError> {
    let mut record = csv::ByteRecord::new();
    if !csv.read_byte_record(&mut record).map_err(csv_error)? {
        return Err(invalid("the file is empty: it needs a header row"));
    }
    record
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let f = if i == 0 { f.strip_prefix(b"\xef\xbb\xbf").unwrap_or(f) } else { f };
            std::str::from_utf8(f).map(str::to_string)
        })
        .collect::<Result<_, _>>()
        .map_err(|_| invalid("the header row is not UTF-8 text (save the file as CSV UTF-8)"))
}

impl Service {
    /// Checks, before an import starts, that `mapping` fits the file's header and that its
    /// fixed purpose and channel are in the catalogue (else every row would be refused alike).
    pub fn check_import(
        &self,
        controller: &ControllerId,
        input: impl Read,
        mapping: &Mapping,
        mode: ImportMode,
    ) -> Result<(), ServiceError> {
        let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
        mapping.layout(&read_header(&mut csv)?, mode).map_err(invalid)?;
        self.check_fixed(controller, mapping)
    }

    fn check_fixed(&self, controller: &ControllerId, mapping: &Mapping) -> Result<(), ServiceError> {
        let Some(word) = &mapping.fixed.purpose else { return Ok(()) };
        let purpose = domain::PurposeId::parse(mapping.purpose_id(word))
            .ok()
            .and_then(|p| self.current_purpose(controller, &p).transpose())
            .transpose()?
            .ok_or_else(|| invalid("fixed.purpose names no purpose of the catalogue"))?;
        let channel = mapping.fixed.channel.as_deref().and_then(mapping::read_channel);
        if channel.is_some_and(|k| !purpose.definition.allows_channel(k)) {
            return Err(invalid("fixed.channel is not a channel of fixed.purpose"));
        }
        Ok(())
    }
}

fn csv_error(e: csv::Error) -> ServiceError {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => ServiceError::Io(e),
        _ => invalid("the file is not CSV"),
    }
}

impl Run<'_> {
    fn reject(&mut self, r: Reject) {
        self.counts.rejected += 1;
        (self.on_reject)(r);
    }

    /// Reads one row and adds its events to the group being prepared.
    fn row(&mut self, number: u64, cells: &[&str], mapping: &Mapping, now: DateTime<Utc>) {
        let layout = &self.layout;
        let content = rows::mapped_cells(cells, layout);
        let source_id = match layout.source_id {
            Some(at) => match cells.get(at).map(|c| c.trim()).filter(|c| !c.is_empty()) {
                Some(id) => id.to_string(),
                None => {
                    let column = layout.header(Some(at)).to_string();
                    return self.reject(Reject {
                        row: number,
                        column,
                        reason: "is blank: each row needs its source id".into(),
                    });
                }
            },
            None => hex::encode(&Sha256::digest(content.as_bytes())[..16]),
        };
        let content_hash = digest(&[&content]);
        let source_key = digest(&[&source_id]);
        match self.seen.get(&source_key) {
            Some((h, _)) if *h == content_hash => {
                self.counts.duplicates += 1;
                return;
            }
            Some((_, first)) => {
                let reason = format!("repeats the source id of row {first} with other values");
                let column = layout.header(layout.source_id).to_string();
                return self.reject(Reject { row: number, column, reason });
            }
            None => {}
        }
        let planned = rows::read_row(number, cells, layout, mapping, now)
            .and_then(|row| rows::plan(row, number, &self.options.source, &source_id, self.options.mode, layout));
        let planned = match planned {
            Ok(p) => p,
            Err(r) => return self.reject(r),
        };
        self.seen.insert(source_key, (content_hash, number));
        let mut drafts = Vec::with_capacity(planned.len());
        let mut keys = Vec::new();
        for Planned { mut input, column, role } in planned {
            input.recorded_by = self.options.recorded_by.clone();
            let subject = input.subject.clone();
            let mut draft = match self.service.draft(self.controller, input, now) {
                Ok(d) => d,
                Err(e) => {
                    let column = self.layout.header(column).to_string();
                    return self.reject(Reject { row: number, column, reason: e.to_string() });
                }
            };
            let index = draft.doc.contact.as_ref().map_or("", |c| c.index.as_str()).to_string();
            match role {
                Role::Answer => {}
                Role::Link => keys.push(digest(&["link", subject.as_ref().map_or("", |s| s.as_str()), &index])),
                Role::Suppress => {
                    draft.doc.id = rows::suppression_id(&self.options.source, &index);
                    draft.fresh_id = false;
                    keys.push(digest(&["suppress", &index]));
                }
            }
            if role != Role::Answer && self.done.contains(keys.last().unwrap_or(&0)) {
                continue;
            }
            drafts.push(draft);
        }
        self.done.extend(keys);
        self.chunk.events += drafts.len();
        self.chunk.rows.push((number, drafts));
    }

    /// Hands the prepared group to the writer (in a dry run, counts what it would record).
    async fn flush(&mut self) -> Result<(), ServiceError> {
        let chunk = std::mem::take(&mut self.chunk);
        if chunk.rows.is_empty() {
            return Ok(());
        }
        if self.options.dry_run {
            for (_, drafts) in &chunk.rows {
                for d in drafts {
                    match self.service.ledger.seq_of(Some(self.controller), d.doc.id)? {
                        Some(_) => self.counts.events_existing += 1,
                        None => self.counts.events_new += 1,
                    }
                }
                self.counts.imported += 1;
            }
            return Ok(());
        }
        let spans: Vec<(u64, usize)> = chunk.rows.iter().map(|(n, d)| (*n, d.len())).collect();
        let drafts: Vec<Draft> = chunk.rows.into_iter().flat_map(|(_, d)| d).collect();
        let pending = loop {
            match self.service.ledger.submit(drafts.clone()) {
                Ok(p) => break p,
                Err(LedgerError::Busy) => match self.in_flight.pop_front() {
                    Some(w) => self.settle(w).await?,
                    None => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                },
                Err(e) => return Err(e.into()),
            }
        };
        self.in_flight.push_back(Written { spans, drafts, pending: Box::pin(pending) });
        while self.in_flight.len() > IN_FLIGHT {
            if let Some(w) = self.in_flight.pop_front() {
                self.settle(w).await?;
            }
        }
        Ok(())
    }

    /// Waits for a group to be written and counts it. A group refused because a row's id was
    /// recorded before with other values is written again row by row, refusing those rows.
    async fn settle(&mut self, Written { spans, drafts, pending }: Written) -> Result<(), ServiceError> {
        match pending.await {
            Ok(appended) => {
                self.count(&appended);
                self.counts.imported += spans.len() as u64;
                Ok(())
            }
            Err(LedgerError::IdConflict(_)) => {
                let mut drafts = drafts.into_iter();
                for (number, n) in spans {
                    let row: Vec<Draft> = drafts.by_ref().take(n).collect();
                    match self.service.ledger.append_reporting(row).await {
                        Ok(appended) => {
                            self.count(&appended);
                            self.counts.imported += 1;
                        }
                        Err(LedgerError::IdConflict(_)) => {
                            let column = self.layout.header(self.layout.source_id).to_string();
                            let reason = "was imported before with other values (the same source id)".into();
                            self.reject(Reject { row: number, column, reason });
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn count(&mut self, appended: &[Appended]) {
        for (_, new) in appended {
            if *new {
                self.counts.events_new += 1;
            } else {
                self.counts.events_existing += 1;
            }
        }
    }
}
