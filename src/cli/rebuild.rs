//! `consent-ledger rebuild`: recompute every projection from the log, with the server
//! stopped, then verify the store; exit 0 only when the rebuilt store verifies.

use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::keys::read_valid_keys;
use crate::ledger::rebuild::{rebuild, Phase};
use crate::ledger::verify::verify;
use crate::ledger::DataDir;
use crate::store::{Cf, Store};

use super::{progress_bar, DataDirArg};

#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub data: DataDirArg,
}

pub fn run(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let dir = DataDir::new(&args.data.data_dir);
    if !dir.db().exists() {
        anyhow::bail!("no ledger in {}", dir.root().display());
    }
    let keys = read_valid_keys(&dir).context("reading the signing keys")?;
    let store =
        Store::open(&dir.db()).context("opening the store (stop the server first: a rebuild needs it alone)")?;
    let total = match store.last(Cf::Events)? {
        Some((k, _)) => <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes).unwrap_or(0),
        None => 0,
    };
    let bar = progress_bar("rebuilding");
    bar.set_length(total);
    let events = rebuild(&store, |phase, n| match phase {
        Phase::Deleting => bar.set_message(format!("clearing ({n} rows)")),
        Phase::Replaying => {
            bar.set_message("replaying");
            bar.set_position(n)
        }
    })
    .context("rebuilding")?;
    bar.finish_and_clear();
    let bar = progress_bar("verifying");
    bar.set_length(total);
    let report = verify(&store, &keys, |seq| bar.set_position(seq))?;
    bar.finish_and_clear();
    match report.failure {
        None => {
            println!("ok: projections rebuilt from {events} events; the store verifies");
            Ok(ExitCode::SUCCESS)
        }
        Some(f) => {
            println!("FAILED: rebuilt from {events} events, but the store does not verify: {f}");
            Ok(ExitCode::from(1))
        }
    }
}
