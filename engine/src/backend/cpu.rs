//! [`Backend`] over the candle CPU model.

use super::{sample_logits, Backend, EngineError, Sampling};
use crate::cpu::CpuModel;

/// Most tokens one CPU forward pass takes. Attention scores are heads x n x t floats, so a
/// 4k-token prompt in one pass would allocate ~1 GB for a 7B model's 28 heads; chunks of
/// 512 keep that to tens of MB while the matrix products still run batched.
pub const PREFILL_CHUNK: usize = 512;

/// The CPU model plus the logits of its last position.
pub struct CpuBackend {
    model: CpuModel,
    logits: Option<Vec<f32>>,
}

impl CpuBackend {
    pub fn new(model: CpuModel) -> Self {
        Self {
            model,
            logits: None,
        }
    }

    pub fn model(&self) -> &CpuModel {
        &self.model
    }

    /// Logits after the last fed token, if any.
    pub fn logits(&self) -> Option<&[f32]> {
        self.logits.as_deref()
    }

    pub fn into_model(self) -> CpuModel {
        self.model
    }
}

impl Backend for CpuBackend {
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        if tokens.is_empty() {
            return Ok(());
        }
        // Checked before computing anything, so a too-long feed leaves the cache untouched.
        let needed = self.model.position() + tokens.len();
        if needed > self.model.max_seq_len() {
            return Err(crate::cpu::CpuError::ContextFull {
                needed,
                max: self.model.max_seq_len(),
            }
            .into());
        }
        // Logits of an earlier chunk are not the last position's: drop them first so an
        // error halfway leaves no stale logits to sample from.
        self.logits = None;
        let mut last = None;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            let pos = self.model.position();
            last = Some(self.model.forward(chunk, pos)?);
        }
        self.logits = last;
        Ok(())
    }

    async fn sample(&mut self, sampling: &Sampling) -> Result<u32, EngineError> {
        let logits = self.logits.as_deref().ok_or(EngineError::NoLogits)?;
        // The position being predicted is the draw's step; it fits u32 since contexts are
        // capped far below 2^32 (model::config's MAX_CONTEXT).
        let step = u32::try_from(self.model.position()).unwrap_or(u32::MAX);
        sample_logits(logits, sampling, step)
    }

    fn reset(&mut self) {
        self.model.reset();
        self.logits = None;
    }

    fn rewind(&mut self, pos: usize) {
        if pos < self.model.position() {
            self.model.rewind(pos);
            self.logits = None;
        }
    }

    fn position(&self) -> usize {
        self.model.position()
    }

    fn context_len(&self) -> usize {
        self.model.max_seq_len()
    }

    fn device_name(&self) -> String {
        if cfg!(target_arch = "wasm32") {
            "CPU (WebAssembly)".to_string()
        } else {
            "CPU".to_string()
        }
    }
}
