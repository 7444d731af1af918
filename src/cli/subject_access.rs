//! `consent-ledger subject-access --controller C --subject S --out DIR`: one person's whole
//! record for a subject access request, on a stopped ledger: `DIR/access.json` (the signed
//! bundle, which `consent-ledger verify --access` checks offline) and `DIR/report.html` (the
//! plain-English report of it, which prints well). While serving,
//! `GET /v1/subjects/{s}/access-report` answers the same.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::domain::{ControllerId, SubjectId};

use super::{DataDirArg, LedgerAt};

#[derive(Debug, clap::Args)]
pub struct SubjectAccessArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    at: LedgerAt,
    #[arg(long)]
    controller: String,
    #[arg(long)]
    subject: String,
    /// The directory to write `access.json` and `report.html` into (made if missing).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: SubjectAccessArgs) -> anyhow::Result<ExitCode> {
    let controller = ControllerId::parse(&args.controller).context("--controller")?;
    let subject = SubjectId::parse(&args.subject).context("--subject")?;
    let (service, runtime) = args.at.open(&args.data)?;
    let bundle = runtime
        .block_on(service.subject_access(&controller, &subject, crate::service::now()))
        .context("making the subject access bundle")?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let json = serde_json::to_string_pretty(&bundle)? + "\n";
    let html = crate::http::access_report::access_report_html(&bundle);
    for (name, text) in [("access.json", json.as_str()), ("report.html", html.as_str())] {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote {} and {}: {} event(s), {} notice(s), proven to the checkpoint at size {}",
        args.out.join("access.json").display(),
        args.out.join("report.html").display(),
        bundle.bundle.events.len(),
        bundle.bundle.notices.len(),
        bundle.bundle.checkpoint.lines().nth(1).unwrap_or("?")
    );
    Ok(ExitCode::SUCCESS)
}
