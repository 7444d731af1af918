//! `consent-ledger import`: a CSV file of consent records, or a suppression list, into a
//! stopped ledger (while serving: `POST /v1/imports`). Progress on a terminal; at the end a
//! summary, and a rejects file (row, column, reason) that holds no cell of the file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::ControllerId;
use crate::service::import::{ImportCounts, ImportMode, ImportOptions, Mapping, Reject};

use super::{DataDirArg, LedgerAt};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    #[command(flatten)]
    pub at: LedgerAt,
    #[arg(long)]
    pub controller: String,
    /// The CSV file (UTF-8, with a header row; a BOM and Windows line endings are fine).
    #[arg(long)]
    pub file: PathBuf,
    /// The mapping (TOML): which column holds what (docs/IMPORT.md).
    #[arg(long)]
    pub mapping: PathBuf,
    /// Consent records, or a suppression list (addresses never to market to).
    #[arg(long, value_enum, default_value = "records")]
    pub mode: ImportMode,
    /// Check every row and count what would be recorded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where refused rows are listed (default: the file's name with `.rejects.csv`).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let controller = ControllerId::parse(args.controller.as_str()).context("--controller")?;
    let text = std::fs::read_to_string(&args.mapping).with_context(|| format!("reading {}", args.mapping.display()))?;
    let mapping = Mapping::parse(&text).map_err(anyhow::Error::msg)?;
    let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let source = match &mapping.source {
        Some(s) => s.clone(),
        None => args.file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "import".into()),
    };
    let rejects_path = args.rejects.clone().unwrap_or_else(|| {
        let mut p = args.file.clone().into_os_string();
        p.push(".rejects.csv");
        PathBuf::from(p)
    });
    let mut rejects = std::io::BufWriter::new(
        std::fs::File::create(&rejects_path).with_context(|| format!("creating {}", rejects_path.display()))?,
    );
    writeln!(rejects, "row,column,reason")?;
    let mut write_error = None;
    let mut on_reject = |r: Reject| {
        if let Err(e) = writeln!(rejects, "{},{},{}", r.row, csv_cell(&r.column), csv_cell(&r.reason)) {
            write_error.get_or_insert(e);
        }
    };
    let bar = super::progress_bar(if args.dry_run { "checking" } else { "importing" });
    bar.set_length(size);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    let started = std::time::Instant::now();
    let mut on_progress = |c: &ImportCounts| {
        bar.set_position(c.bytes);
        let rate = c.rows as f64 / started.elapsed().as_secs_f64().max(1e-3);
        bar.set_message(format!("{} rows, {rate:.0} rows/s", c.rows));
    };
    let options = ImportOptions {
        mode: args.mode,
        source,
        dry_run: args.dry_run,
        recorded_by: crate::service::Recorder::CommandLine.token(),
    };
    let (service, runtime) = args.at.open(&args.data)?;
    let now = crate::service::now();
    let result = runtime.block_on(service.import(
        &controller,
        std::io::BufReader::with_capacity(1 << 20, file),
        &mapping,
        &options,
        now,
        &mut on_progress,
        &mut on_reject,
    ));
    bar.finish_and_clear();
    rejects.flush()?;
    if let Some(e) = write_error {
        return Err(e).with_context(|| format!("writing {}", rejects_path.display()));
    }
    let counts =
        result.context("importing (what was acknowledged stays; running the import again records the rest)")?;
    let secs = started.elapsed().as_secs_f64();
    let verb = if args.dry_run { "would record" } else { "recorded" };
    println!(
        "{} rows in {secs:.1} s ({:.0} rows/s): {} imported ({verb} {} events; {} were in the log already), {} repeated rows, {} rejected",
        counts.rows,
        counts.rows as f64 / secs.max(1e-3),
        counts.imported,
        counts.events_new,
        counts.events_existing,
        counts.duplicates,
        counts.rejected
    );
    if counts.rejected > 0 {
        println!("rejected rows, with the column and the reason: {}", rejects_path.display());
        // Done, but not all of it: scripts can tell.
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// A CSV cell: quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
