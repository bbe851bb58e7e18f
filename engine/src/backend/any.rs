//! Either compute path behind one type, for callers that pick at run time (the CLI, the
//! web worker). An enum rather than `dyn Backend`: the trait's async methods are not
//! dyn-compatible.

use super::{Backend, CpuBackend, EngineError, GpuBackend, Sampling};

/// The GPU or the CPU backend. `C` is the CPU backend itself, or a wrapper of it (the web
/// worker's lets the event loop run before each CPU step).
pub enum AnyBackend<C = CpuBackend> {
    // Boxed: the GPU backend's state is ~1.6 KB, the CPU one's ~120 B.
    Gpu(Box<GpuBackend>),
    Cpu(C),
}

impl<C> AnyBackend<C> {
    pub fn gpu(backend: GpuBackend) -> Self {
        Self::Gpu(Box::new(backend))
    }

    /// The GPU backend, when that is the path in use.
    pub fn as_gpu(&self) -> Option<&GpuBackend> {
        match self {
            Self::Gpu(b) => Some(b),
            Self::Cpu(_) => None,
        }
    }
}

impl<C: Backend> Backend for AnyBackend<C> {
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        match self {
            Self::Gpu(b) => b.feed(tokens).await,
            Self::Cpu(b) => b.feed(tokens).await,
        }
    }

    async fn sample(&mut self, sampling: &Sampling) -> Result<u32, EngineError> {
        match self {
            Self::Gpu(b) => b.sample(sampling).await,
            Self::Cpu(b) => b.sample(sampling).await,
        }
    }

    fn reset(&mut self) {
        match self {
            Self::Gpu(b) => b.reset(),
            Self::Cpu(b) => b.reset(),
        }
    }

    fn rewind(&mut self, pos: usize) {
        match self {
            Self::Gpu(b) => b.rewind(pos),
            Self::Cpu(b) => b.rewind(pos),
        }
    }

    fn position(&self) -> usize {
        match self {
            Self::Gpu(b) => b.position(),
            Self::Cpu(b) => b.position(),
        }
    }

    fn context_len(&self) -> usize {
        match self {
            Self::Gpu(b) => b.context_len(),
            Self::Cpu(b) => b.context_len(),
        }
    }

    fn device_name(&self) -> String {
        match self {
            Self::Gpu(b) => b.device_name(),
            Self::Cpu(b) => b.device_name(),
        }
    }
}
