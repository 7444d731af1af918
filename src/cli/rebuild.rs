//! `consent-ledger rebuild`: recompute every projection from the log, with the server
//! stopped, then verify the store; exit 0 only when the rebuilt store verifies.

use std::process::ExitCode;

use anyhow::Context;

use crate::ledger::log_size;
use crate::ledger::rebuild::{rebuild, Phase};
use crate::store::{Store, StoreOptions};

use super::verify::verify_with_progress;
use super::{progress_bar, DataDirArg};

#[derive(Debug, clap::Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Megabytes of memory for the store while the projections are written again: the
    /// memtables take three quarters (larger memtables, fewer and larger files, less
    /// compaction), and scans of the log leave the block cache alone. The verification that
    /// follows opens the store as `verify` does.
    #[arg(long, default_value_t = REBUILD_MEMORY_MB, value_parser = clap::value_parser!(u64).range(16..=1 << 20))]
    pub memory_mb: u64,
}

/// `rebuild --memory-mb` unless told otherwise (docs/PERFORMANCE.md, "2026-12-07 (bulk)").
const REBUILD_MEMORY_MB: u64 = 256;

pub fn run(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data.existing()?;
    let cache_bytes = usize::try_from(args.memory_mb << 20).unwrap_or(usize::MAX);
    let store = Store::open_with(&dir.db(), StoreOptions { cache_bytes, bulk: true })
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
    // Closed (its memtables flushed) and opened again for reading, as `verify` opens it.
    drop(store);
    let store = Store::open_read_only_with(&dir.db(), StoreOptions::one_pass()).context("opening the rebuilt store")?;
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
