//! mgw-loadtest: a SIP load generator for REGISTER + digest flows, an RTP load generator for
//! ng-controlled relays, and the bare relay they are compared with. See `cli.rs` for the
//! command line, `run.rs` for the SIP event loop and `rtp.rs` for the media one.

mod call;
mod callflow;
mod cli;
mod codecs;
mod digest;
mod floor;
mod flow;
mod mmsg;
mod pacing;
mod procstat;
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
use serde::Serialize;

/// One JSON line on stdout; a run that could not start (bad input, nothing set up) is status 2,
/// like clap's usage errors.
fn report<T: Serialize>(result: Result<T, String>) -> ExitCode {
    match result {
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
    }
}

fn main() -> ExitCode {
    let cli::Cli { command } = cli::Cli::parse();
    match command {
        cli::Command::Rtp(args) => report(rtp::run(&args)),
        cli::Command::Floor(args) => report(floor::run(&args)),
        cli::Command::Register(args) => report(run::register(&args)),
        cli::Command::Call(args) => report(call::run(&args)),
    }
}
