//! The ledger's one error type: opening a data directory, writing, reading, backing up,
//! exporting, rotating keys and signing checkpoints all fail with a [`LedgerError`].

use uuid::Uuid;

use log::LogError;
use signing::KeyError;
use store::StoreError;

use super::STORE_FORMAT;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    // Opening.
    #[error("cannot create the data directory: {0}")]
    Dir(std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("blind-index secret: {0}")]
    Secret(std::io::Error),
    #[error("the store holds format {found}; this build reads store format {STORE_FORMAT} only: {remedy}", found = .0, remedy = format_remedy(.0))]
    Format(String),
    #[error("the last stored event or the tree edge does not decode")]
    Corrupt,
    #[error("a rebuild of the projections was interrupted; run `consent-ledger rebuild` before serving")]
    RebuildInterrupted,
    #[error(
        "the log holds events but {0} is missing from the data directory; restore it from a backup of this \
         ledger (a new one would make recorded opt-outs stop matching, or change who signed the log)"
    )]
    MissingSecret(&'static str),
    #[error("the log's database: {0}")]
    Database(#[from] pglog::PgError),
    #[error(
        "{0} is missing from the data directory or differs from the one this database's ledger was created \
         with; copy it from the node that ran `consent-ledger init` (every node must share it)"
    )]
    SecretMismatch(&'static str),
    #[error(
        "the local store follows another ledger than the database's; give this node an empty data directory \
         (holding only the shared files) and it catches up from the database"
    )]
    OtherLedger,
    #[error(
        "this data directory is a node of a ledger kept in PostgreSQL: serve it with --database-url \
         (it takes no events of its own)"
    )]
    IsReplica,
    #[error("the API keys: {0}")]
    ApiKeys(std::io::Error),
    #[error("the ledger does not verify, so it is not migrated: {0}")]
    NotVerified(String),
    #[error("the local store holds {local} events but the database only {database}; is this the right database?")]
    AheadOfDatabase { local: u64, database: u64 },
    // Writing.
    #[error("event id {0} was already used for a different event")]
    IdConflict(Uuid),
    #[error("the log could not be written")]
    WriteFailed,
    #[error("the ledger is shutting down")]
    Closed,
    #[error("the writer's queue is full; retry shortly")]
    Busy,
    #[error("the data directory's disk is full; nothing was written")]
    StorageFull,
    #[error("the log's database is unreachable")]
    DatabaseUnavailable,
    #[error("this node's replica is {0} events behind the database")]
    FarBehind(u64),
    // Reading.
    #[error("stored event {0} is missing or does not decode")]
    CorruptEvent(u64),
    #[error("an event id row does not hold a seq")]
    CorruptId,
    #[error("the log's tree is not consistent with its last signed checkpoint")]
    NotConsistent,
    #[error("no checkpoint has been signed yet")]
    NoCheckpoint,
    // Backups.
    #[error("the backup directory already exists; choose a new one")]
    BackupExists,
    #[error("writing the backup: {0}")]
    BackupIo(#[from] std::io::Error),
    // Key rotation.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    // Checkpoints.
    #[error("tree: {0}")]
    Tree(#[from] LogError),
    #[error("the last signed checkpoint does not parse")]
    LastNote,
    #[error("the tree head at {new} is not consistent with the checkpoint signed at {old}")]
    TreeInconsistent { old: u64, new: u64 },
    #[error("an earlier inconsistency stopped checkpoint signing")]
    CheckpointsStopped,
}

/// What to do about a store of format `found`: an older format whose projections alone
/// changed is brought up by a rebuild; any other is read by the build that wrote it.
fn format_remedy(found: &str) -> &'static str {
    if super::REBUILDABLE_FORMATS.iter().any(|f| f.to_string() == found) {
        "run `consent-ledger rebuild` once (with the server stopped) to bring it up to this format"
    } else {
        "it was written by another build of consent-ledger (a newer one, or one it cannot read); serve it with that build"
    }
}
