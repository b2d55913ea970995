//! The `countersign` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = countersign::cli::Cli::parse();
    match countersign::cli::run(cli) {
        Ok(()) if countersign::cli::stdout_failed() => {
            eprintln!("error: the output could not be written to stdout");
            ExitCode::from(countersign::cli::exit::FAILURE)
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => countersign::cli::report(&err),
    }
}
