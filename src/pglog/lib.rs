//! The log in PostgreSQL: the schema and its versioned migrations, the head row that every
//! node's group commit locks to take the next seqs, the signed events, the Merkle nodes, the
//! checkpoints with the lease of the one node that signs them, and the fingerprints of the
//! secrets every node must share.
//!
//! This layer knows SQL and nothing of ours: it stores and returns rows of bytes. The SQL is
//! plain row locks (`SELECT ... FOR UPDATE`), upserts and `UNNEST` inserts, with no advisory
//! locks; `NOTIFY` is sent on each commit as a wake-up for other nodes, never needed for
//! correctness. Commits run with `synchronous_commit = on`, so a commit that returned is on
//! the database's disk (and its synchronous standbys, where the service has them).

use std::time::Duration;

use std::path::Path;
use std::sync::Arc;

use postgres::Client;

mod append;
use append::EventColumns;
pub use append::{Append, Expected};
mod sequencer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use sequencer::Sequencer;

/// The channel other nodes `LISTEN` on to hear of new events early.
pub const CHANNEL: &str = "consent_ledger_log";

/// The schema version this build writes, and the migrations that reach it, in order.
pub const SCHEMA_VERSION: i32 = 1;

const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE ledger_head (
         id smallint PRIMARY KEY CHECK (id = 1),
         ledger_id text NOT NULL,
         size bigint NOT NULL CHECK (size >= 0),
         last_recorded_micros bigint NOT NULL,
         frontier bytea NOT NULL DEFAULT decode('0000000000000000', 'hex')
     );
     CREATE TABLE log_events (
         seq bigint PRIMARY KEY CHECK (seq > 0),
         id_key bytea NOT NULL UNIQUE,
         key_id bytea NOT NULL,
         signature bytea NOT NULL,
         leaf_hash bytea NOT NULL,
         event bytea NOT NULL
     );
     CREATE TABLE log_nodes (
         level smallint NOT NULL,
         idx bigint NOT NULL,
         hash bytea NOT NULL,
         PRIMARY KEY (level, idx)
     );
     CREATE TABLE log_checkpoints (
         size bigint PRIMARY KEY,
         note text NOT NULL
     );
     CREATE TABLE ledger_secrets (
         name text PRIMARY KEY,
         fingerprint text NOT NULL
     );
     CREATE TABLE checkpoint_lease (
         id smallint PRIMARY KEY CHECK (id = 1),
         holder text NOT NULL,
         expires_at timestamptz NOT NULL
     );
     CREATE TABLE ledger_keyring (
         vkey text PRIMARY KEY,
         first_seq bigint NOT NULL,
         last_seq bigint
     );
     CREATE TABLE api_keys (
         id text PRIMARY KEY,
         record bytea NOT NULL,
         revoked boolean NOT NULL DEFAULT false,
         last_used text
     );
     CREATE TABLE provider_tokens (
         controller text NOT NULL,
         provider text NOT NULL,
         token bytea NOT NULL,
         PRIMARY KEY (controller, provider)
     );",
)];

/// One signing key and the seqs it signs (`last_seq` `None` for the current key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPeriod {
    pub vkey: String,
    pub first_seq: u64,
    pub last_seq: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The database could not be reached or a statement failed; nothing of the operation
    /// took effect unless it says so. The driver's message names no personal data (it holds
    /// statements and server errors, never bound values).
    #[error(transparent)]
    Db(#[from] postgres::Error),
    #[error("the database's schema is version {0}; this build knows up to {SCHEMA_VERSION}")]
    NewerSchema(i32),
    #[error("the database holds no ledger yet; run `consent-ledger init --database-url ...` once")]
    NotInitialised,
    #[error("a stored row does not have the expected shape: {0}")]
    Shape(&'static str),
    #[error("the database already holds a ledger; migrate into an empty database")]
    NotEmpty,
    #[error("TLS settings: {0}")]
    Tls(String),
    /// The driver's runtime for the group commit's connection could not start.
    #[error("starting the database connection: {0}")]
    Io(#[from] std::io::Error),
}

impl PgError {
    /// Whether a statement failed on a unique key (an event id the log holds already).
    pub fn is_duplicate(&self) -> bool {
        matches!(self, PgError::Db(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION))
    }
}

/// The log's head: its size and the last `recorded_at` (microseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Names this ledger: a node's local store records it, so it never follows another.
    pub ledger_id: String,
    pub size: u64,
    pub last_recorded_micros: i64,
    /// The right edge of the Merkle tree at `size` (as the log layer encodes it), so a node
    /// extends the tree without holding the events.
    pub frontier: Vec<u8>,
}

/// One signed event as the database keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub seq: u64,
    /// Controller and event id: unique, so the database itself refuses a second event
    /// with a controller's id.
    pub id_key: Vec<u8>,
    pub key_id: Vec<u8>,
    pub signature: Vec<u8>,
    pub leaf_hash: Vec<u8>,
    /// The RFC 8785 bytes that were signed and hashed.
    pub event: Vec<u8>,
}

