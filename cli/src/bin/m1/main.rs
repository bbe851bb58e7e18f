//! The native `m1` command line: argument parsing, error reporting and exit codes. Each
//! subcommand lives in its own module; the model runs through `m1_engine::backend`, the
//! same driver loop as the web worker.

// Native only: empty on wasm32 (see Cargo.toml).
#![cfg_attr(target_arch = "wasm32", no_main)]
#![cfg(not(target_arch = "wasm32"))]

mod args;
mod ask;
mod bench;
mod error;
mod eval;
mod generate;
mod info;
mod load;
mod output;
mod quantize;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use args::{Cli, Command};
use error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // Help and version are output, not errors (exit 0, stdout).
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(2);
            }
            // clap's message starts with "error: "; the prefix names the program, as for
            // our own errors below.
            eprint!("m1: {}", e.render());
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Ask(a) => ask::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Info(a) => info::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Quantize(a) => quantize::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`m1 ... | head`): nothing left to say.
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m1: error: {e}");
            if matches!(e, CliError::Usage(_)) {
                eprintln!("Run `m1 --help` for usage.");
            }
            e.exit_code()
        }
    }
}
