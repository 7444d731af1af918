//! `consent-ledger serve`: open the ledger and run the HTTP API until interrupted.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::http::{Application, HttpOptions};
use crate::ledger::{DataDir, Ledger, Options};
use crate::service::access::KeyStore;
use crate::service::Service;

use super::DataDirArg;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CONSENT_LEDGER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Name of the signing key created on first start (C2SP key name); default
    /// `<host name>/consent-ledger`.
    #[arg(long, env = "CONSENT_LEDGER_LOG_NAME")]
    pub log_name: Option<String>,
    /// Milliseconds between checkpoints (one is signed per interval when the log grew).
    #[arg(long, env = "CONSENT_LEDGER_CHECKPOINT_INTERVAL_MS", default_value_t = 1000)]
    pub checkpoint_interval_ms: u64,
    /// Public base URL of the service, for unsubscribe and preference links (default
    /// `http://<listen address>`).
    #[arg(long, env = "CONSENT_LEDGER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Days a tenant's preference link works unless its request says otherwise (1 to 90).
    #[arg(long, env = "CONSENT_LEDGER_PREFERENCE_LINK_DAYS", default_value_t = 14,
          value_parser = clap::value_parser!(u32).range(1..=90))]
    pub preference_link_days: u32,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "CONSENT_LEDGER_WORKERS")]
    pub workers: Option<usize>,
    /// On a database ledger, push downstream systems' webhooks from this node (choose one
    /// node; an embedded ledger always pushes them).
    #[arg(long, requires = "database_url")]
    pub deliver_webhooks: bool,
    /// Where `POST /v1/backups` writes backups, one new directory each (default
    /// `<data dir>/backups`; put it on another disk, or ship what it holds elsewhere).
    #[arg(long, env = "CONSENT_LEDGER_BACKUP_DIR")]
    pub backup_dir: Option<std::path::PathBuf>,
    /// How many backups `POST /v1/backups` keeps in the backup directory; the oldest beyond
    /// are removed after each new one.
    #[arg(long, env = "CONSENT_LEDGER_BACKUP_KEEP", default_value_t = crate::http::DEFAULT_BACKUP_KEEP)]
    pub backup_keep: usize,
    /// Keep the log in this PostgreSQL database (created by `consent-ledger init`); the data
    /// directory then holds this node's replica and the shared files.
    #[arg(long, env = "CONSENT_LEDGER_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Megabytes of memory for caches: thirteen sixteenths for the facts rows checks read, the
    /// rest for the embedded store's block cache, memtables and index and filter blocks. With
    /// it the server's memory stays bounded however large the ledger grows
    /// (docs/PERFORMANCE.md).
    #[arg(long, env = "CONSENT_LEDGER_CACHE_MB", default_value_t = (crate::ledger::DEFAULT_CACHE_MEMORY >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(16..=1 << 20))]
    pub cache_mb: u64,
    /// Start with an empty facts cache, and neither read nor write `<data dir>/facts-cache.keys`
    /// (by default the server saves the keys of the rows its cache holds on a clean stop and
    /// every five minutes, and reads those rows back in the background when it starts; with no
    /// saved keys, it reads the store's facts rows in key order until the cache is full). In
    /// the environment: true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "CONSENT_LEDGER_NO_WARM_START", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_warm_start: bool,
}

/// `<host name>/consent-ledger`, the default signing-key name.
pub fn default_log_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && crate::signing::check_key_name(h).is_ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}/consent-ledger")
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(&args.data.data_dir);
    let name = args.log_name.unwrap_or_else(default_log_name);
    let options = Options {
        checkpoint_interval: std::time::Duration::from_millis(args.checkpoint_interval_ms.max(1)),
        database: args.database_url.clone(),
        catch_up_progress: args.database_url.as_ref().map(|_| {
            let bar = super::progress_bar("catching up with the database");
            let progress: Arc<dyn Fn(u64, u64) + Send + Sync> = Arc::new(move |done, total| {
                bar.set_length(total);
                bar.set_position(done);
                if done >= total {
                    bar.finish_and_clear();
                }
            });
            progress
        }),
        warm_start: !args.no_warm_start,
        ..Options::new(&name).with_cache_memory(usize::try_from(args.cache_mb << 20).unwrap_or(usize::MAX))
    };
    let ledger = Ledger::open_with(&dir, options).context("opening the ledger")?;
    let keys = match &args.database_url {
        // Every node of a database ledger takes the keys kept in its database.
        Some(url) => KeyStore::on_database(url).context("opening the database's API keys")?,
        None => KeyStore::open(dir.api_keys()).context("opening the API key store")?,
    };
    let listener = TcpListener::bind(&args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let service = Arc::new(Service::new(ledger));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let http = HttpOptions {
            workers: args.workers,
            public_url: args.public_url.clone(),
            preference_link_days: Some(args.preference_link_days),
            backup_dir: args.backup_dir.clone(),
            backup_keep: Some(args.backup_keep),
            bulk_limits: None,
            // On a database ledger one node pushes webhooks (every node would push each one).
            deliver_webhooks: Some(args.database_url.is_none() || args.deliver_webhooks),
        };
        let app = Application::build(listener, service.clone(), Arc::new(keys), http)?;
        println!("listening on http://{addr}");
        tracing::info!(%addr, log_size = service.log_size(), "consent-ledger serving");
        app.run_until_stopped().await
    })?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
