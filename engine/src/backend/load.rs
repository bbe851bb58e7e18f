//! The one loader: a GGUF header and its byte source become a model ready to run, on the
//! device the caller chose. The CLI and the web worker both call it, so the order of the
//! checks, the progress and the errors are the same for a native file and a download.
//!
//! Loading is two steps, [`check`] then [`Checked::load`] ([`load`] runs both): the model's
//! description (architecture, hyperparameters, tokenizer) is checked from the header
//! alone, in milliseconds, before any weight is read; a caller that still has to pick or open a
//! device does so in between, so a message about the device never precedes one about the
//! file.

use thiserror::Error;

use super::{AnyBackend, CpuBackend, GpuBackend};
use crate::cpu::{CpuError, CpuModel, CpuOptions};
use crate::gguf::{ByteSource, GgufError, Header};
use crate::gpu::{Gpu, GpuError, GpuModel, GpuModelError, GpuModelOptions};
use crate::model::{is_m1, ConfigError, ModelConfig};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Where the weights go: a GPU the caller opened (and may share between loads), or the CPU.
// Made once per load and moved into it: the size of the GPU variant (its limits) is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Device {
    Gpu(Gpu),
    Cpu,
}

/// How [`load`] sizes the model.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions {
    /// Positions the KV cache holds, capped at the model's context length. `None`: the GPU
    /// path's [`crate::gpu::DEFAULT_CONTEXT`], the CPU path's whole context (its cache
    /// grows as used).
    pub context: Option<usize>,
    /// CPU path: the memory the model may take; a model that needs more is refused before
    /// its first weight. `None`: on wasm32, what the 4 GiB address space still has room
    /// for (a failed allocation there aborts the worker); natively, no check.
    pub memory_limit: Option<u64>,
}

/// A model on its device, ready for [`super::run_controller`].
pub struct Loaded<C = CpuBackend> {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    /// `C` is the CPU backend, or the caller's wrapper of it (the worker's yields to the
    /// event loop before each step).
    pub backend: AnyBackend<C>,
    /// The file calls itself m1 in its metadata ([`is_m1`]).
    pub is_m1: bool,
    /// Bytes of weights read from the source.
    pub weight_bytes: u64,
}

/// Why a model could not be loaded: every failure of [`check`] and [`Checked::load`], and
/// of reading the header (`From<GgufError>`), so a caller handles one type.
/// [`LoadError::kind`] says which remedy fits.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The bytes could not be read, or they are not a well-formed GGUF (also when the
    /// tensor data ends early, found while loading).
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// An architecture, hyperparameter or tensor shape this engine does not run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("loading the weights: {0}")]
    Cpu(CpuError),
    #[error("loading the weights onto the GPU: {0}")]
    Gpu(GpuModelError),
}

/// What a [`LoadError`] means for the user, and so which remedy, exit code and message fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// Reading failed (a file system or network error): the same file may load on a retry.
    Read,
    /// The file is not a model this engine runs: not GGUF, cut short, inconsistent, or an
    /// architecture, shape or tokenizer it does not support.
    BadModel,
    /// A model the chosen device cannot run (a tensor type without a GPU kernel, a row
    /// wider than one GPU binding): the CPU path may.
    Unsupported,
    /// More than the device's memory holds: the message names the sizes; a shorter
    /// context or a smaller quantization needs less.
    OutOfMemory,
    /// The GPU device was lost while loading: a new device may load it.
    DeviceLost,
    /// A GPU error that is none of the above (validation, internal): a bug to report.
    Internal,
}

impl LoadError {
    pub fn kind(&self) -> LoadErrorKind {
        use LoadErrorKind as K;
        match self {
            Self::Gguf(GgufError::Io { .. }) => K::Read,
            Self::Gguf(_) | Self::Config(_) | Self::Tokenizer(_) => K::BadModel,
            Self::Cpu(CpuError::TooLarge { .. }) => K::OutOfMemory,
            // Anything else candle refuses while building the model is the file's shape.
            Self::Cpu(_) => K::BadModel,
            Self::Gpu(e) => match e {
                GpuModelError::UnsupportedType { .. }
                | GpuModelError::UnsupportedVectorType { .. }
                | GpuModelError::Gpu(
                    GpuError::UnsupportedType(_)
                    | GpuError::RowTooLarge { .. }
                    | GpuError::BindingTooLarge { .. },
                ) => K::Unsupported,
                GpuModelError::OutOfMemory { .. }
                | GpuModelError::Gpu(GpuError::OutOfMemory { .. }) => K::OutOfMemory,
                GpuModelError::Gpu(GpuError::DeviceLost(_)) => K::DeviceLost,
                GpuModelError::Truncated { .. }
                | GpuModelError::Config(_)
                | GpuModelError::Gguf(_)
                | GpuModelError::Gpu(GpuError::Shape { .. } | GpuError::OutOfRange { .. }) => {
                    K::BadModel
                }
                GpuModelError::Load { .. } | GpuModelError::Gpu(_) => K::Internal,
            },
        }
    }
}

