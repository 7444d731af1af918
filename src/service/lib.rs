//! Use cases, the one door into the ledger: every caller (HTTP, the command line, tests)
//! goes through [`Service`], and no caller reaches the ledger, its store or its projections
//! behind it. Each use case lives in its own module:
//!
//! - `record`: define purposes, record events (checked against the event shapes of the
//!   domain and the controller's catalogue);
//! - `check`: the one batched check pipeline (single checks, JSON arrays and NDJSON lists);
//! - `links`: one-click unsubscribe tokens and what a click records;
//! - `sms`: what an SMS keyword records, and providers' webhook signatures;
//! - `reads`: permissions, history, feed, receipts, purposes;
//! - `log`: the transparency log, keys, export, backups and operations;
//! - `preferences`: the tenant's own preference page;
//! - `import`: CSV files of consent records and suppression lists; `suppress`: a list of
//!   addresses never to market to; `retention`: subjects whose retention has passed;
//! - `access`: API keys and the roles they carry.
//!
//! Every use case takes the caller's controller, and no read or write crosses from one
//! controller to another.

pub mod access;
mod addresses;
mod check;
mod choices;
mod downstream;
pub mod import;
mod links;
mod log;
mod notices;
mod preferences;
mod reads;
mod record;
mod representatives;
mod retention;
pub mod sms;
mod subject_access;
mod suppress;
mod webhooks;

pub use addresses::{Address, HistoryEntry, Via};
pub use check::{CheckAnswer, CheckInput, CheckOutcome, CheckQuery, CheckTarget};
pub use choices::{AddressNote, Choice};
pub use downstream::{concerns, Overdue, OverdueEvent, SystemFeed, MAX_LOOKUP};
pub use links::UnsubscribeToken;
pub use log::{BackupMade, InclusionBy, InclusionProof, KeyInfo, ReceiptBundle};
pub use notices::{text_sha256, NoticeRequest, Published};
pub use preferences::{PreferenceState, PreferenceToken, PurposeSection, Wishes, DEFAULT_LINK_DAYS, MAX_LINK_DAYS};
pub use reads::PermissionRow;
pub use record::{ContactInput, ContactRequest, EventInput, Recorded, Recorder, MAX_CLOCK_SKEW, MAX_EVENTS_AT_ONCE};
pub use retention::RetentionDue;
pub use suppress::{Suppressed, SuppressionList};
pub use webhooks::webhook_signature;

/// The published formats a caller sees in answers (signed receipts and decisions, the stored
/// event document, a contact point by blind index) and the export's lines.
pub use format::access::{AccessBundle, PermissionLine, ProvenEvent, SignedAccessBundle};
pub use format::{short_ref, ContactRef, EventDoc, Receipt, SignedDecision};
/// A purpose version of the catalogue, as `GET /v1/purposes` lists them.
pub use projection::{NoticeVersion, PurposeVersion, SystemVersion};

use std::sync::Arc;

use chrono::{DateTime, Utc};

