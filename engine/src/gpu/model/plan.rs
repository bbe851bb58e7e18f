//! The forward pass as prepared recordings (`ops::Recording`), built once per token count
//! and replayed at any position: a step writes the 16-byte `Step` uniform (the position),
//! then replays an embedding, the decoder body and the head into one compute pass.
//!
//! The one-token (decode) body uses the fused kernels: each residual add rides in the
//! following RMSNorm, q/k/v with their biases, RoPE and the KV-cache write are one mat-vec
//! over the fused `[q; k; v]` weight, gate/up/SwiGLU one over `[gate; up]`. That is 8
//! dispatches per layer where the loader could fuse (9 when v has its own type); a batch of
//! tokens runs the tiled mat-mat kernels over the same weights, a row range at a time.

use std::collections::HashMap;

use super::load::{Elems, Rows, Weights};
use super::Scratch;
use crate::gpu::{GpuBuffer, GpuError, KvCache, Ops, QkvLayout, Recording, RopeFreqs, RopeMode};
use crate::model::{ModelConfig, RopeType};
use crate::sampling::Sampling;

/// One prepared piece of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Part {
    /// The embedding of `t` tokens: from the ids the host wrote, or (one token) the id the
    /// previous step sampled, which never leaves the GPU.
    Embed { t: u32, sampled: bool },
    /// The decoder over `t` tokens, ending in the final norm of every row.
    Body { t: u32 },
    /// The LM head over the last of `t` rows.
    Head { t: u32 },
    /// The sampler over the logits; its draw is keyed by the step's position plus `ahead`.
    Sample { sampling: SamplingKey, ahead: u32 },
}

/// [`Sampling`] as a hashable key (its bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SamplingKey {
    temperature: u32,
    top_p: u32,
    seed: u64,
}

impl SamplingKey {
    pub fn of(s: &Sampling) -> Self {
        Self {
            temperature: s.temperature.to_bits(),
            top_p: s.top_p.to_bits(),
            seed: s.seed,
        }
    }

    fn sampling(self) -> Sampling {
        Sampling {
            temperature: f32::from_bits(self.temperature),
            top_p: f32::from_bits(self.top_p),
            seed: self.seed,
        }
    }
}

/// Recordings kept besides the decode step's own: prompts of a few lengths, a few samplers.
const MAX_CACHED: usize = 24;

/// What the recordings bind: everything the model holds.
pub(super) struct Model<'a> {
    pub config: &'a ModelConfig,
    pub weights: &'a Weights,
    pub scratch: &'a Scratch,
    pub cache: &'a KvCache,
    pub rope: &'a RopeFreqs,
}

/// The step uniform and the recordings built so far.
pub(super) struct Plan {
    step: GpuBuffer,
    parts: HashMap<Part, Recording>,
    /// Parts built at load, never evicted: a greedy decode step needs nothing else.
    resident: Vec<Part>,
}