// A file's own faults surface as the same variants whichever path found them.
impl From<CpuError> for LoadError {
    fn from(e: CpuError) -> Self {
        match e {
            CpuError::Gguf(g) => Self::Gguf(g),
            CpuError::Config(c) => Self::Config(c),
            other => Self::Cpu(other),
        }
    }
}

impl From<GpuModelError> for LoadError {
    fn from(e: GpuModelError) -> Self {
        match e {
            GpuModelError::Gguf(g) => Self::Gguf(g),
            GpuModelError::Config(c) => Self::Config(c),
            other => Self::Gpu(other),
        }
    }
}

/// A model whose description passed [`check`]: its config and tokenizer, built once.
pub struct Checked {
    pub config: ModelConfig,
    pub tokenizer: Tokenizer,
    pub is_m1: bool,
}

/// Builds the model's config (architecture, hyperparameters) and tokenizer from the
/// header; the tensors' types and shapes are checked next, by the device's loader, still
/// before the first weight is read.
pub fn check(header: &Header) -> Result<Checked, LoadError> {
    let config = ModelConfig::from_header(header)?;
    let tokenizer = Tokenizer::from_metadata(&header.metadata)?;
    Ok(Checked {
        config,
        tokenizer,
        is_m1: is_m1(&header.metadata),
    })
}

impl Checked {
    /// Streams the weights from `source` onto `device`. `progress(done, total)` follows
    /// the bytes of weights read (`total`: all the file's tensor data) and ends at
    /// `(total, total)` once the model is loaded.
    pub async fn load<C: From<CpuBackend>, S: ByteSource>(
        self,
        header: &Header,
        source: S,
        device: Device,
        options: LoadOptions,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Loaded<C>, LoadError> {
        let total = header.tensor_bytes();
        let source = Counting {
            source,
            done: 0,
            total,
            progress: &mut progress,
        };
        let backend = match device {
            Device::Gpu(gpu) => {
                let options = GpuModelOptions {
                    context: options.context,
                    ..GpuModelOptions::default()
                };
                let model = GpuModel::load(gpu, header, source, options).await?;
                AnyBackend::gpu(GpuBackend::new(model))
            }
            Device::Cpu => {
                let options = CpuOptions {
                    max_seq_len: options.context,
                    memory_limit: options.memory_limit.or_else(memory_left),
                    ..CpuOptions::default()
                };
                let model = CpuModel::load(header, source, options).await?;
                AnyBackend::Cpu(C::from(CpuBackend::new(model)))
            }
        };
        progress(total, total);
        Ok(Loaded {
            config: self.config,
            tokenizer: self.tokenizer,
            backend,
            is_m1: self.is_m1,
            weight_bytes: total,
        })
    }
}

/// [`check`], then [`Checked::load`]: for a caller whose device is already chosen.
pub async fn load<C: From<CpuBackend>, S: ByteSource>(
    header: &Header,
    source: S,
    device: Device,
    options: LoadOptions,
    progress: impl FnMut(u64, u64),
) -> Result<Loaded<C>, LoadError> {
    check(header)?
        .load(header, source, device, options, progress)
        .await
}

/// What this wasm32 instance's memory can still grow by; `None` natively.
fn memory_left() -> Option<u64> {
    #[cfg(target_arch = "wasm32")]
    {
        let in_use = core::arch::wasm32::memory_size(0) as u64 * 65_536;
        Some(crate::cpu::WASM32_MEMORY.saturating_sub(in_use))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

/// Counts the bytes the model loaders read (all of them tensor data: the header was read
/// before) for the progress callback.
struct Counting<'p, S, P> {
    source: S,
    done: u64,
    total: u64,
    progress: &'p mut P,
}

impl<S: ByteSource, P: FnMut(u64, u64)> ByteSource for Counting<'_, S, P> {
    fn size(&self) -> u64 {
        self.source.size()
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        self.source.read_at(offset, buf).await?;
        self.done = (self.done + buf.len() as u64).min(self.total);
        (self.progress)(self.done, self.total);
        Ok(())
    }
}
