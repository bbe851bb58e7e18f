//! `cargo xtask serve` and `cargo xtask test`: the two commands of the README,
//! `cargo xtask dist` for a folder any static host can serve, and `cargo xtask fuzz` for
//! fuzzing campaigns. Each installs what is missing (and only that), then does its job.

mod dist;
mod fuzz;
mod http;
mod models;
mod serve;
mod sh;
mod test;
mod threaded;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  serve [--port N] [--no-build] [--models DIR]... [--no-isolation]
                                  install what is missing, build the app with Trunk and
                                  serve it on http://127.0.0.1:8080 (default model included);
                                  --models offers the GGUF files of more folders too;
                                  --no-isolation leaves out COOP/COEP (the CPU path then
                                  runs on one thread, as on a host without them)
  serve --dir DIR [--port N]      serve a folder written by `dist` as it is (no build)
  dist [--out DIR] [--model FILE.gguf]... [--no-build]
                                  write the app as a folder any static server with HTTP
                                  Range can serve (default target/m1-dist): the release
                                  build, the models given (listed in models/index.json;
                                  none: the page offers models.json's entries), header
                                  rules for Netlify/Cloudflare Pages, nginx and Apache, and
                                  HOSTING.md. DIR must be new, empty or an earlier dist
                                  output (replaced); --no-build takes dist/ as it is
  test                            install what tests need, then fmt, clippy (native + wasm32),
                                  native tests (GPU tests on lavapipe), wasm build, browser tests
  fetch-models                    download and verify the test models into .cache/models
  fuzz [TARGET]... [--seconds N]  libFuzzer campaigns over every reader of untrusted bytes
                                  (installs nightly and cargo-fuzz when missing; --help)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve::run(&args[1..]),
        Some("dist") => dist::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        Some("fetch-models") => models::fetch_test_models().map(|_| ()),
        Some("fuzz") => fuzz::run_cli(&args[1..]),
        Some("-h") | Some("--help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Prints a step header so a long run shows where it is.
pub fn step(msg: &str) {
    println!("\n==> {msg}");
}
