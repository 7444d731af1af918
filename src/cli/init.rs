//! `consent-ledger init --database-url URL`: create a ledger whose log lives in PostgreSQL.

use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::{init_database, DataDir};

use super::DataDirArg;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// The PostgreSQL database that keeps the log (`postgres://user:password@host/db`).
    #[arg(long, env = "CONSENT_LEDGER_DATABASE_URL")]
    pub database_url: String,
    /// Name of the signing key (C2SP key name); default `<host name>/consent-ledger`.
    #[arg(long, env = "CONSENT_LEDGER_LOG_NAME")]
    pub log_name: Option<String>,
}

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(&args.data.data_dir);
    let name = args.log_name.unwrap_or_else(super::serve::default_log_name);
    let info = init_database(&dir, &args.database_url, &name).context("creating the ledger in the database")?;
    if info.created {
        println!("ok: created ledger {} in the database", info.ledger_id);
    } else {
        println!("ok: the database already holds ledger {}, and this data directory its files", info.ledger_id);
    }
    println!(
        "every node serves with --database-url and a data directory holding copies of {} \
         (keep them secret: mode 0600)",
        ["signing-key.json", "keyring.json", "blind-index.key", "token.key"].join(", ")
    );
    Ok(ExitCode::SUCCESS)
}
