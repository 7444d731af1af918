//! `consent-ledger retention due|apply`: the subjects whose retention has passed (their
//! relationship ended longer ago than the rules of the purposes their record names), and
//! their erasure (`subject.erased`, which keeps their addresses suppressed). On a stopped
//! ledger; while serving, `GET /v1/retention/due` lists them.

use std::process::ExitCode;

use anyhow::Context;

use crate::domain::ControllerId;

use super::{DataDirArg, LedgerAt};

/// Which ledger and controller.
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    #[command(flatten)]
    data: DataDirArg,
    #[command(flatten)]
    at: LedgerAt,
    #[arg(long)]
    controller: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum RetentionCommand {
    /// List the subjects whose retention has passed.
    Due(RetentionArgs),
    /// Erase the subjects whose retention has passed.
    Apply {
        #[command(flatten)]
        args: RetentionArgs,
        /// List whom it would erase; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(cmd: RetentionCommand) -> anyhow::Result<ExitCode> {
    let (RetentionArgs { data, at, controller }, apply) = match cmd {
        RetentionCommand::Due(args) => (args, false),
        RetentionCommand::Apply { args, dry_run } => (args, !dry_run),
    };
    let controller = ControllerId::parse(controller).context("--controller")?;
    let (service, runtime) = at.open(&data)?;
    let now = crate::service::now();
    let due = if apply {
        let (due, receipts) = runtime.block_on(service.apply_retention(&controller, now))?;
        for (d, r) in due.iter().zip(&receipts) {
            println!(
                "erased {} (seq {}): relationship ended {}, due {}",
                d.subject,
                r.seq,
                d.relationship_ended_at.date_naive(),
                d.due_at.date_naive()
            );
        }
        due
    } else {
        let due = service.retention_due(&controller, now)?;
        for d in &due {
            let purposes: Vec<&str> = d.purposes.iter().map(|p| p.as_str()).collect();
            println!(
                "{}\trelationship ended {}\tdue {}\t({})",
                d.subject,
                d.relationship_ended_at.date_naive(),
                d.due_at.date_naive(),
                purposes.join(", ")
            );
        }
        due
    };
    println!("{} subject(s) {}", due.len(), if apply { "erased" } else { "due for erasure" });
    Ok(ExitCode::SUCCESS)
}