impl Plan {
    /// The step buffer and the decode step's parts (built now, so the first token compiles
    /// nothing and every decoded token replays what exists).
    pub fn new(ops: &mut Ops, m: &Model<'_>) -> Result<Self, GpuError> {
        let step = ops.gpu().create_buffer(&wgpu::BufferDescriptor {
            label: Some("step"),
            size: std::mem::size_of::<crate::gpu::Step>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut plan = Self {
            step,
            parts: HashMap::new(),
            resident: Vec::new(),
        };
        let greedy = SamplingKey::of(&Sampling::GREEDY);
        let resident = [
            Part::Embed {
                t: 1,
                sampled: true,
            },
            Part::Embed {
                t: 1,
                sampled: false,
            },
            Part::Body { t: 1 },
            Part::Head { t: 1 },
            Part::Sample {
                sampling: greedy,
                ahead: 1,
            },
        ];
        for part in resident {
            plan.prepare(ops, m, part)?;
        }
        plan.resident = resident.to_vec();
        Ok(plan)
    }

    pub fn step_buffer(&self) -> &wgpu::Buffer {
        &self.step
    }

    /// Builds `part` unless it exists.
    pub fn prepare(&mut self, ops: &mut Ops, m: &Model<'_>, part: Part) -> Result<(), GpuError> {
        if self.parts.contains_key(&part) {
            return Ok(());
        }
        if self.parts.len() >= self.resident.len() + MAX_CACHED {
            // Prompt lengths and samplers come and go; the decode step's parts stay.
            let resident = &self.resident;
            self.parts.retain(|p, _| resident.contains(p));
        }
        let mut rec = ops.live_recording(&self.step);
        record(ops, &mut rec, m, part)?;
        rec.finish(ops.queue());
        self.parts.insert(part, rec);
        Ok(())
    }

    /// The prepared `part` (after [`Self::prepare`]).
    pub fn get(&self, part: Part) -> Result<&Recording, GpuError> {
        self.parts.get(&part).ok_or_else(|| GpuError::Validation {
            what: "GpuModel plan".to_string(),
            message: format!("{part:?} was not prepared"),
        })
    }
}

fn record(ops: &mut Ops, rec: &mut Recording, m: &Model<'_>, part: Part) -> Result<(), GpuError> {
    let s = m.scratch;
    let w = m.weights;
    match part {
        Part::Embed { t, sampled } => {
            let ids = if sampled { &s.token } else { &s.ids };
            ops.embed(rec, &w.matrices[w.token_embd.tensor], ids, &s.x, t)
        }
        Part::Body { t } => body(ops, rec, m, t),
        Part::Head { t } => {
            ops.matvec_row(rec, &s.h, t - 1, &w.matrices[w.output.tensor], &s.logits)
        }
        Part::Sample { sampling, ahead } => {
            let vocab = m.config.vocab_size as u32;
            ops.sample(rec, &s.logits, vocab, &sampling.sampling(), ahead, &s.token)
        }
    }
}

/// The decoder over `t` tokens at the step's position; each layer reads like its equations.
fn body(ops: &mut Ops, rec: &mut Recording, m: &Model<'_>, t: u32) -> Result<(), GpuError> {
    let (c, w, s) = (m.config, m.weights, m.scratch);
    let eps = c.rms_eps;
    let n_head = c.n_head as u32;
    let vector = |e: Elems| &w.vectors[e.buffer];
    for (layer, b) in w.blocks.iter().enumerate() {
        // Attention: x += W_o · attention(rope(W_q h + b_q), rope(W_k h + b_k), W_v h + b_v)
        if layer == 0 {
            ops.rms_norm(rec, &s.x, vector(b.attn_norm), &s.h, t, eps)?;
        } else {
            // The previous layer's feed-forward output joins the residual stream here.
            ops.add_rms_norm(rec, &s.x, &s.proj, vector(b.attn_norm), &s.h, t, eps)?;
        }
        let bias = |e: Option<Elems>| e.map(vector);
        qkv(
            ops,
            rec,
            m,
            layer,
            t,
            [b.attn_q, b.attn_k, b.attn_v],
            [b.attn_q_bias, b.attn_k_bias, b.attn_v_bias].map(bias),
        )?;
        ops.attention(rec, &s.q, m.cache, layer, &s.attn, n_head, 0, t)?;
        ops.matmul(
            rec,
            &s.attn,
            &w.matrices[b.attn_output.tensor],
            None,
            &s.proj,
            t,
        )?;
        // Feed-forward: x += W_down · (silu(W_gate h) ⊙ W_up h)
        ops.add_rms_norm(rec, &s.x, &s.proj, vector(b.ffn_norm), &s.h, t, eps)?;
        let (gate, up) = (b.ffn_gate, b.ffn_up);
        if t == 1 && gate.tensor == up.tensor {
            ops.matvec_swiglu(rec, &s.h, &w.matrices[gate.tensor], &s.gate)?;
        } else {
            rows(ops, rec, w, &s.h, gate, None, &s.gate, t)?;
            rows(ops, rec, w, &s.h, up, None, &s.up, t)?;
            ops.swiglu(rec, &s.gate, &s.up, t as usize * c.n_ff)?;
        }
        ops.matmul(
            rec,
            &s.gate,
            &w.matrices[b.ffn_down.tensor],
            None,
            &s.proj,
            t,
        )?;
    }
    let norm = &w.vectors[w.output_norm.buffer];
    ops.add_rms_norm(rec, &s.x, &s.proj, norm, &s.h, t, eps)
}

/// q, k and v of one layer: one fused mat-vec (two when v has its own type) for a decode
/// step, else mat-mats over each row range, RoPE and the cache write.
#[allow(clippy::too_many_arguments)]
fn qkv(
    ops: &mut Ops,
    rec: &mut Recording,
    m: &Model<'_>,
    layer: usize,
    t: u32,
    [q, k, v]: [Rows; 3],
    [bq, bk, bv]: [Option<&crate::gpu::F32Buffer>; 3],
) -> Result<(), GpuError> {
    let (c, w, s) = (m.config, m.weights, m.scratch);
    let head_dim = c.head_dim as u32;
    let mode = match c.rope_type {
        RopeType::Neox => RopeMode::Neox,
        RopeType::Normal => RopeMode::Normal,
    };
    let layout = |q_rows, k_rows| QkvLayout {
        q_rows,
        k_rows,
        head_dim,
        mode,
    };
    if t == 1 && q.tensor == k.tensor {
        let fused = &w.matrices[q.tensor];
        if k.tensor == v.tensor {
            return ops.matvec_rope_kv(
                rec,
                &s.h,
                fused,
                bq,
                layout(q.rows, k.rows),
                m.rope,
                &s.q,
                m.cache,
                layer,
                0,
            );
        }
        ops.matvec_rope_kv(
            rec,
            &s.h,
            fused,
            bq,
            layout(q.rows, k.rows),
            m.rope,
            &s.q,
            m.cache,
            layer,
            0,
        )?;
        let v_alone = &w.matrices[v.tensor];
        return ops.matvec_rope_kv(
            rec,
            &s.h,
            v_alone,
            bv,
            layout(0, 0),
            m.rope,
            &s.q,
            m.cache,
            layer,
            0,
        );
    }
    rows(ops, rec, w, &s.h, q, bq, &s.q, t)?;
    rows(ops, rec, w, &s.h, k, bk, &s.k, t)?;
    rows(ops, rec, w, &s.h, v, bv, &s.v, t)?;
    let (n_head, n_kv) = (c.n_head as u32, c.n_head_kv as u32);
    ops.rope(rec, &s.q, m.rope, mode, n_head, head_dim, 0, t)?;
    ops.rope(rec, &s.k, m.rope, mode, n_kv, head_dim, 0, t)?;
    ops.kv_write(rec, m.cache, layer, &s.k, &s.v, 0, t)
}

/// `y = W[rows] x (+ bias)` for `t` tokens, over the rows a file tensor occupies.
#[allow(clippy::too_many_arguments)]
fn rows(
    ops: &mut Ops,
    rec: &mut Recording,
    w: &Weights,
    x: &crate::gpu::F32Buffer,
    r: Rows,
    bias: Option<&crate::gpu::F32Buffer>,
    y: &crate::gpu::F32Buffer,
    t: u32,
) -> Result<(), GpuError> {
    let tensor = &w.matrices[r.tensor];
    ops.matmul_rows(rec, x, tensor, r.first..r.first + r.rows, bias, y, t)
}
