//! [`Backend`] over the WebGPU model: logits stay on the GPU, one `u32` comes back per token.

use super::{Backend, EngineError, Sampling};
use crate::gpu::{self, GpuModel};

pub struct GpuBackend {
    model: GpuModel,
}

impl GpuBackend {
    pub fn new(model: GpuModel) -> Self {
        Self { model }
    }

    pub fn model(&self) -> &GpuModel {
        &self.model
    }

    pub fn model_mut(&mut self) -> &mut GpuModel {
        &mut self.model
    }

    pub fn into_model(self) -> GpuModel {
        self.model
    }
}

impl Backend for GpuBackend {
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        Ok(self.model.forward(tokens)?)
    }

    async fn sample(&mut self, sampling: &Sampling) -> Result<u32, EngineError> {
        sampling.validate()?;
        if self.model.position() == 0 {
            return Err(EngineError::NoLogits);
        }
        let s = gpu::Sampling {
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            seed: sampling.seed,
        };
        Ok(self.model.sample(&s).await?)
    }

    fn reset(&mut self) {
        self.model.reset();
    }

    fn position(&self) -> usize {
        self.model.position()
    }

    fn context_len(&self) -> usize {
        self.model.context_len()
    }

    fn device_name(&self) -> String {
        self.model.gpu().report.name.clone()
    }
}
