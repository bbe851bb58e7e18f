//! The forward pass's small ops on rows of f32 (RMSNorm, RoPE, softmax, SwiGLU, attention),
//! written to follow ggml's CPU kernels (ggml-cpu/ops.cpp) closely enough that greedy
//! tokens match llama.cpp: sums that ggml accumulates in double are accumulated in f64 here
//! too. Plain slices rather than candle tensors: a decode step runs ~25 of these per layer
//! on a few hundred values, where a tensor op's fixed cost was most of the time.

use super::kernels::pool::SharedMut;
use super::kernels::{vec, Isa, Pool};
use crate::model::RopeType;

/// Each row of `x` (rows of `weight.len()`): `x / sqrt(mean(x^2) + eps) * weight` (ggml
/// `rms_norm` + `mul`).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let n = weight.len().max(1);
    let mut out = x.to_vec();
    for row in out.chunks_mut(n) {
        let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / n as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = (*v * scale) * w;
        }
    }
    out
}

/// Softmax of one row in place (ggml `soft_max`: f32 max, f64 sum of exponentials).
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    row.iter_mut().for_each(|v| *v *= inv);
}

/// cos/sin of the rotation angles for `n_tokens` positions from `pos`, each (n_tokens,
/// n_rot / 2). Angles are built as ggml's `rope_cache_init` does, in f32:
/// `theta = p; theta *= base^(-2/n_rot)` per pair, so rounding matches llama.cpp.
pub fn rope_tables(
    pos: usize,
    n_tokens: usize,
    n_rot: usize,
    freq_base: f32,
) -> (Vec<f32>, Vec<f32>) {
    let half = n_rot / 2;
    let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
    let mut cos = Vec::with_capacity(n_tokens * half);
    let mut sin = Vec::with_capacity(n_tokens * half);
    for p in pos..pos + n_tokens {
        let mut theta = p as f32;
        for _ in 0..half {
            cos.push(theta.cos());
            sin.push(theta.sin());
            theta *= theta_scale;
        }
    }
    (cos, sin)
}

/// Rotary position embedding in place of `x`: `n_tokens` rows of `heads` heads of
/// `head_dim`, `cos`/`sin` (n_tokens, n_rot / 2) from [`rope_tables`]; the first n_rot
/// dimensions of each head rotate, the rest pass through. Neox pairs dimension i with
/// i + n_rot/2; Normal pairs 2i with 2i+1 (ggml `rope_f32`).
pub fn rope(
    x: &mut [f32],
    heads: usize,
    head_dim: usize,
    cos: &[f32],
    sin: &[f32],
    kind: RopeType,
) {
    let n_tokens = x.len() / (heads * head_dim).max(1);
    let half = cos.len() / n_tokens.max(1);
    for (t, row) in x.chunks_mut(heads * head_dim).enumerate() {
        let (cs, sn) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        for v in row.chunks_mut(head_dim) {
            for i in 0..half {
                let (a, b) = match kind {
                    RopeType::Neox => (i, i + half),
                    RopeType::Normal => (2 * i, 2 * i + 1),
                };
                let (x0, x1) = (v[a], v[b]);
                v[a] = x0 * cs[i] - x1 * sn[i];
                v[b] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

/// `gate = silu(gate) * up` (ggml `swiglu`: `x / (1 + exp(-x))` in f32).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `x += y`.
pub fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

/// Adds `bias` to each row of `x`.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_mut(bias.len().max(1)) {
        add(row, bias);
    }
}

/// The shape of one attention call.
#[derive(Clone, Copy)]
pub struct AttentionShape {
    /// Query rows (tokens) and the position of the first.
    pub n: usize,
    pub pos: usize,
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    /// Positions a KV head's cache has room for (its stride in positions).
    pub capacity: usize,
}

/// Query rows per attention task in a batch.
const ATTN_ROWS: usize = 16;

/// Causal grouped-query attention: `q` (n, n_head * head_dim) at positions pos..pos + n
/// against caches `k` ([n_kv][capacity / KEYS][head_dim][KEYS]: keys transposed in blocks
/// of [`vec::KEYS`]) and `v` ([n_kv][capacity][head_dim]), the first pos + n positions filled;
/// query head h reads KV head h / (n_head / n_kv), as ggml broadcasts. Row i sees keys
/// 0..=pos + i: scores `q.k / sqrt(head_dim)`, a softmax, rounded to f16 when `round_probs`
/// (llama.cpp's f16 V path), then the weighted sum of values. A row's result depends only
/// on its position, never on the batch or the thread; tasks over (head, rows) run on `pool`.
pub fn attention(
    isa: Isa,
    pool: &Pool,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttentionShape,
    round_probs: bool,
) -> Vec<f32> {
    let (hd, rep) = (s.head_dim, s.n_head / s.n_kv.max(1));
    let width = s.n_head * hd;
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    let mut out = vec![0f32; s.n * width];
    let chunks = s.n.div_ceil(ATTN_ROWS);
    let shared = SharedMut::new(&mut out);
    let task = |task: usize| {
        let (h, chunk) = (task / chunks, task % chunks);
        let g = h / rep.max(1);
        let keys = &k[g * s.capacity * hd..(g + 1) * s.capacity * hd];
        let values = &v[g * s.capacity * hd..(g + 1) * s.capacity * hd];
        let mut scores = Vec::with_capacity(s.pos + s.n + vec::KEYS);
        for i in chunk * ATTN_ROWS..((chunk + 1) * ATTN_ROWS).min(s.n) {
            let qi = &q[i * width + h * hd..i * width + (h + 1) * hd];
            let seen = s.pos + i + 1;
            let blocks = seen.div_ceil(vec::KEYS);
            scores.resize(blocks * vec::KEYS, 0.0);
            vec::scores(isa, qi, keys, blocks, &mut scores);
            scores.truncate(seen);
            scores.iter_mut().for_each(|x| *x *= scale);
            softmax(&mut scores);
            if round_probs {
                vec::round_f16(isa, &mut scores);
            }
            // SAFETY: row i of head h is this task's alone.
            let o = unsafe { shared.range(i * width + h * hd..i * width + (h + 1) * hd) };
            vec::weighted_sum(isa, o, &scores, values);
        }
    };
    // A decode step over a short context is a few microseconds of work: not worth waking
    // the other threads.
    let work = s.n * (s.pos + s.n) * s.n_head * hd;
    if work < 1 << 18 {
        (0..s.n_head * chunks).for_each(task);
    } else {
        pool.run(s.n_head * chunks, &task);
    }
    out
}

/// Index of the largest value; the first one on ties.
pub fn argmax(values: &[f32]) -> Option<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32)
}