use domain::{ControllerId, PurposeId};
use ledger::Ledger;
use ledger::LedgerError;
use projection::{ProjectionError, Projections};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is well-formed but breaks a rule; nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// The event does not have the shape its type requires (the index of the event within a
    /// batch of several).
    #[error("{error}")]
    Shape { index: Option<usize>, error: domain::DomainError },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A signed link that is not ours, or was changed.
    #[error("the link is not valid")]
    LinkInvalid,
    /// A signed link past its time.
    #[error("the link has expired")]
    LinkExpired,
    /// A proof asked for sizes or an index outside the log.
    #[error("the sizes or index are outside the log")]
    OutOfRange,
    /// The request's own proof of origin (a provider's signature) does not hold.
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("the ledger is shutting down")]
    Unavailable,
    /// Too much is waiting to be written; the caller may retry shortly.
    #[error("the ledger is busy; retry shortly")]
    Busy,
    /// The data directory's disk is full: nothing was written; retry once space is freed.
    #[error("the data directory's disk is full")]
    StorageFull,
    /// Not possible yet; the caller may retry shortly.
    #[error("{0}")]
    NotYet(&'static str),
    #[error("internal error")]
    Internal(String),
    /// Stored settings (an API key's record, a provider's token: files of the data
    /// directory, or a database ledger's database) could not be read or written.
    #[error("stored settings: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ProjectionError> for ServiceError {
    fn from(e: ProjectionError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<LedgerError> for ServiceError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::IdConflict(_) => ServiceError::Conflict(e.to_string()),
            LedgerError::Closed => ServiceError::Unavailable,
            LedgerError::Busy => ServiceError::Busy,
            LedgerError::StorageFull => ServiceError::StorageFull,
            LedgerError::DatabaseUnavailable => {
                ServiceError::NotYet("the log's database is unreachable: nothing was written; retry shortly")
            }
            LedgerError::BackupExists => ServiceError::Conflict("a backup of that name exists; try again".into()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

fn invalid(msg: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(msg.into())
}

/// The current time as the ledger keeps times (whole microseconds).
pub fn now() -> DateTime<Utc> {
    format::to_micros(Utc::now())
}

/// Where new event ids come from.
type IdSource = Arc<dyn Fn() -> uuid::Uuid + Send + Sync>;

pub struct Service {
    ledger: Ledger,
    ids: IdSource,
    /// A backup is being written (one at a time).
    backup_running: std::sync::atomic::AtomicBool,
    /// Imports started over HTTP.
    imports: import::Jobs,
    /// Where each downstream system's overdue scan got to.
    overdue_scans: downstream::OverdueScans,
}

impl Service {
    pub fn new(ledger: Ledger) -> Self {
        Self {
            ledger,
            ids: Arc::new(uuid::Uuid::now_v7),
            backup_running: Default::default(),
            imports: Default::default(),
            overdue_scans: Default::default(),
        }
    }

    /// Takes new event ids from `ids` instead of UUIDv7s (for tests that compare two ledgers
    /// byte for byte).
    pub fn with_ids(mut self, ids: impl Fn() -> uuid::Uuid + Send + Sync + 'static) -> Self {
        self.ids = Arc::new(ids);
        self
    }

    /// A new event id.
    fn new_id(&self) -> uuid::Uuid {
        (self.ids)()
    }

    /// Records one event the ledger writes itself (a purpose's definition, a notice, a
    /// downstream system's registration or acknowledgement): `fill` sets its members; `id` is
    /// a derived id (a retry is then the same event), else a new one is drawn.
    async fn record_by_ledger(
        &self,
        controller: &ControllerId,
        kind: domain::EventType,
        id: Option<uuid::Uuid>,
        by: Recorder<'_>,
        now: DateTime<Utc>,
        fill: impl FnOnce(&mut EventDoc),
    ) -> Result<Receipt, ServiceError> {
        let mut doc = EventDoc::by_ledger(Some(controller.clone()), kind, now);
        doc.id = id.unwrap_or_else(|| self.new_id());
        doc.recorded_by = by.token();
        fill(&mut doc);
        let draft = ledger::commit::Draft { doc, occurred_now: true, fresh_id: id.is_none() };
        self.ledger.append(vec![draft]).await?.pop().ok_or_else(|| ServiceError::Internal("no receipt".into()))
    }

    /// The version of a purpose in force now.
    fn current_purpose(
        &self,
        controller: &ControllerId,
        purpose: &PurposeId,
    ) -> Result<Option<Arc<PurposeVersion>>, ServiceError> {
        Ok(self.projections().current_purpose(controller, purpose)?)
    }

    /// The version of a purpose in force at `at` (now when `None`).
    fn purpose_at(
        &self,
        controller: &ControllerId,
        purpose: &PurposeId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<Arc<PurposeVersion>>, ServiceError> {
        match at {
            None => self.current_purpose(controller, purpose),
            Some(t) => Ok(self.projections().purpose(controller, purpose, Some(t))?.map(Arc::new)),
        }
    }

    fn projections(&self) -> Projections<'_> {
        self.ledger.projections()
    }
}
