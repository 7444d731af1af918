//! `consent-ledger rebuild`: recompute every projection from the log, with the server
//! stopped, then verify the store; exit 0 only when the rebuilt store verifies.

use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::log_size;
use crate::ledger::rebuild::{rebuild, Phase};
use crate::store::Store;

use super::verify::verify_with_progress;
use super::{progress_bar, DataDirArg};

#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub data: DataDirArg,
}

pub fn run(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data.existing()?;
    let mb: usize = std::env::var("CL_REBUILD_CACHE_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    let store = Store::open_with(&dir.db(), crate::store::StoreOptions { cache_bytes: mb << 20 })
        .context("opening the store (stop the server first: a rebuild needs it alone)")?;
    let bar = progress_bar("rebuilding");
    bar.set_length(log_size(&store)?);
    let started = std::time::Instant::now();
    let events = rebuild(&store, |phase, n| match phase {
        Phase::Deleting => bar.set_message(format!("clearing ({n} column families)")),
        Phase::Replaying => {
            bar.set_message("replaying");
            bar.set_position(n)
        }
    })
    .context("rebuilding")?;
    bar.finish_and_clear();
    let took = started.elapsed().as_secs_f64();
    println!("replayed {events} events in {took:.1} s ({:.0} events/s); verifying", events as f64 / took.max(1e-9));
    match verify_with_progress(&dir, &store, crate::ledger::verify::VERIFY_MEMORY)?.failure {
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
