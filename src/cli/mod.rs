//! The command line: `serve`, `init`, `migrate`, `apikey`, `verify`, `keys`, `export`,
//! `rebuild`, `backup`, `sms`, `import`, `retention`, `subject-access`, `downstream` and `generate`.
//! One file per command.

pub mod apikey;
pub mod backup;
pub mod downstream;
pub mod export;
pub mod generate;
pub mod import;
pub mod init;
pub mod keys;
pub mod migrate;
pub mod rebuild;
pub mod retention;
pub mod serve;
pub mod sms;
pub mod subject_access;
pub mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// consent-ledger: an append-only, signed ledger of consent and communication preferences.
#[derive(Debug, Parser)]
#[command(name = "consent-ledger", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the ledger keeps its data.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDirArg {
    /// Data directory: database, signing key, blind-index secret and API keys.
    #[arg(long, env = "CONSENT_LEDGER_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

impl DataDirArg {
    /// The data directory, which must already hold a ledger.
    pub fn existing(&self) -> anyhow::Result<crate::ledger::DataDir> {
        let dir = crate::ledger::DataDir::new(&self.data_dir);
        if !dir.db().exists() {
            anyhow::bail!("no ledger in {}", dir.root().display());
        }
        Ok(dir)
    }
}

/// Which ledger a command that records opens: the data directory's embedded store (the
/// server stopped), or a PostgreSQL log, with the data directory as this command's replica.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerAt {
    /// The ledger's PostgreSQL database (as `serve --database-url`); use a data directory no
    /// running node uses.
    #[arg(long, env = "CONSENT_LEDGER_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl LedgerAt {
    /// Opens the ledger behind the service, and a runtime to drive it.
    pub fn open(&self, data: &DataDirArg) -> anyhow::Result<(crate::service::Service, tokio::runtime::Runtime)> {
        use anyhow::Context;
        let dir = match &self.database_url {
            Some(_) => crate::ledger::DataDir::new(&data.data_dir),
            None => data.existing()?,
        };
        let options = crate::ledger::Options {
            database: self.database_url.clone(),
            ..crate::ledger::Options::new(&serve::default_log_name())
        };
        let ledger = crate::ledger::Ledger::open_with(&dir, options)
            .context("opening the ledger (is a server running on this data directory?)")?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        Ok((crate::service::Service::new(ledger), runtime))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API on the embedded store (or, with --database-url, on a PostgreSQL log).
    Serve(serve::ServeArgs),
    /// Create a ledger whose log lives in PostgreSQL, and the files every node shares.
    Init(init::InitArgs),
    /// Move a stopped embedded ledger into an empty PostgreSQL database, verifying it first.
    Migrate(migrate::MigrateArgs),
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: apikey::ApikeyCommand,
    },
    /// Check every event's bytes, hash and signature, and the projections against the log;
    /// or, with --export, check an export offline.
    Verify(verify::VerifyArgs),
    /// Manage the signing keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Export a controller's signed events with the leaf hashes, checkpoints and keys.
    Export(export::ExportArgs),
    /// Back up a stopped ledger into a new directory (while serving: POST /v1/backups).
    Backup(backup::BackupArgs),
    /// Recompute every projection (permissions, contact index, history, feed, tree) from the
    /// log, with the server stopped, then verify the store.
    Rebuild(rebuild::RebuildArgs),
    /// Write the OpenAPI document and JSON Schemas (openapi/, schemas/).
    Generate(generate::GenerateArgs),
    /// Import a CSV file of consent records or a suppression list into a stopped ledger.
    Import(import::ImportArgs),
    /// Subjects whose retention has passed: list them, or erase them.
    Retention {
        #[command(subcommand)]
        command: retention::RetentionCommand,
    },
    /// One person's whole record for a subject access request: a signed bundle with proofs
    /// (access.json) and a plain-English report (report.html), from a stopped ledger.
    SubjectAccess(subject_access::SubjectAccessArgs),
    /// The client a downstream system runs: make its signing key, follow its feed and
    /// acknowledge what it applied.
    Downstream {
        #[command(subcommand)]
        command: downstream::DownstreamCommand,
    },
    /// Configure SMS providers (a controller's Twilio auth token).
    Sms {
        #[command(subcommand)]
        command: sms::SmsCommand,
    },
}

/// Logs go to standard error; `RUST_LOG` sets the level (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Init(args) => init::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Apikey { command } => apikey::run(command),
        Command::Verify(args) => verify::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Export(args) => export::run(args),
        Command::Keys { command } => keys::run(command),
        Command::Rebuild(args) => rebuild::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Sms { command } => sms::run(command),
        Command::Import(args) => import::run(args),
        Command::Retention { command } => retention::run(command),
        Command::SubjectAccess(args) => subject_access::run(args),
        Command::Downstream { command } => downstream::run(command),
    }
}

/// A progress bar on standard error, hidden when it is not a terminal.
pub fn progress_bar(what: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}