/// An API key as the database keeps it: id, record, revoked, last use.
pub type ApiKeyRow = (String, Vec<u8>, bool, Option<String>);

/// A complete Merkle subtree hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub level: u8,
    pub index: u64,
    pub hash: Vec<u8>,
}

/// A connection to the database holding the log.
pub struct PgLog {
    client: Client,
    /// Whether the database has `pg_notify` (PostgreSQL does; some compatible databases do
    /// not, and then nodes find new events by looking every few hundred milliseconds).
    notify: bool,
    prepared: Prepared,
    /// Where the database is, for [`PgLog::begin_append`]'s connection (kept only in memory).
    url: String,
    /// The connection a group commit holds the head row on, opened on the first one.
    sequencer: Option<Sequencer>,
}

/// The statements of every group commit and every catch-up, prepared once per connection:
/// given a statement's text, the driver prepares it anew on each use, a round trip of its own.
#[derive(Default)]
struct Prepared(std::collections::HashMap<&'static str, postgres::Statement>);

impl Prepared {
    /// The statement `sql`, prepared on `client`'s connection the first time.
    fn get(
        &mut self,
        client: &mut impl postgres::GenericClient,
        sql: &'static str,
    ) -> Result<postgres::Statement, PgError> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// The head row, as [`head_of`] reads it.
macro_rules! head_sql {
    () => {
        "SELECT ledger_id, size, last_recorded_micros, frontier FROM ledger_head"
    };
}

/// The head row.
const HEAD: &str = head_sql!();

/// The head row, locked for a group commit.
const HEAD_FOR_UPDATE: &str = concat!(head_sql!(), " WHERE id = 1 FOR UPDATE");

/// Events with seqs in `($1, $2]`, at most `$3`, in seq order.
const EVENTS_BETWEEN: &str = "SELECT seq, id_key, key_id, signature, leaf_hash, event FROM log_events
     WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";

fn seq_i64(seq: u64) -> Result<i64, PgError> {
    i64::try_from(seq).map_err(|_| PgError::Shape("a seq above 2^63"))
}

fn seq_u64(seq: i64) -> Result<u64, PgError> {
    u64::try_from(seq).map_err(|_| PgError::Shape("a negative seq"))
}

impl PgLog {
    /// Connects (a `postgres://` URL or key=value string; `connect_timeout` defaults to 5 s)
    /// with `synchronous_commit` on for this session.
    ///
    /// TLS is negotiated as `sslmode` says (`disable`, `prefer`, the default, or `require`;
    /// libpq's `verify-ca` and `verify-full` mean `require` here), and a server's certificate
    /// is always verified, name included: against `sslrootcert=FILE` (PEM) when given, as
    /// managed services document, otherwise against the Mozilla roots.
    pub fn connect(url: &str) -> Result<Self, PgError> {
        let (config, tls) = config_of(url)?;
        let mut client = postgres::Config::from(config).connect(tls)?;
        client.batch_execute(SESSION)?;
        let notify = client
            .query_one("SELECT count(*) FROM pg_proc WHERE proname = 'pg_notify'", &[])
            .is_ok_and(|r| r.get::<_, i64>(0) > 0);
        Ok(Self { client, notify, prepared: Prepared::default(), url: url.to_owned(), sequencer: None })
    }

    /// Whether a connection is known to be broken (reconnect before the next use).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.sequencer.as_ref().is_some_and(Sequencer::is_closed)
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one migration per transaction, serialised
    /// between nodes by a row lock on the migrations table. Returns the version.
    pub fn migrate(&mut self) -> Result<i32, PgError> {
        // Two nodes starting at once may both try to create the table; one wins.
        for attempt in 0..3 {
            match self.client.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 );
                 INSERT INTO schema_migrations (version) VALUES (0) ON CONFLICT DO NOTHING;",
            ) {
                Ok(()) => break,
                Err(_) if attempt < 2 => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => return Err(e.into()),
            }
        }
        let mut tx = self.client.transaction()?;
        tx.query_one("SELECT version FROM schema_migrations WHERE version = 0 FOR UPDATE", &[])?;
        let current: i32 = tx.query_one("SELECT max(version) FROM schema_migrations", &[])?.get(0);
        if current > SCHEMA_VERSION {
            return Err(PgError::NewerSchema(current));
        }
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql)?;
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])?;
        }
        tx.commit()?;
        Ok(SCHEMA_VERSION.max(current))
    }

    /// The head, or `None` before `init`.
    pub fn head(&mut self) -> Result<Option<Head>, PgError> {
        let statement = self.prepared.get(&mut self.client, HEAD)?;
        let row = self.client.query_opt(&statement, &[])?;
        row.map(|r| head_of(&r)).transpose()
    }

    /// The head of a ledger this build can read, without creating or migrating anything (for
    /// a reader that may hold a read-only account): `NotInitialised` when the database holds
    /// no ledger (no schema, or no head yet), `NewerSchema` when a newer build migrated it.
    pub fn existing_head(&mut self) -> Result<Head, PgError> {
        let version = match self.client.query_one("SELECT max(version) FROM schema_migrations", &[]) {
            Ok(row) => row.get::<_, Option<i32>>(0),
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => None,
            Err(e) => return Err(e.into()),
        };
        match version {
            Some(v) if v > SCHEMA_VERSION => Err(PgError::NewerSchema(v)),
            Some(v) if v >= 1 => self.head()?.ok_or(PgError::NotInitialised),
            _ => Err(PgError::NotInitialised),
        }
    }

    /// Creates the head of a new ledger and records the secrets' fingerprints, unless a
    /// ledger is there already. Returns the head and the fingerprints the database holds.
    pub fn init(
        &mut self,
        ledger_id: &str,
        fingerprints: &[(String, String)],
        keyring: &[KeyPeriod],
    ) -> Result<(Head, Vec<(String, String)>), PgError> {
        let mut tx = self.client.transaction()?;
        let created = tx.execute(
            "INSERT INTO ledger_head (id, ledger_id, size, last_recorded_micros) VALUES (1, $1, 0, 0)
             ON CONFLICT DO NOTHING",
            &[&ledger_id],
        )?;
        if created == 1 {
            for (name, fp) in fingerprints {
                tx.execute("INSERT INTO ledger_secrets (name, fingerprint) VALUES ($1, $2)", &[name, fp])?;
            }
            insert_keyring(&mut tx, keyring)?;
        }
        tx.commit()?;
        let head = self.head()?.ok_or(PgError::NotInitialised)?;
        Ok((head, self.fingerprints()?))
    }

    /// The keyring: every signing key with its seqs, oldest first.
    pub fn keyring(&mut self) -> Result<Vec<KeyPeriod>, PgError> {
        let rows = self.client.query("SELECT vkey, first_seq, last_seq FROM ledger_keyring ORDER BY first_seq", &[])?;
        rows.iter()
            .map(|r| {
                Ok(KeyPeriod {
                    vkey: r.get(0),
                    first_seq: seq_u64(r.get(1))?,
                    last_seq: r.get::<_, Option<i64>>(2).map(seq_u64).transpose()?,
                })
            })
            .collect()
    }

    /// The fingerprints of the shared secrets, by name.
    pub fn fingerprints(&mut self) -> Result<Vec<(String, String)>, PgError> {
        Ok(self
            .client
            .query("SELECT name, fingerprint FROM ledger_secrets ORDER BY name", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Events with seqs in `(after, up_to]`, at most `limit`, in seq order.
    pub fn events(&mut self, after: u64, up_to: u64, limit: i64) -> Result<Vec<LogRow>, PgError> {
        let statement = self.prepared.get(&mut self.client, EVENTS_BETWEEN)?;
        events_between(&mut self.client, &statement, after, up_to, limit)
    }

    /// The Merkle nodes of `level` with indexes in `[from, to)`.
    pub fn nodes(&mut self, level: u8, from: u64, to: u64) -> Result<Vec<Node>, PgError> {
        let rows = self.client.query(
            "SELECT idx, hash FROM log_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
            &[&i16::from(level), &seq_i64(from)?, &seq_i64(to)?],
        )?;
        rows.iter().map(|r| Ok(Node { level, index: seq_u64(r.get(0))?, hash: r.get(1) })).collect()
    }

    /// The first Merkle node (level, index) that is not a complete subtree of a tree of
    /// `size` leaves, if the database keeps one (a node of a larger tree, or none at all).
    pub fn node_outside(&mut self, size: u64) -> Result<Option<(i16, i64)>, PgError> {
        let row = self.client.query_opt(
            "SELECT level, idx FROM log_nodes
             WHERE level < 0 OR level > 63 OR idx < 0 OR idx >= ($1::bigint >> level::int)
             ORDER BY level, idx LIMIT 1",
            &[&seq_i64(size)?],
        )?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Signed checkpoints with sizes above `after` (all when `None`: the first may be of the
    /// empty log) up to `up_to`, oldest first.
    pub fn checkpoints(&mut self, after: Option<u64>, up_to: u64) -> Result<Vec<(u64, String)>, PgError> {
        let after = after.map(seq_i64).transpose()?.unwrap_or(-1);
        let rows = self.client.query(
            "SELECT size, note FROM log_checkpoints WHERE size > $1 AND size <= $2 ORDER BY size",
            &[&after, &seq_i64(up_to)?],
        )?;
        rows.iter().map(|r| Ok((seq_u64(r.get(0))?, r.get(1)))).collect()
    }

    /// Starts a group commit: locks the head row until [`Append::commit`] or drop.
    ///
    /// The lock is taken on a connection of its own, opened on the first locked commit; one
    /// that was closed while it idled (by the server, a proxy, a restart) is opened again once,
    /// since nothing was written yet.
    pub fn begin_append(&mut self) -> Result<Append<'_>, PgError> {
        let head = match self.sequencer.as_mut().map(Sequencer::lock) {
            Some(Ok(head)) => head,
            Some(Err(e)) if !self.sequencer.as_ref().is_some_and(Sequencer::is_closed) => return Err(e),
            None | Some(Err(_)) => self.sequencer.insert(Sequencer::connect(&self.url, self.notify)?).lock()?,
        };
        let sequencer = self.sequencer.as_mut().ok_or(PgError::Shape("no connection"))?;
        Ok(Append { sequencer, head, notify: self.notify, open: true })
    }

    /// Takes or renews the checkpoint lease for `holder` (valid `ttl` by the database's
    /// clock) and, holding it, lets `sign` see the last stored checkpoint and return one to
    /// store (a larger size). Returns what was stored; `None` when another node holds the
    /// lease or `sign` had nothing to add.
    pub fn checkpoint_with_lease(
        &mut self,
        holder: &str,
        ttl: Duration,
        sign: impl FnOnce(Option<(u64, String)>) -> Option<(u64, String)>,
    ) -> Result<Option<(u64, String)>, PgError> {
        let mut tx = self.client.transaction()?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO checkpoint_lease (id, holder, expires_at) VALUES (1, $1, now() + $2 * interval '1 millisecond')
             ON CONFLICT (id) DO NOTHING",
            &[&holder, &(ttl_ms as f64)],
        )?;
        let lease =
            tx.query_one("SELECT holder, expires_at < now() FROM checkpoint_lease WHERE id = 1 FOR UPDATE", &[])?;
        let (current, lapsed): (String, bool) = (lease.get(0), lease.get(1));
        if current != holder && !lapsed {
            return Ok(None);
        }
        tx.execute(
            "UPDATE checkpoint_lease SET holder = $1, expires_at = now() + $2 * interval '1 millisecond' WHERE id = 1",
            &[&holder, &(ttl_ms as f64)],
        )?;
        let last = tx
            .query_opt("SELECT size, note FROM log_checkpoints ORDER BY size DESC LIMIT 1", &[])?
            .map(|r| Ok::<_, PgError>((seq_u64(r.get(0))?, r.get::<_, String>(1))))
            .transpose()?;
        // The first checkpoint may be of the empty log; each later one is of a larger size.
        let last_size = last.as_ref().map(|(s, _)| *s);
        let Some((size, note)) = sign(last).filter(|(s, _)| last_size.is_none_or(|l| *s > l)) else {
            tx.commit()?;
            return Ok(None);
        };
        tx.execute("INSERT INTO log_checkpoints (size, note) VALUES ($1, $2)", &[&seq_i64(size)?, &note])?;
        tx.commit()?;
        Ok(Some((size, note)))
    }

    /// Starts bringing a whole ledger in (`consent-ledger migrate`): one transaction that
    /// creates the head (refused, by the head's key, if the database holds a ledger) and the
    /// secrets' fingerprints; nothing is visible until [`Import::finish`].
    pub fn begin_import(
        &mut self,
        ledger_id: &str,
        fingerprints: &[(String, String)],
        keyring: &[KeyPeriod],
    ) -> Result<Import<'_>, PgError> {
        let mut tx = self.client.transaction()?;
        if tx.query_opt("SELECT 1 FROM ledger_head", &[])?.is_some() {
            return Err(PgError::NotEmpty);
        }
        tx.execute(
            "INSERT INTO ledger_head (id, ledger_id, size, last_recorded_micros) VALUES (1, $1, 0, 0)",
            &[&ledger_id],
        )?;
        for (name, fp) in fingerprints {
            tx.execute("INSERT INTO ledger_secrets (name, fingerprint) VALUES ($1, $2)", &[name, fp])?;
        }
        insert_keyring(&mut tx, keyring)?;
        Ok(Import { tx })
    }

    /// Stores a new API key's record under `id` (refused if the id exists).
    pub fn insert_api_key(&mut self, id: &str, record: &[u8]) -> Result<(), PgError> {
        self.client.execute("INSERT INTO api_keys (id, record) VALUES ($1, $2)", &[&id, &record])?;
        Ok(())
    }

    /// The record of API key `id`, and whether it was revoked; `None` when there is none.
    pub fn api_key(&mut self, id: &str) -> Result<Option<(Vec<u8>, bool)>, PgError> {
        let row = self.client.query_opt("SELECT record, revoked FROM api_keys WHERE id = $1", &[&id])?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Every API key: id, record, revoked, last use (as written by [`PgLog::note_api_key_use`]).
    pub fn api_keys(&mut self) -> Result<Vec<ApiKeyRow>, PgError> {
        let rows = self.client.query("SELECT id, record, revoked, last_used FROM api_keys ORDER BY id", &[])?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect())
    }

    /// Replaces the record of API key `id` with its revoked form (once: a revoked key's record
    /// stays as it was revoked). True when the key exists.
    pub fn revoke_api_key(&mut self, id: &str, record: &[u8]) -> Result<bool, PgError> {
        let n = self.client.execute(
            "UPDATE api_keys SET record = $2, revoked = true WHERE id = $1 AND NOT revoked",
            &[&id, &record],
        )?;
        Ok(n == 1 || self.api_key(id)?.is_some())
    }

    /// Writes down when API key `id` was last used.
    pub fn note_api_key_use(&mut self, id: &str, at: &str) -> Result<(), PgError> {
        self.client.execute("UPDATE api_keys SET last_used = $2 WHERE id = $1", &[&id, &at])?;
        Ok(())
    }

    /// A controller's token at an SMS provider, if it set one.
    pub fn provider_token(&mut self, controller: &str, provider: &str) -> Result<Option<Vec<u8>>, PgError> {
        let row = self.client.query_opt(
            "SELECT token FROM provider_tokens WHERE controller = $1 AND provider = $2",
            &[&controller, &provider],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Sets (or with `None` removes) a controller's token at an SMS provider.
    pub fn set_provider_token(
        &mut self,
        controller: &str,
        provider: &str,
        token: Option<&[u8]>,
    ) -> Result<(), PgError> {
        match token {
            Some(t) => self.client.execute(
                "INSERT INTO provider_tokens (controller, provider, token) VALUES ($1, $2, $3)
                 ON CONFLICT (controller, provider) DO UPDATE SET token = EXCLUDED.token",
                &[&controller, &provider, &t],
            )?,
            None => self.client.execute(
                "DELETE FROM provider_tokens WHERE controller = $1 AND provider = $2",
                &[&controller, &provider],
            )?,
        };
        Ok(())
    }

    /// Starts listening for commits of other nodes (see [`PgLog::wait_for_notice`]).
    pub fn listen(&mut self) -> Result<(), PgError> {
        self.client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(())
    }

    /// Waits up to `timeout` for a notice on [`CHANNEL`]; true when one came whose payload
    /// (the committing node) is not `ignore` (this node's own commits wake nobody here).
    pub fn wait_for_notice(&mut self, timeout: Duration, ignore: &str) -> Result<bool, PgError> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut woken = {
            let mut notices = self.client.notifications();
            let mut it = notices.timeout_iter(timeout);
            it.next()?.is_some_and(|n| n.payload() != ignore)
        };
        // Drain what else is queued: one wake-up covers them all.
        let mut rest = self.client.notifications();
        let mut more = rest.iter();
        while let Some(n) = more.next()? {
            woken |= n.payload() != ignore;
        }
        Ok(woken)
    }

    /// The log's size (0 before `init`).
    pub fn size(&mut self) -> Result<u64, PgError> {
        Ok(self.head()?.map_or(0, |h| h.size))
    }
}

/// Takes libpq's `sslrootcert` out of a connection string (the driver does not know it) and
/// reads `verify-ca`/`verify-full` as `require` (certificates are always verified here).
fn libpq_tls_options(url: &str) -> (String, Option<String>) {
    let mut root = None;
    let rewrite = |pair: &str| -> Option<String> {
        match pair.split_once('=') {
            Some(("sslrootcert", v)) => {
                root = Some(v.to_owned());
                None
            }
            Some(("sslmode", "verify-ca" | "verify-full")) => Some("sslmode=require".to_owned()),
            _ => Some(pair.to_owned()),
        }
    };
    let rewritten = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<String> = query.split('&').filter_map(rewrite).collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        url.split_whitespace().filter_map(rewrite).collect::<Vec<_>>().join(" ")
    };
    (rewritten, root)
}

/// The TLS client settings: the given root certificates (PEM), or the Mozilla roots.
fn tls_config(root_cert: Option<&Path>) -> Result<rustls::ClientConfig, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| PgError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| PgError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| PgError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

fn insert_keyring(tx: &mut postgres::Transaction<'_>, keyring: &[KeyPeriod]) -> Result<(), PgError> {
    for k in keyring {
        let last = k.last_seq.map(seq_i64).transpose()?;
        tx.execute(
            "INSERT INTO ledger_keyring (vkey, first_seq, last_seq) VALUES ($1, $2, $3)",
            &[&k.vkey, &seq_i64(k.first_seq)?, &last],
        )?;
    }
    Ok(())
}

/// What every session of the log runs first.
const SESSION: &str = "SET synchronous_commit = on";

/// The driver's settings and TLS for `url` (see [`PgLog::connect`]).
fn config_of(url: &str) -> Result<(tokio_postgres::Config, tokio_postgres_rustls::MakeRustlsConnect), PgError> {
    let (url, root_cert) = libpq_tls_options(url);
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config(root_cert.as_deref().map(Path::new))?);
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config.keepalives_idle(Duration::from_secs(30));
    config.application_name("consent-ledger");
    Ok((config, tls))
}

