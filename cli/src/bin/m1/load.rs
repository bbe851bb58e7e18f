//! Opening a model file: the header alone (`info`), or the whole model through the engine's
//! loader (`m1_engine::backend::load`). Every failure here is the file's fault (or too much
//! for the device), so each maps to exit code 3.

use std::path::Path;
use std::time::Instant;

use m1_engine::backend::{self, AnyBackend, Backend, Device, LoadOptions};
use m1_engine::gguf::{read_header, FileSource, Header};
use m1_engine::gpu::{Gpu, GpuOptions};

use super::args::ModelArgs;
use super::error::{CliError, FileProblem};

/// Opens `path` and parses its GGUF header (a few MB read, whatever the model size).
pub fn open(path: &Path) -> Result<(FileSource, Header), CliError> {
    // Checked up front: FileSource's I/O error would be correct but less plain.
    match std::fs::metadata(path) {
        Err(e) => return Err(CliError::file(path, FileProblem::Open(e))),
        Ok(m) if m.is_dir() => return Err(CliError::file(path, FileProblem::Directory)),
        Ok(_) => {}
    }
    let mut source = FileSource::open(path).map_err(|e| CliError::file(path, e))?;
    let header =
        pollster::block_on(read_header(&mut source)).map_err(|e| CliError::file(path, e))?;
    Ok((source, header))
}

/// A model ready to run, with its header and what it took to load it.
pub struct Loaded {
    pub header: Header,
    pub model: backend::Loaded,
    pub load_s: f64,
}

/// The GPU's KV cache is allocated up front, so without --ctx it holds this many positions
/// (capped at the model's context): room for m1's thinking budgets, ~0.5 GB for a 7B model.
pub const GPU_DEFAULT_CTX: usize = 8192;

impl Loaded {
    /// "qwen2, 24 layers, 494 M parameters, Q8_0".
    pub fn describe(&self) -> String {
        let name = self
            .header
            .metadata
            .opt_str("general.name")
            .ok()
            .flatten()
            .map(|n| format!("{n} — "))
            .unwrap_or_default();
        format!(
            "{name}{}, {} layers, {}",
            self.model.config.architecture.name(),
            self.model.config.n_layer,
            super::info::weight_types(&self.header),
        )
    }
}

/// Loads header, tokenizer and weights onto the GPU, or onto the CPU with `--cpu` or when
/// no GPU adapter can be opened (said on stderr, with the reason).
pub fn load(args: &ModelArgs, quiet: bool) -> Result<Loaded, CliError> {
    load_with(args, quiet, GpuOptions::default())
}

/// [`load`], opening the GPU with `gpu` (benchmarks ask for timestamp queries).
pub fn load_with(args: &ModelArgs, quiet: bool, gpu: GpuOptions) -> Result<Loaded, CliError> {
    let path = args.model.as_path();
    let start = Instant::now();
    let (source, header) = open(path)?;
    // Architecture and tokenizer first: they fail in milliseconds, before a GPU is opened
    // or gigabytes of weights are read.
    let checked = backend::check(&header).map_err(|e| CliError::file(path, e))?;
    let ctx = args.ctx.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let (device, context) = if args.cpu {
        (Device::Cpu, ctx)
    } else {
        match pollster::block_on(Gpu::new(gpu)) {
            Ok(gpu) => (Device::Gpu(gpu), Some(ctx.unwrap_or(GPU_DEFAULT_CTX))),
            Err(e) => {
                // Said once the file is known to be usable, so it never precedes a file error.
                eprintln!("m1: note: no usable GPU ({e}); running on the CPU");
                (Device::Cpu, ctx)
            }
        }
    };
    let options = LoadOptions {
        context,
        ..LoadOptions::default()
    };
    let model = pollster::block_on(checked.load(&header, source, device, options, |_, _| {}))
        .map_err(|e| CliError::file(path, e))?;
    let loaded = Loaded {
        header,
        model,
        load_s: start.elapsed().as_secs_f64(),
    };
    if !quiet {
        eprintln!(
            "m1: loaded {} in {:.1} s on {}",
            loaded.describe(),
            loaded.load_s,
            match &loaded.model.backend {
                AnyBackend::Cpu(_) => "the CPU".to_string(),
                AnyBackend::Gpu(b) => b.device_name(),
            }
        );
    }
    Ok(loaded)
}
