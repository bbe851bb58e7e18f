//! The seam between m1's reasoning loop and the compute that runs the model.
//!
//! Both compute paths (WebGPU kernels, the candle CPU model) implement [`Backend`]: append
//! tokens, pick the next one, forget the sequence. [`load()`] is the one loader that puts a
//! model on either, and [`run_controller`] the one loop that drives a [`Controller`] over
//! any backend; the CLI and the web worker both call them, so checks, errors, budget
//! forcing, event order, cancellation and timing behave the same everywhere.
//!
//! # Why the trait is async
//!
//! On wasm32 the GPU backend cannot block: reading the sampled token back from the GPU is a
//! JS promise, and the worker's event loop must keep running to resolve it. An `async fn` in
//! the trait lets that backend await its readback, while the CPU backend simply does its
//! work and returns a ready future. The native CLI runs the same futures with
//! `pollster::block_on`. A sync trait natively plus an async one for the web would mean two
//! driver loops, which is exactly what this module exists to prevent.
//!
//! The futures are deliberately not `Send` (as with [`crate::gguf::ByteSource`]): wgpu and JS
//! objects on wasm32 are not, and nothing here is moved across threads.

mod any;
mod codec;
mod cpu;
mod gpu;
mod load;
mod sampling;

use thiserror::Error;

use crate::cpu::CpuError;
use crate::gpu::GpuError;
use crate::reason::{
    Controller, Event, ReasonError, Step, Summary, Sweep, SweepEvent, SweepStep, SweepSummary,
    TextCodec,
};

pub use any::AnyBackend;
pub use cpu::{CpuBackend, PREFILL_CHUNK};
pub use gpu::GpuBackend;
pub use load::{check, load, Checked, Device, LoadError, LoadErrorKind, LoadOptions, Loaded};
pub use sampling::{sample_logits, Sampling, DEFAULT_SEED};

/// Everything that can stop a run once the model is loaded.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Cpu(#[from] CpuError),

    #[error(transparent)]
    Gpu(#[from] GpuError),

    #[error(transparent)]
    Reason(#[from] ReasonError),

    #[error("sample called before any token was fed: there are no logits yet")]
    NoLogits,

    #[error("the model produced an empty logits vector")]
    EmptyLogits,

    #[error("logit {index} of {vocab} is NaN: the forward pass produced invalid numbers")]
    NanLogit { index: usize, vocab: usize },

    #[error("sampling parameter {what} = {value} is invalid: {why}")]
    BadSampling {
        what: &'static str,
        value: f32,
        why: &'static str,
    },

    #[error(
        "this run may need {needed} positions (prompt, thinking budget, forced text and \
         answer cap), but the context holds {context}: lower the budget or the answer cap, \
         or allow a longer context"
    )]
    ContextTooSmall { needed: usize, context: usize },
}

/// A model with a KV cache that the driver loop can run, on the GPU or the CPU.
///
/// A single run's sequence only grows: `feed` appends at [`Backend::position`], `sample`
/// reads the logits after the last fed token, `reset` starts over. That is all budget
/// forcing needs (forced text is appended, never rewritten), and it lets the GPU keep logits
/// on the device and send back a single `u32` per token. A budget sweep ([`run_sweep`])
/// also cuts the sequence back with `rewind`, after each budget's answer, to go on
/// thinking from where that answer branched off.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// Appends `tokens` at the current position, in as few batched passes as the backend
    /// allows, and computes the logits after the last of them.
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError>;

    /// Picks the next token from the logits of the last `feed` (greedy at temperature 0).
    /// Does not append it: the controller decides whether it joins the context.
    async fn sample(&mut self, sampling: &Sampling) -> Result<u32, EngineError>;

    /// Forgets every position (clears the KV cache) for a new question.
    fn reset(&mut self);

    /// Keeps the first `pos` positions and forgets the rest (nothing when `pos` is at or past
    /// [`Backend::position`]). The forgotten cache entries are overwritten by the next `feed`
    /// before anything reads them; after a cut there are no logits until that feed.
    fn rewind(&mut self, pos: usize);

    /// Tokens in the KV cache: where the next `feed` writes.
    fn position(&self) -> usize;

    /// The most tokens the KV cache may hold.
    fn context_len(&self) -> usize;

    /// What computes: the GPU adapter's name, or "CPU".
    fn device_name(&self) -> String;
}

