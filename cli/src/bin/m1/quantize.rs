//! `m1 quantize`: a Hugging Face model folder to a GGUF file (see m1_cli::quantize).

use std::io::Write;

use m1_cli::quantize::{self, Options, Progress};
use m1_engine::units::fmt_bytes;

use super::args::QuantizeArgs;
use super::error::CliError;

pub fn run(args: &QuantizeArgs) -> Result<(), CliError> {
    if !args.input.is_dir() {
        return Err(CliError::Usage(format!(
            "--input {} is not a folder (expected a Hugging Face model folder with config.json, \
             tokenizer.json and *.safetensors)",
            args.input.display()
        )));
    }
    if args.output.is_dir() {
        return Err(CliError::Usage(format!(
            "--output {} is a folder; give the GGUF file's path",
            args.output.display()
        )));
    }
    let opts = Options {
        input: args.input.clone(),
        output: args.output.clone(),
        file_type: args.file_type,
        threads: args.threads,
    };
    let mut stderr = std::io::stderr().lock();
    let quiet = args.quiet;
    let mut progress = |p: Progress<'_>| {
        if !quiet {
            // Progress goes to stderr: stdout stays for the summary line.
            let _ = writeln!(
                stderr,
                "[{:>4}/{}] {:<28} {:<5} {:>6.1}%",
                p.index + 1,
                p.count,
                p.name,
                p.ggml_type.name(),
                100.0 * p.bytes_done as f64 / p.bytes_total.max(1) as f64
            );
        }
    };
    let summary = quantize::quantize(&opts, &mut progress).map_err(CliError::Quantize)?;
    let gb = summary.source_bytes as f64 / 1e9;
    println!(
        "{}: {} tensors, {} ({}) from {} of weights in {:.1} s ({:.1} s/GB)",
        summary.output.display(),
        summary.tensors,
        fmt_bytes(summary.file_bytes),
        args.file_type,
        fmt_bytes(summary.source_bytes),
        summary.seconds,
        summary.seconds / gb.max(1e-9)
    );
    Ok(())
}
