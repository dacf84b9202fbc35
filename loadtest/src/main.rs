//! mgw-loadtest: a SIP load generator for REGISTER + digest flows. See `cli.rs` for the
//! command line and `run.rs` for the event loop.

mod cli;
mod digest;
mod flow;
mod pacing;
mod progress;
mod request;
mod rtp;
mod run;
mod socket;
mod summary;
mod timers;
mod users;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli::Cli { command } = cli::Cli::parse();
    match command {
        cli::Command::Rtp(args) => match rtp::run(&args) {
            Ok(summary) => match serde_json::to_string(&summary) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mgw-loadtest: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("mgw-loadtest: {e}");
                ExitCode::from(2)
            }
        },
        cli::Command::Register(args) => match run::register(&args) {
            Ok(summary) => match serde_json::to_string(&summary) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mgw-loadtest: {e}");
                    ExitCode::FAILURE
                }
            },
            // Bad input (users file, target), like clap's usage errors: status 2.
            Err(e) => {
                eprintln!("mgw-loadtest: {e}");
                ExitCode::from(2)
            }
        },
    }
}
