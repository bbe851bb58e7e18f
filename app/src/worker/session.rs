//! A loaded model in the worker: tokenizer + backend, and the ask/chat runs over it.

use std::cell::Cell;
use std::rc::Rc;

use m1_engine::backend::{
    run_controller, AnyBackend, Backend, CpuBackend, EngineError, GpuBackend, Sampling,
};
use m1_engine::cpu::{CpuError, CpuModel, CpuOptions, WASM32_MEMORY};
use m1_engine::gguf::{ByteSource, GgufError, Header};
use m1_engine::gpu::{Gpu, GpuError, GpuModel, GpuModelError, GpuModelOptions, GpuOptions};
use m1_engine::model::ModelConfig;
use m1_engine::reason::{
    ChatConfig, Controller, Event as ReasonEvent, Question, ReasonConfig, QWEN_SYSTEM_PROMPT,
};
use m1_engine::tokenizer::Tokenizer;

use super::js::{now_ms, yield_now};
use crate::protocol::AskSettings;

pub struct Session {
    pub tokenizer: Tokenizer,
    pub backend: AnyBackend<Yielding<CpuBackend>>,
    pub config: ModelConfig,
    /// The file names itself m1 (its metadata, not its file name: [`m1_engine::model::is_m1`]).
    pub is_m1: bool,
}

impl Session {
    /// On the GPU when `gpu` is given (weights streamed into GPU buffers), else on the CPU
    /// (weights in wasm memory: fine for small models, the fallback where WebGPU is missing).
    pub async fn load<S: ByteSource>(
        header: &Header,
        source: S,
        context: usize,
        gpu: Option<Gpu>,
    ) -> Result<Self, LoadError> {
        let config =
            ModelConfig::from_header(header).map_err(|e| LoadError::BadModel(e.to_string()))?;
        let tokenizer = Tokenizer::from_metadata(&header.metadata)
            .map_err(|e| LoadError::BadModel(e.to_string()))?;
        let context = context.min(config.context_length);
        let backend = match gpu {
            Some(gpu) => {
                let options = GpuModelOptions {
                    context: Some(context),
                    ..Default::default()
                };
                let model =
                    GpuModel::load(gpu, header, source, options)
                        .await
                        .map_err(|e| match e {
                            GpuModelError::Gguf(g) => LoadError::Read(g),
                            GpuModelError::OutOfMemory { .. }
                            | GpuModelError::Gpu(GpuError::OutOfMemory { .. }) => {
                                LoadError::OutOfMemory(format!(
                                    "the model does not fit in this GPU's memory: {e}"
                                ))
                            }
                            other => LoadError::BadModel(other.to_string()),
                        })?;
                AnyBackend::gpu(GpuBackend::new(model))
            }
            None => {
                // What this worker's memory can still grow by: a model that needs more is
                // refused up front (a failed allocation would abort the worker).
                let in_use = super::js::wasm_memory_bytes();
                let options = CpuOptions {
                    max_seq_len: Some(context),
                    memory_limit: Some(WASM32_MEMORY.saturating_sub(in_use)),
                    ..Default::default()
                };
                let model = CpuModel::load(header, source, options)
                    .await
                    .map_err(|e| match e {
                        CpuError::Gguf(g) => LoadError::Read(g),
                        CpuError::TooLarge { .. } => LoadError::OutOfMemory(format!(
                            "this model is too large for the CPU path in a browser: {e}. \
                             It runs on WebGPU: use a browser with WebGPU on a GPU."
                        )),
                        other => LoadError::BadModel(other.to_string()),
                    })?;
                AnyBackend::Cpu(Yielding(CpuBackend::new(model)))
            }
        };
        Ok(Self {
            tokenizer,
            backend,
            config,
            is_m1: m1_engine::model::is_m1(&header.metadata),
        })
    }

    pub fn device_name(&self) -> String {
        self.backend.device_name()
    }

    /// One m1 question with budget forcing; every event goes to `emit` as it happens.
    pub async fn ask(
        &mut self,
        question: &Question,
        settings: &AskSettings,
        cancelled: Rc<Cell<bool>>,
        emit: impl FnMut(ReasonEvent),
    ) -> Result<(), EngineError> {
        let config = ReasonConfig {
            budget: settings.budget as usize,
            waits: settings.waits as usize,
            max_answer_tokens: settings.max_answer_tokens as usize,
        };
        let mut ctl = Controller::reasoning_for(&self.tokenizer, question, config)?;
        run_controller(
            &mut self.backend,
            &mut ctl,
            &settings.sampling,
            now_ms,
            emit,
            || cancelled.get(),
        )
        .await?;
        Ok(())
    }

    /// Plain chat (no forcing), for models that are not m1.
    pub async fn chat(
        &mut self,
        question: &Question,
        max_tokens: u32,
        sampling: &Sampling,
        cancelled: Rc<Cell<bool>>,
        emit: impl FnMut(ReasonEvent),
    ) -> Result<(), EngineError> {
        let config = ChatConfig {
            max_tokens: max_tokens as usize,
        };
        let mut ctl = Controller::chat_for(&self.tokenizer, QWEN_SYSTEM_PROMPT, question, config)?;
        run_controller(&mut self.backend, &mut ctl, sampling, now_ms, emit, || {
            cancelled.get()
        })
        .await?;
        Ok(())
    }
}

pub enum LoadError {
    Read(GgufError),
    BadModel(String),
    OutOfMemory(String),
}

/// Opens the GPU for a model; `None` (CPU) when the device probe chose the CPU.
pub async fn open_gpu(use_gpu: bool) -> Option<Gpu> {
    if !use_gpu {
        return None;
    }
    Gpu::new(GpuOptions::default()).await.ok()
}

/// The CPU backend never suspends, so without this the worker could not see a Stop
/// message until the whole answer was done: each step first lets the event loop run.
pub struct Yielding<B>(pub B);

impl<B: Backend> Backend for Yielding<B> {
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        yield_now().await;
        self.0.feed(tokens).await
    }

    async fn sample(&mut self, sampling: &Sampling) -> Result<u32, EngineError> {
        yield_now().await;
        self.0.sample(sampling).await
    }

    fn reset(&mut self) {
        self.0.reset()
    }

    fn position(&self) -> usize {
        self.0.position()
    }

    fn context_len(&self) -> usize {
        self.0.context_len()
    }

    fn device_name(&self) -> String {
        self.0.device_name()
    }
}

/// Lends a source to the loader while the caller keeps it (to fill cache gaps afterwards).
pub struct Borrowed<'a, S>(pub &'a mut S);

impl<S: ByteSource> ByteSource for Borrowed<'_, S> {
    fn size(&self) -> u64 {
        self.0.size()
    }

    async fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        self.0.read_at(offset, buf).await
    }
}
