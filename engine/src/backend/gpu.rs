//! [`Backend`] over the WebGPU model: logits stay on the GPU, one `u32` comes back per token,
//! and the next steps are submitted before that id is read.
//!
//! Decoding almost always feeds back the token just sampled, so after submitting the step
//! that samples token N, the backend also submits (up to [`GpuBackend::lookahead`]) steps
//! that feed the sampled id straight from the GPU's token buffer and sample N+1, N+2, before
//! it waits for N. The GPU then never idles while the host reads an id and hands it to the
//! controller. When the controller feeds what was speculated (the id it was given), the
//! step in flight is simply kept; when it does anything else (a forced answer prefix, a
//! "Wait", a stop), the speculative steps are dropped and the position rewound: their
//! cache entries lie past the new position and are overwritten before they are read. The
//! draws are keyed by position and seed, so a kept speculative step chose exactly what a
//! step-by-step run would have.

use std::collections::VecDeque;

use super::{Backend, EngineError, Sampling};
use crate::gpu::{GpuModel, Ticket};

/// A submitted step whose id the controller has not received.
struct InFlight {
    ticket: Ticket,
    sampling: Sampling,
    /// It feeds the id sampled by the step before it (submitted on speculation), and the
    /// controller has not (yet) fed that id itself.
    speculative: bool,
}

pub struct GpuBackend {
    model: GpuModel,
    lookahead: usize,
    inflight: VecDeque<InFlight>,
    /// The id the last `sample` returned.
    last: Option<u32>,
    /// The last token the controller fed (whose logits the next sample reads).
    last_fed: Option<u32>,
}

/// Steps kept in flight beyond the one being read: two hide a map round trip longer than a
/// step (the web's), and cost at most two wasted steps at each of the few points per
/// question where the controller overrides the model.
pub const DEFAULT_LOOKAHEAD: usize = 2;

impl GpuBackend {
    pub fn new(model: GpuModel) -> Self {
        Self::with_lookahead(model, DEFAULT_LOOKAHEAD)
    }

    /// `lookahead` steps submitted ahead of the one being read; 0 decodes step by step.
    pub fn with_lookahead(model: GpuModel, lookahead: usize) -> Self {
        let lookahead = lookahead.min(crate::gpu::ReadbackRing::SLOTS - 1);
        Self {
            model,
            lookahead,
            inflight: VecDeque::new(),
            last: None,
            last_fed: None,
        }
    }

    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    pub fn model(&self) -> &GpuModel {
        &self.model
    }

    /// The model, with any speculative step dropped.
    pub fn model_mut(&mut self) -> &mut GpuModel {
        self.drop_speculation();
        &mut self.model
    }

    pub fn into_model(mut self) -> GpuModel {
        self.drop_speculation();
        self.model
    }

    /// Steps fed on speculation that the controller has not confirmed.
    fn speculative(&self) -> usize {
        self.inflight.iter().filter(|s| s.speculative).count()
    }

    /// Forgets every step the controller did not ask for.
    fn drop_speculation(&mut self) {
        let keep = self.model.position() - self.speculative();
        self.inflight.retain(|s| !s.speculative);
        self.model.rewind(keep);
    }

    fn submit(&mut self, sampling: &Sampling, speculative: bool) -> Result<(), EngineError> {
        let ticket = self.model.submit_sample(sampling)?;
        self.inflight.push_back(InFlight {
            ticket,
            sampling: *sampling,
            speculative,
        });
        Ok(())
    }

    /// Feeds the last fed token again, so its logits are fresh (a sampler change after
    /// steps were submitted with the old one).
    fn recompute(&mut self) -> Result<(), EngineError> {
        self.drop_speculation();
        self.inflight.clear();
        let fed = self.last_fed.ok_or(EngineError::NoLogits)?;
        let pos = self.model.position();
        self.model.rewind(pos.saturating_sub(1));
        Ok(self.model.forward(&[fed])?)
    }

    /// Submits speculative steps until `lookahead` are in flight beyond the next one to read.
    fn speculate(&mut self, sampling: &Sampling) -> Result<(), EngineError> {
        while self.inflight.len() < 1 + self.lookahead {
            if self.model.position() >= self.model.context_len() {
                break;
            }
            self.model.feed_sampled()?;
            self.submit(sampling, true)?;
        }
        Ok(())
    }
}

impl Backend for GpuBackend {
    async fn feed(&mut self, tokens: &[u32]) -> Result<(), EngineError> {
        if let Some(next) = self.inflight.front_mut() {
            if next.speculative && self.last.is_some_and(|id| tokens == [id]) {
                // The step in flight fed exactly this token.
                next.speculative = false;
                self.last_fed = self.last;
                return Ok(());
            }
        }
        self.drop_speculation();
        // An unread step's id is stale once other tokens follow it.
        self.inflight.clear();
        self.model.forward(tokens)?;
        self.last_fed = tokens.last().copied().or(self.last_fed);
        Ok(())
    }

    async fn sample(&mut self, sampling: &Sampling) -> Result<u32, EngineError> {
        sampling.validate()?;
        match self.inflight.front() {
            Some(next) if !next.speculative && next.sampling == *sampling => {}
            Some(next) if next.speculative && next.sampling == *sampling && self.last.is_some() => {
                // Sampling again without feeding: the draw is a pure function of the logits,
                // the position and the seed, so it is the id already returned.
                return self.last.ok_or(EngineError::NoLogits);
            }
            Some(_) => {
                self.recompute()?;
                self.submit(sampling, false)?;
            }
            None => {
                if self.model.position() == 0 {
                    return Err(EngineError::NoLogits);
                }
                self.submit(sampling, false)?;
            }
        }
        self.speculate(sampling)?;
        let Some(next) = self.inflight.pop_front() else {
            return Err(EngineError::NoLogits);
        };
        let id = self.model.read_token(next.ticket).await?;
        self.last = Some(id);
        Ok(id)
    }

    fn reset(&mut self) {
        self.inflight.clear();
        self.last = None;
        self.last_fed = None;
        self.model.reset();
    }

    fn rewind(&mut self, pos: usize) {
        if pos >= self.position() {
            return;
        }
        // Steps in flight computed positions past the cut: none of their ids may be read.
        self.drop_speculation();
        self.inflight.clear();
        self.last = None;
        self.last_fed = None;
        self.model.rewind(pos);
    }

    fn position(&self) -> usize {
        self.model.position() - self.speculative()
    }

    fn context_len(&self) -> usize {
        self.model.context_len()
    }

    fn device_name(&self) -> String {
        self.model.gpu().report.name.clone()
    }
}
