//! The CLI's errors and the exit code each one maps to.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use m1_cli::quantize::QuantizeError;
use m1_engine::backend::{EngineError, LoadError, LoadErrorKind};
use m1_engine::gguf::GgufError;
use m1_engine::reason::ReasonError;
use thiserror::Error;

/// Why an input file cannot be used.
#[derive(Debug, Error)]
pub enum FileProblem {
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    #[error("is a directory, not a file")]
    Directory,
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{0}{remedy}", remedy = remedy(.0))]
    Load(#[from] LoadError),
    #[error("line {line}: {source}")]
    Record { line: usize, source: ReasonError },
    #[error("no questions in the file")]
    NoRecords,
}

/// What the user can do about a model the GPU cannot hold or run.
fn remedy(e: &LoadError) -> &'static str {
    match (e, e.kind()) {
        (LoadError::Gpu(_), LoadErrorKind::Unsupported) => {
            "\n  --cpu runs this model on the CPU, which reads every GGUF tensor type"
        }
        (LoadError::Gpu(_), LoadErrorKind::OutOfMemory) => {
            "\n  --ctx N with a smaller N shrinks the KV cache; --cpu runs on the CPU instead"
        }
        _ => "",
    }
}

#[derive(Debug, Error)]
pub enum CliError {
    /// Arguments that parse but do not make sense together.
    #[error("{0}")]
    Usage(String),

    #[error("{path}: {problem}", path = .path.display())]
    File { path: PathBuf, problem: FileProblem },

    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error("writing output: {0}")]
    Output(std::io::Error),

    /// `m1 quantize`: exit 3 when the input folder is at fault (each message names the
    /// file), 1 when writing the output failed (disk full, permissions).
    #[error("{0}")]
    Quantize(QuantizeError),
}

impl From<ReasonError> for CliError {
    fn from(e: ReasonError) -> Self {
        CliError::Engine(EngineError::Reason(e))
    }
}

impl CliError {
    pub fn file(path: &Path, problem: impl Into<FileProblem>) -> Self {
        CliError::File {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }

    /// 2 for bad arguments (as clap), 3 for unusable input files, 1 for everything else.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::File { .. } => ExitCode::from(3),
            CliError::Quantize(e) if e.is_bad_input() => ExitCode::from(3),
            CliError::Engine(_) | CliError::Output(_) | CliError::Quantize(_) => ExitCode::from(1),
        }
    }
}
