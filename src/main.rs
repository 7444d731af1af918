//! The `consent-ledger` binary: parse the command line and run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = consent_ledger::cli::Cli::parse();
    consent_ledger::cli::init_tracing();
    match consent_ledger::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
