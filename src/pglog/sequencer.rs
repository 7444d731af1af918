//! The connection a node's group commit holds the log's head row on, when it must lock it
//! (other nodes write too). The head stays locked from the `SELECT ... FOR UPDATE` until the
//! commit has been flushed, and on a busy machine every round trip in between waits for the
//! node's thread and the database's process to be scheduled: so the statements that can go
//! together are sent together (pipelined): `BEGIN` with the lock, and the group's write with
//! its `COMMIT`. The write is answered before the commit is (the server runs them in order),
//! and a failed write turns the `COMMIT` into a rollback, so nothing of a failed write is
//! committed. A connection of its own (the driver's asynchronous client on a one-thread
//! runtime), beside [`super::PgLog`]'s.

use postgres::types::ToSql;
use postgres::{Row, Statement};

use super::{append::write_statement, config_of, head_of, Head, PgError, HEAD_FOR_UPDATE, SESSION};

/// The events already stored under any of the id keys `$1` (a retried event answers its receipt).
const EXISTING: &str = "SELECT seq, id_key, key_id, signature, leaf_hash, event FROM log_events WHERE id_key = ANY($1)";

pub(crate) struct Sequencer {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    lock: Statement,
    write: Statement,
    existing: Statement,
}

impl Sequencer {
    /// Connects as [`super::PgLog::connect`] does and prepares the lock and the write (with
    /// the wake-up when `notify`).
    pub(crate) fn connect(url: &str, notify: bool) -> Result<Self, PgError> {
        let (config, tls) = config_of(url)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (client, lock, write, existing) = runtime.block_on(async {
            let (client, connection) = config.connect(tls).await?;
            // Driven while this thread waits on the runtime, as the blocking driver does; a
            // connection that fails fails the next request, which is where it is seen.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client.batch_execute(SESSION).await?;
            let lock = client.prepare(HEAD_FOR_UPDATE).await?;
            let write = client.prepare(write_statement(notify)).await?;
            let existing = client.prepare(EXISTING).await?;
            Ok::<_, PgError>((client, lock, write, existing))
        })?;
        Ok(Self { runtime, client, lock, write, existing })
    }

    /// Whether the connection is known to be broken.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Begins a transaction and locks the head row, in one round trip; the head as locked.
    pub(crate) fn lock(&mut self) -> Result<Head, PgError> {
        let Self { runtime, client, lock, .. } = self;
        let (begun, row) = runtime
            .block_on(async { tokio::join!(biased; client.batch_execute("BEGIN"), client.query_opt(&*lock, &[])) });
        let head = begun.map_err(PgError::from).and_then(|()| match row? {
            Some(row) => head_of(&row),
            None => Err(PgError::NotInitialised),
        });
        if head.is_err() {
            self.rollback();
        }
        head
    }

    /// The events stored under any of these id keys, read inside the transaction.
    pub(crate) fn existing(&mut self, id_keys: &[&[u8]]) -> Result<Vec<Row>, PgError> {
        Ok(self.runtime.block_on(self.client.query(&self.existing, &[&id_keys]))?)
    }

    /// The group's write ([`write_statement`]) and the commit, in one round trip: true when
    /// the write matched the head and the commit returned (the group is durable).
    pub(crate) fn write_and_commit(&mut self, params: &[&(dyn ToSql + Sync)]) -> Result<bool, PgError> {
        let Self { runtime, client, write, .. } = self;
        let (written, committed) = runtime
            .block_on(async { tokio::join!(biased; client.query(&*write, params), client.batch_execute("COMMIT")) });
        let written = !written?.is_empty();
        committed?;
        Ok(written)
    }

    /// Ends the transaction without writing (a broken connection is noticed by [`Self::is_closed`]).
    pub(crate) fn rollback(&mut self) {
        let _ = self.runtime.block_on(self.client.batch_execute("ROLLBACK"));
    }
}
