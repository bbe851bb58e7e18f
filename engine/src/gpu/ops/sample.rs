//! Next-token choice on the GPU: greedy argmax, or temperature + top-p with a seed.

use super::{key, need, Bind, Ops, Recording};
use crate::gpu::buffers::{F32Buffer, U32Buffer};
use crate::gpu::pipelines::{uniform, Kernel};
use crate::gpu::GpuError;
use crate::sampling::Sampling;

/// Partial results the first pass may produce (the final pass is one workgroup).
pub(crate) const MAX_PARTIALS: u32 = 1024;
/// Fewest logits per first-pass workgroup (16 per thread).
const MIN_CHUNK: u32 = 4096;

uniform! {
    /// sample.wgsl's `Params`.
    pub(crate) struct SampleParams {
        /// Vocabulary size.
        n: u32,
        /// Logits per argmax_partial workgroup.
        chunk: u32,
        n_groups: u32,
        temperature: f32,
        top_p: f32,
        seed_lo: u32,
        seed_hi: u32,
        step: u32,
    }
}

impl Ops {
    /// `out[0] = argmax(logits[..vocab])`, lowest index on ties.
    pub fn argmax(
        &mut self,
        rec: &mut Recording,
        logits: &F32Buffer,
        vocab: u32,
        out: &U32Buffer,
    ) -> Result<(), GpuError> {
        let params = self.sample_first_pass(rec, "argmax", logits, vocab, out, 1.0, 1.0, 0, 0)?;
        self.sample_final_pass(rec, Kernel::ArgmaxFinal, logits, out, &params);
        Ok(())
    }

    /// `out[0]` = a token drawn from `softmax(logits / temperature)` restricted to the top-p
    /// set, a pure function of (logits, seed, step); pass the decode step (e.g. the position)
    /// as `step` so each token draws a fresh number. Temperature <= 0 is greedy.
    pub fn sample(
        &mut self,
        rec: &mut Recording,
        logits: &F32Buffer,
        vocab: u32,
        sampling: &Sampling,
        step: u32,
        out: &U32Buffer,
    ) -> Result<(), GpuError> {
        if sampling.temperature <= 0.0 || !sampling.temperature.is_finite() {
            return self.argmax(rec, logits, vocab, out);
        }
        let params = self.sample_first_pass(
            rec,
            "sample",
            logits,
            vocab,
            out,
            sampling.temperature,
            sampling.top_p.clamp(0.0, 1.0),
            sampling.seed,
            step,
        )?;
        self.sample_final_pass(rec, Kernel::TopPFinal, logits, out, &params);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn sample_first_pass(
        &mut self,
        rec: &mut Recording,
        op: &'static str,
        logits: &F32Buffer,
        vocab: u32,
        out: &U32Buffer,
        temperature: f32,
        top_p: f32,
        seed: u64,
        step: u32,
    ) -> Result<SampleParams, GpuError> {
        super::within(op, "vocab", u64::from(vocab), 1, u64::from(u32::MAX))?;
        need(op, "logits", vocab as usize, logits.len())?;
        need(op, "output", 1, out.len())?;
        let chunk = vocab
            .div_ceil(MAX_PARTIALS)
            .next_multiple_of(256)
            .max(MIN_CHUNK);
        let n_groups = vocab.div_ceil(chunk);
        let params = SampleParams {
            n: vocab,
            chunk,
            n_groups,
            temperature,
            top_p,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            step,
        };
        let (pmax, pidx) = (self.sample_max.clone(), self.sample_idx.clone());
        self.push(
            rec,
            key(Kernel::ArgmaxPartial),
            &[
                Bind::whole(&logits.buffer),
                Bind::whole(&pmax),
                Bind::whole(&pidx),
            ],
            &params,
            [n_groups, 1, 1],
        );
        Ok(params)
    }

    fn sample_final_pass(
        &mut self,
        rec: &mut Recording,
        kernel: Kernel,
        logits: &F32Buffer,
        out: &U32Buffer,
        params: &SampleParams,
    ) {
        let (pmax, pidx) = (self.sample_max.clone(), self.sample_idx.clone());
        let partials = [
            Bind::whole(&pmax),
            Bind::whole(&pidx),
            Bind::whole(&out.buffer),
        ];
        let with_logits;
        let bindings: &[Bind<'_>] = if kernel == Kernel::TopPFinal {
            with_logits = [
                Bind::whole(&logits.buffer),
                Bind::whole(&pmax),
                Bind::whole(&pidx),
                Bind::whole(&out.buffer),
            ];
            &with_logits
        } else {
            &partials
        };
        self.push(rec, key(kernel), bindings, params, [1, 1, 1]);
    }
}
