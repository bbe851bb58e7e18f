//! A loaded model in the worker, and the ask runs over it.

use std::cell::Cell;
use std::rc::Rc;

use m1_engine::backend::{
    run_controller, run_sweep, Backend, CpuBackend, EngineError, Loaded, Sampling,
};
use m1_engine::gpu::{Held, StepStats};
use m1_engine::reason::{
    Controller, Event as ReasonEvent, Question, ReasonConfig, Sweep, SweepEvent,
};

use super::js::{now_ms, yield_now};
use crate::protocol::{AskSettings, RunStats, SweepSettings};

pub struct Session {
    pub model: Loaded<Yielding<CpuBackend>>,
}

impl Session {
    pub fn device_name(&self) -> String {
        self.model.backend.device_name()
    }

    /// One m1 question with budget forcing; every event goes to `emit` as it happens. Returns
    /// what the run cost.
    pub async fn ask(
        &mut self,
        question: &Question,
        settings: &AskSettings,
        cancelled: Rc<Cell<bool>>,
        emit: impl FnMut(ReasonEvent),
    ) -> Result<RunStats, EngineError> {
        let config = ReasonConfig {
            budget: settings.budget as usize,
            waits: settings.waits as usize,
            min_thinking: settings.min_thinking as usize,
            max_answer_tokens: settings.max_answer_tokens as usize,
        };
        let mut ctl = Controller::reasoning_for(&self.model.tokenizer, question, config)?;
        let before = self.gpu_stats();
        let summary = run_controller(
            &mut self.model.backend,
            &mut ctl,
            &settings.sampling,
            now_ms,
            emit,
            || cancelled.get(),
        )
        .await?;
        Ok(run_stats(
            summary.decode_tokens_per_s,
            before,
            self.gpu_stats(),
            self.gpu_held(),
        ))
    }

    /// One question at several budgets from one thinking trace (`reason::Sweep`); every
    /// event goes to `emit` as it happens.
    pub async fn sweep(
        &mut self,
        question: &Question,
        settings: &SweepSettings,
        cancelled: Rc<Cell<bool>>,
        emit: impl FnMut(SweepEvent),
    ) -> Result<RunStats, EngineError> {
        let mut sweep = Sweep::for_question(&self.model.tokenizer, question, &settings.config())?;
        let before = self.gpu_stats();
        let summary = run_sweep(
            &mut self.model.backend,
            &mut sweep,
            &settings.sampling,
            now_ms,
            emit,
            || cancelled.get(),
        )
        .await?;
        // Every sample is a decode step: thinking and the answers alike.
        let decode = (summary.total_ms > 0.0 && summary.sampled_tokens > 0)
            .then(|| summary.sampled_tokens as f64 * 1000.0 / summary.total_ms);
        Ok(run_stats(decode, before, self.gpu_stats(), self.gpu_held()))
    }

    fn gpu_stats(&self) -> Option<StepStats> {
        self.model.backend.as_gpu().map(|g| g.model().stats())
    }

    fn gpu_held(&self) -> Option<Held> {
        self.model.backend.as_gpu().map(|g| g.model().gpu().held())
    }
}

/// A run's figures from the GPU's step counters before and after it and the buffers the
/// engine holds after it (none on the CPU).
fn run_stats(
    decode_tokens_per_s: Option<f64>,
    before: Option<StepStats>,
    after: Option<StepStats>,
    gpu_held: Option<Held>,
) -> RunStats {
    let per_step = before.zip(after).and_then(|(b, a)| {
        let steps = a.steps.checked_sub(b.steps).filter(|&n| n > 0)? as f64;
        let timed = (a.timed_steps - b.timed_steps) as f64;
        Some((
            (a.host_ms - b.host_ms) / steps,
            (a.dispatches - b.dispatches) as f64 / steps,
            (timed > 0.0).then(|| (a.gpu_ms - b.gpu_ms) / timed),
        ))
    });
    RunStats {
        decode_tokens_per_s,
        host_ms_per_token: per_step.map(|p| p.0),
        dispatches_per_token: per_step.map(|p| p.1),
        gpu_ms_per_token: per_step.and_then(|p| p.2),
        worker_memory: Some(super::js::wasm_memory_bytes()),
        gpu_held,
    }
}

/// The CPU backend never suspends, so without this the worker could not see a Stop
/// message until the whole answer was done: each step first lets the event loop run.
pub struct Yielding<B>(pub B);

impl From<CpuBackend> for Yielding<CpuBackend> {
    fn from(backend: CpuBackend) -> Self {
        Self(backend)
    }
}

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

    fn rewind(&mut self, pos: usize) {
        self.0.rewind(pos)
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
