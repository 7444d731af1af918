//! `consent-ledger migrate --data-dir DIR --database-url URL`: move a stopped embedded ledger
//! into an empty PostgreSQL database, verifying every event first.

use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::{migrate_to_database, DataDir};

use super::{progress_bar, DataDirArg};

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// The empty PostgreSQL database to move the log into.
    #[arg(long, env = "CONSENT_LEDGER_DATABASE_URL")]
    pub database_url: String,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let dir: DataDir = args.data.existing()?;
    let bar = progress_bar("verifying");
    let mut stage = "";
    let done = migrate_to_database(&dir, &args.database_url, |what, n, total| {
        if what != stage {
            stage = what;
            bar.set_message(what);
        }
        bar.set_length(total);
        bar.set_position(n);
    })
    .context("migrating (stop the server first)")?;
    bar.finish_and_clear();
    println!(
        "ok: {} events and {} checkpoints verified and moved into ledger {} in the database; serve this \
         directory with --database-url, and give other nodes copies of signing-key.json, keyring.json, \
         blind-index.key and token.key",
        done.events, done.checkpoints, done.ledger_id
    );
    Ok(ExitCode::SUCCESS)
}
