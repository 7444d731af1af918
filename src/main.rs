//! The `consent-ledger` binary: parse the command line and run the command.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = consent_ledger::cli::Cli::parse();
    consent_ledger::cli::init_tracing();
    match consent_ledger::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Each cause once: an error whose message already holds its source's is not
            // followed by it again.
            let mut message = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !message.contains(&text) {
                    if !message.is_empty() {
                        message.push_str(": ");
                    }
                    message.push_str(&text);
                }
            }
            eprintln!("error: {message}");
            std::process::ExitCode::from(2)
        }
    }
}