/// Runs one question (or chat reply) from prompt to summary: THE driver loop.
///
/// - The backend is reset first: a controller's prompt is a whole ChatML conversation that
///   starts at position 0.
/// - Before anything is computed, the run's longest possible sequence is checked against
///   [`Backend::context_len`], so a too-small context fails in milliseconds instead of after
///   thousands of thinking tokens.
/// - `now_ms` is any monotonic clock in milliseconds (`performance.now()`, an `Instant`).
/// - `on_event` receives every [`Event`] in order as soon as it exists: the prompt before the
///   prefill starts, each token right after it is sampled, `done` last.
/// - `cancelled` is polled before every step; once it returns true the controller is
///   cancelled and the run ends with stop reason `cancelled` (and its `done` event).
///
/// On wasm32 the worker's event loop only runs while this future is suspended, i.e. while
/// the backend awaits (GPU readback). A backend that never suspends (the CPU one) can be
/// wrapped in one whose `feed` first yields to the event loop, so cancel messages get
/// through; the loop itself does not need to know.
pub async fn run_controller<B, C>(
    backend: &mut B,
    controller: &mut Controller<C>,
    sampling: &Sampling,
    now_ms: impl Fn() -> f64,
    mut on_event: impl FnMut(Event),
    cancelled: impl Fn() -> bool,
) -> Result<Summary, EngineError>
where
    B: Backend,
    C: TextCodec,
{
    start(backend, sampling, controller.max_sequence_len())?;
    loop {
        if cancelled() {
            controller.cancel(now_ms());
        }
        let step = controller.next_step(now_ms())?;
        // Emitted before the step runs, so the prompt shows while the prefill computes.
        controller.drain_events().for_each(&mut on_event);
        match step {
            Step::Feed(tokens) => backend.feed(&tokens).await?,
            Step::Sample => {
                let id = backend.sample(sampling).await?;
                controller.on_token(id, now_ms())?;
            }
            Step::Done(summary) => return Ok(summary),
        }
    }
}

/// What both driver loops do first: check the sampler, forget the last question, and refuse
/// a context smaller than the longest sequence the run can reach.
fn start<B: Backend>(
    backend: &mut B,
    sampling: &Sampling,
    needed: usize,
) -> Result<(), EngineError> {
    sampling.validate()?;
    backend.reset();
    if needed > backend.context_len() {
        return Err(EngineError::ContextTooSmall {
            needed,
            context: backend.context_len(),
        });
    }
    Ok(())
}

/// Runs one question's budget sweep ([`Sweep`]): one thinking trace to the largest budget,
/// each budget's answer branched off where that budget stops thinking, the sequence rewound
/// after each. The same contract as [`run_controller`] (reset first, the context checked
/// for the largest budget before anything is computed, every event as soon as it exists,
/// `cancelled` polled before every step: a cancel ends the sweep at the next token, with
/// the budgets answered so far kept in the summary).
pub async fn run_sweep<B, C>(
    backend: &mut B,
    sweep: &mut Sweep<C>,
    sampling: &Sampling,
    now_ms: impl Fn() -> f64,
    mut on_event: impl FnMut(SweepEvent),
    cancelled: impl Fn() -> bool,
) -> Result<SweepSummary, EngineError>
where
    B: Backend,
    C: TextCodec,
{
    start(backend, sampling, sweep.max_sequence_len())?;
    loop {
        if cancelled() {
            sweep.cancel(now_ms());
        }
        let step = sweep.next_step(now_ms())?;
        sweep.drain_events().for_each(&mut on_event);
        match step {
            SweepStep::Feed(tokens) => backend.feed(&tokens).await?,
            SweepStep::Sample => {
                let id = backend.sample(sampling).await?;
                sweep.on_token(id, now_ms())?;
            }
            SweepStep::Rewind(pos) => backend.rewind(pos),
            SweepStep::Done(summary) => return Ok(summary),
        }
    }
}

// The tests block on futures with pollster, a native-only dependency.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
