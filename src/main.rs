//! The `countersign` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = countersign::cli::Cli::parse();
    match countersign::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => countersign::cli::report(&err),
    }
}
