//! The connection of a database ledger's writer and checkpointer to the database: opened
//! again after it breaks, and what the node knows of the database for `/readyz` and
//! `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pglog::{PgError, PgLog};

use super::LedgerError;

/// How long a writer or listener waits before trying an unreachable database again.
pub const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// A node is not ready while its replica is this many events behind the database.
pub const FAR_BEHIND: u64 = 10_000;

/// What a node knows of the database, for `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct DatabaseState {
    /// Whether the last use reached the database.
    pub reachable: AtomicBool,
    /// The database's log size when the writer last looked.
    pub size: AtomicU64,
}

/// A connection to the log's database, opened again after it breaks.
pub struct Remote {
    url: String,
    conn: Option<PgLog>,
    last_try: Option<Instant>,
    pub state: Arc<DatabaseState>,
    /// Whether this node's last commit followed its own replica, no other node's commit
    /// between: the next group is then signed after the replica and written without holding
    /// the head across round trips (`db_commit.rs`).
    pub alone: bool,
}

impl Remote {
    pub fn new(url: &str, state: Arc<DatabaseState>) -> Self {
        Self { url: url.to_owned(), conn: None, last_try: None, state, alone: true }
    }

    /// The open connection, connecting if there is none (at most once per
    /// [`RECONNECT_AFTER`] while the database is unreachable).
    pub fn conn(&mut self) -> Result<&mut PgLog, LedgerError> {
        if self.conn.as_ref().is_some_and(PgLog::is_closed) {
            self.conn = None;
        }
        if self.conn.is_none() {
            if self.last_try.is_some_and(|t| t.elapsed() < RECONNECT_AFTER) {
                return Err(LedgerError::DatabaseUnavailable);
            }
            self.last_try = Some(Instant::now());
            match PgLog::connect(&self.url) {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    self.failed(&e);
                    return Err(LedgerError::DatabaseUnavailable);
                }
            }
        }
        self.conn.as_mut().ok_or(LedgerError::DatabaseUnavailable)
    }

    /// Records a failed use: the connection is dropped and opened again next time.
    pub fn failed(&mut self, e: &PgError) {
        if self.state.reachable.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %e, "the log's database is unreachable; writes are refused until it answers");
        }
        self.conn = None;
    }

    pub fn succeeded(&self) {
        if !self.state.reachable.swap(true, Ordering::AcqRel) {
            tracing::info!("the log's database answers again");
        }
    }
}