fn head_of(r: &postgres::Row) -> Result<Head, PgError> {
    Ok(Head { ledger_id: r.get(0), size: seq_u64(r.get(1))?, last_recorded_micros: r.get(2), frontier: r.get(3) })
}

fn events_between(
    client: &mut impl postgres::GenericClient,
    statement: &(impl postgres::ToStatement + ?Sized),
    after: u64,
    up_to: u64,
    limit: i64,
) -> Result<Vec<LogRow>, PgError> {
    let rows = client.query(statement, &[&seq_i64(after)?, &seq_i64(up_to)?, &limit])?;
    rows.iter().map(row_of).collect()
}

fn row_of(r: &postgres::Row) -> Result<LogRow, PgError> {
    Ok(LogRow {
        seq: seq_u64(r.get(0))?,
        id_key: r.get(1),
        key_id: r.get(2),
        signature: r.get(3),
        leaf_hash: r.get(4),
        event: r.get(5),
    })
}

/// A whole ledger coming in, in one transaction (see [`PgLog::begin_import`]).
pub struct Import<'a> {
    tx: postgres::Transaction<'a>,
}

impl Import<'_> {
    /// Adds events (in seq order across calls).
    pub fn events(&mut self, events: &[LogRow]) -> Result<(), PgError> {
        let EventColumns { seqs, ids, keys, sigs, leaves, bodies } = EventColumns::of(events)?;
        self.tx.execute(
            "INSERT INTO log_events (seq, id_key, key_id, signature, leaf_hash, event)
             SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[])",
            &[&seqs, &ids, &keys, &sigs, &leaves, &bodies],
        )?;
        Ok(())
    }

    /// Adds Merkle nodes.
    pub fn nodes(&mut self, nodes: &[Node]) -> Result<(), PgError> {
        let levels: Vec<i16> = nodes.iter().map(|n| i16::from(n.level)).collect();
        let idxs: Vec<i64> = nodes.iter().map(|n| seq_i64(n.index)).collect::<Result<_, _>>()?;
        let hashes: Vec<&[u8]> = nodes.iter().map(|n| n.hash.as_slice()).collect();
        self.tx.execute(
            "INSERT INTO log_nodes (level, idx, hash) SELECT * FROM UNNEST($1::smallint[], $2::bigint[], $3::bytea[])",
            &[&levels, &idxs, &hashes],
        )?;
        Ok(())
    }

    /// Adds a signed checkpoint.
    pub fn checkpoint(&mut self, size: u64, note: &str) -> Result<(), PgError> {
        self.tx.execute("INSERT INTO log_checkpoints (size, note) VALUES ($1, $2)", &[&seq_i64(size)?, &note])?;
        Ok(())
    }

    /// Sets the head and commits: the ledger is there, whole, or not at all.
    pub fn finish(mut self, size: u64, last_recorded_micros: i64, frontier: &[u8]) -> Result<(), PgError> {
        let count: i64 = self.tx.query_one("SELECT count(*) FROM log_events", &[])?.get(0);
        if count != seq_i64(size)? {
            return Err(PgError::Shape("the imported events are not the log's size"));
        }
        self.tx.execute(
            "UPDATE ledger_head SET size = $1, last_recorded_micros = $2, frontier = $3 WHERE id = 1",
            &[&seq_i64(size)?, &last_recorded_micros, &frontier],
        )?;
        self.tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::libpq_tls_options;

    #[test]
    fn libpq_tls_options_are_taken_out_of_urls_and_keyword_strings() {
        assert_eq!(
            libpq_tls_options("postgres://u@db.example:5432/ledger?sslmode=verify-full&sslrootcert=/etc/ca.pem"),
            ("postgres://u@db.example:5432/ledger?sslmode=require".to_owned(), Some("/etc/ca.pem".to_owned()))
        );
        assert_eq!(
            libpq_tls_options("postgres://u@h/db?sslrootcert=ca.pem"),
            ("postgres://u@h/db".to_owned(), Some("ca.pem".to_owned()))
        );
        assert_eq!(libpq_tls_options("postgres://u@h/db"), ("postgres://u@h/db".to_owned(), None));
        assert_eq!(
            libpq_tls_options("host=h user=u sslmode=verify-ca sslrootcert=/ca.pem"),
            ("host=h user=u sslmode=require".to_owned(), Some("/ca.pem".to_owned()))
        );
    }
}
